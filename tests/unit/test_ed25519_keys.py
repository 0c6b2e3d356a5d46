"""Creating Ed25519 keys (issue 15): the management side accepts exactly the public keys the signature
authorizer verifies with.

Both wire profiles validate `public_key` / `publicKey` with keygate.rules.normalise_public_key, which is
kg1.ed25519's standard-library parser, the one the authorizer reads a record's key with: the same inputs
are accepted and refused on both sides (other key types, non-canonical encodings, points off the curve and
libsodium's small-order list), and what the models store is what the authorizer parses back.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from keygate import api, apigw, keys
from keygate.authorizer import SignatureAuthorizer, _public_key
from keygate.errors import KeyGateError
from keygate.profiles import gaiaex, zdex
from keygate.records import ApiKeyRecord, KeyStatus
from kg1 import ed25519 as kg1_ed25519
from tests.support.bots import Bot, request_event
from tests.support.clocks import Clocks
from tests.support.memory import MemoryStorage
from tests.unit.test_authorizer import EXAMPLE_GET_HEADERS, EXAMPLE_KEY_ID, make_config
from tests.unit.test_ed25519 import OTHER_KEYS, PUBLIC_BASE64, PUBLIC_PEM, RAW, SIGNATURE, _encoding

NOW_MS = 1_795_000_000_000


def _small_order() -> list[str]:
    rows = [row[:31] + bytes([row[31] | sign]) for row in kg1_ed25519.SMALL_ORDER_ENCODINGS for sign in (0, 0x80)]
    return [form for raw in rows for form in (base64.b64encode(raw).decode(), kg1_ed25519.public_key_pem(raw))]


def _off_curve() -> list[str]:
    ys = [y for y in range(2, 60) if kg1_ed25519._recover_x(y, 0) is None][:5]
    return [base64.b64encode(_encoding(y, 0)).decode() for y in ys]


def _non_canonical() -> list[str]:
    p = 2**255 - 19
    return [base64.b64encode(_encoding(p + 3, 0)).decode(), base64.b64encode(_encoding(1, 1)).decode()]


VALID = [PUBLIC_BASE64, PUBLIC_PEM, PUBLIC_PEM.replace("\n", "\r\n"), PUBLIC_PEM.rstrip("\n"), f" {PUBLIC_PEM}\n",
         f"{PUBLIC_BASE64}\n"]
INVALID = {**{name: make() for name, make in OTHER_KEYS.items()},
           **{f"small order {number}": form for number, form in enumerate(_small_order())},
           **{f"off the curve {number}": form for number, form in enumerate(_off_curve())},
           **{f"non-canonical {number}": form for number, form in enumerate(_non_canonical())},
           "too long": PUBLIC_BASE64 * 20}
CORPUS = VALID + list(INVALID.values())


def _parser_accepts(text: str) -> bytes | None:
    try:
        return kg1_ed25519.parse_public_key(text)
    except kg1_ed25519.KeyFormatError:
        return None


def _parsers_reason(text: str) -> str:
    if len(text) > 512:
        return "at most 512 characters"
    try:
        kg1_ed25519.parse_public_key(text)
    except kg1_ed25519.KeyFormatError as refused:
        return str(refused)
    raise AssertionError("the parser accepts it")


def _create(profile: str, public_key: str) -> bytes:
    body = {"key_type": "ed25519", "public_key": public_key} if profile == "gaiaex" else \
        {"label": "bot", "keyType": "ed25519", "publicKey": public_key}
    return json.dumps(body).encode()


MODELS = {"gaiaex": gaiaex.CreateApiKeyRequest, "zdex": zdex.ZdexCreateApiKeyRequest}


@pytest.mark.parametrize("profile", sorted(MODELS))
@pytest.mark.parametrize("text", CORPUS, ids=lambda text: text[:24])
def test_the_models_accept_exactly_what_the_authorizers_parser_accepts(profile, text):
    # Given a candidate public key, and what the authorizer's own parser (kg1.ed25519) makes of it
    expected = _parser_accepts(text) if len(text) <= 512 else None
    # When a create request carries it
    try:
        request = api.parse_body(MODELS[profile], _create(profile, text))
    except KeyGateError as refused:
        # Then a refusal is a 400 INVALID_REQUEST naming the field and saying what to send instead ...
        assert expected is None, refused.message
        assert (refused.code, refused.status) == ("INVALID_REQUEST", 400)
        assert ("public_key" if profile == "gaiaex" else "publicKey") in refused.message
        # (the parser's own reason, which says what to send instead; or, too long to parse, the bound)
        assert _parsers_reason(text) in refused.message, refused.message
        assert "send" in refused.message or "32 raw bytes" in refused.message, refused.message
        assert not refused.message.endswith("..."), refused.message
        return
    # ... and an acceptance stores the key in a form the authorizer reads back to the very same 32 bytes
    assert expected is not None
    new_key = request.domain()
    assert (new_key.key_type, new_key.public_key) == ("ed25519", base64.b64encode(expected).decode())
    record = ApiKeyRecord(key_id="kgk_x", user_id="alice", label="", permissions=["read"], ip_whitelist=[],
                          status=KeyStatus.ACTIVE, created_at=datetime.now(UTC), key_type="ed25519",
                          public_key=new_key.public_key)
    assert _public_key(record, record.public_key) == expected


def test_the_corpus_holds_both_answers():
    assert sum(_parser_accepts(text) is not None for text in CORPUS) == len(VALID)
    assert all(_parser_accepts(text) == RAW for text in VALID)
    assert len(INVALID) > 40


@pytest.mark.parametrize(("profile", "body", "says"), [
    ("gaiaex", {"key_type": "ed25519"},
     "public_key is required for an ed25519 key: send its public key (PEM, or base64 of its 32 raw bytes)"),
    ("gaiaex", {"public_key": PUBLIC_BASE64}, 'public_key is only for ed25519 keys: send "key_type": "ed25519"'),
    ("gaiaex", {"key_type": "rsa", "public_key": PUBLIC_BASE64}, "key_type"),
    ("zdex", {"label": "bot", "keyType": "ed25519"},
     "publicKey is required for an ed25519 key: send its public key (PEM, or base64 of its 32 raw bytes)"),
    ("zdex", {"label": "bot", "publicKey": PUBLIC_BASE64}, 'publicKey is only for ed25519 keys: send "keyType"'),
    ("zdex", {"label": "bot", "key_type": "ed25519", "public_key": PUBLIC_BASE64}, "is not a known field"),
])
def test_key_type_and_public_key_go_together(profile, body, says):
    with pytest.raises(KeyGateError) as refused:
        api.parse_body(MODELS[profile], json.dumps(body).encode())
    assert refused.value.code == "INVALID_REQUEST" and says in refused.value.message, refused.value.message
    assert not refused.value.message.endswith("..."), "cut short: a rule's message fits the echo bound"


@pytest.mark.parametrize("sent", [5, 1.5, True, [PUBLIC_BASE64], {"pem": PUBLIC_PEM}], ids=repr)
@pytest.mark.parametrize(("model", "field"), [
    (gaiaex.CreateApiKeyRequest, "public_key"), (gaiaex.RotateApiKeyRequest, "public_key"),
    (zdex.ZdexCreateApiKeyRequest, "publicKey"), (zdex.ZdexRotateApiKeyRequest, "publicKey"),
], ids=["gaiaex create", "gaiaex rotate", "zdex create", "zdex rotate"])
def test_a_public_key_that_is_not_a_string_is_told_to_be_one(model, field, sent):
    # Not pydantic's two union branches ("... Input should be None"), which invite the refused null
    body = {field: sent, **({"label": "bot"} if model is zdex.ZdexCreateApiKeyRequest else {})}
    with pytest.raises(KeyGateError) as refused:
        api.parse_body(model, json.dumps(body).encode())
    assert refused.value.code == "INVALID_REQUEST"
    assert refused.value.message == (f"{field}: send it as a string: PEM, or base64 of the Ed25519 public key's 32 "
                                     "raw bytes"), refused.value.message


@pytest.mark.parametrize(("model", "body", "field"), [
    (gaiaex.CreateApiKeyRequest, {"public_key": None}, "public_key"),
    (gaiaex.CreateApiKeyRequest, {"key_type": "ed25519", "public_key": None}, "public_key"),
    (gaiaex.RotateApiKeyRequest, {"public_key": None}, "public_key"),
    (zdex.ZdexCreateApiKeyRequest, {"label": "bot", "publicKey": None}, "publicKey"),
    (zdex.ZdexRotateApiKeyRequest, {"publicKey": None}, "publicKey"),
], ids=["gaiaex create", "gaiaex ed25519 create", "gaiaex rotate", "zdex create", "zdex rotate"])
def test_a_null_public_key_is_refused_not_taken_for_none(model, body, field):
    # The schema types the field as a string: null is not a way to leave it out
    with pytest.raises(KeyGateError) as refused:
        api.parse_body(model, json.dumps(body).encode())
    assert refused.value.code == "INVALID_REQUEST"
    assert refused.value.message == (f"{field}: must not be null; leave it out for an HMAC key, or send the Ed25519 "
                                     "public key"), refused.value.message


@pytest.mark.parametrize("digits", ["9" * 5000, "-" + "9" * 5000])
def test_an_integer_too_long_for_python_is_refused_naming_its_field_not_as_bad_json(digits):
    body = b'{"grace_seconds": ' + digits.encode() + b"}"
    with pytest.raises(KeyGateError) as refused:
        api.parse_body(gaiaex.RotateApiKeyRequest, body)
    assert refused.value.code == "INVALID_REQUEST" and "grace_seconds" in refused.value.message


def test_an_hmac_key_stays_the_default():
    assert api.parse_body(MODELS["gaiaex"], b"{}").domain().key_type == "hmac-sha256"
    assert api.parse_body(MODELS["zdex"], b'{"label": "bot"}').domain().key_type == "hmac-sha256"


@pytest.mark.parametrize("row", kg1_ed25519.SMALL_ORDER_ENCODINGS, ids=lambda row: row.hex()[:8])
def test_an_all_zero_or_identity_signature_never_passes_even_for_a_small_order_key_slipped_into_a_record(row):
    # Given a record that somehow holds a small-order public key (the models refuse it; a hand-edited item)
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=clocks.wall_clock_ms,
                                     monotonic=clocks.monotonic_clock)
    key_id = keys.new_key_id("kgk_")
    storage.keys.put_record(ApiKeyRecord(
        key_id=key_id, user_id="alice", label="", permissions=["read", "trade"], ip_whitelist=[],
        status=KeyStatus.ACTIVE, created_at=datetime(2025, 1, 1, tzinfo=UTC), key_type="ed25519",
        public_key=base64.b64encode(row).decode()))
    bot = Bot(key_id, None, clocks, private_key=kg1_ed25519.generate_private_key())
    # When requests arrive signed with the all-zero signature and with (R = the neutral element, S = 0)
    for forged in ("00" * 64, ("01" + "00" * 31) + "00" * 32):
        decision = authorizer.authorize(bot.request(headers={**bot.headers(), "X-KG-SIGNATURE": forged}))
        # Then each is refused, and nothing is written
        assert (decision.allowed, decision.code) == (False, "SIGNATURE_MISMATCH")
    assert "record_nonce" not in storage.calls


def test_the_ed25519_worked_example_byte_for_byte_from_create_to_the_authorizer(monkeypatch):
    # Given docs/signing.md's Ed25519 key created as the API creates it, from the page's PEM public key
    monkeypatch.setattr(keys, "is_well_formed_key_id", lambda key_id, prefix: key_id == EXAMPLE_KEY_ID)
    new_key = api.parse_body(MODELS["gaiaex"], json.dumps({"key_type": "ed25519", "public_key": PUBLIC_PEM}).encode(),
                             context={"allowed_permissions": ("read", "trade")}).domain()
    assert new_key.public_key == PUBLIC_BASE64
    storage, clocks = MemoryStorage(), Clocks(wall_ms=1767225600000)
    storage.keys.put_record(ApiKeyRecord(
        key_id=EXAMPLE_KEY_ID, user_id="alice", label="", permissions=["read"], ip_whitelist=[],
        status=KeyStatus.ACTIVE, created_at=datetime(2025, 1, 1, tzinfo=UTC), key_type=new_key.key_type,
        public_key=new_key.public_key))
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=clocks.wall_clock_ms)
    # When API Gateway hands over the page's GET request with the page's Ed25519 signature, byte for byte
    headers = {**EXAMPLE_GET_HEADERS, "X-KG-SIGNATURE": SIGNATURE}
    decision = authorizer.authorize(apigw.signed_request(request_event("GET", "/v1/trade/api-keys/self", "", headers)))
    # Then it is allowed, no secret was read; and one changed byte of the signature is refused
    assert decision.allowed, decision
    assert "read" not in storage.calls
    forged = {**headers, "X-KG-SIGNATURE": SIGNATURE[:-2] + "01", "X-KG-NONCE": "n0nce-3f9c2a7e1b4d4c8b"}
    assert authorizer.authorize(apigw.signed_request(request_event("GET", "/v1/trade/api-keys/self", "", forged))
                                ).code == "SIGNATURE_MISMATCH"
