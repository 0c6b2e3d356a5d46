"""Every route of the KeyGate API, declared once (what a declaration holds: keygate.routing).

The wire profiles declare their own routes beside their models
(keygate.profiles); the bot-facing routes are declared here. The handler
decorator (`keygate.api.route_handler`), the OpenAPI generator
(keygate_dev.openapi), the local gateway and the tests read `ROUTES`;
tests/unit/test_routes.py fails when template.yaml's Api events say otherwise.
"""

from __future__ import annotations

from keygate.errors import ErrorCode
from keygate.models import CallingApiKey, LeakReport, OperatorRevocation, OperatorRevokeRequest, ServerTime
from keygate.profiles import gaiaex, zdex
from keygate.records import ApiKeyRecord
from keygate.routing import Auth, Presentation, Route


def _present_calling_key(record: ApiKeyRecord, context: Presentation) -> CallingApiKey:
    return CallingApiKey.of(record)


GET_CALLING_API_KEY = Route(
    "GetCallingApiKeyFunction", "GET", "/v1/trade/api-keys/self", Auth.SIGNATURE,
    operation_id="getCallingApiKey", summary="The signing key's own id, label, permissions, whitelist and expiry.",
    tag="bots", response_model=CallingApiKey, present=_present_calling_key, refusals=(ErrorCode.KEY_NOT_FOUND,))
GET_SERVER_TIME = Route(
    "GetServerTimeFunction", "GET", "/v1/time", Auth.NONE,
    operation_id="getServerTime", summary="The server's clock, for bots to sync their signing timestamps.",
    tag="bots", response_model=ServerTime)

# issue 16: leaked keys and operators (docs/architecture.md, "Leaked keys").
GITHUB_SECRET_SCANNING = Route(
    "SecretScanningFunction", "POST", "/v1/secret-scanning/github", Auth.NONE,
    operation_id="reportLeakedSecrets",
    summary="GitHub's secret scanning partner endpoint: the keys of reported KeyGate secrets are revoked. "
            "Signed by GitHub (ECDSA P-256 over the raw body); the body is GitHub's list of reported tokens.",
    tag="security", response_model=LeakReport,
    refusals=(ErrorCode.MISSING_HEADER, ErrorCode.SIGNATURE_MISMATCH, ErrorCode.MALFORMED_JSON,
              ErrorCode.INVALID_REQUEST, ErrorCode.PAYLOAD_TOO_LARGE))
OPERATOR_REVOKE = Route(
    "OperatorRevokeFunction", "POST", "/v1/admin/revocations", Auth.IAM,
    operation_id="operatorRevoke",
    summary="The security team revokes one key of a user, or all of them, with a reason (SigV4-signed by an IAM "
            "principal the stack's OperatorPrincipals names; audited with the caller's identity).",
    tag="security", request_model=OperatorRevokeRequest, response_model=OperatorRevocation,
    refusals=(ErrorCode.INVALID_REQUEST, ErrorCode.MALFORMED_JSON, ErrorCode.KEY_NOT_FOUND,
              ErrorCode.CONCURRENT_MODIFICATION),
    request_examples={"one key": {"user_id": "alice", "api_key": "kgk_...", "reason": "key posted in a forum"},
                      "every key": {"user_id": "alice", "reason": "account takeover reported"}})

ROUTES: tuple[Route, ...] = (*gaiaex.ROUTES, *zdex.ROUTES, GET_CALLING_API_KEY, GET_SERVER_TIME,
                             GITHUB_SECRET_SCANNING, OPERATOR_REVOKE)


def route_of(method: str, path: str) -> Route:
    """The route declared for a method and resource path (as template.yaml writes it)."""
    for route in ROUTES:
        if (route.method, route.path) == (method.upper(), path):
            return route
    raise LookupError(f"no route {method} {path}")
