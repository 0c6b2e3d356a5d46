"""JWTs from an issuer KeyGate trusts, verified with PyJWT against the issuer's JWKS.

Session tokens (the session authorizer) and passkey step-up tokens (mutations)
share this path: the issuer's keys come from its JWKS URL, cached per URL.

The two kinds must never stand in for each other, even when one identity
provider issues both: a step-up token carries the claim `token_use: "step_up"`
(KeyGate's own issuers also type its JWT header `kg-step-up+jwt`), which
step-up verification requires and the session path refuses (`is_step_up`);
their default audiences differ too (README, "external mode").
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import jwt

from keygate.config import TokenIssuer
from keygate.errors import ServiceUnavailable
from keygate.observability import logger

ALGORITHMS = ["ES256", "RS256", "EdDSA"]
# Leeway on `exp`, `iat` and `nbf` for the issuers' and Lambda's clocks (both NTP-synchronised). It is
# part of the documented bounds (docs/architecture.md, "Bounds"): keep it small.
CLOCK_SKEW_SECONDS = 5
# The time claims a token may carry, and their range: epoch seconds up to the end of year 9999. PyJWT
# compares them with `int()`, which takes any size; KeyGate's own arithmetic on them must not overflow.
TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")
LATEST_EPOCH_SECONDS = 253402300799
JWKS_CACHE_SECONDS = 300
JWKS_REFETCH_COOLDOWN_SECONDS = 30  # an unknown `kid` refetches the JWKS at most once per this period
# The step-up kind marker: the claim every step-up token carries, and the JWT header type KeyGate's own
# step-up issuers (the local identity provider, the passkey service) set.
STEP_UP_TOKEN_USE = "step_up"  # noqa: S105  # nosec B105  # a claim value, not a secret
STEP_UP_TOKEN_TYPE = "kg-step-up+jwt"  # noqa: S105  # nosec B105  # a JWT header value, not a secret

# What a caller may catch: any reason a token is not acceptable (bad signature, claims, expiry, ...).
InvalidToken = jwt.PyJWTError
ExpiredToken = jwt.ExpiredSignatureError
WrongAudience = jwt.InvalidAudienceError


class _JwksFault(Exception):
    """The issuer's JWKS could not be fetched or read: whatever the fetch raised, never the token's fault."""


class _JwksClient(jwt.PyJWKClient):
    """PyJWT's client, its fetch's failures told apart from the token's (PyJWT raises some of each alike)."""

    def fetch_data(self) -> Any:
        try:
            return super().fetch_data()
        except Exception as error:  # not reachable, not JSON, not an object: the issuer's
            raise _JwksFault(type(error).__name__) from error


@cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    # One per URL and process: keys are cached for JWKS_CACHE_SECONDS, and an unknown `kid`
    # refetches at most once per JWKS_REFETCH_COOLDOWN_SECONDS (README, "external mode").
    return _JwksClient(url, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, timeout=5,
                       cooldown_duration=JWKS_REFETCH_COOLDOWN_SECONDS)


def forget_jwks() -> None:
    """Drop every cached JWKS (tests and local mode change issuers)."""
    _jwks_client.cache_clear()


# A key set that holds no usable signing key (PyJWKSetError: none at all; PyJWKClientError from
# get_signing_keys: none with a kid for signing) is the issuer's fault too.
_UNUSABLE_KEY_SET = (_JwksFault, jwt.PyJWKSetError, jwt.PyJWKClientError)


def decode(token: str, issuer: TokenIssuer, *, required: list[str]) -> dict[str, Any]:
    """The token's claims once its signature, issuer, audience and expiry check out.

    Raises InvalidToken (ExpiredToken for an expired one) or ValueError for a token that is not
    acceptable, and ServiceUnavailable when the JWKS cannot be fetched or holds no usable signing key.
    """
    client = _jwks_client(issuer.jwks_url)
    _check_key_set(client, issuer)  # the issuer's keys first (cached), before the token is looked at
    try:
        signing_key = client.get_signing_key_from_jwt(token)
    except (_JwksFault, jwt.PyJWKSetError) as error:  # the refetch a kid the cached keys lack forces
        raise _jwks_unusable(issuer, error) from error
    except jwt.PyJWKClientError:
        # No key has the token's kid, or that refetch brought a set without a signing key: the key set as
        # it now stands tells the two apart
        _check_key_set(client, issuer)
        raise
    try:
        claims = jwt.decode(
            # The PyJWK, not its bare key: PyJWT then refuses a token whose `alg` does not match the key
            # (InvalidAlgorithmError) instead of raising TypeError from inside the verifier.
            token, signing_key, algorithms=ALGORITHMS, audience=issuer.audience, issuer=issuer.issuer,
            leeway=CLOCK_SKEW_SECONDS, options={"require": required},
        )
    except OverflowError as error:  # PyJWT's int() of an infinite time claim
        raise InvalidToken("A time claim is out of range.") from error
    _check_time_claims(claims)
    return claims


def _check_key_set(client: jwt.PyJWKClient, issuer: TokenIssuer) -> None:
    """ServiceUnavailable unless the issuer's key set (cached, or fetched now) holds a usable signing key."""
    try:
        client.get_signing_keys()
    except _UNUSABLE_KEY_SET as error:
        raise _jwks_unusable(issuer, error) from error


def _jwks_unusable(issuer: TokenIssuer, error: Exception) -> ServiceUnavailable:
    # A fetch's fault carries the name of what the fetch raised (PyJWKClientConnectionError, JSONDecodeError, ...)
    reason = str(error) if isinstance(error, _JwksFault) else type(error).__name__
    logger.warning("jwks unreachable", extra={"jwks_url": issuer.jwks_url, "error_type": reason})
    return ServiceUnavailable("The identity provider's keys cannot be fetched; retry shortly.")


def _check_time_claims(claims: Mapping[str, Any]) -> None:
    """Each time claim present is a whole or fractional number of epoch seconds in 0..LATEST_EPOCH_SECONDS."""
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= LATEST_EPOCH_SECONDS:
            raise InvalidToken(f"The {name} claim is not a time in range.")


def is_step_up(token: str, claims: Mapping[str, Any]) -> bool:
    """Whether a verified token says it is a step-up token: by its claim or by its header's type."""
    if claims.get("token_use") == STEP_UP_TOKEN_USE:
        return True
    kind = jwt.get_unverified_header(token).get("typ")  # the header was verified with the signature
    return isinstance(kind, str) and kind.lower() == STEP_UP_TOKEN_TYPE
