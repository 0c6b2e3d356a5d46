"""The OpenAPI 3.1 description of the KeyGate API, generated from the code.

- Routes, who may call them, their models, step-up actions and refusals:
  the route registry (keygate.routes), which tests/unit/test_routes.py holds
  to template.yaml.
- Errors: one shape everywhere (models.ErrorResponse), with every status the
  route can answer, from its handler, its authorizer or API Gateway itself.

docs/openapi.json is this module's output, checked in; tests/unit/test_openapi.py
fails when it no longer matches the code. Regenerate it with

    .venv/bin/python -m keygate_dev.openapi --write     (or `make openapi`)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import kg1
from keygate import keys, models, stepup
from keygate.errors import ErrorCode
from keygate.routes import ROUTES
from keygate.routing import Auth, QueryInteger, Route
from keygate_dev import template

OPENAPI_PATH = template.ROOT / "docs" / "openapi.json"
REF_TEMPLATE = "#/components/schemas/{model}"
STEP_UP_EXTENSION = "x-keygate-step-up-action"
STEP_UP_HEADER = stepup.HEADER
SESSION_SCHEME = "session"
STEP_UP_SCHEME = "passkeyStepUp"
# One apiKey scheme per KG1 header that every signed request carries (docs/signing.md);
# the optional X-KG-RECV-WINDOW is a header parameter of the route instead.
KG1_SCHEMES = {
    "kg1ApiKey": kg1.HEADER_API_KEY,
    "kg1Timestamp": kg1.HEADER_TIMESTAMP,
    "kg1Nonce": kg1.HEADER_NONCE,
    "kg1ContentSha256": kg1.HEADER_CONTENT_SHA256,
    "kg1Signature": kg1.HEADER_SIGNATURE,
}


def _path_parameter(name: str) -> dict[str, Any]:
    if name == "id":
        return {
            "name": "id", "in": "path", "required": True,
            "description": "The key's id as ZDEX gives it: an opaque handle, not the API key. A malformed id, "
                           "or another user's key, is answered 404 like an unknown one.",
            "schema": {"type": "string", "pattern": f"^c[0-9a-z]{{{keys.HANDLE_CHARS}}}$"},
        }
    if name == "passkey_id":
        return {
            "name": "passkey_id", "in": "path", "required": True,
            "description": "The passkey's id (its WebAuthn credential id, base64url), as the list shows it. Another "
                           "user's passkey is answered 404 like an unknown one.",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,683}$"},
        }
    if name != "api_key":
        raise ValueError(f"path parameter {{{name}}} is not described in keygate_dev.openapi")
    prefix = template.parameter_defaults()["KeyIdPrefix"]
    body_chars = keys.KEY_ID_RANDOM_CHARS + keys.CHECKSUM_CHARS
    return {
        "name": "api_key", "in": "path", "required": True,
        "description": f"The key id as issued ({prefix} with the stack's default KeyIdPrefix). "
                       "A malformed id, or another user's key, is answered 404 like an unknown one.",
        "schema": {"type": "string", "pattern": f"^{re.escape(prefix)}[0-9A-Za-z]{{{body_chars}}}$"},
    }


def _query_parameter(parameter: QueryInteger) -> dict[str, Any]:
    return {
        "name": parameter.name, "in": "query", "required": False, "description": parameter.description,
        "schema": {"type": "integer", "minimum": parameter.minimum, "maximum": parameter.maximum,
                   "default": parameter.default},
    }


def _recv_window_parameter() -> dict[str, Any]:
    return {
        "name": kg1.HEADER_RECV_WINDOW, "in": "header", "required": False,
        "description": f"KG1 receive window in ms (signed; {kg1.DEFAULT_RECV_WINDOW_MS} when absent).",
        "schema": {"type": "integer", "minimum": 1, "maximum": kg1.MAX_RECV_WINDOW_MS},
    }


def parameters(route: Route) -> list[dict[str, Any]]:
    found = [_path_parameter(name) for name in route.path_parameters]
    found += [_query_parameter(parameter) for parameter in route.query]
    if route.auth is Auth.SIGNATURE:
        found.append(_recv_window_parameter())
    return found


# ------------------------------------------------------------------ authorizers
@dataclass(frozen=True)
class Authorization:
    security: list[dict[str, list[str]]]
    refusals: Mapping[int, str]  # status -> what the authorizer refused, for the description


_AUTHORIZATIONS = {
    Auth.SESSION: Authorization(
        security=[{SESSION_SCHEME: []}],
        refusals={401: "The session authorizer refused: SESSION_EXPIRED, SESSION_WRONG_AUDIENCE or SESSION_INVALID "
                       "(a Deny carrying its code), or UNAUTHORIZED when there is no Authorization header "
                       "(API Gateway's own answer)."}),
    Auth.SIGNATURE: Authorization(
        security=[dict.fromkeys(KG1_SCHEMES, [])],
        refusals={401: "The signature authorizer refused, with its code and what to fix: MISSING_HEADER, "
                       "MALFORMED_HEADER, TIMESTAMP_OUT_OF_WINDOW, INVALID_KEY_ID, UNKNOWN_KEY, KEY_REVOKED, "
                       "KEY_EXPIRED, ALGORITHM_MISMATCH, SIGNATURE_MISMATCH, IP_NOT_ALLOWED, PERMISSION_DENIED or "
                       "NONCE_REUSED (docs/signing.md)."}),
    Auth.NONE: Authorization(security=[], refusals={}),
    # issue 16: the operators' route, SigV4 verified by API Gateway (only OperatorPrincipals pass its resource policy)
    Auth.IAM: Authorization(
        security=[{"sigv4": []}],
        refusals={403: "API Gateway refused the SigV4 signature, or the caller is not one of OperatorPrincipals."}),
}
_THROTTLED = "Throttled by API Gateway (the stage's rate and burst limits)."
_UNAVAILABLE = ("SERVICE_UNAVAILABLE: DynamoDB, Secrets Manager, the identity provider's keys or an "
                "authorizer cannot be reached; retry after Retry-After seconds.")


# ---------------------------------------------------------------------- schemas
# Response fields only some answers carry yet: `"ok": false` is in the authorizers' refusals, not yet in every
# handler's error body (models.ErrorResponse).
_NOT_YET_EVERYWHERE = {"ErrorResponse": ("ok",)}

def _omitted_when_none(model: type[BaseModel]) -> tuple[str, ...]:
    """The wire names of the fields a response leaves out when None (models.Response.OMITTED_WHEN_NONE)."""
    names = getattr(model, "OMITTED_WHEN_NONE", ())
    return tuple(model.model_fields[name].alias or name for name in names)


def _component_schemas(request_models: list[type[BaseModel]], response_models: list[type[BaseModel]]
                       ) -> dict[str, Any]:
    """Request models as they validate; response models as `api.json_response` writes them.

    Responses are described in validation mode because the models' JSON
    serializer (ISO timestamps) hides the field types from pydantic, and every
    field is required and nothing else allowed: the whole model is dumped, so a
    stray field (a secret in a list) breaks the schema.
    """
    _, request_schemas = models_json_schema([(model, "validation") for model in request_models],
                                            ref_template=REF_TEMPLATE)
    _, responses = models_json_schema([(model, "validation") for model in response_models],
                                      ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = dict(request_schemas.get("$defs", {}))
    omitted = {model.__name__: _omitted_when_none(model) for model in response_models}
    for name, schema in responses.get("$defs", {}).items():
        if "properties" in schema:
            optional = (*_NOT_YET_EVERYWHERE.get(name, ()), *omitted.get(name, ()))
            required = [field for field in schema["properties"] if field not in optional]
            schema = {**schema, "required": required, "additionalProperties": False}
        if name in schemas and schemas[name] != schema:
            raise ValueError(f"{name} is both a request and a response model with different schemas")
        schemas[name] = schema
    return dict(sorted(schemas.items()))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _json_content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _error_response(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json_content(models.ErrorResponse)}
    if retry_after:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return response


def _refusals_by_status(route: Route) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for code in route.refusals:
        found.setdefault(code.status, []).append(code.value)
    return found


def _operation(route: Route) -> dict[str, Any]:
    authorization = _AUTHORIZATIONS[route.auth]
    security = [dict(requirement) for requirement in authorization.security]
    description = [route.summary]
    if route.step_up is not None:
        security = [{**requirement, STEP_UP_SCHEME: []} for requirement in security]
        description.append(f"Needs a passkey step-up token issued for `{route.step_up.value}` in "
                           f"{STEP_UP_HEADER}; each token is accepted once.")
    responses: dict[str, Any] = {
        str(route.success_status): {"description": route.response_model.__doc__ or route.summary,
                                    "content": _json_content(route.response_model)}}
    refusals = _refusals_by_status(route)
    statuses = sorted({*refusals, *authorization.refusals, ErrorCode.THROTTLED.status,
                       ErrorCode.SERVICE_UNAVAILABLE.status})
    for status in statuses:
        if status == ErrorCode.THROTTLED.status:
            responses[str(status)] = _error_response(_THROTTLED)
        elif status == ErrorCode.SERVICE_UNAVAILABLE.status:
            responses[str(status)] = _error_response(_UNAVAILABLE, retry_after=True)
        else:
            reasons = []
            if status in authorization.refusals:
                reasons.append(authorization.refusals[status])
            if status in refusals:
                reasons.append("Codes: " + ", ".join(refusals[status]) + ".")
            responses[str(status)] = _error_response(" ".join(reasons))
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    if len(description) > 1:
        operation["description"] = " ".join(description)
    operation.update({"tags": [route.tag], "security": security})
    if route.step_up is not None:
        operation[STEP_UP_EXTENSION] = route.step_up.value
    if parameters(route):
        operation["parameters"] = parameters(route)
    if route.request_model is not None:
        content = _json_content(route.request_model)
        if route.request_examples:
            content["application/json"]["examples"] = {
                name: {"value": value} for name, value in route.request_examples.items()}
        operation["requestBody"] = {"required": route.empty_body_means is None, "content": content}
    operation["responses"] = responses
    return operation


def _security_schemes() -> dict[str, Any]:
    schemes: dict[str, Any] = {
        SESSION_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                         "description": "The app's session JWT (issuer, audience, JWKS signature and expiry "
                                        "checked by the session authorizer)."},
        STEP_UP_SCHEME: {"type": "apiKey", "in": "header", "name": STEP_UP_HEADER,
                         "description": "Passkey step-up JWT for the one action named in the operation's "
                                        f"{STEP_UP_EXTENSION}; single use, at most StepUpMaxAgeSeconds old."},
    }
    for name, header in KG1_SCHEMES.items():
        schemes[name] = {"type": "apiKey", "in": "header", "name": header,
                         "description": f"KG1-HMAC-SHA256 request signing (docs/signing.md): {header}."}
    schemes["sigv4"] = {"type": "apiKey", "in": "header", "name": "Authorization",
                        "description": "AWS Signature Version 4 (service execute-api) by an IAM principal named in "
                                       "OperatorPrincipals; `keygate admin revoke` signs with botocore."}
    return schemes


def build() -> dict[str, Any]:
    """The whole description, deterministic for a given code base."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    request_models = sorted({route.request_model for route in ROUTES if route.request_model is not None},
                            key=lambda model: model.__name__)
    response_models = sorted({route.response_model for route in ROUTES} | {models.ErrorResponse},
                              key=lambda model: model.__name__)
    stage = template.parameter_defaults()["Stage"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "KeyGate API",
            "version": importlib.metadata.version("keygate"),
            "description": " ".join(template.load_template()["Description"].split())
            + " Generated from the code by keygate_dev.openapi; do not edit by hand.",
        },
        "servers": [{
            "url": "https://{restApiId}.execute-api.{region}.amazonaws.com/{stage}",
            "variables": {"restApiId": {"default": "restApiId"}, "region": {"default": "us-east-1"},
                          "stage": {"default": stage}},
        }],
        "tags": [
            {"name": "gaiaex", "description": "Key management as GaiaEx documents it, from the app (session + "
                                              "passkey step-up): /v1/trade/api-keys."},
            {"name": "zdex", "description": "Key management as ZDEX documents it (session; passkey step-up "
                                            "unless the stack's StepUpRequired is false): /v1/api-keys."},
            {"name": "bots", "description": "For trading bots signing with KG1-HMAC-SHA256."}],
        "paths": {path: dict(sorted(operations.items())) for path, operations in sorted(paths.items())},
        "components": {
            "schemas": _component_schemas(request_models, response_models),
            "securitySchemes": _security_schemes(),
            "headers": {"RetryAfter": {"description": "Seconds to wait before retrying.", "required": True,
                                       "schema": {"type": "integer", "minimum": 1}}},
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    relative = OPENAPI_PATH.relative_to(template.ROOT)
    action.add_argument("--write", action="store_true", help=f"write {relative}")
    action.add_argument("--check", action="store_true", help="exit 1 when the checked-in file is out of date")
    arguments = parser.parse_args(argv)
    text = render()
    if arguments.write:
        OPENAPI_PATH.write_text(text)
        print(f"wrote {relative}")
    elif arguments.check:
        if not OPENAPI_PATH.is_file() or OPENAPI_PATH.read_text() != text:
            print(f"{relative} is out of date: run `make openapi`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
