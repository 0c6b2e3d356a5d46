"""The canonical form and the string to sign, shared by the signing and the verifying side."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from urllib.parse import quote

# The first line of the string to sign for an HMAC-SHA256 key.
SCHEME = "KG1-HMAC-SHA256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")
_UNRESERVED_PATH = re.compile(r"[A-Za-z0-9._~/-]*")  # a path none of whose segments has anything to escape


def enc(text: str) -> str:
    """UTF-8, then %XX (upper-case hex) for every byte outside A-Z a-z 0-9 - . _ ~."""
    if _UNRESERVED.fullmatch(text):  # most path segments and query values: nothing to escape
        return text
    # surrogatepass: a lone surrogate (undecodable input) still encodes deterministically.
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def canonical_path(path: str) -> str:
    """The decoded path relative to the API root, each `/`-separated segment enc-ed."""
    if _UNRESERVED_PATH.fullmatch(path):  # most paths: every segment is its own encoding
        return path
    return "/".join(enc(segment) for segment in path.split("/"))


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Every decoded (name, value) pair enc-ed, sorted by encoded name then value, `&`-joined."""
    return "&".join(f"{name}={value}" for name, value in sorted((enc(name), enc(value)) for name, value in pairs))


def string_to_sign(*, timestamp: str, recv_window: str, nonce: str, key_id: str, method: str, path: str,
                   query_pairs: Iterable[tuple[str, str]], content_sha256: str, scheme: str = SCHEME) -> str:
    """The nine lines that are signed; `scheme` is the first (the key type's)."""
    return "\n".join((scheme, timestamp, recv_window, nonce, key_id, method.upper(), canonical_path(path),
                      canonical_query(query_pairs), content_sha256))


def signature(secret: str, text: str) -> str:
    """Lower-case hex HMAC-SHA256 of the string to sign under the secret (both as UTF-8)."""
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def content_sha256(body: bytes | None) -> str:
    """Lower-case hex SHA-256 of the body bytes (of b"" for no body)."""
    return hashlib.sha256(body or b"").hexdigest()
