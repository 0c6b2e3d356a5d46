"""Every field of create and update against boundaries, wrong types, unicode and broken bodies:
always the documented normalisation or a 4xx in the error shape, never a 500."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keygate import keys
from keygate.api import MAX_BODY_BYTES
from tests.support.errors import assert_error
from tests.support.stack import state_snapshot

ROUTES = ("create", "update")
FIELD_PATHS = {"create": ("POST", "/v1/trade/api-keys"), "update": ("PATCH", "/v1/trade/api-keys/{key}")}
OK = {"create": 200, "update": 200}


@pytest.fixture
def key_id(client, alice):
    created = client.create(label="bot", permissions=["read"])
    assert created.status == 200
    return created.json()["api_key"]


@pytest.fixture
def any_key_id(client):
    """For refusals: the body is validated before the key is looked up, so no key need exist."""
    return keys.new_key_id("kgk_")


def _send(client, route, key_id, *, body=None, raw_body=None):
    method, path = FIELD_PATHS[route]
    return client.call(method, path.format(key=key_id), body=body, raw_body=raw_body)


def _send_encoded(client, route, key_id, body: str, *, is_base64: bool):
    """Like API Gateway with binary media types: the body arrives base64-encoded."""
    method, path = FIELD_PATHS[route]
    token = client.step_up("alice", {"create": "api_keys:create", "update": "api_keys:update"}[route])
    return client.call_handler(method, path.format(key=key_id), {"principalId": "alice", "user_id": "alice"},
                               headers={"X-PASSKEY-TOKEN": token}, body=body, is_base64=is_base64)


def _accepted(response, route):
    assert response.status == OK[route], response.body
    return response.json()


# -------------------------------------------------------------------- label
@pytest.mark.parametrize(("label", "stored"), [
    pytest.param("a" * 50, "a" * 50, id="50-chars"),
    pytest.param("  " + "a" * 50 + " \t", "a" * 50, id="50-chars-after-trim"),
    pytest.param("", "", id="empty"),
    pytest.param("🚀 grid bot", "🚀 grid bot", id="emoji"),
    pytest.param("👍🏽🇩🇪❤️", "👍🏽🇩🇪❤️", id="modifier-flag-variation-selector"),
    pytest.param("ключ 键 مفتاح", "ключ 键 مفتاح", id="scripts"),
    pytest.param("🚀" * 50, "🚀" * 50, id="50-emoji"),
    pytest.param("1\ufe0f\u20e3 bot", "1\ufe0f\u20e3 bot", id="keycap-selector-and-enclosing-mark"),
    pytest.param("e\u0323\u0302 bot", "e\u0323\u0302 bot", id="two-combining-marks"),
    pytest.param("\u845b\U000e0100", "\u845b\U000e0100", id="ideographic-variation-selector"),
    pytest.param("a\u3000b", "a\u3000b", id="ideographic-space-inside"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_accepted_labels(client, key_id, route, label, stored):
    assert _accepted(_send(client, route, key_id, body={"label": label}), route)["label"] == stored


@pytest.mark.parametrize("label", [
    pytest.param("a" * 51, id="51-chars"),
    pytest.param(" " + "a" * 51 + " ", id="51-chars-after-trim"),
    pytest.param("🚀" * 51, id="51-emoji"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\tb", id="tab-inside"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\x7fb", id="delete"),
    pytest.param("a\x9bb", id="c1-control"),
    pytest.param("a\u200bb", id="zero-width-space"),
    pytest.param("a\u200db", id="zero-width-joiner"),
    pytest.param("a\u202eb", id="right-to-left-override"),
    pytest.param("a\u2066b", id="left-to-right-isolate"),
    pytest.param("a\ufeffb", id="byte-order-mark"),
    pytest.param("a\u2028b", id="line-separator"),
    pytest.param("a\ue000b", id="private-use"),
    pytest.param("a\U000e0041b", id="tag-character"),
    pytest.param("\u3164", id="hangul-filler"),
    pytest.param("bot\u115f", id="hangul-choseong-filler"),
    pytest.param("\u1160bot", id="hangul-jungseong-filler"),
    pytest.param("\uffa0", id="halfwidth-hangul-filler"),
    pytest.param("\u2800", id="braille-blank"),
    pytest.param("a\u034fb", id="combining-grapheme-joiner"),
    pytest.param("\ufe0f", id="variation-selector-alone"),
    pytest.param("a \ufe0f", id="variation-selector-after-space"),
    pytest.param("a\ufe0f\ufe0f", id="two-variation-selectors"),
    pytest.param("\U000e0100", id="variation-selector-supplement-alone"),
    pytest.param("\u0301bot", id="combining-mark-first"),
    pytest.param("bo" + "t\u0301\u0301\u0301", id="three-combining-marks"),
    pytest.param("z" + "\u0336\u0334\u0335\u0337" * 10, id="zalgo"),
    pytest.param(" ", id="one-space"),
    pytest.param(" \t \u3000", id="only-whitespace"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_refused_labels(client, any_key_id, route, label):
    before = state_snapshot()
    error = assert_error(_send(client, route, any_key_id, body={"label": label}), 400, "INVALID_REQUEST")
    assert error["message"].startswith("label")
    assert state_snapshot() == before


@pytest.mark.parametrize("label", [
    pytest.param(5, id="number"),
    pytest.param(1.5, id="float"),
    pytest.param(True, id="bool"),
    pytest.param(["bot"], id="list"),
    pytest.param({"text": "bot"}, id="object"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_a_label_that_is_not_a_string_is_refused(client, any_key_id, route, label):
    error = assert_error(_send(client, route, any_key_id, body={"label": label}), 400, "INVALID_REQUEST")
    assert error["message"].startswith("label")


@pytest.mark.parametrize("route", ROUTES)
def test_an_all_whitespace_label_is_refused_with_what_to_send_instead(client, any_key_id, route):
    # Given a label that is not empty but has nothing left once trimmed
    # When it is sent to create or update
    error = assert_error(_send(client, route, any_key_id, body={"label": "   "}), 400, "INVALID_REQUEST")
    # Then the message says what to send instead, rather than storing it as no label
    assert 'label is only whitespace: send visible characters, or "" for no label' in error["message"]


def test_a_null_label_on_create_is_refused_not_treated_as_empty(client, alice):
    assert_error(client.create(label=None), 400, "INVALID_REQUEST")


# -------------------------------------------------------------- permissions
@pytest.mark.parametrize(("permissions", "stored"), [
    (["read"], ["read"]),
    (["trade"], ["trade"]),
    (["trade", "read"], ["read", "trade"]),
])
@pytest.mark.parametrize("route", ROUTES)
def test_accepted_permissions_are_stored_in_canonical_order(client, key_id, route, permissions, stored):
    assert _accepted(_send(client, route, key_id, body={"permissions": permissions}), route)["permissions"] == stored


@pytest.mark.parametrize("permissions", [
    pytest.param([], id="empty"),
    pytest.param(["read", "read"], id="duplicate"),
    pytest.param(["admin"], id="unknown"),
    pytest.param(["READ"], id="upper-case"),
    pytest.param([" read"], id="padded"),
    pytest.param(["withdraw"], id="not-enabled"),
    pytest.param("read", id="string-not-list"),
    pytest.param([1], id="number"),
    pytest.param([True], id="bool"),
    pytest.param(["read", None], id="null-entry"),
    pytest.param([["read"]], id="nested-list"),
    pytest.param({"read": True}, id="object"),
    pytest.param(None, id="null"),
    pytest.param(["x" * 5000], id="very-long"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_refused_permissions(client, any_key_id, route, permissions):
    error = assert_error(_send(client, route, any_key_id, body={"permissions": permissions}), 400, "INVALID_REQUEST")
    assert "permissions" in error["message"]
    assert len(error["message"]) < 400


# ------------------------------------------------------------- ip_whitelist
@pytest.mark.parametrize(("entries", "stored"), [
    pytest.param([], [], id="empty"),
    pytest.param(["198.51.100.7"], ["198.51.100.7"], id="ipv4"),
    pytest.param(["198.51.100.7/32"], ["198.51.100.7"], id="ipv4-host-cidr"),
    pytest.param(["198.51.100.0/24"], ["198.51.100.0/24"], id="ipv4-cidr"),
    pytest.param([" 10.0.0.0/8 "], ["10.0.0.0/8"], id="trimmed"),
    pytest.param(["2001:DB8::1"], ["2001:db8::1"], id="ipv6-lower-cased"),
    pytest.param(["2001:0db8:0000:0000:0000:0000:0000:0001/128"], ["2001:db8::1"], id="ipv6-compressed"),
    pytest.param(["2001:db8::/32"], ["2001:db8::/32"], id="ipv6-cidr"),
    pytest.param(["0.0.0.0/1"], ["0.0.0.0/1"], id="half-the-internet-is-still-a-restriction"),
    pytest.param(["10.0.0.1", "10.0.0.1/32", "10.0.0.2"], ["10.0.0.1", "10.0.0.2"], id="duplicates-collapse"),
    pytest.param([f"10.0.0.{n}" for n in range(30)], [f"10.0.0.{n}" for n in range(30)], id="30-entries"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_accepted_whitelists_are_normalised(client, key_id, route, entries, stored):
    assert _accepted(_send(client, route, key_id, body={"ip_whitelist": entries}), route)["ip_whitelist"] == stored


@pytest.mark.parametrize("entries", [
    pytest.param([f"10.0.0.{n}" for n in range(31)], id="31-entries"),
    pytest.param(["10.1.2.3/8"], id="host-bits-set"),
    pytest.param(["2001:db8::1/32"], id="ipv6-host-bits-set"),
    pytest.param(["0.0.0.0/0"], id="all-ipv4"),
    pytest.param(["::/0"], id="all-ipv6"),
    pytest.param(["10.0.0.0/33"], id="prefix-too-long"),
    pytest.param(["256.1.1.1"], id="octet-too-big"),
    pytest.param(["010.0.0.1"], id="leading-zero"),
    pytest.param(["10.0.0.1-10.0.0.9"], id="range"),
    pytest.param(["example.com"], id="hostname"),
    pytest.param([""], id="empty-entry"),
    pytest.param(["   "], id="blank-entry"),
    pytest.param(["fe80::1%eth0"], id="ipv6-zone"),
    pytest.param(["1" * 10000], id="very-long"),
    pytest.param("10.0.0.1", id="string-not-list"),
    pytest.param([167772161], id="number"),
    pytest.param([None], id="null-entry"),
    pytest.param([{"ip": "10.0.0.1"}], id="object-entry"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_refused_whitelists(client, any_key_id, route, entries):
    error = assert_error(_send(client, route, any_key_id, body={"ip_whitelist": entries}), 400, "INVALID_REQUEST")
    assert "ip_whitelist" in error["message"]
    assert len(error["message"]) < 400


def test_host_bits_errors_suggest_the_network(client, alice):
    error = assert_error(client.create(ip_whitelist=["10.1.2.3/8"]), 400, "INVALID_REQUEST")
    assert "10.0.0.0/8" in error["message"]


def test_a_null_whitelist_on_create_is_refused_not_treated_as_empty(client, alice):
    assert_error(client.create(ip_whitelist=None), 400, "INVALID_REQUEST")


# ------------------------------------------------------------- expires_days
@pytest.mark.parametrize("days", [1, 3650, None])
def test_accepted_expiries(client, alice, days):
    created = _accepted(client.create(expires_days=days), "create")
    assert (created["expires_at"] is None) == (days is None)


@pytest.mark.parametrize("days", [0, 3651, -1, True, False, 1.0, 1.5, "30", [30], {"days": 30}, 10**20])
def test_refused_expiries(client, alice, days):
    error = assert_error(client.create(expires_days=days), 400, "INVALID_REQUEST")
    assert error["message"].startswith("expires_days")


def test_the_expiry_cannot_be_changed_by_update(client, key_id):
    assert_error(client.update(key_id, expires_days=30), 400, "INVALID_REQUEST")


# ----------------------------------------------------------- unknown fields
@pytest.mark.parametrize("body", [
    {"foo": 1}, {"Label": "x"}, {"api_secret": "kgs_x"}, {"user_id": "bob"}, {"api_key": "kgk_x"},
    {"label": "x", "labels": "y"}, {"is_active": True}, {"x" * 5000: 1},
])
@pytest.mark.parametrize("route", ROUTES)
def test_unknown_fields_are_refused(client, any_key_id, route, body):
    error = assert_error(_send(client, route, any_key_id, body=body), 400, "INVALID_REQUEST")
    assert "not a known field" in error["message"]
    assert len(error["message"]) < 400


@pytest.mark.parametrize("field", ["label", "permissions", "ip_whitelist"])
def test_null_fields_are_refused_on_update(client, key_id, field):
    error = assert_error(client.update(key_id, **{field: None}), 400, "INVALID_REQUEST")
    assert "null" in error["message"]


# -------------------------------------------------------------- body shapes
@pytest.mark.parametrize("raw_body", ["[]", '["label"]', '"text"', "1", "null", "true", "1.5"])
@pytest.mark.parametrize("route", ROUTES)
def test_a_body_that_is_not_an_object_is_refused(client, any_key_id, route, raw_body):
    error = assert_error(_send(client, route, any_key_id, raw_body=raw_body), 400, "INVALID_REQUEST")
    assert "JSON object" in error["message"]


@pytest.mark.parametrize("raw_body", [
    pytest.param("{", id="truncated"),
    pytest.param("{'label': 'x'}", id="single-quotes"),
    pytest.param('{"label": "x",}', id="trailing-comma"),
    pytest.param('{"label": "x"} {}', id="two-documents"),
    pytest.param("\ufeff{}", id="byte-order-mark"),
    pytest.param('{"label": "\\ud800"', id="truncated-escape"),
    pytest.param("label=x", id="form-encoded"),
    pytest.param("\ud800", id="lone-surrogate"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_malformed_json_is_refused(client, any_key_id, route, raw_body):
    assert_error(_send(client, route, any_key_id, raw_body=raw_body), 400, "MALFORMED_JSON")


@pytest.mark.parametrize("route", ROUTES)
def test_an_integer_too_long_for_python_is_valid_json_refused_as_a_bad_value(client, any_key_id, route):
    # Given valid JSON whose integer has more digits than Python converts (4,300)
    raw_body = '{"expires_days": ' + "9" * 5000 + "}"
    # Then it is refused as a value its field does not take, not as JSON that does not parse
    error = assert_error(_send(client, route, any_key_id, raw_body=raw_body), 400, "INVALID_REQUEST")
    assert "expires_days" in error["message"], error


@pytest.mark.parametrize("raw_body", [
    pytest.param("[" * 10000, id="deeply-nested-arrays"),
    pytest.param('{"a":' * 3000 + "1" + "}" * 3000, id="deeply-nested-objects"),
    pytest.param('{"label": ' + "[" * 5000 + "]" * 5000 + "}", id="deeply-nested-field"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_deeply_nested_json_is_a_4xx_not_a_crash(client, any_key_id, route, raw_body):
    response = _send(client, route, any_key_id, raw_body=raw_body)
    assert 400 <= response.status < 500, response.body
    assert_error(response, response.status)


@pytest.mark.parametrize("route", ROUTES)
def test_invalid_utf8_is_malformed_json(client, any_key_id, route):
    body = base64.b64encode(b'{"label": "caf\xe9"}').decode()
    assert_error(_send_encoded(client, route, any_key_id, body, is_base64=True), 400, "MALFORMED_JSON")


@pytest.mark.parametrize("route", ROUTES)
def test_a_base64_body_is_decoded(client, key_id, route):
    body = base64.b64encode(json.dumps({"label": "from base64"}).encode()).decode()
    assert _accepted(_send_encoded(client, route, key_id, body, is_base64=True), route)["label"] == "from base64"


@pytest.mark.parametrize("body", ["!!not base64!!", "eyJsYWJlbCI6ICJ4In0", "eyJs\nYWJl"])
@pytest.mark.parametrize("route", ROUTES)
def test_invalid_base64_is_refused(client, any_key_id, route, body):
    assert_error(_send_encoded(client, route, any_key_id, body, is_base64=True), 400, "INVALID_REQUEST")


# ------------------------------------------------------------------- sizes
def _padded(size: int) -> str:
    """A valid body of exactly `size` bytes: a label, then JSON whitespace."""
    text = '{"label": "big"}'
    return text + " " * (size - len(text))


@pytest.mark.parametrize("route", ROUTES)
def test_a_body_of_exactly_16_kib_is_accepted(client, key_id, route):
    assert _accepted(_send(client, route, key_id, raw_body=_padded(MAX_BODY_BYTES)), route)["label"] == "big"


@pytest.mark.parametrize("raw_body", [
    pytest.param(_padded(MAX_BODY_BYTES + 1), id="one-byte-over"),
    pytest.param(_padded(1024 * 1024), id="one-mebibyte"),
    pytest.param(json.dumps({"label": "é" * 9000}, ensure_ascii=False), id="multibyte-characters-count-as-bytes"),
    pytest.param(" " * (MAX_BODY_BYTES + 1), id="only-whitespace"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_an_oversized_body_is_refused(client, any_key_id, route, raw_body):
    before = state_snapshot()
    assert_error(_send(client, route, any_key_id, raw_body=raw_body), 413, "PAYLOAD_TOO_LARGE")
    assert state_snapshot() == before


@pytest.mark.parametrize("route", ROUTES)
def test_an_oversized_base64_body_is_refused(client, any_key_id, route):
    body = base64.b64encode(_padded(MAX_BODY_BYTES + 1).encode()).decode()
    assert_error(_send_encoded(client, route, any_key_id, body, is_base64=True), 413, "PAYLOAD_TOO_LARGE")


# -------------------------------------------------------------- fuzzing
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
IP_TEXT = st.one_of(
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses(), st.integers(-1, 130)).map(lambda pair: f"{pair[0]}/{pair[1]}"),
    st.text(max_size=40),
)
FIELD_BODIES = st.fixed_dictionaries({}, optional={
    "label": st.text(max_size=60) | JSON_VALUES,
    "permissions": st.lists(st.sampled_from(["read", "trade", "withdraw", "READ", ""]) | JSON_VALUES, max_size=4)
    | JSON_VALUES,
    "ip_whitelist": st.lists(IP_TEXT | JSON_VALUES, max_size=5) | JSON_VALUES,
    "expires_days": st.integers(-10, 4000) | JSON_VALUES,
    "extra": JSON_VALUES,
})
BODIES = st.one_of(FIELD_BODIES.map(json.dumps), JSON_VALUES.map(json.dumps), st.text(max_size=200))
FUZZ_SETTINGS = settings(max_examples=100, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _check_fuzzed(response, route):
    assert response.status < 500, response.body
    if response.status >= 400:
        assert_error(response, response.status)
    else:
        assert response.status == OK[route]


@FUZZ_SETTINGS
@given(raw_body=BODIES)
def test_create_never_fails_with_a_5xx(client, key_id, raw_body):
    _check_fuzzed(_send(client, "create", key_id, raw_body=raw_body), "create")


@FUZZ_SETTINGS
@given(raw_body=BODIES)
def test_update_never_fails_with_a_5xx(client, key_id, raw_body):
    _check_fuzzed(_send(client, "update", key_id, raw_body=raw_body), "update")
