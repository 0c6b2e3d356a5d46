"""GitHub's secret scanning partner programme: a reported KeyGate secret revokes its key (docs/architecture.md,
"Leaked keys").

GitHub POSTs a JSON list of `{"token", "type", "url", "source"}` signed with ECDSA P-256 (SHA-256) over the raw
body: `Github-Public-Key-Identifier` names the key, `Github-Public-Key-Signature` carries the base64 DER
signature. The public keys come from `SecretScanningKeysUrl` (GitHub's `{"public_keys": [{"key_identifier",
"key", "is_current"}]}`), cached for the warm instance and fetched again on an unknown identifier at most once a
minute. Nothing is looked at before the signature verifies; then each token that is a well-formed KeyGate secret
finds its key by fingerprint (no secret is read), which is revoked and audited `key_revoked_leaked` with the
reported URL. The answer identifies each token by its SHA-256 (`token_hash`), never by the token itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from keygate import keys
from keygate.errors import ErrorCode, KeyGateError, ServiceUnavailable
from keygate.observability import logger, metrics
from keygate.records import AuditEvent
from keygate.service import KeyLifecycle

IDENTIFIER_HEADER = "github-public-key-identifier"
SIGNATURE_HEADER = "github-public-key-signature"
REFETCH_COOLDOWN_SECONDS = 60
MAX_BODY_BYTES = 512 * 1024
MAX_TOKENS = 1000
_MAX_FIELD_CHARS = 2048

Fetch = Callable[[str], bytes]


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310  # nosec B310  # https:// (config/management.py)
        return bytes(answer.read(1024 * 1024))


class GitHubPublicKeys:
    """GitHub's secret scanning public keys, by identifier: cached; an unknown identifier refetches them at most
    once per REFETCH_COOLDOWN_SECONDS (a flood of made-up identifiers costs one fetch a minute)."""

    def __init__(self, url: str, *, fetch: Fetch | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._url, self._monotonic = url, monotonic
        self._fetch: Fetch = fetch or (lambda location: _fetch(location))
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, identifier: str) -> Any | None:
        with self._lock:
            if identifier not in self._keys and (
                    self._fetched_at is None or self._monotonic() - self._fetched_at >= REFETCH_COOLDOWN_SECONDS):
                self._refresh()
            return self._keys.get(identifier)

    def _refresh(self) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        self._fetched_at = self._monotonic()
        try:
            document = json.loads(self._fetch(self._url))
        except (OSError, ValueError) as error:
            logger.warning("secret scanning keys unreachable", extra={"url": self._url, "error": type(error).__name__})
            raise ServiceUnavailable("GitHub's secret scanning keys cannot be fetched; retry shortly.") from None
        entries = document.get("public_keys") if isinstance(document, dict) else None
        found = {}
        for entry in entries if isinstance(entries, list) else []:
            try:
                found[str(entry["key_identifier"])] = load_pem_public_key(str(entry["key"]).encode())
            except (KeyError, TypeError, ValueError):
                continue  # one unusable entry does not hide the others
        self._keys = found


def verify_signature(public_keys: GitHubPublicKeys, body: bytes, identifier: str | None,
                     signature: str | None) -> None:
    """ECDSA P-256 over the raw body, or 401 (nothing else is looked at before this passes)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if not identifier or not signature:
        raise KeyGateError(ErrorCode.MISSING_HEADER, "Github-Public-Key-Identifier and Github-Public-Key-Signature "
                                                     "are required.")
    key = public_keys.key(identifier[:256])
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyGateError(ErrorCode.SIGNATURE_MISMATCH, "Unknown Github-Public-Key-Identifier.")
    try:
        key.verify(base64.b64decode(signature, validate=True), body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        raise KeyGateError(ErrorCode.SIGNATURE_MISMATCH, "Github-Public-Key-Signature does not verify over the body.") \
            from None


def _text(value: Any) -> str:
    return value[:_MAX_FIELD_CHARS] if isinstance(value, str) else ""


class SecretScanning:
    def __init__(self, lifecycle: KeyLifecycle, public_keys: GitHubPublicKeys) -> None:
        self._lifecycle = lifecycle
        self._public_keys = public_keys

    def report(self, body: bytes | None, headers: Mapping[str, str], *, source_ip: str) -> list[dict[str, str]]:
        """Verify a GitHub report, revoke the keys of the KeyGate secrets in it, answer each token."""
        body = body or b""
        if len(body) > MAX_BODY_BYTES:
            raise KeyGateError(ErrorCode.PAYLOAD_TOO_LARGE, f"The body must be at most {MAX_BODY_BYTES} bytes.")
        lowered = {name.lower(): value for name, value in headers.items() if isinstance(value, str)}
        verify_signature(self._public_keys, body, lowered.get(IDENTIFIER_HEADER), lowered.get(SIGNATURE_HEADER))
        try:
            reported = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise KeyGateError(ErrorCode.MALFORMED_JSON, "The body must be a JSON list of reported tokens.") from None
        if not isinstance(reported, list) or len(reported) > MAX_TOKENS:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, f"The body must be a JSON list of at most {MAX_TOKENS} "
                                                          "reported tokens.")
        return [self._answer(item if isinstance(item, dict) else {}, source_ip) for item in reported]

    def _answer(self, item: Mapping[str, Any], source_ip: str) -> dict[str, str]:
        token = item.get("token")
        text = token if isinstance(token, str) else json.dumps(token)
        answer = {"token_hash": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                  "token_type": _text(item.get("type"))[:128], "label": "false_positive"}
        if not isinstance(token, str) or not keys.is_well_formed_secret(token):
            return answer  # malformed, or not KeyGate's: answered, never an error
        record = self._lifecycle.key_of_secret(token)
        if record is None:
            return answer  # well formed, but never issued by KeyGate
        revoked = self._lifecycle.revoke_for_security(
            record.user_id, record.key_id, event=AuditEvent.KEY_REVOKED_LEAKED, source_ip=source_ip,
            reason="leaked", url=_text(item.get("url")), source=_text(item.get("source"))[:128],
            reporter="github_secret_scanning")
        metrics.add_metric(name="LeakedSecretReported", unit="Count", value=1)
        logger.warning("leaked secret reported", extra={"api_key": record.key_id, "user_id": record.user_id,
                                                        "revoked_now": bool(revoked),
                                                        "url": _text(item.get("url"))})
        return {**answer, "label": "true_positive"}
