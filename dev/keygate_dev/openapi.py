"""The OpenAPI 3.1 description of the KeyGate API, generated from the code.

- Routes and who may call them: template.yaml's Api events and their `Auth`
  (the API's DefaultAuthorizer when an event names none).
- Bodies: the pydantic models in keygate.models. A route's response model is
  the return type of the service function its handler calls; request models
  are the ones its handler validates with.
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
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import kg1 as signing
from keygate import keys, models, service
from keygate.auth import Action
from keygate_dev import template

OPENAPI_PATH = template.ROOT / "docs" / "openapi.json"
REF_TEMPLATE = "#/components/schemas/{model}"
STEP_UP_EXTENSION = "x-keygate-step-up-action"
STEP_UP_HEADER = "X-PASSKEY-TOKEN"
SESSION_SCHEME = "session"
STEP_UP_SCHEME = "passkeyStepUp"
# One apiKey scheme per KG1 header that every signed request carries (docs/signing.md);
# the optional X-KG-RECV-WINDOW is a header parameter of the route instead.
KG1_SCHEMES = {
    "kg1ApiKey": signing.HEADER_API_KEY,
    "kg1Timestamp": signing.HEADER_TIMESTAMP,
    "kg1Nonce": signing.HEADER_NONCE,
    "kg1ContentSha256": signing.HEADER_CONTENT_SHA256,
    "kg1Signature": signing.HEADER_SIGNATURE,
}
NO_AUTHORIZER = "NONE"


def _returns(function: Callable[..., Any]) -> type[BaseModel]:
    """The pydantic model a service function returns (its return annotation)."""
    returned = typing.get_type_hints(function)["return"]
    if not (isinstance(returned, type) and issubclass(returned, BaseModel)):
        raise TypeError(f"{function.__qualname__} does not return a pydantic model")
    return returned


@dataclass(frozen=True)
class RouteDoc:
    """What template.yaml cannot say about a route. Keyed by function id."""

    operation_id: str
    summary: str
    tag: str
    response_model: type[BaseModel]
    success_status: int = 200
    request_model: type[BaseModel] | None = None
    request_body_required: bool = True
    # Valid bodies, shown in the description (tests check each against the request model).
    request_examples: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    step_up: Action | None = None
    # Refusals the handler itself answers: status -> error codes.
    refusals: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    parameters: tuple[dict[str, Any], ...] = ()


def _api_key_parameter() -> dict[str, Any]:
    prefix = template.parameter_defaults()["KeyIdPrefix"]
    body_chars = keys.KEY_ID_RANDOM_CHARS + keys.CHECKSUM_CHARS
    return {
        "name": "api_key", "in": "path", "required": True,
        "description": f"The key id as issued ({prefix} with the stack's default KeyIdPrefix). "
                       "A malformed id, or another user's key, is answered 404 like an unknown one.",
        "schema": {"type": "string", "pattern": f"^{re.escape(prefix)}[0-9A-Za-z]{{{body_chars}}}$"},
    }


def _audit_limit_parameter() -> dict[str, Any]:
    handler = template.module_for("GetApiKeyAuditFunction")
    return {
        "name": "limit", "in": "query", "required": False,
        "description": "How many entries, newest first.",
        "schema": {"type": "integer", "minimum": 1, "maximum": handler.MAX_LIMIT,
                   "default": handler.DEFAULT_LIMIT},
    }


def _recv_window_parameter() -> dict[str, Any]:
    return {
        "name": signing.HEADER_RECV_WINDOW, "in": "header", "required": False,
        "description": f"KG1 receive window in ms (signed; {signing.DEFAULT_RECV_WINDOW_MS} when absent).",
        "schema": {"type": "integer", "minimum": 1, "maximum": signing.MAX_RECV_WINDOW_MS},
    }


_STEP_UP_REFUSED = ("STEP_UP_REQUIRED",)
_PREREQUISITES = ("ONBOARDING_REQUIRED", "TRADING_HANDSHAKE_REQUIRED")
_BAD_BODY = ("INVALID_REQUEST", "MALFORMED_JSON")


def route_docs() -> dict[str, RouteDoc]:
    return {
        "CreateApiKeyFunction": RouteDoc(
            operation_id="createApiKey", summary="Create an API key; the secret is in this response only.",
            tag="api-keys", response_model=_returns(service.create_api_key), success_status=201,
            request_model=models.CreateApiKeyRequest, request_body_required=False, step_up=Action.CREATE,
            request_examples={"trading bot": {"label": "market maker", "permissions": ["read", "trade"],
                                              "ip_whitelist": ["203.0.113.0/24"], "expires_days": 90},
                              "read-only default": {}},
            refusals={400: (*_BAD_BODY, "KEY_LIMIT_REACHED"), 403: (*_STEP_UP_REFUSED, *_PREREQUISITES),
                      409: ("CONCURRENT_MODIFICATION",), 413: ("PAYLOAD_TOO_LARGE",)}),
        "ListApiKeysFunction": RouteDoc(
            operation_id="listApiKeys", summary="The caller's keys, newest first; never a secret.",
            tag="api-keys", response_model=_returns(service.list_api_keys)),
        "UpdateApiKeyFunction": RouteDoc(
            operation_id="updateApiKey", summary="Change label, permissions or ip_whitelist.",
            tag="api-keys", response_model=_returns(service.update_api_key),
            request_model=models.UpdateApiKeyRequest, step_up=Action.UPDATE,
            request_examples={"rename": {"label": "market maker v2"},
                              "lift the IP restriction": {"ip_whitelist": []}},
            refusals={400: (*_BAD_BODY, "KEY_REVOKED", "KEY_EXPIRED"),
                      403: (*_STEP_UP_REFUSED, *_PREREQUISITES), 404: ("KEY_NOT_FOUND",),
                      409: ("CONCURRENT_MODIFICATION",), 413: ("PAYLOAD_TOO_LARGE",)},
            parameters=(_api_key_parameter(),)),
        "RevokeApiKeyFunction": RouteDoc(
            operation_id="revokeApiKey",
            summary="Revoke one key, irreversibly (a second revoke answers 200).",
            tag="api-keys", response_model=_returns(service.revoke_api_key), step_up=Action.REVOKE,
            refusals={403: _STEP_UP_REFUSED, 404: ("KEY_NOT_FOUND",), 409: ("CONCURRENT_MODIFICATION",)},
            parameters=(_api_key_parameter(),)),
        "RevokeAllApiKeysFunction": RouteDoc(
            operation_id="revokeAllApiKeys", summary="Revoke every key of the caller (emergency).",
            tag="api-keys", response_model=_returns(service.revoke_all_api_keys), step_up=Action.REVOKE_ALL,
            refusals={403: _STEP_UP_REFUSED, 409: ("CONCURRENT_MODIFICATION",)}),
        "GetApiKeyAuditFunction": RouteDoc(
            operation_id="getApiKeyAudit", summary="A key's lifecycle log, newest first.",
            tag="api-keys", response_model=_returns(service.get_api_key_audit),
            refusals={400: ("INVALID_REQUEST",), 404: ("KEY_NOT_FOUND",)},
            parameters=(_api_key_parameter(), _audit_limit_parameter())),
        "GetCallingApiKeyFunction": RouteDoc(
            operation_id="getCallingApiKey",
            summary="The signing key's own id, label, permissions, whitelist and expiry.",
            tag="bots", response_model=_returns(service.describe_calling_key),
            refusals={404: ("KEY_NOT_FOUND",)}, parameters=(_recv_window_parameter(),)),
        "GetServerTimeFunction": RouteDoc(
            operation_id="getServerTime",
            summary="The server's clock, for bots to sync their signing timestamps.",
            tag="bots", response_model=models.ServerTime),
    }


# ------------------------------------------------------------------ authorizers
@dataclass(frozen=True)
class Authorization:
    security: list[dict[str, list[str]]]
    refusals: Mapping[int, str]  # status -> what the authorizer refused, for the description


_AUTHORIZATIONS = {
    "SessionAuthorizer": Authorization(
        security=[{SESSION_SCHEME: []}],
        refusals={401: "UNAUTHORIZED: the session token is missing, invalid or expired "
                       "(session authorizer)."}),
    "SignatureAuthorizer": Authorization(
        security=[dict.fromkeys(KG1_SCHEMES, [])],
        refusals={401: "UNAUTHORIZED: the KG1 signature was refused (missing or malformed header, "
                       "timestamp outside the window, unknown, revoked or expired key, signature mismatch "
                       "or reused nonce; docs/signing.md). The exact reason is logged under the request id the "
                       "message quotes.",
                  403: "IP_NOT_ALLOWED or PERMISSION_DENIED (signature authorizer)."}),
    NO_AUTHORIZER: Authorization(security=[], refusals={}),
}
_THROTTLED = "Throttled by API Gateway (the stage's rate and burst limits)."
_UNAVAILABLE = ("SERVICE_UNAVAILABLE: DynamoDB, Secrets Manager, the identity provider's keys or an "
                "authorizer cannot be reached; retry after Retry-After seconds.")


def _event_authorizer(event: dict[str, Any]) -> str:
    """The authorizer of an Api event: its own Auth, else its API's DefaultAuthorizer."""
    properties = event["Properties"]
    named = (properties.get("Auth") or {}).get("Authorizer")
    if named:
        return named
    api_id = properties["RestApiId"]["Ref"]
    api = template.resources("AWS::Serverless::Api")[api_id]
    return api["Properties"].get("Auth", {}).get("DefaultAuthorizer", NO_AUTHORIZER)


def route_authorizers() -> dict[tuple[str, str], str]:
    """(method, path) -> authorizer name, for every Api event of the template."""
    found = {}
    for resource in template.resources("AWS::Serverless::Function").values():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                route = (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
                found[route] = _event_authorizer(event)
    return found


# ---------------------------------------------------------------------- schemas
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
    for name, schema in responses.get("$defs", {}).items():
        if "properties" in schema:
            schema = {**schema, "required": list(schema["properties"]), "additionalProperties": False}
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


def _operation(doc: RouteDoc, authorizer: str) -> dict[str, Any]:
    try:
        authorization = _AUTHORIZATIONS[authorizer]
    except KeyError:
        raise ValueError(f"authorizer {authorizer!r} is not described in keygate_dev.openapi") from None
    security = [dict(requirement) for requirement in authorization.security]
    description = [doc.summary]
    if doc.step_up is not None:
        security = [{**requirement, STEP_UP_SCHEME: []} for requirement in security]
        description.append(f"Needs a passkey step-up token issued for `{doc.step_up.value}` in "
                           f"{STEP_UP_HEADER}; each token is accepted once.")
    responses: dict[str, Any] = {
        str(doc.success_status): {"description": doc.response_model.__doc__ or doc.summary,
                                  "content": _json_content(doc.response_model)}}
    statuses = sorted({*doc.refusals, *authorization.refusals, 429, 503})
    for status in statuses:
        if status == 429:
            responses["429"] = _error_response(_THROTTLED)
        elif status == 503:
            responses["503"] = _error_response(_UNAVAILABLE, retry_after=True)
        else:
            reasons = []
            if status in authorization.refusals:
                reasons.append(authorization.refusals[status])
            if status in doc.refusals:
                reasons.append("Codes: " + ", ".join(doc.refusals[status]) + ".")
            responses[str(status)] = _error_response(" ".join(reasons))
    operation: dict[str, Any] = {"operationId": doc.operation_id, "summary": doc.summary}
    if len(description) > 1:
        operation["description"] = " ".join(description)
    operation.update({"tags": [doc.tag], "security": security})
    if doc.step_up is not None:
        operation[STEP_UP_EXTENSION] = doc.step_up.value
    if doc.parameters:
        operation["parameters"] = list(doc.parameters)
    if doc.request_model is not None:
        content = _json_content(doc.request_model)
        if doc.request_examples:
            content["application/json"]["examples"] = {
                name: {"value": value} for name, value in doc.request_examples.items()}
        operation["requestBody"] = {"required": doc.request_body_required, "content": content}
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
    return schemes


def build() -> dict[str, Any]:
    """The whole description, deterministic for a given code base."""
    docs = route_docs()
    authorizers = route_authorizers()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, function_id in template.api_routes():
        if function_id not in docs:
            raise ValueError(f"{function_id} ({method} {path}) has no RouteDoc in keygate_dev.openapi")
        operation = _operation(docs[function_id], authorizers[(method, path)])
        paths.setdefault(path, {})[method.lower()] = operation
    routed = {function_id for _, _, function_id in template.api_routes()}
    documented_only = sorted(set(docs) - routed)
    if documented_only:
        raise ValueError(f"documented but not routed in template.yaml: {', '.join(documented_only)}")
    request_models = sorted({doc.request_model for doc in docs.values() if doc.request_model is not None},
                            key=lambda model: model.__name__)
    response_models = sorted({doc.response_model for doc in docs.values()} | {models.ErrorResponse},
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
            {"name": "api-keys", "description": "Key management, from the app (session + passkey step-up)."},
            {"name": "bots", "description": "For trading bots signing with KG1-HMAC-SHA256."}],
        "paths": dict(sorted(paths.items())),
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
