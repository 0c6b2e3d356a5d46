"""A local identity provider for tests and local mode only.

It signs session JWTs and passkey step-up tokens with keys generated for the
local stage, and publishes them as a JWKS that KeyGate fetches through the
same PyJWT code path as in production. No deployed stage trusts these keys.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from keygate.tokens import STEP_UP_TOKEN_TYPE, STEP_UP_TOKEN_USE

LOCAL_SESSION_ISSUER = "https://local.keygate.invalid/session"
LOCAL_STEP_UP_ISSUER = "https://local.keygate.invalid/passkey"
LOCAL_AUDIENCE = "keygate"  # the sessions' (the template's SessionAudience default)
LOCAL_STEP_UP_AUDIENCE = "keygate-step-up"  # the step-up tokens' (StepUpAudience's default)


@dataclass
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        public = json.loads(ECAlgorithm.to_jwk(self.private_key.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": self.kid, **(headers or {})})


@dataclass
class LocalIdentityProvider:
    session_key: SigningKey = field(default_factory=lambda: SigningKey(kid=f"session-{uuid.uuid4().hex[:8]}"))
    step_up_key: SigningKey = field(default_factory=lambda: SigningKey(kid=f"stepup-{uuid.uuid4().hex[:8]}"))
    session_issuer: str = LOCAL_SESSION_ISSUER
    step_up_issuer: str = LOCAL_STEP_UP_ISSUER
    audience: str = LOCAL_AUDIENCE
    step_up_audience: str = LOCAL_STEP_UP_AUDIENCE

    def session_jwks(self) -> dict[str, Any]:
        return {"keys": [self.session_key.jwk()]}

    def step_up_jwks(self) -> dict[str, Any]:
        return {"keys": [self.step_up_key.jwk()]}

    def session_token(self, user_id: str, *, lifetime_seconds: int = 3600, now: float | None = None,
                      **overrides: Any) -> str:
        issued = int(now if now is not None else time.time())
        # auth_time: when the user signed in (a fresh sign-in here); a first passkey needs a recent one.
        claims = {"iss": self.session_issuer, "aud": self.audience, "sub": user_id, "iat": issued,
                  "exp": issued + lifetime_seconds, "auth_time": issued, **overrides}
        return self.session_key.sign({k: v for k, v in claims.items() if v is not None})

    def step_up_token(self, user_id: str, action: str, *, now: float | None = None, lifetime_seconds: int = 300,
                      signing_key: SigningKey | None = None, **overrides: Any) -> str:
        """A passkey confirmation: its own audience, and the step-up marker in its claims and header."""
        issued = int(now if now is not None else time.time())
        claims = {"iss": self.step_up_issuer, "aud": self.step_up_audience, "sub": user_id, "iat": issued,
                  "exp": issued + lifetime_seconds, "jti": uuid.uuid4().hex, "amr": ["passkey"],
                  "action": action, "token_use": STEP_UP_TOKEN_USE, **overrides}
        return (signing_key or self.step_up_key).sign({k: v for k, v in claims.items() if v is not None},
                                                      headers={"typ": STEP_UP_TOKEN_TYPE})
