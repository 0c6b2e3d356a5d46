"""KeyGate's own step-up token: a short JWT, ES256, signed by an asymmetric KMS key (issue 14).

`StepUpIssuer.issue` turns a verified passkey ceremony (keygate.passkeys.StepUpApproval) into a token
that names the user, the action, its target and the digest of the exact change; `StepUpIssuer.verify`
checks one and returns its `StepUpClaims`. The private key never leaves KMS: the JWS signing input goes
to kms:Sign (ECDSA_SHA_256, MessageType RAW), and its DER signature becomes JOSE's raw R‖S (RFC 7518
§3.4). Verification uses the key's public half from kms:GetPublicKey, cached per key id
(keygate.storage.kms).

A step-up token never passes as a session, nor a session as one: its audience is its own (not the
session's), its header says `typ: kg-step-up+jwt`, and its claims carry `token_use: "step_up"`; all
three are checked here. Claims: iss, aud, sub, action, target (absent when the action has none),
change, amr ["passkey"], jti, iat, exp = iat + STEP_UP_TTL_SECONDS, token_use.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from keygate.config import ConfigError, _Environment
from keygate.errors import ErrorCode, KeyGateError

ALGORITHM = "ES256"
TOKEN_TYPE = "kg-step-up+jwt"  # noqa: S105  # nosec B105  # a JWT header value, not a secret
TOKEN_USE = "step_up"  # noqa: S105  # nosec B105  # a claim value, not a secret
# Leeway on exp and iat between the functions' clocks (Lambda's are NTP-synchronised).
CLOCK_SKEW_SECONDS = 5
_COORDINATE_BYTES = 32  # P-256
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti"]


@dataclass(frozen=True)
class StepUpIssuerConfig:
    """The KMS key that signs step-up tokens, their issuer and audience, and how long they live."""

    signing_key_id: str
    issuer: str = "keygate"
    audience: str = "keygate-step-up"
    ttl_seconds: int = 120

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        audience = env.text("STEP_UP_TOKEN_AUDIENCE", cls.audience, min_length=1)
        env.check(audience != env.optional("SESSION_AUDIENCE"),
                  "STEP_UP_TOKEN_AUDIENCE must differ from SESSION_AUDIENCE: a step-up token is no session")
        config = cls(signing_key_id=env.text("STEP_UP_SIGNING_KEY_ID", min_length=1),
                     issuer=env.text("STEP_UP_TOKEN_ISSUER", cls.issuer, min_length=1),
                     audience=audience,
                     ttl_seconds=env.integer("STEP_UP_TTL_SECONDS", cls.ttl_seconds, minimum=30, maximum=600))
        env.done("step-up issuer settings")
        return config


class TokenSigner(Protocol):
    """An ECDSA P-256 key that signs without showing its private half (keygate.storage.kms.KmsSigner)."""

    def sign(self, key_id: str, message: bytes) -> bytes:
        """The DER-encoded ECDSA (SHA-256) signature of `message`."""

    def public_key(self, key_id: str) -> bytes:
        """The key's public half as DER SubjectPublicKeyInfo."""


@dataclass(frozen=True)
class IssuedStepUp:
    token: str
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class StepUpClaims:
    """A verified step-up token's claims: what the user approved, and the token's id and lifetime."""

    user_id: str
    action: str
    target: str | None
    change: str
    jti: str
    issued_at: datetime
    expires_at: datetime
    claims: dict[str, Any]


class StepUpTokenRefused(KeyGateError):
    """A step-up token that is not a valid, current KeyGate step-up token (STEP_UP_REQUIRED)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(ErrorCode.STEP_UP_REQUIRED, message)
        self.reason = reason


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def der_to_raw(signature: bytes) -> bytes:
    """A DER ECDSA P-256 signature (what KMS returns) as JOSE's R‖S, 32 bytes each, big-endian."""
    r, s = decode_dss_signature(signature)
    return r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")


def sign_jwt(signer: TokenSigner, key_id: str, claims: Mapping[str, Any],
             header: Mapping[str, Any] | None = None) -> str:
    """A compact ES256 JWS of `claims` signed by the key (header: alg ES256, typ kg-step-up+jwt, unless given)."""
    protected = {"alg": ALGORITHM, "typ": TOKEN_TYPE} if header is None else {**header, "alg": ALGORITHM}
    signing_input = f"{_b64url(_json(protected))}.{_b64url(_json(claims))}"
    signature = der_to_raw(signer.sign(key_id, signing_input.encode("ascii")))
    return f"{signing_input}.{_b64url(signature)}"


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class StepUpIssuer:
    """Issues and verifies KeyGate's step-up tokens with one KMS key; `clock` sets iat (tests move it)."""

    def __init__(self, config: StepUpIssuerConfig, signer: TokenSigner,
                 clock: Callable[[], datetime] = _wall_clock) -> None:
        self._config = config
        self._signer = signer
        self._clock = clock
        self._verification_keys: dict[str, ec.EllipticCurvePublicKey] = {}

    def issue(self, *, user_id: str, action: str, target: str | None, change: str) -> IssuedStepUp:
        """A token confirming that `user_id` approved `action` on `target` with exactly `change`."""
        issued_at = int(self._clock().timestamp())
        expires_at = issued_at + self._config.ttl_seconds
        jti = secrets.token_urlsafe(24)
        claims: dict[str, Any] = {
            "iss": self._config.issuer, "aud": self._config.audience, "sub": user_id, "action": action,
            "change": change, "amr": ["passkey"], "jti": jti, "iat": issued_at, "exp": expires_at,
            "token_use": TOKEN_USE,
        }
        if target is not None:
            claims["target"] = target
        token = sign_jwt(self._signer, self._config.signing_key_id, claims)
        return IssuedStepUp(token=token, jti=jti, issued_at=datetime.fromtimestamp(issued_at, UTC),
                            expires_at=datetime.fromtimestamp(expires_at, UTC))

    def _public_key(self) -> ec.EllipticCurvePublicKey:
        key_id = self._config.signing_key_id
        if key_id not in self._verification_keys:
            loaded = load_der_public_key(self._signer.public_key(key_id))
            if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(loaded.curve, ec.SECP256R1):
                raise ConfigError("STEP_UP_SIGNING_KEY_ID must name an ECC_NIST_P256 signing key")
            self._verification_keys[key_id] = loaded
        return self._verification_keys[key_id]

    def verify(self, token: str | None) -> StepUpClaims:
        """The claims of a step-up token this issuer signed that is current, for its audience, and marked
        as a step-up token; anything else is StepUpTokenRefused, with a message saying what was wrong."""
        if not token:
            raise StepUpTokenRefused("This action needs a passkey confirmation token.", "missing")
        public_key = self._public_key()  # before the try: KMS being unreachable is a 503, not a refusal
        try:
            decoded = jwt.decode_complete(
                token, public_key, algorithms=[ALGORITHM], audience=self._config.audience,
                issuer=self._config.issuer, leeway=CLOCK_SKEW_SECONDS, options={"require": _REQUIRED_CLAIMS})
        except jwt.ExpiredSignatureError as error:
            raise StepUpTokenRefused("The passkey confirmation has expired; confirm again.", "expired") from error
        except jwt.InvalidAudienceError as error:
            raise StepUpTokenRefused("The token is not a passkey confirmation for KeyGate (audience).",
                                     "audience") from error
        except jwt.InvalidIssuerError as error:
            raise StepUpTokenRefused("The passkey confirmation was not issued by KeyGate.", "issuer") from error
        except jwt.InvalidSignatureError as error:
            raise StepUpTokenRefused("The passkey confirmation's signature is not valid.", "signature") from error
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise StepUpTokenRefused("The passkey confirmation token is invalid.", "malformed") from error
        header, claims = decoded["header"], decoded["payload"]
        if header.get("typ") != TOKEN_TYPE or claims.get("token_use") != TOKEN_USE:
            raise StepUpTokenRefused("The token is not a passkey confirmation (step-up) token.", "not_step_up")
        return self._claims(claims)

    @staticmethod
    def _claims(claims: dict[str, Any]) -> StepUpClaims:
        subject, action, change, jti = (claims.get(name) for name in ("sub", "action", "change", "jti"))
        target, amr = claims.get("target"), claims.get("amr")
        if not all(isinstance(value, str) and value for value in (subject, action, change)) \
                or not isinstance(jti, str) or not 8 <= len(jti) <= 128 \
                or not (target is None or isinstance(target, str)) \
                or not isinstance(amr, list) or "passkey" not in amr:
            raise StepUpTokenRefused("The passkey confirmation token lacks what it confirms.", "claims")
        return StepUpClaims(user_id=str(subject), action=str(action), target=target, change=str(change), jti=jti,
                            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                            expires_at=datetime.fromtimestamp(claims["exp"], UTC), claims=claims)
