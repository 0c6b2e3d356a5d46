"""KG1-ED25519: Ed25519 keys (RFC 8032), for bots that keep their own private key.

The bot signs the string to sign (first line `KG1-ED25519`) as UTF-8 with its
private key and sends the 64-byte signature as 128 lower-case hex characters;
KeyGate holds only the public key (docs/signing.md, "Key types").

Signing and verifying need the `cryptography` package (the `ed25519` extra of
keygate-kg1 and of keygate-client), imported on the first use of an Ed25519 key
only. Parsing a public key needs nothing but the standard library: it takes PEM
SubjectPublicKeyInfo or base64 of the 32 raw bytes, and refuses anything else,
a non-canonical encoding, a point off the curve or a point of small order.
`cryptography` (OpenSSL) loads small-order points without complaint, and for
some of them a constant signature verifies on every message, so a key like that
must never be accepted; the list is libsodium's (`ge25519_has_small_order`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SCHEME = "KG1-ED25519"
KEY_TYPE = "ed25519"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
# keygate-client and keygate-kg1 are installed from KeyGate's repository, not from a public index
EXTRA = "the cryptography package: pip install 'cryptography>=41' (the ed25519 extra of keygate-client or keygate-kg1)"

# DER of SubjectPublicKeyInfo { AlgorithmIdentifier { id-Ed25519 (1.3.101.112) }, BIT STRING (32 bytes) }
# (RFC 8410): the only encoding of an Ed25519 public key, so a byte comparison refuses every other one.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----\r?\n((?:[A-Za-z0-9+/=]{1,76}\r?\n)+)-----END PUBLIC KEY-----\r?\n?")
_BASE64_RAW = re.compile(r"[A-Za-z0-9+/]{43}=")
_BASE64_UNPADDED = re.compile(r"[A-Za-z0-9+/]{43}")
_PEM_LABEL = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ ){0,5}[A-Z0-9]+)-----")  # RFC 7468's labels, short ones only
_BASE64URL_RAW = re.compile(r"[A-Za-z0-9_-]{43}=?")

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_MINUS_ONE = pow(2, (_P - 1) // 4, _P)

# libsodium's blocklist (crypto_core/ed25519/ref10/ed25519_ref10.c, ge25519_has_small_order): the encodings
# of the points of order 1, 2, 4 and 8, and of the two non-canonical ones (p and p + 1); compared with the
# sign bit (the top bit of the last byte) ignored, as libsodium does.
SMALL_ORDER_ENCODINGS = tuple(bytes.fromhex(text) for text in (
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0100000000000000000000000000000000000000000000000000000000000000",  # order 1 (the neutral element)
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1, order 2
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p, non-canonical 0, order 4
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p + 1, non-canonical 1, order 1
))


class KeyFormatError(ValueError):
    """Not an acceptable Ed25519 key; the message says what is expected (never the key itself)."""


# --------------------------------------------------------------- public keys
def parse_public_key(text: str | bytes) -> bytes:
    """The 32 raw bytes of an Ed25519 public key given as PEM SubjectPublicKeyInfo or base64 of the raw bytes.

    Whitespace around either form is ignored. Refused (KeyFormatError), with what to send instead: anything
    else (an RSA, EC or X25519 key in PEM, a private key, a certificate, hex, URL-safe or unpadded base64,
    extra or missing bytes, non-canonical base64 or DER), a non-canonical point encoding, a point off the
    curve, and a point of small order. Raw bytes cannot say what they are: the 32 bytes of a private key or
    of an X25519 public key pass whenever they happen to encode a point of the curve (about half of them),
    which is why the app shows the key's fingerprint to compare before it is confirmed (docs/signing.md).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise KeyFormatError("an Ed25519 public key is ASCII: PEM or base64") from None
    text = text.strip()
    pem = _PEM.fullmatch(text)
    if pem is not None:
        der = _strict_base64("".join(pem.group(1).split()))
        if len(der) != len(_SPKI_PREFIX) + PUBLIC_KEY_BYTES or not der.startswith(_SPKI_PREFIX):
            raise KeyFormatError("the PEM public key is not an Ed25519 SubjectPublicKeyInfo")
        raw = der[len(_SPKI_PREFIX):]
    elif _BASE64_RAW.fullmatch(text):
        raw = _strict_base64(text)
    else:
        raise KeyFormatError(_what_to_send_instead(text))
    check_point(raw)
    return raw


def _what_to_send_instead(text: str) -> str:
    """Why `text` is neither accepted form, as far as its look tells (never quoting it)."""
    labels = _PEM_LABEL.findall(text)
    if "PRIVATE KEY-----" in text:
        return "this is a private key: never send it; send its public key (openssl pkey -pubout)"
    other = next((label for label in labels if label != "PUBLIC KEY"), None)
    if other is not None:  # (a label of capitals, digits and spaces only: safe to name)
        return f"this PEM block is labelled {other}, not PUBLIC KEY: send the Ed25519 public key's PEM"
    if len(labels) > 1:
        return "send one -----BEGIN PUBLIC KEY----- block, not several"
    if "-----BEGIN" in text:
        if not text.startswith("-----BEGIN"):
            return "send the -----BEGIN PUBLIC KEY----- block alone, with nothing before it"
        if not text.startswith("-----BEGIN PUBLIC KEY-----"):
            return "the PEM block must begin with the line -----BEGIN PUBLIC KEY-----"
        if not text.endswith("-----END PUBLIC KEY-----"):
            return "the PEM block must end with the line -----END PUBLIC KEY-----, and nothing after it"
        return "a PEM block's lines hold base64 only: send it as openssl prints it"
    if _BASE64_UNPADDED.fullmatch(text):
        return "base64 of the 32 raw bytes is 44 characters ending in =: add the padding"
    if _BASE64URL_RAW.fullmatch(text):
        return "send standard base64 (with + and /), not URL-safe base64"
    return "an Ed25519 public key is PEM (BEGIN PUBLIC KEY) or base64 of its 32 raw bytes"


def _strict_base64(text: str) -> bytes:
    """Standard base64, padded, in its one canonical form (no stray bits in the last character)."""
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("the key is not valid base64") from None
    if base64.b64encode(decoded).decode("ascii") != text:
        raise KeyFormatError("the key's base64 is not in its canonical form")
    return decoded


def check_point(raw: bytes) -> None:
    """Refuse 32 bytes that are not the canonical encoding of an Ed25519 point of large order."""
    if len(raw) != PUBLIC_KEY_BYTES:
        raise KeyFormatError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    x_is_odd = raw[31] >> 7
    if has_small_order(raw):
        raise KeyFormatError("the public key is a point of small order, which cannot be a key")
    if y >= _P:
        raise KeyFormatError("the public key's encoding is not canonical")
    x = _recover_x(y, x_is_odd)
    if x is None:
        raise KeyFormatError("the key is not an Ed25519 point: send the public key, not a private or X25519 key")


def has_small_order(raw: bytes) -> bool:
    """libsodium's ge25519_has_small_order: `raw` is in its blocklist, the sign bit aside (constant time)."""
    found = False
    for blocked in SMALL_ORDER_ENCODINGS:
        found |= hmac.compare_digest(raw[:31] + bytes([raw[31] & 0x7F]), blocked)
    return found


def _recover_x(y: int, x_is_odd: int) -> int | None:
    """x of the point with this y and x's parity (RFC 8032, 5.1.3), or None when there is none."""
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if (v * x * x - u) % _P != 0:
        x = x * _SQRT_MINUS_ONE % _P
        if (v * x * x - u) % _P != 0:
            return None
    if x == 0 and x_is_odd:
        return None  # "-0": a second, non-canonical encoding of x = 0
    return x if x & 1 == x_is_odd else _P - x


def public_key_base64(raw: bytes) -> str:
    """The base64 of the raw public key, one of the two forms KeyGate takes."""
    return base64.b64encode(raw).decode("ascii")


def fingerprint(raw: bytes) -> str:
    """The public key as a person compares it by eye, in OpenSSH's style: "SHA256:" and the unpadded base64 of
    the whole SHA-256 of its base64 form (no shorter: a prefix of 64 bits could be matched by a made key).
    The passkey confirmation of a create or rotation shows it; keygate-keygen prints it."""
    digest = hashlib.sha256(public_key_base64(raw).encode("ascii")).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def public_key_pem(raw: bytes) -> str:
    """The PEM SubjectPublicKeyInfo of the raw public key, the other form KeyGate takes."""
    return f"-----BEGIN PUBLIC KEY-----\n{public_key_base64(_SPKI_PREFIX + raw)}\n-----END PUBLIC KEY-----\n"


# ------------------------------------------------------- signing (cryptography)
def _cryptography() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as error:
        raise ImportError(f"Ed25519 keys need {EXTRA}") from error
    return ed25519


def generate_private_key() -> Ed25519PrivateKey:
    """A new private key (from the operating system's randomness, through OpenSSL)."""
    key: Ed25519PrivateKey = _cryptography().Ed25519PrivateKey.generate()
    return key


def load_private_key(key: Ed25519PrivateKey | str | bytes) -> Ed25519PrivateKey:
    """A private key from an Ed25519PrivateKey, unencrypted PKCS#8 PEM (BEGIN PRIVATE KEY, as
    `keygate-keygen` and `openssl genpkey -algorithm ed25519` write it), or the 32-byte seed."""
    _cryptography()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if isinstance(key, PrivateKey):
        return key
    if isinstance(key, bytes) and len(key) == PUBLIC_KEY_BYTES:
        return PrivateKey.from_private_bytes(key)
    try:
        loaded = load_pem_private_key(key.encode("ascii") if isinstance(key, str) else key, password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise KeyFormatError("the private key is not an unencrypted PEM (BEGIN PRIVATE KEY) key") from None
    if not isinstance(loaded, PrivateKey):
        raise KeyFormatError("the private key is not an Ed25519 key")
    return loaded


def private_key_pem(key: Ed25519PrivateKey) -> str:
    """Unencrypted PKCS#8 PEM of a private key (what `keygate-keygen` writes, mode 0600)."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def public_key_of(key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of a private key's public key."""
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(key: Ed25519PrivateKey | str | bytes, text: str) -> str:
    """Lower-case hex of the Ed25519 signature of `text` (UTF-8): 128 characters."""
    return load_private_key(key).sign(text.encode("utf-8", "surrogatepass")).hex()


def verify(public_key: bytes, text: str, signature_hex: str) -> bool:
    """Whether `signature_hex` is the Ed25519 signature of `text` (UTF-8) under the raw public key.

    The key is checked first (check_point, once per key), so a small-order key never verifies anything.
    """
    try:
        verifier = _verifier(bytes(public_key))
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    if len(signature) != SIGNATURE_BYTES:
        return False
    from cryptography.exceptions import InvalidSignature

    try:
        verifier.verify(signature, text.encode("utf-8", "surrogatepass"))
    except InvalidSignature:
        return False
    return True


@lru_cache(maxsize=1024)
def _verifier(public_key: bytes) -> Any:
    """The cryptography public key for 32 raw bytes that pass check_point (KeyFormatError otherwise), made
    once per key: the point check is pure Python and costs more than the verification."""
    check_point(public_key)
    return _cryptography().Ed25519PublicKey.from_public_bytes(public_key)
