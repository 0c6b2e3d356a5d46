"""API key id and secret format.

Modelled on GitHub's token format: a recognisable prefix, a random body from
`secrets`, and a CRC32 checksum in base62 so a mistyped or truncated id is
rejected without any lookup. The checksum is public, so it does not stop
made-up ids: those cost one lookup each and then sit in the authorizer's
separate negative cache.

    key id : <prefix><22 base62 = 131 random bits><6 base62 checksum>   e.g. kgk_...
    secret : kgs_<43 base62 = 256 random bits><6 base62 checksum>

Secrets carry their own fixed prefix so secret scanners can find leaked ones.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from functools import lru_cache

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SECRET_PREFIX = "kgs_"  # noqa: S105  # nosec B105  # the public prefix of every secret, not a secret
KEY_ID_RANDOM_CHARS = 22  # 62**22 > 2**130
SECRET_RANDOM_CHARS = 43  # 62**43 > 2**256
CHECKSUM_CHARS = 6  # 62**6 > 2**32, holds any CRC32
VISIBLE_PREFIX_CHARS = 6
_BODY = re.compile(r"^[0-9A-Za-z]+$")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits))


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode("ascii")), CHECKSUM_CHARS)


def _random_body(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def _with_checksum(prefix: str, random_chars: int) -> str:
    body = prefix + _random_body(random_chars)
    return body + _checksum(body)


def _has_valid_checksum(token: str, prefix: str, random_chars: int) -> bool:
    if not token.startswith(prefix) or len(token) != len(prefix) + random_chars + CHECKSUM_CHARS:
        return False
    rest = token[len(prefix):]
    if not _BODY.match(rest):
        return False
    body, checksum = token[:-CHECKSUM_CHARS], token[-CHECKSUM_CHARS:]
    return secrets.compare_digest(_checksum(body), checksum)


def new_key_id(prefix: str) -> str:
    return _with_checksum(prefix, KEY_ID_RANDOM_CHARS)


def new_secret() -> str:
    return _with_checksum(SECRET_PREFIX, SECRET_RANDOM_CHARS)


def is_well_formed_key_id(key_id: str, prefix: str) -> bool:
    """Prefix, length, alphabet and checksum: no lookup needed to refuse a bad id."""
    return isinstance(key_id, str) and key_id.startswith(prefix) \
        and len(key_id) == len(prefix) + KEY_ID_RANDOM_CHARS + CHECKSUM_CHARS \
        and _key_id_has_valid_checksum(key_id, prefix)


@lru_cache(maxsize=4096)
def _key_id_has_valid_checksum(key_id: str, prefix: str) -> bool:
    # The signature authorizer checks the key id of every request, and a bot sends the same id each time. Only
    # strings of a key id's shape get here, never a secret (longer, with its own prefix) sent by mistake.
    return _has_valid_checksum(key_id, prefix, KEY_ID_RANDOM_CHARS)


def is_well_formed_secret(secret: str) -> bool:
    return isinstance(secret, str) and _has_valid_checksum(secret, SECRET_PREFIX, SECRET_RANDOM_CHARS)


HANDLE_CHARS = 24  # after its "c": 36**24 > 2**124
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_HANDLE = re.compile(rf"c[0-9a-z]{{{HANDLE_CHARS}}}")


def new_handle() -> str:
    """A key's opaque handle (ZDEX's `id`, like its "clx..." examples): random, so it reveals nothing of the key."""
    return "c" + "".join(secrets.choice(_BASE36) for _ in range(HANDLE_CHARS))


def is_well_formed_handle(handle: str) -> bool:
    return isinstance(handle, str) and _HANDLE.fullmatch(handle) is not None


def visible_prefix(key_id: str, prefix: str) -> str:
    """What lists show of a key id (ZDEX's key prefix): the prefix and six characters."""
    return key_id[: len(prefix) + VISIBLE_PREFIX_CHARS]


def secret_fingerprint(secret: str) -> str:
    """SHA-256 of a secret, in hex: what KeyGate keeps to find a secret's key without reading any secret, and
    the `token_hash` GitHub's secret scanning answers carry. A secret is 256 random bits, so an unsalted hash
    reveals nothing. The one place it is computed: every path that issues a secret (create, rotation) stores
    `storage.layout.fingerprint_item(keys.secret_fingerprint(secret), record)` in the transaction that commits
    the key (docs/architecture.md, "Leaked keys")."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
