"""Passkeys: KeyGate's own WebAuthn ceremonies (issue 14), on py_webauthn.

Two ceremonies, each in two steps, both bound to a random, single-use challenge
that expires after `PasskeyConfig.step_up_ttl_seconds` and is stored with the
user it was issued to:

- registration: `Passkeys.registration_options` (ES256 and EdDSA, user
  verification required, resident key preferred, the user's passkeys excluded,
  attestation "none"), then `Passkeys.register` verifies the authenticator's
  attestation and stores the `Passkey`;
- step-up: `Passkeys.step_up_options` stores the challenge with the action, the
  target and the change digest it confirms (opaque strings here), then
  `Passkeys.verify_step_up` verifies the assertion and returns the
  `StepUpApproval` that the step-up token is issued for.

Every refusal is a `PasskeyRefused` (a KeyGateError) whose `reason` says what was
wrong; a signature counter that went backwards is `SuspectedClonedAuthenticator`,
which the caller audits.

py_webauthn is deployed only with the functions that use this module: the
signature authorizer never imports it (tests/unit/test_passkeys.py checks).
Storage is the `PasskeyStore` protocol (keygate.storage.passkeys on DynamoDB).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    decode_credential_public_key,
    generate_challenge,
    generate_user_handle,
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorDataFlags,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    ClientDataType,
    CollectedClientData,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

from keygate.config import _Environment
from keygate.errors import ErrorCode, KeyGateError

SUPPORTED_ALGORITHMS = (COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.EDDSA)
# A passkey's id is its credential id, base64url, in the sort key `PASSKEY#<id>`: DynamoDB allows
# 1024 bytes there, so longer credential ids (WebAuthn allows up to 1023 bytes) are refused.
MAX_CREDENTIAL_ID_BYTES = 512
_MAX_CREDENTIAL_ID_CHARS = (MAX_CREDENTIAL_ID_BYTES * 4 + 2) // 3
# A challenge is py_webauthn's 64 random bytes; anything far from that is not one of ours.
_CHALLENGE_BYTES = range(16, 129)
MAX_LABEL_LENGTH = 50
_MAX_ACTION_LENGTH = 64
_MAX_TARGET_LENGTH = 1024
_MAX_CHANGE_LENGTH = 256
_RP_ID = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


# ------------------------------------------------------------------ settings
def _origin_fits(origin: str, rp_id: str) -> bool:
    """An origin browsers send (scheme://host[:port], nothing else) whose host is the RP ID or under it;
    http only for localhost, the one insecure host browsers treat as a secure context."""
    try:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        return False
    secure = parts.scheme == "https" or (parts.scheme == "http" and (host == "localhost"
                                                                      or host.endswith(".localhost")))
    return (secure and origin == f"{parts.scheme}://{parts.netloc}" and parts.netloc == parts.netloc.lower()
            and (host == rp_id or host.endswith("." + rp_id)))


@dataclass(frozen=True)
class PasskeyConfig:
    """The relying party (RP ID, name, the origins ceremonies may come from) and the ceremonies' bounds."""

    rp_id: str
    rp_name: str
    origins: tuple[str, ...]
    # A challenge's lifetime (and the step-up token's, keygate.stepup_issuer).
    step_up_ttl_seconds: int = 120
    # A user's first passkey needs a session signed in at most this long ago (the route checks auth_time).
    enrolment_max_session_age_seconds: int = 300

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        rp_id = env.text("PASSKEY_RP_ID", pattern=_RP_ID, rule="a lower-case domain name such as example.com")
        origins = env.items("PASSKEY_ORIGINS", ())
        env.check(bool(origins), "PASSKEY_ORIGINS must list at least one origin")
        env.check(all(_origin_fits(origin, rp_id) for origin in origins),
                  "PASSKEY_ORIGINS: each must be https://<host>[:port] (http only for localhost), "
                  "lower case, without a path, on PASSKEY_RP_ID or a subdomain of it")
        config = cls(rp_id=rp_id,
                     rp_name=env.text("PASSKEY_RP_NAME", "KeyGate", min_length=1),
                     origins=origins,
                     step_up_ttl_seconds=env.integer("STEP_UP_TTL_SECONDS", cls.step_up_ttl_seconds,
                                                     minimum=30, maximum=600),
                     enrolment_max_session_age_seconds=env.integer(
                         "PASSKEY_ENROLMENT_MAX_SESSION_AGE_SECONDS", cls.enrolment_max_session_age_seconds,
                         minimum=30, maximum=3600))
        env.done("passkey settings")
        return config


# ------------------------------------------------------------------- records
class Purpose(StrEnum):
    """What a challenge was issued for; one purpose's challenge never completes the other ceremony."""

    REGISTRATION = "registration"
    STEP_UP = "step_up"


@dataclass(frozen=True)
class Challenge:
    """A challenge as stored: whose, what for, until when, and (once consumed) when it was used."""

    value: str  # base64url of the random bytes, as clientDataJSON carries it
    user_id: str
    purpose: Purpose
    created_at: datetime
    expires_at: datetime
    action: str | None = None  # step-up: what the confirmation is for ...
    target: str | None = None  # ... on which key, handle or passkey (None: the action has no target) ...
    change: str | None = None  # ... and the digest of the exact change
    user_handle: str | None = None  # registration: the WebAuthn user.id the options carried (base64url)
    used_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class Passkey:
    """A registered WebAuthn credential of a user; its `credential_id` (base64url) is the passkey's id."""

    credential_id: str
    user_id: str
    public_key: bytes  # COSE_Key, as the attestation carried it
    sign_count: int
    backed_up: bool
    label: str
    created_at: datetime
    last_used_at: datetime | None = None
    transports: tuple[str, ...] = ()
    backup_eligible: bool = False
    user_handle: str = ""  # base64url of the WebAuthn user.id the credential was created for
    aaguid: str = ""


class PasskeyEventKind(StrEnum):
    """What the per-user passkey audit records (append-only, listed for the user)."""

    REGISTERED = "passkey_registered"
    REMOVED = "passkey_removed"
    CLONE_SUSPECTED = "passkey_clone_suspected"  # a valid signature whose counter went backwards


@dataclass(frozen=True)
class PasskeyEvent:
    """One entry of a user's passkey audit."""

    user_id: str
    event: PasskeyEventKind
    passkey_id: str
    label: str
    ip_address: str
    created_at: datetime
    details: Mapping[str, Any] | None = None


# ------------------------------------------------------------------- storage
class ChallengeNotConsumed(Exception):
    """The challenge could not be consumed; `found` is what is stored under its value (None: nothing)."""

    def __init__(self, found: Challenge | None) -> None:
        super().__init__("challenge not consumed")
        self.found = found


class PasskeyAlreadyRegistered(Exception):
    """The user already has a passkey with this credential id."""


class PasskeyStore(Protocol):
    """Challenges and passkeys (keygate.storage.passkeys on DynamoDB; tests/support/passkey_store.py in memory)."""

    def save_challenge(self, challenge: Challenge) -> None: ...

    def consume_challenge(self, value: str, *, user_id: str, purpose: Purpose, now: datetime) -> Challenge:
        """Marks the challenge used and returns it, in one atomic step, if it exists, belongs to `user_id`,
        was issued for `purpose`, was never used and has not expired at `now` (whether or not the
        storage has deleted it yet). Otherwise raises ChallengeNotConsumed with what is stored, if anything.
        Of two concurrent consumptions, at most one succeeds."""

    def list_passkeys(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first."""

    def get_passkey(self, user_id: str, credential_id: str) -> Passkey | None: ...

    def save_passkey(self, passkey: Passkey) -> None:
        """Stores a new passkey; PasskeyAlreadyRegistered if the user has one with its credential id."""

    def delete_passkey(self, user_id: str, credential_id: str) -> Passkey | None:
        """Deletes the passkey and returns it as it was; None if the user has no such passkey."""

    def record_use(self, user_id: str, credential_id: str, *, sign_count: int, backed_up: bool,
                   used_at: datetime) -> bool:
        """Sets the last use and the backup state, and the sign count unless the stored one is already
        higher (a concurrent use stored it); False if the user has no such passkey (any more)."""


# ------------------------------------------------------------------ refusals
class Refusal(StrEnum):
    """Why a ceremony was refused (`PasskeyRefused.reason`, for logs, metrics and audits)."""

    MALFORMED_CREDENTIAL = "malformed_credential"
    WRONG_CEREMONY = "wrong_ceremony"
    CHALLENGE_UNKNOWN = "challenge_unknown"
    CHALLENGE_REUSED = "challenge_reused"
    CHALLENGE_EXPIRED = "challenge_expired"
    CHALLENGE_OF_ANOTHER_USER = "challenge_of_another_user"
    CHALLENGE_FOR_ANOTHER_CEREMONY = "challenge_for_another_ceremony"
    WRONG_ORIGIN = "wrong_origin"
    WRONG_RP_ID = "wrong_rp_id"
    USER_NOT_PRESENT = "user_not_present"
    USER_NOT_VERIFIED = "user_not_verified"
    UNKNOWN_CREDENTIAL = "unknown_credential"
    NO_PASSKEY = "no_passkey"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    CREDENTIAL_ID_TOO_LONG = "credential_id_too_long"
    ALREADY_REGISTERED = "already_registered"
    INVALID_ATTESTATION = "invalid_attestation"
    INVALID_SIGNATURE = "invalid_signature"
    COUNTER_REGRESSION = "counter_regression"
    INVALID_LABEL = "invalid_label"
    INVALID_STEP_UP_REQUEST = "invalid_step_up_request"


_MESSAGES = {
    Refusal.MALFORMED_CREDENTIAL: "The credential is not a WebAuthn response in its JSON form ({detail}).",
    Refusal.WRONG_CEREMONY: "The credential answers another ceremony ({detail}); send the response of "
                            "navigator.credentials.{call}().",
    Refusal.CHALLENGE_UNKNOWN: "The passkey challenge is unknown; request new options and try again.",
    Refusal.CHALLENGE_REUSED: "The passkey challenge has already been used; request new options and try again.",
    Refusal.CHALLENGE_EXPIRED: "The passkey challenge has expired; request new options and try again.",
    Refusal.CHALLENGE_OF_ANOTHER_USER: "The passkey challenge was issued to another user.",
    Refusal.CHALLENGE_FOR_ANOTHER_CEREMONY: "The passkey challenge was issued for a {detail}, not for this "
                                            "ceremony; request new options.",
    Refusal.WRONG_ORIGIN: "The passkey response was made on an origin KeyGate does not accept{detail}.",
    Refusal.WRONG_RP_ID: "The passkey response was made for another relying party than {detail} (RP ID).",
    Refusal.USER_NOT_PRESENT: "The authenticator did not confirm that you were present.",
    Refusal.USER_NOT_VERIFIED: "The authenticator did not verify you (no PIN, biometric or passcode check); "
                               "user verification is required.",
    Refusal.UNKNOWN_CREDENTIAL: "This passkey is not registered for your account.",
    Refusal.NO_PASSKEY: "Your account has no passkey yet; register one first.",
    Refusal.UNSUPPORTED_ALGORITHM: "The passkey uses an algorithm KeyGate does not accept; ES256 and EdDSA are.",
    Refusal.CREDENTIAL_ID_TOO_LONG: f"The passkey's credential id is longer than {MAX_CREDENTIAL_ID_BYTES} bytes.",
    Refusal.ALREADY_REGISTERED: "This passkey is already registered for your account.",
    Refusal.INVALID_ATTESTATION: "The passkey's attestation could not be verified.",
    Refusal.INVALID_SIGNATURE: "The passkey's signature could not be verified.",
    Refusal.COUNTER_REGRESSION: "The passkey's signature counter went backwards, a sign that the authenticator "
                                "may have been cloned; the confirmation is refused.",
    Refusal.INVALID_LABEL: f"The passkey label must be 1 to {MAX_LABEL_LENGTH} characters, without control "
                           "or invisible formatting characters.",
    Refusal.INVALID_STEP_UP_REQUEST: "The step-up request is invalid ({detail}).",
}


class PasskeyRefused(KeyGateError):
    """A refused ceremony: STEP_UP_REQUIRED for a step-up, INVALID_REQUEST for a registration or a
    malformed body; the message says what was wrong."""

    def __init__(self, reason: Refusal, code: ErrorCode = ErrorCode.STEP_UP_REQUIRED, **detail: str) -> None:
        super().__init__(code, _MESSAGES[reason].format(**detail) if detail else _MESSAGES[reason])
        self.reason = reason


class SuspectedClonedAuthenticator(PasskeyRefused):
    """A valid signature whose counter did not go up: two authenticators may hold this credential's key.

    Raised only after the signature verified (a forged assertion is a plain INVALID_SIGNATURE); the
    caller audits it. The passkey's stored counter is left as it was."""

    def __init__(self, passkey: Passkey, presented_sign_count: int) -> None:
        super().__init__(Refusal.COUNTER_REGRESSION)
        self.user_id = passkey.user_id
        self.credential_id = passkey.credential_id
        self.stored_sign_count = passkey.sign_count
        self.presented_sign_count = presented_sign_count


class PasskeyNotFound(KeyGateError):
    """Unknown and another user's passkey ids alike (KEY_NOT_FOUND until a PASSKEY_NOT_FOUND code exists)."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.KEY_NOT_FOUND, "No passkey with this id exists for your account.")


# ---------------------------------------------------------------- ceremonies
@dataclass(frozen=True)
class CeremonyOptions:
    """What the app passes to navigator.credentials.create() / .get(), and the challenge stored for it."""

    options_json: str  # PublicKeyCredentialCreationOptionsJSON / PublicKeyCredentialRequestOptionsJSON
    challenge: Challenge

    @property
    def options(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.options_json)
        return loaded


@dataclass(frozen=True)
class StepUpApproval:
    """A verified step-up ceremony: the user approved `action` on `target` with exactly `change`."""

    user_id: str
    action: str
    target: str | None
    change: str
    passkey: Passkey  # as updated by this use
    approved_at: datetime


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _bounded(value: str | None, name: str, maximum: int, *, required: bool) -> None:
    if value is None and not required:
        return
    if value is None or not 1 <= len(value) <= maximum or not value.isprintable():
        raise PasskeyRefused(Refusal.INVALID_STEP_UP_REQUEST, ErrorCode.INVALID_REQUEST,
                             detail=f"{name} must be 1 to {maximum} printable characters")


def clean_label(label: str) -> str:
    """The label trimmed, if it is 1..MAX_LABEL_LENGTH characters without control or formatting characters."""
    cleaned = label.strip() if isinstance(label, str) else ""
    if not 1 <= len(cleaned) <= MAX_LABEL_LENGTH or any(
            unicodedata.category(character) in {"Cc", "Cf", "Zl", "Zp"} for character in cleaned):
        raise PasskeyRefused(Refusal.INVALID_LABEL, ErrorCode.INVALID_REQUEST)
    return cleaned


def _transports(names: tuple[str, ...]) -> list[AuthenticatorTransport]:
    known = []
    for name in names:
        try:
            known.append(AuthenticatorTransport(name))
        except ValueError:
            continue  # a transport this py_webauthn does not know: the browser does without the hint
    return known


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = _transports(passkey.transports)
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(passkey.credential_id), transports=transports or None)


class Passkeys:
    """The two ceremonies over a PasskeyStore, on `clock` (the wall clock unless a test moves it)."""

    def __init__(self, config: PasskeyConfig, store: PasskeyStore,
                 clock: Callable[[], datetime] = _wall_clock) -> None:
        self._config = config
        self._store = store
        self._clock = clock

    # ------------------------------------------------------------ helpers
    def _new_challenge(self, user_id: str, purpose: Purpose, *, action: str | None = None,
                       target: str | None = None, change: str | None = None,
                       user_handle: str | None = None) -> tuple[bytes, Challenge]:
        raw, now = generate_challenge(), self._clock()
        challenge = Challenge(value=bytes_to_base64url(raw), user_id=user_id, purpose=purpose, created_at=now,
                              expires_at=now + timedelta(seconds=self._config.step_up_ttl_seconds),
                              action=action, target=target, change=change, user_handle=user_handle)
        return raw, challenge

    def _refused(self, reason: Refusal, purpose: Purpose, **detail: str) -> PasskeyRefused:
        code = ErrorCode.STEP_UP_REQUIRED if purpose is Purpose.STEP_UP else ErrorCode.INVALID_REQUEST
        if reason is Refusal.MALFORMED_CREDENTIAL:
            code = ErrorCode.INVALID_REQUEST
        return PasskeyRefused(reason, code, **detail)

    def _client_data(self, client_data_json: bytes, purpose: Purpose) -> CollectedClientData:
        try:
            client_data = parse_client_data_json(client_data_json)
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            raise self._refused(Refusal.MALFORMED_CREDENTIAL, purpose, detail="clientDataJSON") from error
        expected = ClientDataType.WEBAUTHN_GET if purpose is Purpose.STEP_UP else ClientDataType.WEBAUTHN_CREATE
        if client_data.type != expected:
            raise self._refused(Refusal.WRONG_CEREMONY, purpose, detail=f"type {expected.value!r} expected",
                                call="get" if purpose is Purpose.STEP_UP else "create")
        return client_data

    def _consume(self, client_data: CollectedClientData, user_id: str, purpose: Purpose) -> Challenge:
        if len(client_data.challenge) not in _CHALLENGE_BYTES:
            raise self._refused(Refusal.CHALLENGE_UNKNOWN, purpose)
        now = self._clock()
        try:
            return self._store.consume_challenge(bytes_to_base64url(client_data.challenge), user_id=user_id,
                                                 purpose=purpose, now=now)
        except ChallengeNotConsumed as refused:
            found = refused.found
            if found is None:
                raise self._refused(Refusal.CHALLENGE_UNKNOWN, purpose) from None
            if found.user_id != user_id:
                raise self._refused(Refusal.CHALLENGE_OF_ANOTHER_USER, purpose) from None
            if found.purpose is not purpose:
                raise self._refused(Refusal.CHALLENGE_FOR_ANOTHER_CEREMONY, purpose,
                                    detail=found.purpose.value.replace("_", "-")) from None
            if found.used_at is not None:
                raise self._refused(Refusal.CHALLENGE_REUSED, purpose) from None
            raise self._refused(Refusal.CHALLENGE_EXPIRED, purpose) from None

    def _check_origin(self, client_data: CollectedClientData, purpose: Purpose) -> None:
        if client_data.origin not in self._config.origins:
            # The origin is not echoed: it is whatever the caller wrote.
            raise self._refused(Refusal.WRONG_ORIGIN, purpose, detail="")
        if client_data.cross_origin:
            raise self._refused(Refusal.WRONG_ORIGIN, purpose, detail=" (inside a frame of another site)")

    def _check_flags(self, rp_id_hash: bytes, flags: AuthenticatorDataFlags, purpose: Purpose) -> None:
        if rp_id_hash != hashlib.sha256(self._config.rp_id.encode()).digest():
            raise self._refused(Refusal.WRONG_RP_ID, purpose, detail=self._config.rp_id)
        if not flags.up:
            raise self._refused(Refusal.USER_NOT_PRESENT, purpose)
        if not flags.uv:
            raise self._refused(Refusal.USER_NOT_VERIFIED, purpose)

    # ------------------------------------------------------- registration
    def registration_options(self, user_id: str, *, user_name: str | None = None,
                             display_name: str | None = None) -> CeremonyOptions:
        """Options for navigator.credentials.create(): a new challenge, the user's passkeys excluded."""
        passkeys = self._store.list_passkeys(user_id)
        # One WebAuthn user handle per account: random, kept with each passkey, reused for the next.
        handle = next((passkey.user_handle for passkey in passkeys if passkey.user_handle), None)
        user_handle = base64url_to_bytes(handle) if handle else generate_user_handle()
        raw, challenge = self._new_challenge(user_id, Purpose.REGISTRATION,
                                             user_handle=bytes_to_base64url(user_handle))
        options = generate_registration_options(
            rp_id=self._config.rp_id, rp_name=self._config.rp_name, user_id=user_handle,
            user_name=user_name or user_id, user_display_name=display_name or user_name or user_id,
            challenge=raw, timeout=self._config.step_up_ttl_seconds * 1000,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED),
            exclude_credentials=[_descriptor(passkey) for passkey in passkeys],
            supported_pub_key_algs=list(SUPPORTED_ALGORITHMS))
        self._store.save_challenge(challenge)
        return CeremonyOptions(options_json=options_to_json(options), challenge=challenge)

    def register(self, user_id: str, credential: Mapping[str, Any] | str, *, label: str,
                 commit: Callable[[Passkey], None] | None = None) -> Passkey:
        """Verifies a RegistrationResponseJSON answering one of this user's registration challenges
        and stores the new passkey (through `commit`, when the caller stores it with more: its audit
        entry and a step-up use; it raises PasskeyAlreadyRegistered like the store)."""
        purpose = Purpose.REGISTRATION
        label = clean_label(label)
        try:
            parsed = parse_registration_credential_json(
                credential if isinstance(credential, str) else dict(credential))
        except (WebAuthnException, ValueError, TypeError) as error:
            raise self._refused(Refusal.MALFORMED_CREDENTIAL, purpose, detail="RegistrationResponseJSON") from error
        client_data = self._client_data(parsed.response.client_data_json, purpose)
        challenge = self._consume(client_data, user_id, purpose)
        self._check_origin(client_data, purpose)
        try:
            attestation = parse_attestation_object(parsed.response.attestation_object)
        except (WebAuthnException, ValueError, TypeError, KeyError, IndexError) as error:
            raise self._refused(Refusal.MALFORMED_CREDENTIAL, purpose, detail="attestationObject") from error
        self._check_flags(attestation.auth_data.rp_id_hash, attestation.auth_data.flags, purpose)
        attested = attestation.auth_data.attested_credential_data
        if attested is None:
            raise self._refused(Refusal.INVALID_ATTESTATION, purpose)
        if len(attested.credential_id) > MAX_CREDENTIAL_ID_BYTES:
            raise self._refused(Refusal.CREDENTIAL_ID_TOO_LONG, purpose)
        try:
            algorithm = decode_credential_public_key(attested.credential_public_key).alg
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            raise self._refused(Refusal.INVALID_ATTESTATION, purpose) from error
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise self._refused(Refusal.UNSUPPORTED_ALGORITHM, purpose)
        verified = self._verify_registration(parsed, client_data, purpose)
        passkey = Passkey(
            credential_id=bytes_to_base64url(verified.credential_id), user_id=user_id,
            public_key=verified.credential_public_key, sign_count=verified.sign_count,
            backed_up=verified.credential_backed_up, backup_eligible=attestation.auth_data.flags.be,
            label=label, created_at=self._clock(),
            transports=tuple(transport.value for transport in parsed.response.transports or ()),
            user_handle=challenge.user_handle or "", aaguid=verified.aaguid)
        try:
            (commit or self._store.save_passkey)(passkey)
        except PasskeyAlreadyRegistered:
            raise self._refused(Refusal.ALREADY_REGISTERED, purpose) from None
        return passkey

    def _verify_registration(self, parsed: RegistrationCredential, client_data: CollectedClientData,
                             purpose: Purpose) -> VerifiedRegistration:
        try:
            return verify_registration_response(
                credential=parsed, expected_challenge=client_data.challenge, expected_rp_id=self._config.rp_id,
                expected_origin=list(self._config.origins), require_user_verification=True,
                supported_pub_key_algs=list(SUPPORTED_ALGORITHMS))
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            raise self._refused(Refusal.INVALID_ATTESTATION, purpose) from error

    # ------------------------------------------------------------ step-up
    def step_up_options(self, user_id: str, *, action: str, target: str | None, change: str) -> CeremonyOptions:
        """Options for navigator.credentials.get(): a challenge bound to this action, target and change,
        allowing the user's passkeys only."""
        _bounded(action, "action", _MAX_ACTION_LENGTH, required=True)
        _bounded(target, "target", _MAX_TARGET_LENGTH, required=False)
        _bounded(change, "change", _MAX_CHANGE_LENGTH, required=True)
        passkeys = self._store.list_passkeys(user_id)
        if not passkeys:
            raise PasskeyRefused(Refusal.NO_PASSKEY)
        raw, challenge = self._new_challenge(user_id, Purpose.STEP_UP, action=action, target=target, change=change)
        options = generate_authentication_options(
            rp_id=self._config.rp_id, challenge=raw, timeout=self._config.step_up_ttl_seconds * 1000,
            allow_credentials=[_descriptor(passkey) for passkey in passkeys],
            user_verification=UserVerificationRequirement.REQUIRED)
        self._store.save_challenge(challenge)
        return CeremonyOptions(options_json=options_to_json(options), challenge=challenge)

    def verify_step_up(self, user_id: str, credential: Mapping[str, Any] | str) -> StepUpApproval:
        """Verifies an AuthenticationResponseJSON answering one of this user's step-up challenges: the
        challenge is consumed, the origin, RP ID, user presence and verification, the signature and
        then the counter are checked, and the passkey's use is recorded."""
        purpose = Purpose.STEP_UP
        try:
            parsed = parse_authentication_credential_json(
                credential if isinstance(credential, str) else dict(credential))
        except (WebAuthnException, ValueError, TypeError) as error:
            raise self._refused(Refusal.MALFORMED_CREDENTIAL, purpose,
                                detail="AuthenticationResponseJSON") from error
        client_data = self._client_data(parsed.response.client_data_json, purpose)
        challenge = self._consume(client_data, user_id, purpose)
        self._check_origin(client_data, purpose)
        passkey = self._store.get_passkey(user_id, parsed.id) if len(parsed.id) <= _MAX_CREDENTIAL_ID_CHARS else None
        if passkey is None:
            raise self._refused(Refusal.UNKNOWN_CREDENTIAL, purpose)
        try:
            authenticator_data = parse_authenticator_data(parsed.response.authenticator_data)
        except (WebAuthnException, ValueError, TypeError, KeyError, IndexError) as error:
            raise self._refused(Refusal.MALFORMED_CREDENTIAL, purpose, detail="authenticatorData") from error
        self._check_flags(authenticator_data.rp_id_hash, authenticator_data.flags, purpose)
        new_count = self._verify_assertion(parsed, client_data, passkey)
        # The counter, only now that the signature is known to be the passkey's: a forged assertion with
        # a low counter must not raise the clone alarm. Counters that stay 0 (synced passkeys) are fine.
        if passkey.sign_count > 0 and new_count <= passkey.sign_count:
            raise SuspectedClonedAuthenticator(passkey, new_count)
        now = self._clock()
        if not self._store.record_use(user_id, passkey.credential_id, sign_count=new_count,
                                      backed_up=authenticator_data.flags.bs, used_at=now):
            raise self._refused(Refusal.UNKNOWN_CREDENTIAL, purpose)  # removed during the ceremony
        return StepUpApproval(user_id=user_id, action=challenge.action or "", target=challenge.target,
                              change=challenge.change or "", approved_at=now,
                              passkey=replace(passkey, sign_count=max(new_count, passkey.sign_count),
                                              last_used_at=now, backed_up=authenticator_data.flags.bs))

    def _verify_assertion(self, parsed: AuthenticationCredential, client_data: CollectedClientData,
                          passkey: Passkey) -> int:
        try:
            verified = verify_authentication_response(
                credential=parsed, expected_challenge=client_data.challenge, expected_rp_id=self._config.rp_id,
                expected_origin=list(self._config.origins), credential_public_key=passkey.public_key,
                # py_webauthn compares counters before the signature and raises the same error for both:
                # 0 disables its comparison, and verify_step_up compares once the signature verified.
                credential_current_sign_count=0, require_user_verification=True)
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            raise self._refused(Refusal.INVALID_SIGNATURE, Purpose.STEP_UP) from error
        return verified.new_sign_count

    # ----------------------------------------------------------- passkeys
    def list_passkeys(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first."""
        return self._store.list_passkeys(user_id)

    def remove_passkey(self, user_id: str, passkey_id: str) -> Passkey:
        """Deletes one of the user's passkeys and returns it; another user's passkey is answered as unknown."""
        removed = self._store.delete_passkey(user_id, passkey_id) if len(passkey_id) <= _MAX_CREDENTIAL_ID_CHARS \
            else None
        if removed is None:
            raise PasskeyNotFound()
        return removed
