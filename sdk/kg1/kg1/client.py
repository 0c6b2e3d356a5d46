"""The signing side: the six X-KG-* headers for one request."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .canonical import SCHEME, content_sha256, signature, string_to_sign
from .headers import (
    HEADER_API_KEY,
    HEADER_CONTENT_SHA256,
    HEADER_NONCE,
    HEADER_RECV_WINDOW,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAX_RECV_WINDOW_MS,
    NONCE_PATTERN,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def new_nonce() -> str:
    """32 characters of [A-Za-z0-9_-] (192 random bits)."""
    return secrets.token_urlsafe(24)


def check_recv_window(recv_window_ms: int | None) -> None:
    """ValueError unless `recv_window_ms` is None (the server's default) or an int in 1..MAX_RECV_WINDOW_MS."""
    if recv_window_ms is None:
        return
    if isinstance(recv_window_ms, bool) or not isinstance(recv_window_ms, int) \
            or not 1 <= recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise ValueError(f"recv_window_ms must be whole milliseconds (an int) from 1 to {MAX_RECV_WINDOW_MS}")


def sign_request(key_id: str, secret: str | None, method: str, path: str,
                 query_pairs: Iterable[tuple[str, str]] = (), body: bytes | None = b"", *,
                 timestamp_ms: int | None = None, recv_window_ms: int | None = None, nonce: str | None = None,
                 private_key: Ed25519PrivateKey | str | bytes | None = None) -> dict[str, str]:
    """The six X-KG-* headers for one request (X-KG-RECV-WINDOW only when `recv_window_ms` is given).

    `path` is the decoded path relative to the API root (it starts with `/`);
    `query_pairs` the decoded (name, value) pairs as sent, repeats included.
    Without X-KG-RECV-WINDOW the server applies DEFAULT_RECV_WINDOW_MS.
    An HMAC-SHA256 key signs with its `secret`; an Ed25519 key with its `private_key` (PKCS#8 PEM,
    the 32-byte seed, or a cryptography Ed25519PrivateKey) and no secret (KG1-ED25519).
    """
    if (secret is None) == (private_key is None):
        raise ValueError("sign with either the key's secret (HMAC-SHA256) or its private key (Ed25519)")
    if not path.startswith("/"):
        raise ValueError("path must be the decoded path relative to the API root, starting with '/'")
    check_recv_window(recv_window_ms)
    if timestamp_ms is not None and (isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int)):
        raise ValueError("timestamp_ms must be whole epoch milliseconds (an int), e.g. time.time_ns() // 1_000_000")
    nonce = new_nonce() if nonce is None else nonce
    if not NONCE_PATTERN.fullmatch(nonce):
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
    if private_key is not None:
        from . import ed25519

        text = string_to_sign(timestamp=timestamp, recv_window=recv_window, nonce=nonce, key_id=key_id,
                              method=method, path=path, query_pairs=query_pairs, content_sha256=digest,
                              scheme=ed25519.SCHEME)
        headers[HEADER_SIGNATURE] = ed25519.sign(private_key, text)
        return headers
    headers[HEADER_SIGNATURE] = signature(secret or "", string_to_sign(
        timestamp=timestamp, recv_window=recv_window, nonce=nonce, key_id=key_id, method=method, path=path,
        query_pairs=query_pairs, content_sha256=digest, scheme=SCHEME))
    return headers
