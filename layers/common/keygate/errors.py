"""Every code KeyGate answers a refusal with, and the HTTP status that goes with it.

One enumeration serves the handlers (`api` maps a `KeyGateError` to its status
in one place), the signature authorizer's decisions, OpenAPI and the Gateway
Response tests. How each kind of refusal reaches the caller is described in
docs/architecture.md ("Errors"). Messages are written for the person reading
them and never carry a secret.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """A refusal's code (its value, as the body carries it) and `status`, as a KeyGate handler answers it."""

    status: int

    def __new__(cls, code: str, status: int) -> ErrorCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        return member

    # 400: the request itself is wrong
    INVALID_REQUEST = "INVALID_REQUEST", 400
    MALFORMED_JSON = "MALFORMED_JSON", 400
    BAD_REQUEST = "BAD_REQUEST", 400  # API Gateway's own (DEFAULT_4XX)
    KEY_LIMIT_REACHED = "KEY_LIMIT_REACHED", 400
    KEY_REVOKED = "KEY_REVOKED", 400  # a management change to a revoked key (the authorizer refuses it with 401)
    KEY_EXPIRED = "KEY_EXPIRED", 400
    # 401: who is calling could not be established
    UNAUTHORIZED = "UNAUTHORIZED", 401
    SESSION_EXPIRED = "SESSION_EXPIRED", 401
    BODY_DIGEST_MISMATCH = "BODY_DIGEST_MISMATCH", 401
    MISSING_HEADER = "MISSING_HEADER", 401
    MALFORMED_HEADER = "MALFORMED_HEADER", 401
    TIMESTAMP_OUT_OF_WINDOW = "TIMESTAMP_OUT_OF_WINDOW", 401
    INVALID_KEY_ID = "INVALID_KEY_ID", 401
    UNKNOWN_KEY = "UNKNOWN_KEY", 401
    SIGNATURE_MISMATCH = "SIGNATURE_MISMATCH", 401
    ALGORITHM_MISMATCH = "ALGORITHM_MISMATCH", 401
    NONCE_REUSED = "NONCE_REUSED", 401
    # Every signature refusal reaches the bot as 401 with its code, these two included (docs/signing.md)
    IP_NOT_ALLOWED = "IP_NOT_ALLOWED", 401
    PERMISSION_DENIED = "PERMISSION_DENIED", 401
    # The session authorizer's refusals (SESSION_EXPIRED above)
    SESSION_INVALID = "SESSION_INVALID", 401
    SESSION_WRONG_AUDIENCE = "SESSION_WRONG_AUDIENCE", 401
    # 403: the caller is known but may not do this
    STEP_UP_REQUIRED = "STEP_UP_REQUIRED", 403
    ONBOARDING_REQUIRED = "ONBOARDING_REQUIRED", 403
    TRADING_HANDSHAKE_REQUIRED = "TRADING_HANDSHAKE_REQUIRED", 403
    # 404
    KEY_NOT_FOUND = "KEY_NOT_FOUND", 404
    ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND", 404
    # 409, 413, 429
    CONCURRENT_MODIFICATION = "CONCURRENT_MODIFICATION", 409
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE", 413
    THROTTLED = "THROTTLED", 429
    # 5xx: never the caller's fault
    INTERNAL_ERROR = "INTERNAL_ERROR", 500
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE", 503


class KeyGateError(Exception):
    """A refusal with its code; `api` turns it into `{"error": {"code", "message"}}` and the code's status."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return self.code.status


class KeyNotFound(KeyGateError):
    """Unknown, malformed and another user's key ids alike: a key's existence is never revealed."""

    def __init__(self, message: str = "No API key with this id exists for your account.") -> None:
        super().__init__(ErrorCode.KEY_NOT_FOUND, message)


class ServiceUnavailable(KeyGateError):
    """DynamoDB, Secrets Manager or an identity provider could not be reached or refused the call."""

    def __init__(self, message: str = "A storage service is temporarily unavailable; retry shortly.",
                 *, retry_after_seconds: int = 2) -> None:
        super().__init__(ErrorCode.SERVICE_UNAVAILABLE, message)
        self.retry_after_seconds = retry_after_seconds
