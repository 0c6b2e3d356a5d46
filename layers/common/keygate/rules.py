"""The rules every key's fields follow, whichever wire profile they arrived in (standard library only).

Both profiles' request models (keygate.profiles) validate with these, and
normalise with them, so the same key is the same value whatever its spelling;
the signature authorizer can check a stored record against them without
pydantic.
"""

from __future__ import annotations

import ipaddress
import unicodedata

from keygate.config import KNOWN_PERMISSIONS
from keygate.records import ED25519, HMAC_SHA256
from kg1 import ed25519

LABEL_MAX_CHARS = 50
IP_WHITELIST_MAX_ENTRIES = 30
# A key that may withdraw funds must be pinned to the owner's own networks: a handful of /1
# blocks would otherwise be a "whitelist" that admits every address.
WITHDRAW_MIN_PREFIX = {4: 24, 6: 48}
EXPIRES_DAYS_MAX = 3650
IP_ENTRY_MAX_CHARS = 64
_FORBIDDEN_LABEL_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# Letters, symbols and marks that render blank or not at all (Unicode's Default_Ignorable_Code_Point
# outside the categories above, and blank glyphs), so a label cannot be spoofed blank with them.
_BLANK_LABEL_CHARS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
                               "\U0001d159")
_COMBINING_CATEGORIES = {"Mn", "Me"}
LABEL_MAX_MARKS_PER_CHARACTER = 2  # combining marks and variation selectors on one base character
_VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))

KEY_TYPES = (HMAC_SHA256, ED25519)  # docs/signing.md, "Key types"
GRACE_SECONDS_MAX = 86_400  # a rotation's grace: how long the previous secret (or public key) keeps verifying
GRACE_SECONDS_DEFAULT = 3_600
PUBLIC_KEY_MAX_CHARS = 512


def normalise_public_key(value: str) -> str:
    """An Ed25519 public key as KeyGate stores it (base64 of the 32 raw bytes), from PEM SubjectPublicKeyInfo or
    base64 of the raw bytes. The signature authorizer reads it back with the same parser (kg1.ed25519), so a key
    the management side accepts is one the authorizer verifies with, and a small-order point is refused here."""
    if len(value) > PUBLIC_KEY_MAX_CHARS:
        raise ValueError(f"an Ed25519 public key is at most {PUBLIC_KEY_MAX_CHARS} characters: PEM or base64 of its "
                         "32 raw bytes")
    try:
        raw = ed25519.parse_public_key(value)
    except ed25519.KeyFormatError as error:
        # What to send, unless the parser said so (short: validation messages are cut at 120 characters)
        said = str(error)
        says_what_to_send = "send" in said or "32 raw bytes" in said
        hint = "" if says_what_to_send else " (send an Ed25519 key: PEM or base64 of its 32 raw bytes)"
        raise ValueError(f"{said}{hint}") from None
    return ed25519.public_key_base64(raw)


def check_key_type(key_type: str, public_key: str | None, *, names: tuple[str, str] = ("key_type", "public_key")
                   ) -> None:
    """An Ed25519 key needs its public key; an HMAC key has none (KeyGate makes its secret). `names`: the
    profile's spelling of the two fields."""
    type_name, key_name = names
    if key_type == ED25519 and public_key is None:
        # (at most 120 characters, as every validation message: api.describe_validation_error)
        raise ValueError(f"{key_name} is required for an ed25519 key: send its public key (PEM, or base64 of its 32 "
                         "raw bytes)")
    if key_type != ED25519 and public_key is not None:
        raise ValueError(f'{key_name} is only for ed25519 keys: send "{type_name}": "ed25519" with it, or leave '
                         f"{key_name} out for an HMAC key")


def normalise_label(value: str) -> str:
    """Trimmed, at most LABEL_MAX_CHARS, and visible: "" (no label) or text that cannot render blank."""
    label = value.strip()
    if value and not label:
        raise ValueError('label is only whitespace: send visible characters, or "" for no label')
    if len(label) > LABEL_MAX_CHARS:
        raise ValueError(f"label must be at most {LABEL_MAX_CHARS} characters")
    base: str | None = None  # the character the following marks combine with
    marks = 0
    for char in label:
        if unicodedata.category(char) in _FORBIDDEN_LABEL_CATEGORIES or char in _BLANK_LABEL_CHARS:
            raise ValueError(f"label must not contain control, invisible or blank characters (U+{ord(char):04X})")
        if unicodedata.category(char) not in _COMBINING_CATEGORIES:
            base, marks = char, 0
            continue
        marks += 1
        selector = any(ord(char) in selectors for selectors in _VARIATION_SELECTORS)
        if base is None or base.isspace() or marks > LABEL_MAX_MARKS_PER_CHARACTER or (selector and marks > 1):
            raise ValueError(f"label: a combining mark or variation selector (U+{ord(char):04X}) must follow a "
                             f"visible character directly, at most {LABEL_MAX_MARKS_PER_CHARACTER} per character")
    return label


def normalise_permissions(values: list[str], allowed: tuple[str, ...]) -> list[str]:
    if not values:
        raise ValueError("permissions must name at least one permission")
    seen: set[str] = set()
    for value in values:
        if value not in KNOWN_PERMISSIONS:
            raise ValueError(f"unknown permission {value!r}; known permissions are {', '.join(KNOWN_PERMISSIONS)}")
        if value in seen:
            raise ValueError(f"permission {value!r} is listed twice")
        if value not in allowed:
            raise ValueError(f"permission {value!r} is not enabled on this exchange")
        seen.add(value)
    # Stored and returned in the canonical order, whatever order was sent.
    return [permission for permission in KNOWN_PERMISSIONS if permission in seen]


def normalise_ip_entry(value: str) -> str:
    if len(value) > IP_ENTRY_MAX_CHARS or not value.strip():
        raise ValueError(f"{value[:IP_ENTRY_MAX_CHARS]!r} is not an IP address or CIDR block")
    text = value.strip()
    if "%" in text:  # an IPv6 zone names an interface of the client's host, never a remote address
        raise ValueError(f"{text!r} has an IPv6 zone (%...); give the address without it")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            raise ValueError(f"{text!r} has host bits set; did you mean "
                             f"{ipaddress.ip_network(text, strict=False)}?") from None
        raise ValueError(f"{text!r} is not an IP address or CIDR block") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None \
            and network.prefixlen >= 96:
        # The authorizer sees an IPv4-mapped client as IPv4, so the entry is stored as IPv4 too.
        network = ipaddress.IPv4Network((network.network_address.ipv4_mapped, network.prefixlen - 96))
    if network.prefixlen == 0:
        raise ValueError(f"{text!r} allows every address; leave the IP whitelist empty for an unrestricted key")
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def normalise_ip_whitelist(values: list[str]) -> list[str]:
    if len(values) > IP_WHITELIST_MAX_ENTRIES:
        raise ValueError(f"the IP whitelist holds at most {IP_WHITELIST_MAX_ENTRIES} entries")
    normalised: list[str] = []
    for value in values:
        entry = normalise_ip_entry(value)
        if entry not in normalised:
            normalised.append(entry)
    return normalised


def check_withdraw_whitelist(permissions: list[str], ip_whitelist: list[str]) -> None:
    """The withdraw permission needs a whitelist of narrow entries (normalised ones)."""
    if "withdraw" not in permissions:
        return
    if not ip_whitelist:
        raise ValueError("the withdraw permission requires a non-empty IP whitelist")
    for entry in ip_whitelist:
        network = ipaddress.ip_network(entry)
        if network.prefixlen < WITHDRAW_MIN_PREFIX[network.version]:
            raise ValueError(f"with the withdraw permission each IP whitelist entry must be at most a "
                             f"/{WITHDRAW_MIN_PREFIX[4]} (IPv4) or /{WITHDRAW_MIN_PREFIX[6]} (IPv6) block; "
                             f"{entry!r} is wider")
