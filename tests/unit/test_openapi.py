"""docs/openapi.json: generated from the code, valid OpenAPI 3.1, and complete."""

import json
from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from keygate import apigw, routes
from keygate.errors import ServiceUnavailable
from keygate.profiles.gaiaex import ApiKeyList, ApiKeyView
from keygate_dev import openapi, template

CHECKED_IN = json.loads(openapi.OPENAPI_PATH.read_text())
ROUTES = [(route.method, route.path, route) for route in routes.ROUTES]


def _operation(method, path):
    return CHECKED_IN["paths"][path][method.lower()]


def _component_validator(name):
    # The description is the root document, so its #/components references resolve.
    return Draft202012Validator({**CHECKED_IN, "$ref": f"#/components/schemas/{name}"},
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_checked_in_description_is_what_the_code_generates():
    # Given the checked-in docs/openapi.json
    checked_in = openapi.OPENAPI_PATH.read_text()
    # When it is generated again from template.yaml and the models
    regenerated = openapi.render()
    # Then nothing changed (else: `make openapi` and commit the result)
    assert checked_in == regenerated, "docs/openapi.json is out of date: run `make openapi`"


def test_description_is_valid_openapi_3_1():
    # Given the checked-in description
    # When openapi-spec-validator checks it against the OpenAPI 3.1 schema
    errors = [error.message for error in OpenAPIV31SpecValidator(CHECKED_IN).iter_errors()]
    # Then it finds nothing
    assert CHECKED_IN["openapi"].startswith("3.1.")
    assert errors == []


def test_every_template_route_is_described_and_nothing_else():
    # Given every Api event of template.yaml
    routed = {(method.lower(), path) for method, path, _ in template.api_routes()}
    # When the description's operations are listed
    described = {(method, path) for path, item in CHECKED_IN["paths"].items() for method in item}
    # Then they are the same routes
    assert routed and described == routed


@pytest.mark.parametrize(("method", "path", "route"), ROUTES)
def test_step_up_is_documented_exactly_where_the_route_declares_it(method, path, route):
    # Given whether the route registry says the route needs a passkey confirmation
    reads_step_up = route.step_up is not None
    # When its operation is looked up
    operation = _operation(method, path)
    # Then the step-up action and scheme are documented if and only if the handler reads the token
    assert (openapi.STEP_UP_EXTENSION in operation) == reads_step_up
    schemes = {name for requirement in operation["security"] for name in requirement}
    assert (openapi.STEP_UP_SCHEME in schemes) == reads_step_up


def test_each_route_declares_the_credentials_its_authorizer_checks():
    # Given the three kinds of caller: anyone (the clock), a bot, the app
    # When their operations' security requirements are read
    time_security = _operation("GET", "/v1/time")["security"]
    bot_security = _operation("GET", "/v1/trade/api-keys/self")["security"]
    app_security = _operation("GET", "/v1/trade/api-keys")["security"]
    # Then the clock is open, bots sign with every KG1 header, the app sends its session
    assert time_security == []
    assert bot_security == [dict.fromkeys(openapi.KG1_SCHEMES, [])]
    assert app_security == [{openapi.SESSION_SCHEME: []}]
    schemes = CHECKED_IN["components"]["securitySchemes"]
    assert schemes[openapi.SESSION_SCHEME]["bearerFormat"] == "JWT"
    assert schemes[openapi.STEP_UP_SCHEME] == {**schemes[openapi.STEP_UP_SCHEME], "in": "header",
                                               "name": "X-PASSKEY-TOKEN"}


@pytest.mark.parametrize(("method", "path", "route"), ROUTES)
def test_every_refusal_has_the_error_shape_and_503_says_when_to_retry(method, path, route):
    # Given a route's documented responses
    responses = _operation(method, path)["responses"]
    # When the refusals among them are read
    refusals = {status: response for status, response in responses.items() if not status.startswith("2")}
    # Then each has the one error body, and 503 carries Retry-After
    assert {"429", "503"} <= set(refusals)
    error_body = {"$ref": "#/components/schemas/ErrorResponse"}
    for response in refusals.values():
        assert response["content"]["application/json"]["schema"] == error_body
    assert refusals["503"]["headers"]["Retry-After"] == {"$ref": "#/components/headers/RetryAfter"}


def test_the_error_body_api_writes_matches_the_documented_shape():
    # Given the response api.py writes for a storage fault
    response = apigw.error_response(ServiceUnavailable())
    # When its body is checked against the documented ErrorResponse
    problems = list(_component_validator("ErrorResponse").iter_errors(json.loads(response["body"])))
    # Then it conforms, with the documented Retry-After header
    assert problems == []
    assert int(response["headers"]["Retry-After"]) >= 1


def test_list_responses_are_typed_and_closed_so_a_stray_secret_breaks_them():
    # Given a list response as the service serialises it (ISO timestamps, every field)
    view = ApiKeyView(api_key="kgk_x", key_prefix="kgk_x", label="bot", permissions=["read"], ip_whitelist=[],
                      created_at=datetime(2026, 11, 24, 12, tzinfo=UTC), expires_at=None, last_used_at=None,
                      revoked_at=None, is_active=True, key_type="hmac-sha256")
    body = json.loads(ApiKeyList(keys=[view], count=1).model_dump_json())
    leaked = {**body, "keys": [{**body["keys"][0], "api_secret": "kgs_leak"}]}
    mistyped = {**body, "keys": [{**body["keys"][0], "created_at": "yesterday"}]}
    validator = _component_validator("ApiKeyList")
    # When each is checked against the description
    # Then the real one conforms, and a secret or a malformed timestamp does not
    assert list(validator.iter_errors(body)) == []
    assert list(validator.iter_errors(leaked))
    assert list(validator.iter_errors(mistyped))


ROUTES_WITH_EXAMPLES = [(method, path, route) for method, path, route in ROUTES if route.request_examples]


@pytest.mark.parametrize(("method", "path", "route"), ROUTES_WITH_EXAMPLES)
def test_documented_request_examples_are_accepted_by_the_request_model(method, path, route):
    # Given the request examples the description shows for a route
    examples = _operation(method, path)["requestBody"]["content"]["application/json"]["examples"]
    allowed = tuple(template.parameter_defaults()["AllowedPermissions"].split(","))
    # When each is validated by the route's model, with the default stack's permissions
    # Then it is accepted as it is shown
    assert examples
    for example in examples.values():
        route.request_model.model_validate(example["value"], context={"allowed_permissions": allowed})
