"""kg1.ed25519 (KG1-ED25519): docs/signing.md's Ed25519 worked example byte for byte, the public-key parser
(PEM SubjectPublicKeyInfo or base64 of the 32 raw bytes, nothing else) and the small-order points it refuses.

The small-order list is libsodium's (ge25519_has_small_order); a test derives the 8 points of small order
from the curve's equation independently and checks the list covers every encoding of each.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

import kg1
from kg1 import ed25519 as kg1_ed25519

# docs/signing.md's Ed25519 example (the GET example with an Ed25519 key)
SEED = bytes.fromhex("c9c9f1f39484385a57308a00c29032867bfccc7f5195a92c56c2981e2ec1779f")
PUBLIC_BASE64 = "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8="
PUBLIC_PEM = ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEADAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8=\n"
              "-----END PUBLIC KEY-----\n")
PRIVATE_PEM = ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIMnJ8fOUhDhaVzCKAMKQMoZ7/Mx/UZWpLFbCmB4uwXef\n"
               "-----END PRIVATE KEY-----\n")
STRING_TO_SIGN = ("KG1-ED25519\n1767225600000\n5000\nn0nce-3f9c2a7e1b4d4c8a\nkg_live_example_key_id\nGET\n"
                  "/v1/trade/api-keys/self\n\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SIGNATURE = ("bdc5734daf1b73c6e9478a876437ec695da87a46e68e4a9dfec81b5c10524bff"
             "2ffcd78408a6f0f63dceb111dbe933db6b4b974494c97c37329d5eede5fce200")
KEY_ID = "kg_live_example_key_id"


# ------------------------------------------------------------ worked example
def test_the_worked_example_byte_for_byte():
    # Given the example's private key, as its seed and as the PKCS#8 PEM the page gives
    for private_key in (SEED, PRIVATE_PEM, PRIVATE_PEM.encode()):
        # When the client signs the GET example with it
        headers = kg1.sign_request(KEY_ID, None, "GET", "/v1/trade/api-keys/self", timestamp_ms=1767225600000,
                                   recv_window_ms=5000, nonce="n0nce-3f9c2a7e1b4d4c8a", private_key=private_key)
        # Then it sends the page's 128-hex-character signature over the page's string to sign
        assert headers[kg1.HEADER_SIGNATURE] == SIGNATURE
        assert kg1_ed25519.sign(private_key, STRING_TO_SIGN) == SIGNATURE
    # And the verifying side accepts it under either form of the page's public key, and nothing else
    signed = kg1.parse_signed_headers(headers)
    for public in (PUBLIC_BASE64, PUBLIC_PEM):
        raw = kg1_ed25519.parse_public_key(public)
        assert kg1.verify_ed25519_signature(signed, raw, "GET", "/v1/trade/api-keys/self", [])
        assert not kg1.verify_ed25519_signature(signed, raw, "GET", "/v1/trade/api-keys/other", [])
    # And the two forms are the key's, as the page writes them
    raw = kg1_ed25519.public_key_of(kg1_ed25519.load_private_key(SEED))
    assert (kg1_ed25519.public_key_base64(raw), kg1_ed25519.public_key_pem(raw)) == (PUBLIC_BASE64, PUBLIC_PEM)
    assert kg1_ed25519.private_key_pem(kg1_ed25519.load_private_key(SEED)) == PRIVATE_PEM


def test_the_server_builds_the_first_line_from_the_key_type():
    # The same request verified as HMAC with any secret never passes: the first line differs, and so does the length
    signed = kg1.parse_signed_headers(kg1.sign_request(
        KEY_ID, None, "GET", "/v1/time", timestamp_ms=1767225600000, nonce="n0nce-3f9c2a7e1b4d4c8a", private_key=SEED))
    assert len(signed.signature) == kg1.ED25519_SIGNATURE_HEX_LENGTH == 128
    assert not kg1.verify_signature(signed, "kgs_example_secret_do_not_use", "GET", "/v1/time", [])


def test_sign_request_takes_a_secret_or_a_private_key_never_both_or_neither():
    for secret, private_key in (("s", SEED), (None, None)):
        with pytest.raises(ValueError, match="either"):
            kg1.sign_request(KEY_ID, secret, "GET", "/v1/time", private_key=private_key)


@settings(max_examples=30, deadline=None)
@given(text=st.text(max_size=200))
def test_sign_and_verify_round_trip_and_any_change_fails(text):
    key = kg1_ed25519.generate_private_key()
    raw = kg1_ed25519.public_key_of(key)
    signature = kg1_ed25519.sign(key, text)
    assert len(signature) == 128 and signature == signature.lower()
    assert kg1_ed25519.verify(raw, text, signature)
    assert not kg1_ed25519.verify(raw, text + "x", signature)
    flipped = format(int(signature[:2], 16) ^ 1, "02x") + signature[2:]
    assert not kg1_ed25519.verify(raw, text, flipped)
    assert not kg1_ed25519.verify(raw, text, signature[:-2])


# ------------------------------------------------------------- public keys
def _pem(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


RAW = base64.b64decode(PUBLIC_BASE64)
OTHER_KEYS = {
    "RSA": lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()),
    "EC P-256": lambda: _pem(ec.generate_private_key(ec.SECP256R1()).public_key()),
    "X25519": lambda: _pem(x25519.X25519PrivateKey.generate().public_key()),
    "Ed448": lambda: _pem(ed448.Ed448PrivateKey.generate().public_key()),
    "Ed25519 private key": lambda: PRIVATE_PEM,
    "hex": lambda: RAW.hex(),
    "URL-safe base64": lambda: base64.urlsafe_b64encode(bytes([0xFB]) + RAW[1:]).decode(),
    "unpadded base64": lambda: PUBLIC_BASE64.rstrip("="),
    "31 bytes": lambda: base64.b64encode(RAW[:31]).decode(),
    "33 bytes": lambda: base64.b64encode(RAW + b"\0").decode(),
    "non-canonical base64 (stray bits)": lambda: PUBLIC_BASE64[:-2] + "P=",
    "PEM with a trailing DER byte": lambda: "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(
        bytes.fromhex("302b300506032b6570032200") + RAW + b"\0").decode() + "\n-----END PUBLIC KEY-----\n",
    "PEM with a DER length in long form": lambda: "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(
        bytes.fromhex("30812a300506032b6570032100") + RAW).decode() + "\n-----END PUBLIC KEY-----\n",
    "PEM of another label": lambda: PUBLIC_PEM.replace("PUBLIC KEY", "ED25519 PUBLIC KEY"),
    "two PEM blocks": lambda: PUBLIC_PEM + PUBLIC_PEM,
    "empty": lambda: "",
    "not ASCII": lambda: "é" * 44,
}


@pytest.mark.parametrize("form", [PUBLIC_BASE64, PUBLIC_PEM, PUBLIC_PEM.encode(), PUBLIC_PEM.replace("\n", "\r\n"),
                                  PUBLIC_PEM.rstrip("\n"), f"  {PUBLIC_BASE64}\n", PUBLIC_PEM + "\n\n",
                                  f" \t{PUBLIC_PEM}  "],
                         ids=["base64", "pem", "pem bytes", "pem crlf", "pem no final newline", "base64 padded",
                              "pem and blank lines", "pem padded"])
def test_the_two_accepted_forms(form):
    assert kg1_ed25519.parse_public_key(form) == RAW


@pytest.mark.parametrize("kind", sorted(OTHER_KEYS))
def test_anything_else_is_refused(kind):
    with pytest.raises(kg1_ed25519.KeyFormatError):
        kg1_ed25519.parse_public_key(OTHER_KEYS[kind]())


@pytest.mark.parametrize(("kind", "says"), [
    ("Ed25519 private key", "this is a private key: never send it"),
    ("unpadded base64", "add the padding"),
    ("URL-safe base64", "not URL-safe base64"),
    ("two PEM blocks", "one -----BEGIN PUBLIC KEY----- block, not several"),
    ("PEM of another label", "is labelled ED25519 PUBLIC KEY, not PUBLIC KEY"),
    ("hex", "PEM (BEGIN PUBLIC KEY) or base64 of its 32 raw bytes"),
])
def test_a_refusal_says_what_was_sent_instead_of_a_public_key(kind, says):
    with pytest.raises(kg1_ed25519.KeyFormatError) as refused:
        kg1_ed25519.parse_public_key(OTHER_KEYS[kind]())
    assert says in str(refused.value)


@pytest.mark.parametrize(("text", "says"), [
    ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "is labelled CERTIFICATE, not PUBLIC KEY"),
    ("my key: " + PUBLIC_PEM, "nothing before it"),
    (PUBLIC_PEM + "that was my key", "and nothing after it"),
    (PUBLIC_PEM.replace("-----BEGIN PUBLIC KEY-----", "-----BEGIN PUBLIC KEY -----"), "begin with the line"),
    (PUBLIC_PEM.replace("\n-----END", " \n-----END"), "lines hold base64 only"),
], ids=["certificate", "text before", "text after", "odd BEGIN line", "space in a line"])
def test_a_pem_refusal_says_what_is_wrong_with_the_block(text, says):
    with pytest.raises(kg1_ed25519.KeyFormatError) as refused:
        kg1_ed25519.parse_public_key(text)
    assert says in str(refused.value)


def test_a_point_off_the_curve_is_told_it_may_be_a_private_or_x25519_key():
    off_curve = next(_encoding(y, 0) for y in range(2, 60) if kg1_ed25519._recover_x(y, 0) is None)
    with pytest.raises(kg1_ed25519.KeyFormatError, match="not a private or X25519 key"):
        kg1_ed25519.parse_public_key(base64.b64encode(off_curve).decode())


P = 2**255 - 19


def _encoding(y: int, x_is_odd: int) -> bytes:
    return (y | (x_is_odd << 255)).to_bytes(32, "little")


def test_non_canonical_encodings_are_refused():
    # y >= p (y + p for the small y that fit), and the "negative zero" (x = 0 with its sign bit set)
    for y in range(19):
        for sign in (0, 1):
            with pytest.raises(kg1_ed25519.KeyFormatError):
                kg1_ed25519.check_point(_encoding(P + y, sign))
    for y in (1, P - 1):  # the two points with x = 0
        with pytest.raises(kg1_ed25519.KeyFormatError):
            kg1_ed25519.check_point(_encoding(y, 1))


def test_points_off_the_curve_are_refused():
    # About half of all y have no x on the curve; cryptography loads such keys all the same
    off_curve = [y for y in range(2, 200) if kg1_ed25519._recover_x(y, 0) is None]
    assert len(off_curve) > 50
    for y in off_curve:
        with pytest.raises(kg1_ed25519.KeyFormatError, match="not an Ed25519 point"):
            kg1_ed25519.check_point(_encoding(y, 0))


# ------------------------------------------------------------- small order
D = -121665 * pow(121666, P - 2, P) % P
L = 2**252 + 27742317777372353535851937790883648493  # the prime order of the base point


def _add(first: tuple[int, int], second: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = first, second
    t = D * x1 * x2 * y1 * y2
    return (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P


def _times(k: int, point: tuple[int, int]) -> tuple[int, int]:
    result = (0, 1)
    while k:
        if k & 1:
            result = _add(result, point)
        point, k = _add(point, point), k >> 1
    return result


def small_order_points() -> set[tuple[int, int]]:
    """The 8 points of order dividing 8, found from the curve equation alone: L * (any point) is one of them."""
    y = next(y for y in range(2, 100) if kg1_ed25519._recover_x(y, 0) is not None)
    generator = _times(L, (kg1_ed25519._recover_x(y, 0), y))
    points, point = set(), (0, 1)
    for _ in range(8):
        points.add(point)
        point = _add(point, generator)
    return points


def test_libsodiums_list_covers_every_encoding_of_every_small_order_point():
    points = small_order_points()
    assert len(points) == 8
    # Every canonical encoding of the 8 points, with either sign bit and, where y + p fits, non-canonically
    encodings = {_encoding(y + extra, sign) for _, y in points for sign in (0, 1) for extra in (0, P)
                 if y + extra < 2**255}
    # (5 distinct y among the 8 points, and y + p for y = 0 and 1, each with either sign bit)
    assert len(encodings) == (5 + 2) * 2
    for encoding in encodings:
        assert kg1_ed25519.has_small_order(encoding), encoding.hex()
        with pytest.raises(kg1_ed25519.KeyFormatError):
            kg1_ed25519.check_point(encoding)
    # And the list holds nothing else: 7 rows, each row with either sign bit
    assert {row[:31] + bytes([row[31] & 0x7F]) for row in kg1_ed25519.SMALL_ORDER_ENCODINGS} == \
        {encoding[:31] + bytes([encoding[31] & 0x7F]) for encoding in encodings}


@pytest.mark.parametrize("row", kg1_ed25519.SMALL_ORDER_ENCODINGS, ids=lambda row: f"{row.hex()[:8]}..{row.hex()[-2:]}")
@pytest.mark.parametrize("sign", [0, 0x80])
def test_every_small_order_vector_is_refused_as_a_key_in_either_form(row, sign):
    raw = row[:31] + bytes([row[31] | sign])
    for form in (base64.b64encode(raw).decode(), kg1_ed25519.public_key_pem(raw)):
        with pytest.raises(kg1_ed25519.KeyFormatError):
            kg1_ed25519.parse_public_key(form)


def test_why_a_small_order_key_must_be_refused():
    # Given the neutral element as a public key: cryptography (OpenSSL) loads it without complaint ...
    identity = bytes([1]) + bytes(31)
    loaded = ed25519.Ed25519PublicKey.from_public_bytes(identity)
    # ... and one constant signature (R = the neutral element, S = 0) then verifies on every message
    forged = bytes([1]) + bytes(63)
    for message in (b"KG1-ED25519\nanything", b"another request", b""):
        loaded.verify(forged, message)  # raises InvalidSignature if it does not verify
    # kg1 refuses the key, and never verifies under it
    with pytest.raises(kg1_ed25519.KeyFormatError):
        kg1_ed25519.parse_public_key(base64.b64encode(identity).decode())
    assert not kg1_ed25519.verify(identity, "anything", forged.hex())
    with pytest.raises(InvalidSignature):
        ed25519.Ed25519PublicKey.from_public_bytes(RAW).verify(forged, b"anything")
