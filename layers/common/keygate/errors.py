"""Typed domain errors. `api.error_response` is the one place that maps them
to status codes and the error body `{"error": {"code", "message"}}` (docs/product.md).

Messages are written for the person reading them and never carry a secret.
"""

from __future__ import annotations


class KeyGateError(Exception):
    status = 400
    code = "INVALID_REQUEST"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(KeyGateError):
    status = 400
    code = "INVALID_REQUEST"


class KeyLimitReached(KeyGateError):
    status = 400
    code = "KEY_LIMIT_REACHED"


class KeyNotActive(KeyGateError):
    status = 400
    code = "KEY_NOT_ACTIVE"


class PayloadTooLarge(KeyGateError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class Unauthorized(KeyGateError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(KeyGateError):
    status = 403
    code = "FORBIDDEN"


class StepUpFailed(Forbidden):
    code = "STEP_UP_REQUIRED"


class PrerequisiteMissing(Forbidden):
    code = "ONBOARDING_REQUIRED"


class KeyNotFound(KeyGateError):
    status = 404
    code = "KEY_NOT_FOUND"

    def __init__(self, message: str = "No API key with this id exists for your account.") -> None:
        super().__init__(message)


class ConcurrentModification(KeyGateError):
    status = 409
    code = "CONCURRENT_MODIFICATION"


class ServiceUnavailable(KeyGateError):
    """DynamoDB or Secrets Manager could not be reached or refused the call."""

    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str = "A storage service is temporarily unavailable; retry shortly.",
                 *, retry_after_seconds: int = 2) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
