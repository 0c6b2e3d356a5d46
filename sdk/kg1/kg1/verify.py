"""The verifying side: header parsing (check 1), the clock (check 2), the signature, and the body digest.

Header names are case-insensitive: `parse_signed_headers` takes any mapping and
looks names up in lower case (one header sent twice in different cases is
refused, as a repeated header must be). Every refusal is a `SigningError` with
a code that tells a bot author what to fix; no message echoes a signature or a
secret.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .canonical import content_sha256, signature, string_to_sign
from .headers import (
    DEFAULT_RECV_WINDOW_MS,
    HEADER_API_KEY,
    HEADER_CONTENT_SHA256,
    HEADER_NONCE,
    HEADER_RECV_WINDOW,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    HEX_SHA256_PATTERN,
    KEY_ID_PATTERN,
    MAX_CLOCK_AHEAD_MS,
    MAX_NUMBER_DIGITS,
    MAX_RECV_WINDOW_MS,
    NONCE_PATTERN,
    RECV_WINDOW_PATTERN,
    SIGNATURE_PATTERN,
    SIGNED_HEADER_NAMES,
    TIMESTAMP_PATTERN,
)

# The refusal codes a SigningError carries (docs/signing.md has the authorizer's others).
MISSING_HEADER = "MISSING_HEADER"
MALFORMED_HEADER = "MALFORMED_HEADER"
TIMESTAMP_OUT_OF_WINDOW = "TIMESTAMP_OUT_OF_WINDOW"


class SigningError(Exception):
    """A refusal with the contract's 401 vocabulary (`code`) and a message for the bot author."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedHeaders:
    """The six X-KG-* headers of one request, validated (check 1)."""

    key_id: str
    timestamp: str  # exactly as sent: it is signed as sent
    recv_window: str  # exactly as sent, "" when the header is absent
    nonce: str
    content_sha256: str
    signature: str

    @property
    def timestamp_ms(self) -> int:
        return int(self.timestamp)

    @property
    def recv_window_ms(self) -> int:
        return int(self.recv_window) if self.recv_window else DEFAULT_RECV_WINDOW_MS


def _signed_headers_by_name(headers: Mapping[str, str]) -> dict[str, str]:
    """The X-KG-* headers by lower-case name; one sent twice (in any letter case) is refused."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        lowered = name.lower() if isinstance(name, str) else ""
        if lowered not in SIGNED_HEADER_NAMES:
            continue
        if lowered in seen:
            raise SigningError(MALFORMED_HEADER, f"{lowered.upper()} must be sent exactly once.")
        seen.add(lowered)
        if isinstance(value, str):
            found[lowered] = value
    return found


def _required(headers: dict[str, str], name: str, pattern: re.Pattern[str], rule: str) -> str:
    value = headers.get(name.lower())
    if value is None:
        raise SigningError(MISSING_HEADER, f"{name} is required.")
    if not pattern.fullmatch(value):
        raise SigningError(MALFORMED_HEADER, f"{name} must be {rule}.")
    return value


def parse_signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Check 1: every required header present and well formed, else SigningError (401)."""
    present = _signed_headers_by_name(headers)
    key_id = _required(present, HEADER_API_KEY, KEY_ID_PATTERN, "the API key id as issued")
    timestamp = _required(present, HEADER_TIMESTAMP, TIMESTAMP_PATTERN,
                          f"milliseconds since the Unix epoch, digits only (at most {MAX_NUMBER_DIGITS})")
    nonce = _required(present, HEADER_NONCE, NONCE_PATTERN, "16 to 64 characters of A-Z a-z 0-9 _ -")
    digest = _required(present, HEADER_CONTENT_SHA256, HEX_SHA256_PATTERN,
                       "the lower-case hex SHA-256 of the body (of the empty string without a body)")
    sent_signature = _required(present, HEADER_SIGNATURE, SIGNATURE_PATTERN,
                               "64 (HMAC-SHA256) or 128 (Ed25519) lower-case hex characters")
    recv_window = present.get(HEADER_RECV_WINDOW.lower())
    if recv_window is None:
        recv_window = ""
    elif not RECV_WINDOW_PATTERN.fullmatch(recv_window) or not 1 <= int(recv_window) <= MAX_RECV_WINDOW_MS:
        raise SigningError(MALFORMED_HEADER,
                           f"{HEADER_RECV_WINDOW} must be an integer from 1 to {MAX_RECV_WINDOW_MS} (or absent).")
    return SignedHeaders(key_id=key_id, timestamp=timestamp, recv_window=recv_window, nonce=nonce,
                         content_sha256=digest, signature=sent_signature)


def check_timestamp(signed: SignedHeaders, now_ms: int) -> None:
    """Check 2: refuse a timestamp over 1 s ahead of `now_ms` or older than the receive window.

    The message gives the server's time and the skew, so a bot author can tell a slow clock from a
    slow network (docs/signing.md).
    """
    if signed.timestamp_ms > now_ms + MAX_CLOCK_AHEAD_MS:
        raise SigningError(TIMESTAMP_OUT_OF_WINDOW,
                           f"{HEADER_TIMESTAMP} is {signed.timestamp_ms - now_ms} ms ahead of the server's clock "
                           f"(server time {now_ms} ms since the epoch; at most {MAX_CLOCK_AHEAD_MS} ms ahead is "
                           "accepted): sync your clock with GET /v1/time.")
    if now_ms - signed.timestamp_ms > signed.recv_window_ms:
        raise SigningError(TIMESTAMP_OUT_OF_WINDOW,
                           f"{HEADER_TIMESTAMP} is {now_ms - signed.timestamp_ms} ms behind the server's clock "
                           f"(server time {now_ms} ms since the epoch), more than the receive window of "
                           f"{signed.recv_window_ms} ms: sign just before sending, or sync your clock with "
                           "GET /v1/time.")


def expected_signature(signed: SignedHeaders, secret: str, method: str, path: str,
                       query_pairs: Iterable[tuple[str, str]]) -> str:
    """The HMAC-SHA256 signature the request should carry under `secret`."""
    return signature(secret, string_to_sign(
        timestamp=signed.timestamp, recv_window=signed.recv_window, nonce=signed.nonce, key_id=signed.key_id,
        method=method, path=path, query_pairs=query_pairs, content_sha256=signed.content_sha256))


def verify_signature(signed: SignedHeaders, secret: str, method: str, path: str,
                     query_pairs: Iterable[tuple[str, str]]) -> bool:
    """Check 4's signature comparison, in constant time."""
    return hmac.compare_digest(expected_signature(signed, secret, method, path, query_pairs), signed.signature)


def verify_ed25519_signature(signed: SignedHeaders, public_key: bytes, method: str, path: str,
                             query_pairs: Iterable[tuple[str, str]]) -> bool:
    """Check 4's signature verification for an Ed25519 key (KG1-ED25519): `public_key` is its 32 raw bytes
    (kg1.ed25519.parse_public_key). Needs the cryptography package, imported on this first use."""
    from . import ed25519

    return ed25519.verify(public_key, string_to_sign(
        timestamp=signed.timestamp, recv_window=signed.recv_window, nonce=signed.nonce, key_id=signed.key_id,
        method=method, path=path, query_pairs=query_pairs, content_sha256=signed.content_sha256,
        scheme=ed25519.SCHEME), signed.signature)


def body_matches(body: bytes | None, sent_digest: str | None) -> bool:
    """A backend's check that the body is the one signed (constant-time compare)."""
    if not isinstance(sent_digest, str) or not HEX_SHA256_PATTERN.fullmatch(sent_digest):
        return False
    return hmac.compare_digest(content_sha256(body), sent_digest)
