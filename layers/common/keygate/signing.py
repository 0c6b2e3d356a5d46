"""KG1-HMAC-SHA256 request signing: the one implementation of shared/SIGNING.md.

Used by the signature authorizer (parse the six headers, check the clock,
verify the signature), by backends (the body digest) and by the client SDK
(build the six headers). The SDK ships this very file as
`keygate_client/_kg1.py` (a symlink), so it must stay standard-library only
and import nothing from the rest of `keygate`.

Header names are case-insensitive: `parse_signed_headers` takes any mapping
and looks names up in lower case (one header sent twice in different
cases is refused, as a repeated header must be). Every refusal is a `SigningError` with a
code that tells a bot author what to fix; no message echoes a signature or a
secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

SCHEME = "KG1-HMAC-SHA256"

HEADER_API_KEY = "X-KG-API-KEY"
HEADER_TIMESTAMP = "X-KG-TIMESTAMP"
HEADER_RECV_WINDOW = "X-KG-RECV-WINDOW"
HEADER_NONCE = "X-KG-NONCE"
HEADER_CONTENT_SHA256 = "X-KG-CONTENT-SHA256"
HEADER_SIGNATURE = "X-KG-SIGNATURE"
SIGNED_HEADER_NAMES = frozenset(name.lower() for name in (
    HEADER_API_KEY, HEADER_TIMESTAMP, HEADER_RECV_WINDOW, HEADER_NONCE, HEADER_CONTENT_SHA256, HEADER_SIGNATURE))

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
# A timestamp may be at most this far ahead of the server's clock.
MAX_CLOCK_AHEAD_MS = 1000
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

# fullmatch everywhere: `$` would also accept a trailing newline.
_TIMESTAMP = re.compile(r"[0-9]{1,16}")  # 16 digits reach the year 318857: any real clock fits
_RECV_WINDOW = re.compile(r"[0-9]{1,8}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[\x21-\x7e]{1,128}")  # visible ASCII; the format itself is the authorizer's check 3
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


class SigningError(Exception):
    """A refusal with SIGNING.md's 401 vocabulary (`code`) and a message for the bot author."""

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


# ------------------------------------------------------------ canonical form
def enc(text: str) -> str:
    """UTF-8, then %XX (upper-case hex) for every byte outside A-Z a-z 0-9 - . _ ~."""
    if _UNRESERVED.fullmatch(text):  # most path segments and query values: nothing to escape
        return text
    # surrogatepass: a lone surrogate (undecodable input) still encodes deterministically.
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def canonical_path(path: str) -> str:
    """The decoded path relative to the API root, each `/`-separated segment enc-ed."""
    return "/".join(enc(segment) for segment in path.split("/"))


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Every decoded (name, value) pair enc-ed, sorted by encoded name then value, `&`-joined."""
    return "&".join(f"{name}={value}" for name, value in sorted((enc(name), enc(value)) for name, value in pairs))


def string_to_sign(*, timestamp: str, recv_window: str, nonce: str, key_id: str, method: str, path: str,
                   query_pairs: Iterable[tuple[str, str]], content_sha256: str) -> str:
    return "\n".join((SCHEME, timestamp, recv_window, nonce, key_id, method.upper(), canonical_path(path),
                      canonical_query(query_pairs), content_sha256))


def signature(secret: str, text: str) -> str:
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def content_sha256(body: bytes | None) -> str:
    return hashlib.sha256(body or b"").hexdigest()


# ---------------------------------------------------------------- verifying
def _signed_headers_by_name(headers: Mapping[str, str]) -> dict[str, str]:
    """The X-KG-* headers by lower-case name; one sent twice (in any letter case) is refused."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        lowered = name.lower() if isinstance(name, str) else ""
        if lowered not in SIGNED_HEADER_NAMES:
            continue
        if lowered in seen:
            raise SigningError("MALFORMED_HEADER", f"{lowered.upper()} must be sent exactly once.")
        seen.add(lowered)
        if isinstance(value, str):
            found[lowered] = value
    return found


def _required(headers: dict[str, str], name: str, pattern: re.Pattern[str], rule: str) -> str:
    value = headers.get(name.lower())
    if value is None:
        raise SigningError("MISSING_HEADER", f"{name} is required.")
    if not pattern.fullmatch(value):
        raise SigningError("MALFORMED_HEADER", f"{name} must be {rule}.")
    return value


def parse_signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Check 1: every required header present and well formed, else SigningError (401)."""
    present = _signed_headers_by_name(headers)
    key_id = _required(present, HEADER_API_KEY, _KEY_ID, "the API key id as issued")
    timestamp = _required(present, HEADER_TIMESTAMP, _TIMESTAMP, "milliseconds since the Unix epoch, digits only")
    nonce = _required(present, HEADER_NONCE, _NONCE, "16 to 64 characters of A-Z a-z 0-9 _ -")
    digest = _required(present, HEADER_CONTENT_SHA256, _HEX_SHA256,
                       "the lower-case hex SHA-256 of the body (of the empty string without a body)")
    sent_signature = _required(present, HEADER_SIGNATURE, _HEX_SHA256, "a lower-case hex HMAC-SHA256")
    recv_window = present.get(HEADER_RECV_WINDOW.lower())
    if recv_window is None:
        recv_window = ""
    elif not _RECV_WINDOW.fullmatch(recv_window) or not 1 <= int(recv_window) <= MAX_RECV_WINDOW_MS:
        raise SigningError("MALFORMED_HEADER",
                           f"{HEADER_RECV_WINDOW} must be an integer from 1 to {MAX_RECV_WINDOW_MS} (or absent).")
    return SignedHeaders(key_id=key_id, timestamp=timestamp, recv_window=recv_window, nonce=nonce,
                         content_sha256=digest, signature=sent_signature)


def check_timestamp(signed: SignedHeaders, now_ms: int) -> None:
    """Check 2: refuse a timestamp over 1 s ahead of `now_ms` or older than the receive window."""
    if signed.timestamp_ms > now_ms + MAX_CLOCK_AHEAD_MS:
        raise SigningError("TIMESTAMP_OUT_OF_WINDOW",
                           f"{HEADER_TIMESTAMP} is more than {MAX_CLOCK_AHEAD_MS} ms ahead of the server's clock; "
                           "sync with GET /v1/time.")
    if now_ms - signed.timestamp_ms > signed.recv_window_ms:
        raise SigningError("TIMESTAMP_OUT_OF_WINDOW",
                           f"{HEADER_TIMESTAMP} is older than the receive window ({signed.recv_window_ms} ms); "
                           "sign just before sending, or sync with GET /v1/time.")


def expected_signature(signed: SignedHeaders, secret: str, method: str, path: str,
                       query_pairs: Iterable[tuple[str, str]]) -> str:
    return signature(secret, string_to_sign(
        timestamp=signed.timestamp, recv_window=signed.recv_window, nonce=signed.nonce, key_id=signed.key_id,
        method=method, path=path, query_pairs=query_pairs, content_sha256=signed.content_sha256))


def verify_signature(signed: SignedHeaders, secret: str, method: str, path: str,
                     query_pairs: Iterable[tuple[str, str]]) -> bool:
    """Check 4's signature comparison, in constant time."""
    return hmac.compare_digest(expected_signature(signed, secret, method, path, query_pairs), signed.signature)


def body_matches(body: bytes | None, sent_digest: str | None) -> bool:
    """A backend's check that the body is the one signed (constant-time compare)."""
    if not isinstance(sent_digest, str) or not _HEX_SHA256.fullmatch(sent_digest):
        return False
    return hmac.compare_digest(content_sha256(body), sent_digest)


# ------------------------------------------------------------------ signing
def new_nonce() -> str:
    """32 characters of [A-Za-z0-9_-] (192 random bits)."""
    return secrets.token_urlsafe(24)


def sign_request(key_id: str, secret: str, method: str, path: str, query_pairs: Iterable[tuple[str, str]] = (),
                 body: bytes | None = b"", *, timestamp_ms: int | None = None, recv_window_ms: int | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """The six X-KG-* headers for one request (X-KG-RECV-WINDOW only when `recv_window_ms` is given).

    `path` is the decoded path relative to the API root (it starts with `/`);
    `query_pairs` the decoded (name, value) pairs as sent, repeats included.
    """
    if not path.startswith("/"):
        raise ValueError("path must be the decoded path relative to the API root, starting with '/'")
    if recv_window_ms is not None and not 1 <= recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise ValueError(f"recv_window_ms must be from 1 to {MAX_RECV_WINDOW_MS}")
    nonce = new_nonce() if nonce is None else nonce
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 16 to 64 characters of A-Z a-z 0-9 _ -")
    timestamp = str(time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms)
    recv_window = "" if recv_window_ms is None else str(recv_window_ms)
    digest = content_sha256(body)
    headers = {
        HEADER_API_KEY: key_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_CONTENT_SHA256: digest,
    }
    if recv_window:
        headers[HEADER_RECV_WINDOW] = recv_window
    headers[HEADER_SIGNATURE] = signature(secret, string_to_sign(
        timestamp=timestamp, recv_window=recv_window, nonce=nonce, key_id=key_id, method=method, path=path,
        query_pairs=query_pairs, content_sha256=digest))
    return headers
