"""A software WebAuthn authenticator and client (the browser's part), on `cryptography` and `cbor2`.

It answers PublicKeyCredentialCreationOptionsJSON and PublicKeyCredentialRequestOptionsJSON (as
py_webauthn's `options_to_json` writes them) with what `PublicKeyCredential.toJSON()` produces: a
RegistrationResponseJSON with a real "none" attestation object, and an AuthenticationResponseJSON
whose signature covers authenticatorData ‖ SHA-256(clientDataJSON). Credentials are ES256 (P-256)
or Ed25519; authenticator data carries rpIdHash, the UP/UV/BE/BS/AT flags and the sign count.

Every answer can be made wrong the way tests need: without user verification or presence, for
another RP ID, from another origin, with a counter set at will (backwards, or always 0 as synced
passkeys do), for another challenge, or forged (signed with a key that is not the credential's).

`to_json` / `from_json` keep its private state (keys and counters), so a dev command can hold one
authenticator in a state directory across runs. Never use it for anything but tests and local mode.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ES256 = -7
EDDSA = -8
SUPPORTED = (ES256, EDDSA)

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40

Counter = Literal["increment", "zero"]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class NoCredential(Exception):
    """The authenticator holds no credential the options allow (the browser's NotAllowedError)."""


class CredentialExcluded(Exception):
    """The authenticator holds a credential the options exclude (the browser's InvalidStateError)."""


def _generate(algorithm: int) -> PrivateKey:
    if algorithm == ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == EDDSA:
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported COSE algorithm {algorithm}")


def cose_key(private_key: PrivateKey) -> bytes:
    """The COSE_Key of the public half (RFC 9053): EC2 P-256 for ES256, OKP Ed25519 for EdDSA."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        numbers = private_key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: ES256, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")}, canonical=True)
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return cbor2.dumps({1: 1, 3: EDDSA, -1: 6, -2: raw}, canonical=True)


def _sign(private_key: PrivateKey, data: bytes) -> bytes:
    # WebAuthn ES256 signatures are ASN.1 DER (not JOSE's R‖S); Ed25519's are its 64 raw bytes.
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    return private_key.sign(data)


@dataclass
class SoftCredential:
    """One credential: its key pair, the RP and user it was made for, and its counter."""

    credential_id: bytes
    algorithm: int
    private_key: PrivateKey
    rp_id: str
    user_handle: bytes
    user_name: str = ""
    sign_count: int = 0
    counter: Counter = "increment"  # "zero": the counter stays 0, as synced passkeys report it
    backup_eligible: bool = False
    backed_up: bool = False

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def public_key_der(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "credential_id": self.id, "algorithm": self.algorithm,
            "private_key": b64url(self.private_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
            "rp_id": self.rp_id, "user_handle": b64url(self.user_handle), "user_name": self.user_name,
            "sign_count": self.sign_count, "counter": self.counter,
            "backup_eligible": self.backup_eligible, "backed_up": self.backed_up,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SoftCredential:
        private_key = serialization.load_der_private_key(from_b64url(values["private_key"]), password=None)
        if not isinstance(private_key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ValueError("unsupported private key in the authenticator's state")
        return cls(credential_id=from_b64url(values["credential_id"]), algorithm=int(values["algorithm"]),
                   private_key=private_key, rp_id=values["rp_id"], user_handle=from_b64url(values["user_handle"]),
                   user_name=values.get("user_name", ""), sign_count=int(values["sign_count"]),
                   counter=values.get("counter", "increment"), backup_eligible=bool(values["backup_eligible"]),
                   backed_up=bool(values["backed_up"]))


def _options(options: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """The options as py_webauthn's options_to_json writes them, or KeyGate's {"options": ...} envelope."""
    loaded = json.loads(options) if isinstance(options, str) else options
    return loaded.get("options", loaded) if "challenge" not in loaded else loaded


@dataclass
class SoftAuthenticator:
    """A platform authenticator with the browser around it: `create` and `get` answer options with JSON."""

    origin: str = "https://app.example.com"
    aaguid: bytes = bytes(16)
    attachment: str = "platform"
    transports: tuple[str, ...] = ("internal", "hybrid")
    credentials: dict[str, SoftCredential] = field(default_factory=dict)

    # ------------------------------------------------------------- state
    def to_json(self) -> str:
        """The whole private state (keys included): keep it where only its owner can read it."""
        return json.dumps({"version": 1, "origin": self.origin, "aaguid": b64url(self.aaguid),
                           "attachment": self.attachment, "transports": list(self.transports),
                           "credentials": [credential.to_dict() for credential in self.credentials.values()]},
                          indent=2)

    @classmethod
    def from_json(cls, text: str) -> SoftAuthenticator:
        state = json.loads(text)
        if state.get("version") != 1:
            raise ValueError("unknown authenticator state version")
        credentials = [SoftCredential.from_dict(values) for values in state["credentials"]]
        return cls(origin=state["origin"], aaguid=from_b64url(state["aaguid"]), attachment=state["attachment"],
                   transports=tuple(state["transports"]),
                   credentials={credential.id: credential for credential in credentials})

    def credentials_for(self, rp_id: str) -> list[SoftCredential]:
        return [credential for credential in self.credentials.values() if credential.rp_id == rp_id]

    # ------------------------------------------------------------ pieces
    def client_data(self, kind: str, challenge: str, *, origin: str | None = None,
                    cross_origin: bool = False) -> bytes:
        """clientDataJSON as browsers serialise it: type, challenge, origin, crossOrigin, in that order."""
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": cross_origin}, separators=(",", ":")).encode()

    @staticmethod
    def authenticator_data(rp_id: str, *, sign_count: int, user_present: bool = True, user_verified: bool = True,
                           backup_eligible: bool = False, backed_up: bool = False,
                           attested: tuple[bytes, bytes, bytes] | None = None) -> bytes:
        """rpIdHash ‖ flags ‖ signCount, and with `attested` (aaguid, credential id, COSE key) the AT data."""
        flags = ((FLAG_UP if user_present else 0) | (FLAG_UV if user_verified else 0)
                 | (FLAG_BE if backup_eligible else 0) | (FLAG_BS if backed_up else 0)
                 | (FLAG_AT if attested else 0))
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + sign_count.to_bytes(4, "big")
        if attested:
            aaguid, credential_id, public_key = attested
            data += aaguid + len(credential_id).to_bytes(2, "big") + credential_id + public_key
        return data

    # ------------------------------------------------------ registration
    def create(self, options: Mapping[str, Any] | str, *, algorithm: int | None = None,
               origin: str | None = None, rp_id: str | None = None, challenge: str | None = None,
               user_present: bool = True, user_verified: bool = True, sign_count: int = 0,
               counter: Counter = "increment", backup_eligible: bool = False, backed_up: bool = False,
               ignore_exclusions: bool = False, credential_id: bytes | None = None) -> dict[str, Any]:
        """navigator.credentials.create(options) and toJSON(): a new credential and its RegistrationResponseJSON.

        `algorithm` defaults to the first of the options' pubKeyCredParams this authenticator supports;
        `rp_id`, `origin` and `challenge` override what the options say (to make wrong answers)."""
        opts = _options(options)
        rp = rp_id or opts["rp"].get("id") or ""
        excluded = {entry["id"] for entry in opts.get("excludeCredentials", [])}
        if not ignore_exclusions and any(credential.id in excluded for credential in self.credentials_for(rp)):
            raise CredentialExcluded("this authenticator already holds an excluded credential")
        offered = [param["alg"] for param in opts.get("pubKeyCredParams", [])]
        chosen = algorithm if algorithm is not None else next((alg for alg in offered if alg in SUPPORTED), None)
        if chosen is None:
            raise NoCredential("no offered algorithm is supported")
        credential = SoftCredential(
            credential_id=credential_id or secrets.token_bytes(32), algorithm=chosen, private_key=_generate(chosen),
            rp_id=rp, user_handle=from_b64url(opts["user"]["id"]), user_name=opts["user"].get("name", ""),
            sign_count=sign_count, counter=counter, backup_eligible=backup_eligible, backed_up=backed_up)
        self.credentials[credential.id] = credential
        client_data = self.client_data("webauthn.create", challenge or opts["challenge"], origin=origin)
        auth_data = self.authenticator_data(
            rp, sign_count=sign_count, user_present=user_present, user_verified=user_verified,
            backup_eligible=backup_eligible, backed_up=backed_up,
            attested=(self.aaguid, credential.credential_id, cose_key(credential.private_key)))
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "authenticatorData": b64url(auth_data),
                "transports": list(self.transports),
                "publicKey": b64url(credential.public_key_der()),
                "publicKeyAlgorithm": chosen,
            },
        }

    # ---------------------------------------------------- authentication
    def _pick(self, rp_id: str, allowed: Iterable[str], credential_id: str | None) -> SoftCredential:
        if credential_id is not None:
            if credential_id not in self.credentials:
                raise NoCredential("no such credential")
            return self.credentials[credential_id]
        allowed = set(allowed)
        candidates = [credential for credential in self.credentials_for(rp_id)
                      if not allowed or credential.id in allowed]
        if not candidates:
            raise NoCredential(f"no credential for {rp_id} among the allowed ones")
        return candidates[-1]

    def get(self, options: Mapping[str, Any] | str, *, credential_id: str | None = None,
            origin: str | None = None, rp_id: str | None = None, challenge: str | None = None,
            user_present: bool = True, user_verified: bool = True, sign_count: int | None = None,
            forged: bool = False, cross_origin: bool = False) -> dict[str, Any]:
        """navigator.credentials.get(options) and toJSON(): an AuthenticationResponseJSON.

        The counter goes up by one (stays 0 for a "zero" credential) unless `sign_count` sets it; it is
        kept either way. `forged` signs with a fresh key instead of the credential's. `rp_id`, `origin`
        and `challenge` override what the options say; `credential_id` picks the credential."""
        opts = _options(options)
        rp = rp_id or opts.get("rpId") or ""
        credential = self._pick(opts.get("rpId") or rp, (entry["id"] for entry in opts.get("allowCredentials", [])),
                                credential_id)
        if sign_count is None:
            sign_count = 0 if credential.counter == "zero" else credential.sign_count + 1
        credential.sign_count = sign_count
        client_data = self.client_data("webauthn.get", challenge or opts["challenge"], origin=origin,
                                       cross_origin=cross_origin)
        auth_data = self.authenticator_data(rp, sign_count=sign_count, user_present=user_present,
                                            user_verified=user_verified, backup_eligible=credential.backup_eligible,
                                            backed_up=credential.backed_up)
        key = _generate(credential.algorithm) if forged else credential.private_key
        signature = _sign(key, auth_data + hashlib.sha256(client_data).digest())
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
        }
