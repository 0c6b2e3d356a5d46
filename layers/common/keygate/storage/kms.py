"""KMS for KeyGate's own step-up tokens (keygate.stepup_issuer.TokenSigner): ES256 signatures made by an
asymmetric KMS key, whose private half never leaves KMS, and its public key for verification.

The KMS client is `aws.AwsClients.kms` (so `aws.forget_clients()` forgets it too). A key's public
key is fetched once per process and key id: an asymmetric KMS key's material never changes (KMS does not
rotate it), but an alias can be pointed at another key, so configure a key id or ARN.
"""

from __future__ import annotations

import threading

from keygate.storage import aws

SIGNING_ALGORITHM = "ECDSA_SHA_256"
# kms:Sign takes at most 4096 bytes with MessageType RAW.
MAX_RAW_MESSAGE_BYTES = 4096

_PUBLIC_KEYS: dict[tuple[str | None, str], bytes] = {}
_LOCK = threading.Lock()


def forget_public_keys() -> None:
    """Drop every cached public key (tests switch between emulated accounts)."""
    with _LOCK:
        _PUBLIC_KEYS.clear()


class KmsSigner:
    """ECDSA P-256 / SHA-256 through kms:Sign (MessageType RAW), and the key's public half."""

    def __init__(self, clients: aws.AwsClients) -> None:
        self._clients = clients

    def sign(self, key_id: str, message: bytes) -> bytes:
        """The DER-encoded ECDSA signature KMS makes of `message` with the key."""
        if len(message) > MAX_RAW_MESSAGE_BYTES:
            raise ValueError(f"kms:Sign takes at most {MAX_RAW_MESSAGE_BYTES} bytes as a RAW message")
        response = aws.call("Sign", self._clients.kms.sign, KeyId=key_id, Message=message,
                            MessageType="RAW", SigningAlgorithm=SIGNING_ALGORITHM)
        return bytes(response["Signature"])

    def public_key(self, key_id: str) -> bytes:
        """The key's public half as DER SubjectPublicKeyInfo, fetched once per process and key id."""
        cache_key = (self._clients.endpoint_url, key_id)
        with _LOCK:
            cached = _PUBLIC_KEYS.get(cache_key)
        if cached is None:
            response = aws.call("GetPublicKey", self._clients.kms.get_public_key, KeyId=key_id)
            cached = bytes(response["PublicKey"])
            with _LOCK:
                _PUBLIC_KEYS[cache_key] = cached
        return cached
