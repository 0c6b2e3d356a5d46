"""JWTs from an issuer KeyGate trusts, verified with PyJWT against the issuer's JWKS.

Session tokens (the session authorizer) and passkey step-up tokens (mutations)
share this path: the issuer's keys come from its JWKS URL, cached per URL.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jwt

from keygate.config import TokenIssuer
from keygate.errors import ServiceUnavailable
from keygate.observability import logger

ALGORITHMS = ["ES256", "RS256", "EdDSA"]
CLOCK_SKEW_SECONDS = 30
JWKS_CACHE_SECONDS = 300

# What a caller may catch: any reason a token is not acceptable (bad signature, claims, expiry, ...).
InvalidToken = jwt.PyJWTError
ExpiredToken = jwt.ExpiredSignatureError
WrongAudience = jwt.InvalidAudienceError


@cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    # One per URL and process: keys are cached for JWKS_CACHE_SECONDS, and an unknown `kid`
    # refetches at most once per PyJWT's cooldown.
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, timeout=5)


def forget_jwks() -> None:
    """Drop every cached JWKS (tests and local mode change issuers)."""
    _jwks_client.cache_clear()


def decode(token: str, issuer: TokenIssuer, *, required: list[str]) -> dict[str, Any]:
    """The token's claims once its signature, issuer, audience and expiry check out.

    Raises InvalidToken (ExpiredToken for an expired one) or ValueError for a token that is not
    acceptable, and ServiceUnavailable when the JWKS cannot be fetched.
    """
    try:
        signing_key = _jwks_client(issuer.jwks_url).get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError as error:
        logger.warning("jwks unreachable", extra={"jwks_url": issuer.jwks_url})
        raise ServiceUnavailable("The identity provider's keys cannot be fetched; retry shortly.") from error
    return jwt.decode(
        # The PyJWK, not its bare key: PyJWT then refuses a token whose `alg` does not match the key
        # (InvalidAlgorithmError) instead of raising TypeError from inside the verifier.
        token, signing_key, algorithms=ALGORITHMS, audience=issuer.audience, issuer=issuer.issuer,
        leeway=CLOCK_SKEW_SECONDS, options={"require": required},
    )
