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
from keygate.routing import Auth, Presentation, Route, Target
from keygate.stepup import Action
from keygate.stepup_models import (
    CeremonyOptions,
    PasskeyCreated,
    PasskeyList,
    PasskeyRemoved,
    RegisterPasskeyRequest,
    StepUpOptions,
    StepUpOptionsRequest,
    StepUpRequest,
    StepUpToken,
)


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


# ------------------------------------------------------------------ passkeys (issue 14)
# KeyGate's own WebAuthn step-up: the app registers passkeys, then confirms each change with one
# (README, "Passkey step-up"). The ceremony's refusals are STEP_UP_REQUIRED (a step-up) or INVALID_REQUEST.
_BAD_BODY = (ErrorCode.INVALID_REQUEST, ErrorCode.MALFORMED_JSON, ErrorCode.PAYLOAD_TOO_LARGE)
_PASSKEYS_TAG = "passkeys"
PASSKEY_REGISTRATION_OPTIONS = Route(
    "PasskeyRegistrationOptionsFunction", "POST", "/v1/trade/passkeys/registration/options", Auth.SESSION,
    operation_id="passkeyRegistrationOptions", tag=_PASSKEYS_TAG, response_model=CeremonyOptions,
    summary="Options for navigator.credentials.create(): ES256 and EdDSA, user verification required.")
REGISTER_PASSKEY = Route(
    "RegisterPasskeyFunction", "POST", "/v1/trade/passkeys", Auth.SESSION,
    operation_id="registerPasskey", tag=_PASSKEYS_TAG, response_model=PasskeyCreated, success_status=201,
    summary="Register a passkey: the first needs a fresh sign-in, every further one a step-up.",
    request_model=RegisterPasskeyRequest, step_up=Action.PASSKEYS_REGISTER, step_up_in_handler=True,
    refusals=(*_BAD_BODY, ErrorCode.STEP_UP_REQUIRED))
LIST_PASSKEYS = Route(
    "ListPasskeysFunction", "GET", "/v1/trade/passkeys", Auth.SESSION,
    operation_id="listPasskeys", tag=_PASSKEYS_TAG, response_model=PasskeyList,
    summary="The caller's passkeys and their audit (registered, removed, suspected clones).")
DELETE_PASSKEY = Route(
    "DeletePasskeyFunction", "DELETE", "/v1/trade/passkeys/{passkey_id}", Auth.SESSION,
    operation_id="deletePasskey", tag=_PASSKEYS_TAG, response_model=PasskeyRemoved,
    summary="Remove one of the caller's passkeys.", step_up=Action.PASSKEYS_DELETE,
    target=("passkey_id", Target.PASSKEY), refusals=(ErrorCode.STEP_UP_REQUIRED, ErrorCode.KEY_NOT_FOUND))
STEP_UP_OPTIONS = Route(
    "StepUpOptionsFunction", "POST", "/v1/trade/step-up/options", Auth.SESSION,
    operation_id="stepUpOptions", tag=_PASSKEYS_TAG, response_model=StepUpOptions,
    summary="Options for navigator.credentials.get(), bound to the exact change, and its one-sentence summary.",
    # KEY_REVOKED / KEY_EXPIRED: a rotation that could not be is refused here, as the rotate route would
    request_model=StepUpOptionsRequest, refusals=(*_BAD_BODY, ErrorCode.STEP_UP_REQUIRED, ErrorCode.KEY_NOT_FOUND,
                                                  ErrorCode.KEY_REVOKED, ErrorCode.KEY_EXPIRED),
    request_examples={"create": {"action": "api_keys:create", "request": {
        "label": "grid-bot", "permissions": ["read", "trade"], "ip_whitelist": ["203.0.113.50"], "expires_days": 90}}})
STEP_UP = Route(
    "StepUpFunction", "POST", "/v1/trade/step-up", Auth.SESSION,
    operation_id="stepUp", tag=_PASSKEYS_TAG, response_model=StepUpToken,
    summary="Verify the passkey assertion; answers the step-up token for X-PASSKEY-TOKEN.",
    request_model=StepUpRequest, refusals=(*_BAD_BODY, ErrorCode.STEP_UP_REQUIRED))
PASSKEY_ROUTES: tuple[Route, ...] = (PASSKEY_REGISTRATION_OPTIONS, REGISTER_PASSKEY, LIST_PASSKEYS, DELETE_PASSKEY,
                                     STEP_UP_OPTIONS, STEP_UP)

ROUTES: tuple[Route, ...] = (*gaiaex.ROUTES, *zdex.ROUTES, GET_CALLING_API_KEY, GET_SERVER_TIME,
                             GITHUB_SECRET_SCANNING, OPERATOR_REVOKE, *PASSKEY_ROUTES)


def step_up_route(action: Action, profile: str) -> Route | None:
    """The route a step-up action confirms, in a wire profile (the passkey routes serve every profile)."""
    for route in ROUTES:
        if route.step_up is action and route.tag in (profile, _PASSKEYS_TAG):
            return route
    return None


def route_of(method: str, path: str) -> Route:
    """The route declared for a method and resource path (as template.yaml writes it)."""
    for route in ROUTES:
        if (route.method, route.path) == (method.upper(), path):
            return route
    raise LookupError(f"no route {method} {path}")
