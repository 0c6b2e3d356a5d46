"""Every route of the KeyGate API, declared once.

A `Route` says what API Gateway and a client need to know: method and path,
who may call it (`Auth`), the passkey step-up action a mutation needs, the
request and response models, the query parameters, and the refusals its
handler can answer. The handler decorator (`keygate.api.route_handler`), the
OpenAPI generator (keygate_dev.openapi), the local gateway and the tests read
this table; tests/unit/test_routes.py fails when template.yaml's Api events
say otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from keygate import models
from keygate.errors import ErrorCode
from keygate.stepup import Action


class Auth(StrEnum):
    """Who may call a route: the name of its authorizer in template.yaml."""

    SESSION = "SessionAuthorizer"  # the app's session JWT
    SIGNATURE = "SignatureAuthorizer"  # a bot's KG1 signature
    NONE = "NONE"


@dataclass(frozen=True)
class QueryInteger:
    """An optional integer query parameter, bounded."""

    name: str
    default: int
    minimum: int
    maximum: int
    description: str


@dataclass(frozen=True)
class Route:
    function_id: str  # the template's function serving the route
    method: str
    path: str  # API Gateway's resource path, with {parameters}
    auth: Auth
    operation_id: str
    summary: str
    tag: str
    response_model: type[BaseModel]
    success_status: int = 200
    request_model: type[BaseModel] | None = None
    # None: the body is required; a mapping: what an absent or empty body means.
    empty_body_means: Mapping[str, Any] | None = None
    step_up: Action | None = None
    query: tuple[QueryInteger, ...] = ()
    # Refusals the handler itself answers (its authorizer's and API Gateway's are described by `auth`).
    refusals: tuple[ErrorCode, ...] = ()
    # Valid bodies, shown in the OpenAPI description (tests check each against the request model).
    request_examples: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(segment[1:-1] for segment in self.path.split("/") if segment.startswith("{"))


_BAD_BODY = (ErrorCode.INVALID_REQUEST, ErrorCode.MALFORMED_JSON, ErrorCode.PAYLOAD_TOO_LARGE)
_STEP_UP = (ErrorCode.STEP_UP_REQUIRED,)
_PREREQUISITES = (ErrorCode.ONBOARDING_REQUIRED, ErrorCode.TRADING_HANDSHAKE_REQUIRED)
_RACE = (ErrorCode.CONCURRENT_MODIFICATION,)
_KEYS = "api-keys"
_BOTS = "bots"

CREATE_API_KEY = Route(
    "CreateApiKeyFunction", "POST", "/v1/trade/api-keys", Auth.SESSION,
    operation_id="createApiKey", summary="Create an API key; the secret is in this response only.", tag=_KEYS,
    response_model=models.CreatedApiKey, success_status=201,
    request_model=models.CreateApiKeyRequest, empty_body_means={}, step_up=Action.CREATE,
    refusals=(*_BAD_BODY, ErrorCode.KEY_LIMIT_REACHED, *_STEP_UP, *_PREREQUISITES, *_RACE),
    request_examples={"trading bot": {"label": "market maker", "permissions": ["read", "trade"],
                                      "ip_whitelist": ["203.0.113.0/24"], "expires_days": 90},
                      "read-only default": {}})
LIST_API_KEYS = Route(
    "ListApiKeysFunction", "GET", "/v1/trade/api-keys", Auth.SESSION,
    operation_id="listApiKeys", summary="The caller's keys, newest first; never a secret.", tag=_KEYS,
    response_model=models.ApiKeyList)
UPDATE_API_KEY = Route(
    "UpdateApiKeyFunction", "PATCH", "/v1/trade/api-keys/{api_key}", Auth.SESSION,
    operation_id="updateApiKey", summary="Change label, permissions or ip_whitelist.", tag=_KEYS,
    response_model=models.UpdatedApiKey, request_model=models.UpdateApiKeyRequest, step_up=Action.UPDATE,
    refusals=(*_BAD_BODY, ErrorCode.KEY_REVOKED, ErrorCode.KEY_EXPIRED, *_STEP_UP, *_PREREQUISITES,
              ErrorCode.KEY_NOT_FOUND, *_RACE),
    request_examples={"rename": {"label": "market maker v2"}, "lift the IP restriction": {"ip_whitelist": []}})
REVOKE_API_KEY = Route(
    "RevokeApiKeyFunction", "DELETE", "/v1/trade/api-keys/{api_key}", Auth.SESSION,
    operation_id="revokeApiKey", summary="Revoke one key, irreversibly (a second revoke answers 200).", tag=_KEYS,
    response_model=models.RevokedApiKey, step_up=Action.REVOKE,
    refusals=(*_STEP_UP, ErrorCode.KEY_NOT_FOUND, *_RACE))
REVOKE_ALL_API_KEYS = Route(
    "RevokeAllApiKeysFunction", "DELETE", "/v1/trade/api-keys/all", Auth.SESSION,
    operation_id="revokeAllApiKeys", summary="Revoke every key of the caller (emergency).", tag=_KEYS,
    response_model=models.RevokedAll, step_up=Action.REVOKE_ALL, refusals=(*_STEP_UP, *_RACE))
GET_API_KEY_AUDIT = Route(
    "GetApiKeyAuditFunction", "GET", "/v1/trade/api-keys/{api_key}/audit", Auth.SESSION,
    operation_id="getApiKeyAudit", summary="A key's lifecycle log, newest first.", tag=_KEYS,
    response_model=models.AuditLog,
    query=(QueryInteger("limit", default=20, minimum=1, maximum=100, description="How many entries, newest first."),),
    refusals=(ErrorCode.INVALID_REQUEST, ErrorCode.KEY_NOT_FOUND))
GET_CALLING_API_KEY = Route(
    "GetCallingApiKeyFunction", "GET", "/v1/trade/api-keys/self", Auth.SIGNATURE,
    operation_id="getCallingApiKey", summary="The signing key's own id, label, permissions, whitelist and expiry.",
    tag=_BOTS, response_model=models.CallingApiKey, refusals=(ErrorCode.KEY_NOT_FOUND,))
GET_SERVER_TIME = Route(
    "GetServerTimeFunction", "GET", "/v1/time", Auth.NONE,
    operation_id="getServerTime", summary="The server's clock, for bots to sync their signing timestamps.",
    tag=_BOTS, response_model=models.ServerTime)

ROUTES: tuple[Route, ...] = (CREATE_API_KEY, LIST_API_KEYS, UPDATE_API_KEY, REVOKE_API_KEY, REVOKE_ALL_API_KEYS,
                             GET_API_KEY_AUDIT, GET_CALLING_API_KEY, GET_SERVER_TIME)


def route_of(method: str, path: str) -> Route:
    """The route declared for a method and resource path (as template.yaml writes it)."""
    for route in ROUTES:
        if (route.method, route.path) == (method.upper(), path):
            return route
    raise LookupError(f"no route {method} {path}")
