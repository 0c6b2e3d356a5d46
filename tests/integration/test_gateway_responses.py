"""What API Gateway answers by itself (Gateway Responses in template.yaml), in docs/product.md's error shape.

Checked twice: each template renders to `{"error": {"code", "message"}}` JSON,
and the local gateway (keygate_dev.local_api, which renders the template's
Gateway Responses the way API Gateway does) answers an unknown route 404
ROUTE_NOT_FOUND rather than API Gateway's default 403 "Missing Authentication Token".
Served through Flask's test client: no port is opened.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from keygate.errors import ServiceUnavailable
from keygate_dev import template
from keygate_dev.local_api import GatewayError
from tests.support.client import local_gateway as support_gateway
from tests.support.errors import error_of
from tests.support.stack import stack_parameters

GATEWAY_RESPONSES = template.gateway_responses()
EXAMPLE_GATEWAY_RESPONSES = template.gateway_responses(template.EXAMPLE_TEMPLATE_PATH)


def _rendered(text: str) -> dict:
    """A template with API Gateway's variables filled in ($context.error.messageString is a quoted JSON string)."""
    text = text.replace("$context.error.messageString", json.dumps('an "odd" message'))
    return json.loads(re.sub(r"\$context\.[A-Za-z0-9_.]+", "value", text))


@pytest.mark.parametrize(("responses", "response_type"), [
    *((GATEWAY_RESPONSES, name) for name in sorted(GATEWAY_RESPONSES)),
    *((EXAMPLE_GATEWAY_RESPONSES, name) for name in sorted(EXAMPLE_GATEWAY_RESPONSES)),
], ids=[*sorted(GATEWAY_RESPONSES), *(f"example-{name}" for name in sorted(EXAMPLE_GATEWAY_RESPONSES))])
def test_every_gateway_response_renders_the_error_shape(responses, response_type):
    error_of(_rendered(responses[response_type]["ResponseTemplates"]["application/json"]))


def test_an_unknown_route_is_a_404_with_its_own_code_in_the_template():
    response = GATEWAY_RESPONSES["MISSING_AUTHENTICATION_TOKEN"]
    assert response["StatusCode"] == "404"
    assert _rendered(response["ResponseTemplates"]["application/json"])["error"]["code"] == "ROUTE_NOT_FOUND"


@pytest.mark.parametrize("responses", [GATEWAY_RESPONSES, EXAMPLE_GATEWAY_RESPONSES], ids=["keygate", "example"])
def test_api_gateway_throttling_is_a_429_throttled_with_retry_after(responses):
    # Given the THROTTLED Gateway Response (the stage's own throttling) of each API
    throttled = responses["THROTTLED"]
    # Then it is 429 in the error shape with code THROTTLED, and tells the client when to retry
    assert throttled["StatusCode"] == "429"
    assert _rendered(throttled["ResponseTemplates"]["application/json"])["error"]["code"] == "THROTTLED"
    assert throttled["ResponseParameters"]["Headers"]["Retry-After"] == "'1'"


@pytest.fixture
def local_gateway(identity, jwks):
    return support_gateway(stack_parameters(identity, jwks))


@pytest.mark.parametrize(("method", "path", "template_path"), [
    ("GET", "/v1/trade/api-keys", template.TEMPLATE_PATH),
    ("POST", "/v1/trade/orders", template.EXAMPLE_TEMPLATE_PATH),
], ids=["keygate", "example"])
def test_the_local_gateway_renders_throttled_from_each_template(local_gateway, method, path, template_path):
    # Given a request to a route of either template (nothing throttles locally, so raise the response itself)
    with local_gateway.app.test_request_context(path, method=method):
        assert local_gateway._responses_for_request() is local_gateway.definition.responses[template_path]
        # When the gateway answers it with the THROTTLED Gateway Response
        response = local_gateway._gateway_response(GatewayError("THROTTLED"))
    # Then it is the template's: 429, Retry-After, the error shape with code THROTTLED
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["code"] == "THROTTLED"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/trade/nothing-here"),
    ("GET", "/"),
    ("PUT", "/v1/trade/api-keys"),
    ("POST", "/v1/time"),
    ("GET", "/v2/trade/api-keys"),
    ("OPTIONS", "/v1/trade/api-keys"),
    ("OPTIONS", "/v1/time"),
    ("TRACE", "/v1/time"),
])
def test_the_local_gateway_answers_an_unknown_route_or_method_404_route_not_found(local_gateway, method, path):
    # When a client calls a path or method no route matches
    response = local_gateway.request(method, path)
    # Then the gateway answers 404 ROUTE_NOT_FOUND in the error shape, as the template says
    assert response.status == 404, response.body
    body = response.json()
    assert error_of(body)["code"] == "ROUTE_NOT_FOUND"
    assert response.headers["x-amzn-RequestId"] in body["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/time", "/v1/trade/api-keys", "/v1/trade/api-keys/self", "/nowhere"])
def test_head_is_a_method_no_route_declares(local_gateway, path):
    # When a client sends HEAD, to a route that only declares GET or to no route at all
    response = local_gateway.request("HEAD", path)
    # Then API Gateway's answer for an undeclared method, which the template makes 404 ROUTE_NOT_FOUND
    # (a HEAD answer has no body), never a 5xx
    assert response.status == 404 and response.body == ""
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_the_local_gateway_still_answers_a_known_route_without_a_session_401(local_gateway):
    # A control: a real route without Authorization is the authorizer's 401, not a missing route.
    response = local_gateway.request("GET", "/v1/trade/api-keys")
    assert response.status == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/trade/api-keys/self"), ("POST", "/v1/trade/orders")],
                         ids=["keygate", "example"])
def test_the_local_gateway_answers_an_authorizer_that_raises_503_with_retry_after(local_gateway, monkeypatch, method,
                                                                                    path):
    # Given a signature authorizer whose checks raise (an AWS fault), on KeyGate's API and on the example's
    def unavailable(request):
        raise ServiceUnavailable()

    monkeypatch.setattr(template.module_for("SignatureAuthorizerFunction"), "_signature_authorizer",
                        lambda: SimpleNamespace(authorize=unavailable))
    # When a bot calls a route it guards
    response = local_gateway.request(method, path)
    # Then API Gateway's answer to an authorizer that raises, AUTHORIZER_CONFIGURATION_ERROR, is the template's:
    # 503 with Retry-After in the error shape, never a bare 500
    assert response.status == 503 and response.headers["Retry-After"] == "2", response.body
    assert error_of(response.json())["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["x-amzn-ErrorType"] == "AuthorizerConfigurationException"


@pytest.mark.parametrize(("statements", "allowed"), [
    ([("Allow", "arn:aws:execute-api:r:1:api/dev/GET/v1/misc/a+b")], True),
    ([("Allow", "arn:aws:execute-api:r:1:api/dev/GET/v1/misc/aab")], False),  # `+` is not a quantifier
    ([("Allow", "arn:aws:execute-api:r:1:api/dev/*")], True),
    ([("Allow", "arn:aws:execute-api:r:1:api/dev/GET/v1/misc/a?b")], True),
    ([("Allow", "arn:aws:execute-api:r:1:api/dev/GET/v1/misc/a.b")], False),  # `.` is a dot
    ([("Allow", "arn:aws:execute-api:r:1:api/dev/*"), ("Deny", "arn:aws:execute-api:r:1:api/dev/GET/*")], False),
    ([("Deny", "arn:aws:execute-api:r:1:api/dev/*")], False),
    ([], False),
], ids=["exact", "plus", "stage-wide", "question mark", "dot", "deny wins", "deny", "none"])
def test_the_local_gateway_matches_an_authorizers_policy_as_iam_does(statements, allowed):
    assert _allows(statements, "arn:aws:execute-api:r:1:api/dev/GET/v1/misc/a+b") is allowed


def _allows(statements: list[tuple[str, str]], method_arn: str) -> bool:
    from keygate_dev.local_api import policy_allows

    policy = {"principalId": "u", "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource} for effect, resource in statements]}}
    return policy_allows(policy, method_arn)


def test_a_resource_holding_a_bar_matches_that_path_only():
    # (read as a regular expression, `a|c` would match any ARN that starts like this one)
    allowed = [("Allow", "arn:aws:execute-api:r:1:api/dev/GET/v1/misc/a|c")]
    assert _allows(allowed, "arn:aws:execute-api:r:1:api/dev/GET/v1/misc/a|c")
    assert not _allows(allowed, "arn:aws:execute-api:r:1:api/dev/GET/v1/misc/a")


@pytest.mark.parametrize(("lines", "multi", "single"), [
    # a header sent twice: every value, in order, and the last as its single value (as API Gateway passes it)
    ([("X-KG-NONCE", "a"), ("x-kg-nonce", "b")], ["a", "b"], "b"),
    # sent once, or no lines kept (the in-process test client): the event as SAM CLI built it
    ([("X-KG-NONCE", "a,b")], ["a,b"], "a,b"),
    (None, ["a,b"], "a,b"),
])
def test_a_repeated_header_keeps_every_value_as_api_gateway_passes_it(lines, multi, single):
    from keygate_dev.local_api import headers_as_api_gateway_passes_them

    # Given SAM CLI's event, in which WSGI joined the header's lines with a comma
    event = {"headers": {"X-Kg-Nonce": "a,b", "X-Forwarded-Port": "3000"},
             "multiValueHeaders": {"X-Kg-Nonce": ["a,b"], "X-Forwarded-Port": ["3000"]}}
    # When the header lines the client sent are applied
    headers_as_api_gateway_passes_them(event, lines and [*lines, ("X-Forwarded-Port", "1"), ("X-Forwarded-Port", "2")])
    # Then the header carries what was sent, and the gateway's own X-Forwarded-* stay the gateway's
    assert event["multiValueHeaders"]["X-Kg-Nonce"] == multi and event["headers"]["X-Kg-Nonce"] == single
    assert event["multiValueHeaders"]["X-Forwarded-Port"] == ["3000"] and event["headers"]["X-Forwarded-Port"] == "3000"
