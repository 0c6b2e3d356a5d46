"""Session JWTs and passkey step-up tokens, verified with PyJWT against a JWKS.

A step-up token is accepted for exactly one mutation: it must come from the
configured step-up issuer, name KeyGate as audience and the session's user as
subject, carry `passkey` in `amr`, be younger than StepUpMaxAgeSeconds, name
the action it was issued for, and carry a `jti` that the store records once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import jwt

from keygate.config import get_config
from keygate.errors import ServiceUnavailable, StepUpFailed, Unauthorized
from keygate.observability import logger
from keygate.store import StepUpUse

ALGORITHMS = ["ES256", "RS256", "EdDSA"]
CLOCK_SKEW_SECONDS = 30
STEP_UP_HEADER = "x-passkey-token"


class Action(StrEnum):
    CREATE = "api_keys:create"
    UPDATE = "api_keys:update"
    REVOKE = "api_keys:revoke"
    REVOKE_ALL = "api_keys:revoke_all"


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    # Keys are cached for five minutes; an unknown `kid` triggers one refetch.
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=300, timeout=5)


def _decode(token: str, *, jwks_url: str, issuer: str, audience: str, required: list[str]) -> dict[str, Any]:
    try:
        signing_key = _jwks_client(jwks_url).get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError as error:
        logger.warning("jwks unreachable", extra={"jwks_url": jwks_url})
        raise ServiceUnavailable("The identity provider's keys cannot be fetched; retry shortly.") from error
    return jwt.decode(
        # The PyJWK, not its bare key: PyJWT then refuses a token whose `alg` does not match the key
        # (InvalidAlgorithmError) instead of raising TypeError from inside the verifier.
        token, signing_key, algorithms=ALGORITHMS, audience=audience, issuer=issuer,
        leeway=CLOCK_SKEW_SECONDS, options={"require": required},
    )


def verify_session_token(token: str | None) -> str:
    """The user id (`sub`) of a valid session JWT, else Unauthorized."""
    config = get_config()
    if not token:
        raise Unauthorized("A session token is required.")
    try:
        claims = _decode(token, jwks_url=config.session_jwks_url, issuer=config.session_issuer,
                         audience=config.session_audience, required=["exp", "sub", "iss", "aud"])
    except jwt.ExpiredSignatureError as error:
        raise Unauthorized("The session has expired; sign in again.", code="SESSION_EXPIRED") from error
    except (jwt.PyJWTError, ValueError) as error:
        raise Unauthorized("The session token is invalid.") from error
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("The session token has no subject.")
    return subject


def verify_step_up(token: str | None, *, user_id: str, action: Action, now: datetime) -> StepUpUse:
    """Check a step-up token for this user and action; the caller records its jti once."""
    config = get_config()
    if not token:
        raise StepUpFailed("This action needs a passkey confirmation: send its token in X-PASSKEY-TOKEN.")
    try:
        claims = _decode(token, jwks_url=config.step_up_jwks_url, issuer=config.step_up_issuer,
                         audience=config.step_up_audience, required=["exp", "iat", "sub", "jti"])
    except jwt.ExpiredSignatureError as error:
        raise StepUpFailed("The passkey confirmation has expired; confirm again.") from error
    except (jwt.PyJWTError, ValueError) as error:
        raise StepUpFailed("The passkey confirmation token is invalid.") from error
    if claims.get("sub") != user_id:
        raise StepUpFailed("The passkey confirmation was issued for another user.")
    amr = claims.get("amr")
    if not isinstance(amr, list) or "passkey" not in amr:
        raise StepUpFailed("The confirmation was not made with a passkey.")
    if claims.get("action") != action.value:
        raise StepUpFailed(f"The passkey confirmation was not issued for {action.value}.")
    issued_at = claims["iat"]
    age = now.timestamp() - float(issued_at)
    if age > config.step_up_max_age_seconds or age < -CLOCK_SKEW_SECONDS:
        raise StepUpFailed("The passkey confirmation is too old; confirm again.")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
        raise StepUpFailed("The passkey confirmation token has no valid id.")
    # Keep the record until the token could no longer pass the age check.
    expires_at = int(float(issued_at)) + config.step_up_max_age_seconds + CLOCK_SKEW_SECONDS
    return StepUpUse(jti=jti, expires_at_epoch=expires_at)
