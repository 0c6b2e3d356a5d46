"""SignatureAuthorizer's decisions, pure logic: docs/signing.md's checks in order, over in-memory storage.

The storage is tests/support/memory.py's, with the DynamoDB adapter's rules
(a nonce is refused while its record has not expired); the wall clock and the
cache clock are injected, so bounds are checked without sleeping. Requests are
signed by the SDK and handed over as API Gateway's events (tests/support/bots.py).
The real storage and handler are exercised against moto in
tests/integration/test_signature_authorizer.py.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess  # nosec B404  # runs this project's own authorizer in a fresh interpreter
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keygate_client
import kg1
from keygate import apigw, keys
from keygate.authorizer import MAX_MESSAGE_LENGTH, REFUSAL_CODES, SignatureAuthorizer, TtlCache, safe_message
from keygate.config import AuthorizerConfig
from keygate.errors import ServiceUnavailable
from keygate.records import ApiKeyRecord, KeyStatus, secret_ref
from kg1 import ed25519 as kg1_ed25519
from tests.support.bots import CATCH_ALL, SELF, Bot, request_event
from tests.support.clocks import Clocks
from tests.support.memory import MemoryStorage

PREFIX = "kgk_"
NOW_MS = 1_795_000_000_000
ALL_PERMISSIONS = ["read", "trade", "withdraw"]


def make_config(**settings_: object) -> AuthorizerConfig:
    """The authorizer's settings; the bots' requests come through a downstream API's catch-all (CATCH_ALL),
    declared safe here unless a test says otherwise (an undeclared greedy resource needs `withdraw`)."""
    settings_.setdefault("safe_proxy_resources", CATCH_ALL)
    return AuthorizerConfig.from_environ({name.upper(): str(value) for name, value in settings_.items()})


@pytest.fixture
def world():
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms,
                                     monotonic=lambda: clocks.monotonic)
    key_id, secret = storage.add_key()
    return authorizer, storage, clocks, Bot(key_id, secret, clocks)


# ------------------------------------------------------------------- allow
def test_a_signed_request_is_allowed_with_a_flat_context(world):
    authorizer, storage, _, bot = world
    # When the bot's signed GET reaches the authorizer
    decision = authorizer.authorize(bot.request())
    # Then it is allowed for the key's user, with the key and its permissions, and the nonce is recorded
    assert (decision.allowed, decision.status, decision.user_id, decision.key_id) == (True, 200, "alice", bot.key_id)
    assert decision.permissions == ("read", "trade")
    assert storage.calls == ["get_key_owner", "get_key", "read", "record_nonce", "touch_last_used"]


EXAMPLE_KEY_ID = "kg_live_example_key_id"
EXAMPLE_GET_HEADERS = {
    "X-KG-API-KEY": EXAMPLE_KEY_ID, "X-KG-TIMESTAMP": "1767225600000", "X-KG-RECV-WINDOW": "5000",
    "X-KG-NONCE": "n0nce-3f9c2a7e1b4d4c8a", "X-KG-CONTENT-SHA256": kg1.EMPTY_BODY_SHA256,
    "X-KG-SIGNATURE": "458772e593bd5f81e4cb9b146b16e1e8a75a42580340dd6f32473997dbd907b8"}
EXAMPLE_POST_HEADERS = {  # names in lower case: API Gateway passes them as the client wrote them
    "x-kg-api-key": EXAMPLE_KEY_ID, "x-kg-timestamp": "1767225601234", "x-kg-nonce": "Zx9_-abcdefghijklmnop",
    "x-kg-content-sha256": "91231eec0d583c2a980fcd99db802310853c1bb38f22b57952d06f63b7d5a911",
    "x-kg-signature": "23f9060393b44bb2a737180972e288379a142a69cc142a08f262a973f7a04ff2"}
EXAMPLE_POST_STRING_TO_SIGN = (
    "KG1-HMAC-SHA256\n1767225601234\n\nZx9_-abcdefghijklmnop\nkg_live_example_key_id\nPOST\n/v1/trade/orders\n"
    "a=10&a=2&client%20id=a%20b%2Fc&symbol=BTC-USDT\n91231eec0d583c2a980fcd99db802310853c1bb38f22b57952d06f63b7d5a911")


@pytest.fixture
def example_world(monkeypatch):
    """docs/signing.md's illustrative key (not the real id format, so check 3 is told to accept it), at POST time."""
    storage, clocks = MemoryStorage(), Clocks(wall_ms=1767225601234)
    monkeypatch.setattr(keys, "is_well_formed_key_id", lambda key_id, prefix: key_id == EXAMPLE_KEY_ID)
    storage.keys.put_record(ApiKeyRecord(
        key_id=EXAMPLE_KEY_ID, user_id="alice", label="", permissions=["read", "trade"], ip_whitelist=[],
        status=KeyStatus.ACTIVE, created_at=datetime(2025, 1, 1, tzinfo=UTC)))
    storage.vault.secrets[EXAMPLE_KEY_ID] = "kgs_example_secret_do_not_use"
    return SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms), storage


def test_worked_examples_are_accepted_by_the_authorizer_byte_for_byte(example_world):
    authorizer, _ = example_world
    # When API Gateway hands over the two example requests exactly as the page writes them
    get = apigw.signed_request(request_event("GET", "/v1/trade/api-keys/self", "", EXAMPLE_GET_HEADERS))
    post = apigw.signed_request(request_event("POST", "/v1/trade/orders",
                                              "symbol=BTC-USDT&client%20id=a%20b%2Fc&a=2&a=10", EXAMPLE_POST_HEADERS))
    # Then what the authorizer signs over is the page's string to sign, byte for byte ...
    parsed = kg1.parse_signed_headers(post.headers)
    assert kg1.string_to_sign(
        timestamp=parsed.timestamp, recv_window=parsed.recv_window, nonce=parsed.nonce, key_id=parsed.key_id,
        method=post.method, path=post.path, query_pairs=post.query_pairs, content_sha256=parsed.content_sha256,
    ) == EXAMPLE_POST_STRING_TO_SIGN
    # ... and both requests are allowed
    get_decision, post_decision = authorizer.authorize(get), authorizer.authorize(post)
    assert get_decision.allowed, get_decision
    assert post_decision.allowed, post_decision


def test_a_literal_api_gateway_event_behind_a_custom_domain_base_path(example_world):
    # Given the REQUEST authorizer event API Gateway sends for the POST example reached through a custom
    # domain whose base path `trading` maps to stage `prod` (shape of the API Gateway developer guide's
    # example): `path` carries the base path, `resource` does not; the query's repeats are only in the
    # multi-value map; header names arrive as the client wrote them; X-Forwarded-For is the client's to set.
    authorizer, storage = example_world
    headers = {"Host": "api.example.com", "X-Forwarded-For": "198.51.100.1, 10.0.0.1", **{
        name.upper() if index % 2 else name.title(): value
        for index, (name, value) in enumerate(EXAMPLE_POST_HEADERS.items())}}
    raw = {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/POST/v1/trade/orders",
        "resource": "/v1/trade/orders",
        "path": "/trading/v1/trade/orders",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {"symbol": "BTC-USDT", "client id": "a b/c", "a": "10"},
        "multiValueQueryStringParameters": {"symbol": ["BTC-USDT"], "client id": ["a b/c"], "a": ["2", "10"]},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {
            "path": "/trading/v1/trade/orders", "accountId": "123456789012", "resourceId": "05c7jb",
            "stage": "prod", "requestId": "ba1d8c2a-1ae1-4e76-a3c6-0cd2a9c0f0e2",
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "bot/1.0"},
            "resourcePath": "/v1/trade/orders", "httpMethod": "POST", "apiId": "abcdef123"},
    }
    # When the authorizer reads it
    request = apigw.signed_request(raw)
    decision = authorizer.authorize(request)
    # Then it signs over the path relative to the API root, every query pair, and the connection's address
    assert (request.path, sorted(request.query_pairs), request.source_ip) == (
        "/v1/trade/orders", [("a", "10"), ("a", "2"), ("client id", "a b/c"), ("symbol", "BTC-USDT")], "203.0.113.10")
    assert decision.allowed, decision
    assert storage.calls[-2:] == ["record_nonce", "touch_last_used"]


@pytest.mark.parametrize(("damage", "allowed"), [
    pytest.param(lambda raw: raw.update(headers=None, multiValueHeaders=None), False, id="no headers at all"),
    pytest.param(lambda raw: raw["headers"].update({"X-KG-NONCE": None}), False, id="null header value"),
    pytest.param(lambda raw: raw["headers"].update({None: "x", 7: "y"}), True, id="non-string header names"),
    pytest.param(lambda raw: raw.update(multiValueQueryStringParameters={"a": None}, queryStringParameters=None),
                 True, id="null query values"),
    pytest.param(lambda raw: raw.update(httpMethod=None) or raw["requestContext"].pop("httpMethod"), False,
                 id="no method"),
])
def test_a_degenerate_event_is_decided_never_an_exception(world, damage, allowed):
    authorizer, _, _, bot = world
    raw = request_event("GET", "/v1/trade/api-keys/self", "", bot.headers("GET", "/v1/trade/api-keys/self"))
    damage(raw)
    decision = authorizer.authorize(apigw.signed_request(raw))
    assert decision.allowed is allowed, decision
    if not allowed:
        assert decision.status == 401


# ----------------------------------------------------- checks 1-3: no lookup
@pytest.mark.parametrize("name", sorted(kg1.SIGNED_HEADER_NAMES))
@pytest.mark.parametrize("value", [None, "", "9" * 70_000, "ключ-ключ-ключ-ключ", "abc\r\nX-Evil: 1"],
                         ids=["missing", "empty", "huge", "non-ascii", "crlf"])
def test_every_malformed_header_is_a_401_before_any_lookup(world, name, value):
    authorizer, storage, _, bot = world
    sent = {key.lower(): text for key, text in bot.headers("GET", "/v1/trade/api-keys/self").items()}
    if value is None:
        sent.pop(name, None)
    else:
        sent[name] = value
    decision = authorizer.authorize(bot.request(headers=sent))
    if name == "x-kg-recv-window" and value is None:
        # X-KG-RECV-WINDOW is signed, so dropping it after signing breaks the signature (after the lookup) ...
        assert (decision.allowed, decision.status, decision.code) == (False, 401, "SIGNATURE_MISMATCH")
        # ... but it is optional: a request signed without it is allowed (absent means 5000 ms).
        assert authorizer.authorize(bot.request(recv_window_ms=None)).allowed
        return
    assert (decision.allowed, decision.status) == (False, 401)
    assert decision.code in {"MISSING_HEADER", "MALFORMED_HEADER"}
    assert storage.calls == []


def test_a_header_repeated_in_multi_value_headers_is_refused(world):
    authorizer, storage, _, bot = world
    sent = bot.headers("GET", "/v1/trade/api-keys/self")
    raw = request_event("GET", "/v1/trade/api-keys/self", "", sent)
    raw["multiValueHeaders"]["X-KG-NONCE"] = [sent["X-KG-NONCE"], "another-nonce-0123456789"]
    decision = authorizer.authorize(apigw.signed_request(raw))
    assert (decision.status, decision.code) == (401, "MALFORMED_HEADER")
    assert storage.calls == []


def test_a_header_repeated_under_two_spellings_is_refused(world):
    authorizer, storage, _, bot = world
    sent = bot.headers("GET", "/v1/trade/api-keys/self")
    decision = authorizer.authorize(bot.request(headers={**sent, "x-kg-signature": "0" * 64}))
    assert (decision.status, decision.code) == (401, "MALFORMED_HEADER")


@pytest.mark.parametrize(("offset_ms", "window", "allowed"), [
    (+1000, None, True), (+1001, None, False), (-5000, None, True), (-5001, None, False),
    (-60000, 60000, True), (-60001, 60000, False), (-1, 1, True), (-2, 1, False),
])
def test_window_edges(world, offset_ms, window, allowed):
    authorizer, storage, clocks, bot = world
    # Given a request stamped offset_ms away from the server's clock
    request = bot.request(clock=lambda: clocks.wall_ms + offset_ms, recv_window_ms=window)
    # When it is checked
    decision = authorizer.authorize(request)
    # Then exactly the requests inside [now - window, now + 1000] pass, and a refusal reads nothing
    assert decision.allowed is allowed, decision
    if not allowed:
        assert (decision.status, decision.code, storage.calls) == (401, "TIMESTAMP_OUT_OF_WINDOW", [])


@pytest.mark.parametrize("window", ["0", "60001", "5s", "-1", ""])
def test_invalid_recv_window_is_401(world, window):
    authorizer, storage, _, bot = world
    sent = {**bot.headers("GET", "/v1/trade/api-keys/self"), "X-KG-RECV-WINDOW": window}
    decision = authorizer.authorize(bot.request(headers=sent))
    assert (decision.status, decision.code, storage.calls) == (401, "MALFORMED_HEADER", [])


@pytest.mark.parametrize("key_id", ["kgk_" + "A" * 28, "kgx_" + "A" * 28, "kgk_short", "kg_live_example_key_id"])
def test_malformed_or_forged_key_id_is_401_without_any_lookup(world, key_id):
    authorizer, storage, clocks, bot = world
    decision = authorizer.authorize(Bot(key_id, bot.secret, clocks).request())
    assert (decision.status, decision.code, storage.calls) == (401, "INVALID_KEY_ID", [])


# ------------------------------------------------------------------ check 4
def test_unknown_key_is_401_and_negatively_cached_briefly(world):
    authorizer, storage, clocks, bot = world
    stranger = Bot(keys.new_key_id(PREFIX), keys.new_secret(), clocks)
    assert authorizer.authorize(stranger.request()).code == "UNKNOWN_KEY"
    assert authorizer.authorize(stranger.request()).code == "UNKNOWN_KEY"
    assert storage.calls == ["get_key_owner"]
    # After the negative cache's 2 s the id is looked up again (it may have been created since)
    clocks.advance(2.0)
    authorizer.authorize(stranger.request())
    assert storage.calls.count("get_key_owner") == 2


def test_a_flood_of_made_up_key_ids_does_not_evict_a_known_key(world):
    _, storage, clocks, bot = world
    # Given a hot key whose record and secret are cached, in caches of 50 entries (small for speed)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms,
                                     monotonic=lambda: clocks.monotonic, cache_max_entries=50)
    assert authorizer.authorize(bot.request()).allowed
    # When more well-formed made-up ids than the caches hold are tried (the checksum does not stop them)
    for _ in range(120):
        stranger = Bot(keys.new_key_id(PREFIX), keys.new_secret(), clocks)
        assert authorizer.authorize(stranger.request()).code == "UNKNOWN_KEY"
    storage.calls.clear()
    # Then the hot key is still served from its caches: no key, owner or secret read
    assert authorizer.authorize(bot.request()).allowed
    assert not {"get_key_owner", "get_key", "read"} & set(storage.calls)


def test_wrong_secret_is_a_signature_mismatch_and_writes_nothing(world):
    authorizer, storage, clocks, bot = world
    decision = authorizer.authorize(Bot(bot.key_id, keys.new_secret(), clocks).request())
    assert (decision.status, decision.code) == (401, "SIGNATURE_MISMATCH")
    assert "record_nonce" not in storage.calls and "touch_last_used" not in storage.calls


def test_revoked_key_is_refused_within_the_record_ttl(world):
    authorizer, storage, clocks, bot = world
    # Given a key the authorizer has just seen (record and secret cached)
    assert authorizer.authorize(bot.request()).allowed
    # When it is revoked (the record flips, the secret is deleted)
    storage.revoke(bot.key_id)
    # Then the cached record may let it through for less than the record TTL (5 s) ...
    clocks.advance(4.999)
    assert authorizer.authorize(bot.request()).allowed
    # ... and from the TTL on it is refused as revoked, without using its secret
    clocks.advance(0.001)
    decision = authorizer.authorize(bot.request())
    assert (decision.status, decision.code) == (401, "KEY_REVOKED")


def test_record_ttl_parameter_sets_the_revocation_bound():
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(record_cache_ttl_seconds=1), storage.keys, storage.vault,
                                     clock_ms=lambda: clocks.wall_ms, monotonic=lambda: clocks.monotonic)
    bot = Bot(*storage.add_key(), clocks)
    assert authorizer.authorize(bot.request()).allowed
    storage.revoke(bot.key_id)
    clocks.advance(1.0)
    assert authorizer.authorize(bot.request()).code == "KEY_REVOKED"


def test_expired_key_is_refused_from_its_expiry_even_while_cached():
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms,
                                     monotonic=lambda: clocks.monotonic)
    expires_at = datetime.fromtimestamp((NOW_MS + 1500) / 1000, UTC)
    bot = Bot(*storage.add_key(expires_at=expires_at), clocks)
    assert authorizer.authorize(bot.request()).allowed
    clocks.advance(1.499)
    assert authorizer.authorize(bot.request()).allowed
    clocks.advance(0.001)
    assert authorizer.authorize(bot.request()).code == "KEY_EXPIRED"


def test_the_secret_is_read_once_per_secret_ttl_and_the_record_once_per_record_ttl(world):
    authorizer, storage, clocks, bot = world
    for _ in range(10):
        assert authorizer.authorize(bot.request()).allowed
        clocks.advance(1.0)
    # 10 s: the record twice (0 s, 5 s), the pointer and the secret once
    assert storage.calls.count("get_key") == 2
    assert storage.calls.count("get_key_owner") == 1
    assert storage.calls.count("read") == 1


def test_a_secret_gone_while_the_cached_record_names_it_is_read_once_per_unknown_key_ttl(world):
    authorizer, storage, clocks, bot = world
    # Given a key whose secret is gone while the record this instance reads still names it (deleted right after
    # a revocation, or a rotation without grace, that the instance has not seen yet)
    del storage.vault.secrets[secret_ref(bot.key_id)]
    # When requests for it keep arriving (anyone may send them: forged ones too)
    codes = {authorizer.authorize(bot.request()).code for _ in range(20)}
    clocks.advance(1.999)
    codes.add(authorizer.authorize(bot.request()).code)
    # Then each is refused, and Secrets Manager was asked once within UnknownKeyCacheTtlSeconds (2 s), the bound
    # an unknown key id has too, not once a request
    assert codes == {"KEY_REVOKED"}
    assert storage.calls.count("read") == 1
    # And it is asked again after that bound (a secret slow to appear after its creation locks its key out no longer)
    clocks.advance(0.001)
    assert authorizer.authorize(bot.request()).code == "KEY_REVOKED"
    assert storage.calls.count("read") == 2


# ---------------------------------------------------------- checks 5 and 6
@pytest.mark.parametrize(("whitelist", "source_ip", "allowed"), [
    (["198.51.100.7"], "198.51.100.7", True), (["198.51.100.7"], "198.51.100.8", False),
    (["198.51.100.0/24"], "198.51.100.255", True), (["198.51.100.0/24"], "198.51.101.1", False),
    (["2001:db8::/48"], "2001:db8:0:ffff::1", True), (["2001:db8::/48"], "2001:db9::1", False),
    (["2001:db8::1"], "2001:db8::1", True), (["2001:db8::1"], "2001:db8::2", False),
    (["198.51.100.7"], "::ffff:198.51.100.7", True), (["198.51.100.0/24"], "2001:db8::1", False),
    (["198.51.100.7"], "", False), (["198.51.100.7"], "not-an-ip", False),
])
def test_ip_whitelist(whitelist, source_ip, allowed):
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    bot = Bot(*storage.add_key(ip_whitelist=whitelist), clocks)
    decision = authorizer.authorize(bot.request(source_ip=source_ip))
    assert decision.allowed is allowed
    if not allowed:
        assert (decision.status, decision.code) == (401, "IP_NOT_ALLOWED")
        assert "record_nonce" not in storage.calls


def test_x_forwarded_for_changes_nothing():
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    bot = Bot(*storage.add_key(ip_whitelist=["198.51.100.7"]), clocks)
    spoofed = {"X-Forwarded-For": "198.51.100.7", "X-Real-IP": "198.51.100.7", "Forwarded": "for=198.51.100.7"}
    assert authorizer.authorize(bot.request(source_ip="203.0.113.66", extra_headers=spoofed)).code == "IP_NOT_ALLOWED"
    honest = {"X-Forwarded-For": "203.0.113.66, 198.51.100.7"}
    assert authorizer.authorize(bot.request(source_ip="198.51.100.7", extra_headers=honest)).allowed


@pytest.mark.parametrize(("permissions", "method", "allowed"), [
    (["read"], "GET", True), (["read"], "HEAD", True), (["read"], "POST", False), (["read"], "DELETE", False),
    (["read", "trade"], "POST", True), (["read", "trade"], "PATCH", True), (["trade"], "GET", False),
])
def test_read_for_get_and_head_trade_for_other_methods(permissions, method, allowed):
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    bot = Bot(*storage.add_key(permissions=permissions), clocks)
    decision = authorizer.authorize(bot.request(method, "/v1/trade/orders", body=b'{"qty": "1"}'))
    assert decision.allowed is allowed
    if not allowed:
        assert (decision.status, decision.code) == (401, "PERMISSION_DENIED")
        assert "record_nonce" not in storage.calls


WITHDRAWAL_ROUTES = "POST /v1/wallet/withdrawals, ANY /v1/wallet/transfers, POST /v1/accounts/{account_id}/withdrawals"
TRADER, WITHDRAWER = ["read", "trade"], ["read", "trade", "withdraw"]


@pytest.mark.parametrize(("permissions", "method", "resource", "path", "allowed"), [
    # A declared withdrawal route, for its method only; ANY for every method
    (TRADER, "POST", "/v1/wallet/withdrawals", "/v1/wallet/withdrawals", False),
    (WITHDRAWER, "POST", "/v1/wallet/withdrawals", "/v1/wallet/withdrawals", True),
    (TRADER, "GET", "/v1/wallet/withdrawals", "/v1/wallet/withdrawals", True),
    (TRADER, "DELETE", "/v1/wallet/transfers", "/v1/wallet/transfers", False),
    (TRADER, "GET", "/v1/wallet/transfers", "/v1/wallet/transfers", False),
    # A templated route matches as the template API Gateway matched, whatever the parameter's value
    (TRADER, "POST", "/v1/accounts/{account_id}/withdrawals", "/v1/accounts/acc-1/withdrawals", False),
    (TRADER, "POST", "/v1/accounts/{account_id}/withdrawals", "/v1/accounts/A%C4%B1/withdrawals", False),
    (WITHDRAWER, "POST", "/v1/accounts/{account_id}/withdrawals", "/v1/accounts/acc-1/withdrawals", True),
    # Elsewhere the usual rule: read for GET/HEAD, trade for the rest (a withdraw key too needs trade)
    (TRADER, "POST", "/v1/trade/orders", "/v1/trade/orders", True),
    (["read", "withdraw"], "POST", "/v1/trade/orders", "/v1/trade/orders", False),
    # Any greedy resource needs withdraw unless declared safe, whatever the path under it: fail closed
    (TRADER, "GET", "/v1/misc/{proxy+}", "/v1/misc/prices", False),
    (TRADER, "POST", "/v1/misc/{proxy+}", "/v1/misc/../wallet/withdrawals", False),
    (TRADER, "GET", "/{proxy+}", "/anything", False),
    (WITHDRAWER, "POST", "/v1/misc/{proxy+}", "/v1/misc/anything", True),
    (TRADER, "GET", "/v1/docs/{proxy+}", "/v1/docs/index.html", True),  # declared safe
])
def test_the_permission_follows_the_route_api_gateway_matched(permissions, method, resource, path, allowed):
    # Given declared withdrawal routes and one declared safe catch-all
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    config = make_config(withdrawal_routes=WITHDRAWAL_ROUTES, safe_proxy_resources="/v1/docs/{proxy+}")
    authorizer = SignatureAuthorizer(config, storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    bot = Bot(*storage.add_key(permissions=permissions, ip_whitelist=["203.0.113.10"]), clocks)
    # When a signed request reaches it through the route API Gateway matched
    decision = authorizer.authorize(bot.request(method, path, resource=resource))
    # Then the permission is the route's, never the path's spelling
    assert decision.allowed is allowed, decision
    if not allowed:
        assert (decision.status, decision.code) == (401, "PERMISSION_DENIED")
        assert f"{method} {resource} needs" in decision.message


@settings(max_examples=200, deadline=None)
@given(path=st.text(min_size=1, max_size=40).map(lambda text: "/v1/wallet/withdrawals/" + text),
       method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]))
def test_no_spelling_under_a_catch_all_escapes_withdraw(path, method):
    # Whatever path a catch-all receives (case, dots, `;`, `.json`, `\\`, U+0131, encodings), its resource is the
    # catch-all's template: without withdraw, refused
    authorizer = SignatureAuthorizer(make_config(safe_proxy_resources="none"), None, None)  # type: ignore[arg-type]
    assert authorizer.required_permission(method, "/{proxy+}") == "withdraw"
    assert authorizer.required_permission(method, None) == "withdraw"  # no matched route: fail closed


@pytest.mark.parametrize("source_ip", ["192.0.2.1", "2001:db8::dead:beef", "::ffff:192.0.2.1"])
def test_an_ip_refusal_names_the_address_the_request_came_from(source_ip):
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    bot = Bot(*storage.add_key(ip_whitelist=["203.0.113.10"]), clocks)
    decision = authorizer.authorize(bot.request(source_ip=source_ip))
    assert decision.code == "IP_NOT_ALLOWED" and f"from {source_ip}:" in decision.message


def test_a_source_ip_that_is_not_an_address_is_not_echoed():
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    bot = Bot(*storage.add_key(ip_whitelist=["203.0.113.10"]), clocks)
    decision = authorizer.authorize(bot.request(source_ip='1.2.3.4", "code": "OK'))
    assert decision.code == "IP_NOT_ALLOWED" and "1.2.3.4" not in decision.message


# ---------------------------------------------- every message fits the template
ACCESS_DENIED = '{"ok": false, "error": {"code": "$context.authorizer.error_code", ' \
                '"message": "$context.authorizer.error_message"}}'
UNSAFE = set('"\\') | {chr(code) for code in range(0x20)} | {chr(code) for code in range(0x7f, 0xa0)} | \
    {"\u2028", "\u2029"}


def assert_fits_the_template(code: str, message: str) -> None:
    # The ACCESS_DENIED Gateway Response pastes the values between JSON quotes, as they are
    assert message and not set(message) & UNSAFE, message
    rendered = ACCESS_DENIED.replace("$context.authorizer.error_code", code).replace(
        "$context.authorizer.error_message", message)
    assert json.loads(rendered)["error"] == {"code": code, "message": message}


def every_refusal(authorizer, storage, clocks, *, source_ip="192.0.2.1", offset_ms=7_000, window=None):
    """One request per refusal path of the authorizer (docs/signing.md's checks 1-7), signed by the SDK."""
    reader = Bot(*storage.add_key(permissions=["read"]), clocks)
    pinned = Bot(*storage.add_key(ip_whitelist=["203.0.113.10"]), clocks)
    revoked, expired, orphan = (Bot(*storage.add_key(), clocks) for _ in range(3))
    storage.revoke(revoked.key_id)
    storage.keys.put_record(storage.keys.records[expired.key_id].changed(
        expires_at=datetime.fromtimestamp((NOW_MS - 1000) / 1000, UTC)))
    del storage.vault.secrets[orphan.key_id]
    good = {name.lower(): value for name, value in reader.headers().items()}
    requests = [reader.request(headers={key: value for key, value in good.items() if key != name})
                for name in sorted(good)]
    requests += [reader.request(headers={**good, name: "\u00e9" * 20}) for name in sorted(good)]
    requests += [reader.request(headers={**good, "X-KG-NONCE": good["x-kg-nonce"]})]
    duplicated = reader.event()
    duplicated["multiValueHeaders"]["X-KG-NONCE"] = ["a" * 20, "b" * 20]
    requests += [apigw.signed_request(duplicated)]
    requests += [reader.request(clock=lambda: clocks.wall_ms + offset_ms, recv_window_ms=window),
                 reader.request(clock=lambda: clocks.wall_ms - offset_ms, recv_window_ms=window)]
    requests += [Bot("kgk_" + "A" * 28, "x", clocks).request(),
                 Bot(keys.new_key_id(PREFIX), keys.new_secret(), clocks).request(),
                 revoked.request(), expired.request(), orphan.request(),
                 reader.request(headers={**good, "x-kg-signature": "ab" * 64}),
                 Bot(reader.key_id, keys.new_secret(), clocks).request(),
                 pinned.request(source_ip=source_ip),
                 reader.request("POST", "/v1/trade/orders")]
    replayed = reader.headers()
    authorizer.authorize(reader.request(headers=replayed))
    requests += [reader.request(headers=replayed)]
    return [authorizer.authorize(request) for request in requests]


def test_every_refusal_code_of_the_authorizer_is_reached_and_its_message_fits_the_template(world):
    authorizer, storage, clocks, _ = world
    decisions = every_refusal(authorizer, storage, clocks)
    refusals = [decision for decision in decisions if not decision.allowed]
    assert len(refusals) == len(decisions)
    # Every code the authorizer declares is reached, and no other
    assert {decision.code for decision in refusals} == set(REFUSAL_CODES)
    for decision in refusals:
        assert decision.status == 401
        assert_fits_the_template(decision.code.value, decision.message)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(source_ip=st.one_of(st.ip_addresses().map(str), st.text(max_size=40)),
       offset_ms=st.integers(min_value=1001, max_value=10**13),
       window=st.one_of(st.none(), st.integers(min_value=1, max_value=60000)))
def test_messages_with_values_from_the_request_still_fit_the_template(source_ip, offset_ms, window):
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    for decision in every_refusal(authorizer, storage, clocks, source_ip=source_ip, offset_ms=offset_ms,
                                  window=window):
        if not decision.allowed:  # a source IP inside the whitelist may pass check 5
            assert_fits_the_template(decision.code.value, decision.message)


@given(text=st.text())
def test_safe_message_leaves_nothing_a_template_could_not_carry(text):
    assert not set(safe_message(text)) & UNSAFE and len(safe_message(text)) <= MAX_MESSAGE_LENGTH


# ------------------------------------------------------------------ check 7
def test_replay_is_refused_until_the_window_has_passed(world):
    authorizer, storage, clocks, bot = world
    sent = bot.headers("GET", "/v1/trade/api-keys/self")
    assert authorizer.authorize(bot.request(headers=sent)).allowed
    # The same request again, inside its window: refused, and nothing else happens
    clocks.advance(4.0)
    decision = authorizer.authorize(bot.request(headers=sent))
    assert (decision.status, decision.code) == (401, "NONCE_REUSED")
    # After the window the time check refuses it before the nonce is even looked at
    clocks.advance(1.001)
    assert authorizer.authorize(bot.request(headers=sent)).code == "TIMESTAMP_OUT_OF_WINDOW"


def test_a_nonce_may_be_used_again_once_its_record_has_expired(world):
    authorizer, storage, clocks, bot = world
    nonce = "reused-nonce-0123456789"
    first = bot.request(headers={**_signed_with_nonce(bot, nonce)})
    assert authorizer.authorize(first).allowed
    # Given the record is past its expiry but DynamoDB's TTL has not deleted it yet (it lingers in `nonces`)
    clocks.advance(5.002)
    assert (bot.key_id, nonce) in storage.keys.nonces
    # Then a new request with the same nonce is not blocked by the stale record
    assert authorizer.authorize(bot.request(headers=_signed_with_nonce(bot, nonce))).allowed


def _signed_with_nonce(bot: Bot, nonce: str) -> dict[str, str]:
    return keygate_client.sign(bot.key_id, bot.secret, "GET", "/v1/trade/api-keys/self",
                               timestamp_ms=bot.clocks.wall_ms, nonce=nonce)


def test_nonces_are_per_key(world):
    authorizer, storage, clocks, bot = world
    other = Bot(*storage.add_key(), clocks)
    nonce = "shared-nonce-0123456789"
    assert authorizer.authorize(bot.request(headers=_signed_with_nonce(bot, nonce))).allowed
    assert authorizer.authorize(other.request(headers=_signed_with_nonce(other, nonce))).allowed


# ------------------------------------------------------- last use and faults
def test_last_used_is_written_at_most_once_a_minute_and_a_failure_never_denies(world):
    authorizer, storage, clocks, bot = world
    storage.failing.add("touch_last_used")
    for _ in range(5):
        assert authorizer.authorize(bot.request()).allowed
        clocks.advance(20.0)
    # 0 s, 60 s (at 80 s of requests: 0, 20, 40, 60, 80)
    assert storage.calls.count("touch_last_used") == 2


@pytest.mark.parametrize("operation", ["get_key_owner", "get_key", "read", "record_nonce"])
def test_storage_faults_raise_instead_of_deciding(world, operation):
    authorizer, storage, _, bot = world
    storage.failing.add(operation)
    with pytest.raises(ServiceUnavailable):
        authorizer.authorize(bot.request())


def test_the_secret_never_leaves_in_a_decision(world):
    authorizer, storage, clocks, bot = world
    decisions = [authorizer.authorize(bot.request()), authorizer.authorize(bot.request("POST", "/v1/x")),
                 authorizer.authorize(Bot(bot.key_id, keys.new_secret(), clocks).request())]
    for decision in decisions:
        assert bot.secret not in repr(decision)


# ------------------------------------------------- any signed change is a 401
COMPONENTS = ["method", "path", "query", "body_digest", "timestamp", "recv_window", "nonce", "key_id"]
segment = st.text(min_size=1, max_size=12).filter(lambda text: text not in {".", ".."})
query_pair = st.tuples(st.one_of(st.sampled_from(["a", "symbol", "a b", "é"]), st.text(min_size=1, max_size=8)),
                       st.text(max_size=8))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       segments=st.lists(segment, min_size=1, max_size=4),
       pairs=st.lists(query_pair, max_size=5),
       body=st.binary(max_size=64),
       window=st.one_of(st.none(), st.integers(min_value=1000, max_value=60000)),
       component=st.sampled_from(COMPONENTS),
       data=st.data())
def test_changing_any_signed_component_turns_an_allow_into_a_401(method, segments, pairs, body, window, component,
                                                                  data):
    # Given two keys with the same secret, and a request signed with the first
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    key_id, secret = storage.add_key(permissions=ALL_PERMISSIONS[:2])
    twin_id, _ = storage.add_key(permissions=ALL_PERMISSIONS[:2], secret=secret)
    path = "/" + "/".join(quote(part, safe="") for part in segments)
    query = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)
    sent = keygate_client.sign(key_id, secret, method, "/" + "/".join(segments), pairs, body,
                               timestamp_ms=clocks.wall_ms - 500, recv_window_ms=window)
    # When one signed component differs between what was signed and what arrives
    tampered = dict(sent)
    tampered_method, tampered_path, tampered_query = method, path, query
    if component == "method":
        tampered_method = data.draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]).filter(
            lambda other: other != method))
    elif component == "path":
        tampered_path = path + "/" + quote(data.draw(segment), safe="")
    elif component == "query":
        extra = data.draw(query_pair)
        tampered_query = "&".join(filter(None, [query, f"{quote(extra[0], safe='')}={quote(extra[1], safe='')}"]))
    elif component == "body_digest":
        other_body = data.draw(st.binary(max_size=64).filter(lambda other: other != body))
        tampered["X-KG-CONTENT-SHA256"] = kg1.content_sha256(other_body)
    elif component == "timestamp":
        tampered["X-KG-TIMESTAMP"] = str(int(sent["X-KG-TIMESTAMP"]) + data.draw(st.sampled_from([-1, 1, 400])))
    elif component == "recv_window":
        tampered["X-KG-RECV-WINDOW"] = str(data.draw(st.integers(min_value=1000, max_value=60000).filter(
            lambda other: str(other) != sent.get("X-KG-RECV-WINDOW"))))
    elif component == "nonce":
        tampered["X-KG-NONCE"] = data.draw(st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True).filter(
            lambda other: other != sent["X-KG-NONCE"]))
    elif component == "key_id":
        tampered["X-KG-API-KEY"] = twin_id
    refused = authorizer.authorize(apigw.signed_request(request_event(tampered_method, tampered_path,
                                                                      tampered_query, tampered)))
    # Then the tampered request is a 401 signature mismatch that wrote nothing ...
    assert (refused.allowed, refused.status, refused.code) == (False, 401, "SIGNATURE_MISMATCH"), component
    assert "record_nonce" not in storage.calls
    # ... while the request as signed is allowed
    allowed = authorizer.authorize(apigw.signed_request(request_event(method, path, query, sent)))
    assert allowed.allowed, allowed


# ------------------------------------------------------------- the caches
def test_ttl_cache_is_bounded_and_expires_on_the_monotonic_clock():
    now = [0.0]
    cache: TtlCache[int] = TtlCache(lambda: now[0], max_entries=3)
    for number in range(5):
        cache.put(str(number), number, 10)
    assert [cache.get(str(number))[0] for number in range(5)] == [False, False, True, True, True]
    now[0] = 9.999
    assert cache.get("4") == (True, 4)
    now[0] = 10.0
    assert cache.get("4") == (False, None)
    cache.put("zero-ttl", 1, 0)
    assert cache.get("zero-ttl") == (False, None)


# ------------------------------------------------------------ Ed25519 keys
def ed25519_world(public_key_form: str = "base64"):
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms,
                                     monotonic=lambda: clocks.monotonic)
    key_id, private_key = storage.add_ed25519_key(public_key_form=public_key_form)
    return authorizer, storage, clocks, Bot(key_id, None, clocks, private_key=private_key)


@pytest.mark.parametrize("form", ["base64", "pem"])
def test_an_ed25519_key_is_verified_with_its_public_key_and_no_secret_is_read(form):
    authorizer, storage, _, bot = ed25519_world(form)
    # When the bot's request signed with its private key (KG1-ED25519) arrives
    decision = authorizer.authorize(bot.request("POST", "/v1/trade/orders", body=b'{"qty": "1"}'))
    # Then it is allowed, the key's record alone was read (KeyGate holds no secret for it)
    assert decision.allowed, decision
    assert storage.calls == ["get_key_owner", "get_key", "record_nonce", "touch_last_used"]


def test_an_ed25519_key_refuses_a_signature_by_another_key_or_over_another_request():
    authorizer, storage, clocks, bot = ed25519_world()
    impostor = Bot(bot.key_id, None, clocks, private_key=kg1_ed25519.generate_private_key())
    assert authorizer.authorize(impostor.request()).code == "SIGNATURE_MISMATCH"
    sent = bot.headers("GET", "/v1/trade/api-keys/self")
    assert authorizer.authorize(bot.request("GET", "/v1/trade/orders", headers=sent)).code == "SIGNATURE_MISMATCH"
    assert "record_nonce" not in storage.calls


@pytest.mark.parametrize(("key_type", "signature", "algorithm"), [
    ("ed25519", "ab" * 32, "KG1-ED25519"),  # an HMAC-length signature for an Ed25519 key
    ("hmac-sha256", "ab" * 64, "KG1-HMAC-SHA256"),  # an Ed25519-length signature for an HMAC key
])
def test_a_signature_length_that_does_not_fit_the_key_type_is_an_algorithm_mismatch(key_type, signature, algorithm):
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    if key_type == "ed25519":
        key_id, private_key = storage.add_ed25519_key()
        bot = Bot(key_id, None, clocks, private_key=private_key)
    else:
        bot = Bot(*storage.add_key(), clocks)
    # When the signature's length is the other type's (check 1 takes both)
    decision = authorizer.authorize(bot.request(headers={**bot.headers(), "X-KG-SIGNATURE": signature}))
    # Then check 4 refuses it, naming the algorithm the key uses, before any secret is read
    assert (decision.status, decision.code) == (401, "ALGORITHM_MISMATCH")
    assert algorithm in decision.message and "read" not in storage.calls


@pytest.mark.parametrize("public_key", [
    None, "not a key", base64.b64encode(bytes([1]) + bytes(31)).decode(),  # the neutral element: small order
])
def test_an_ed25519_record_without_a_usable_public_key_verifies_nothing(public_key):
    # Given an Ed25519 key's record whose public key is missing, malformed or of small order
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    authorizer = SignatureAuthorizer(make_config(), storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    key_id, private_key = storage.add_ed25519_key()
    storage.keys.put_record(storage.keys.records[key_id].changed(public_key=public_key))
    # When a request arrives, even with the constant signature that verifies everything under a small-order key
    forged = {**Bot(key_id, None, clocks, private_key=private_key).headers(), "X-KG-SIGNATURE": "01" + "00" * 63}
    decision = authorizer.authorize(Bot(key_id, None, clocks).request(headers=forged))
    # Then it is refused
    assert decision.code == "SIGNATURE_MISMATCH" and "public key" in decision.message


def _run_deployed(child: str, *arguments: str, environment: dict[str, str] | None = None) -> str:
    """`child` run by a fresh interpreter with `arguments`, then what Lambda puts on sys.path for the deployed
    signature authorizer (its code, the layer, kg1), which the child prepends to its own; its standard output.
    Metrics are off unless `environment` (the whole environment) says otherwise."""
    root = Path(__file__).resolve().parents[2]
    paths = [str(root / "functions" / "signature_authorizer"), str(root / "layers" / "common"),
             str(root / "sdk" / "kg1")]
    result = subprocess.run([sys.executable, "-c", child, *arguments, *paths], capture_output=True, text=True,  # noqa: S603
                            check=False, env=environment or {**os.environ, "POWERTOOLS_METRICS_DISABLED": "true"})  # nosec B603
    assert result.returncode == 0, result.stderr
    return result.stdout


LEAN_CHILD = r"""
import json, sys
from datetime import UTC, datetime
keys, events = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.path[:0] = sys.argv[3:]
import app  # the deployed handler module, as Lambda imports it
from keygate import apigw
from keygate.authorizer import SignatureAuthorizer
from keygate.config import AuthorizerConfig
from keygate.ports import NonceReused
from keygate.records import ApiKeyRecord, KeyStatus

class Storage:  # the authorizer's storage ports, in memory
    def get_key_owner(self, key_id): return "alice"
    def get_key(self, user_id, key_id):
        kind, public = keys[key_id]
        return ApiKeyRecord(key_id=key_id, user_id="alice", label="", permissions=["read"], ip_whitelist=[],
                            status=KeyStatus.ACTIVE, created_at=datetime.now(UTC), key_type=kind, public_key=public)
    def read(self, key_id): return keys[key_id][1]
    def record_nonce(self, *args, **kwargs): pass
    def touch_last_used(self, *args, **kwargs): pass

def loaded():  # kg1's Ed25519 module (cryptography itself may be loaded by botocore for TLS, where installed)
    return "kg1.ed25519" in sys.modules
authorizer = SignatureAuthorizer(AuthorizerConfig.from_environ({}), Storage(), Storage(),
                                 clock_ms=lambda: int(events[0]["headers"]["X-KG-TIMESTAMP"]))
print(loaded())
for event in events:
    assert authorizer.authorize(apigw.signed_request(event)).allowed
    print(loaded())
print(sorted({"keygate.config.management", "keygate.records.lifecycle"} & set(sys.modules)))
"""


def test_the_authorizer_imports_the_ed25519_verifier_only_when_an_ed25519_key_arrives():
    # Given an HMAC key and an Ed25519 key, and a request signed with each (here)
    clocks = Clocks(NOW_MS)
    hmac_key = (keys.new_key_id(PREFIX), keys.new_secret())
    private_key, ed25519_id = kg1_ed25519.generate_private_key(), keys.new_key_id(PREFIX)
    public = kg1_ed25519.public_key_base64(kg1_ed25519.public_key_of(private_key))
    events = [Bot(*hmac_key, clocks).event(resource=SELF), Bot(ed25519_id, None, clocks, private_key=private_key)
              .event(resource=SELF)]
    records = {hmac_key[0]: ["hmac-sha256", hmac_key[1]], ed25519_id: ["ed25519", public]}
    # When a fresh interpreter imports the deployed function and serves the HMAC key, then the Ed25519 key
    output = _run_deployed(LEAN_CHILD, json.dumps(records), json.dumps(events))
    # Then importing the function and serving an HMAC key do not load the Ed25519 verifier; the first Ed25519 key does,
    # and neither builds the other functions' settings nor the lifecycle's other records
    assert output.splitlines() == ["False", "False", "True", "[]"]


# ------------------------------------------------------------ the lean import path
def test_the_deployed_authorizer_imports_neither_pydantic_nor_pyjwt_nor_the_xray_sdk():
    # Given a fresh interpreter with the function's code, the layer and kg1 on its path (as Lambda's)
    code = ("import sys; sys.path[:0] = sys.argv[1:]; import app; "
            "print(' '.join(sorted({name.split('.')[0] for name in sys.modules} | "
            "{name for name in sys.modules if name.startswith(('keygate.', 'kg1.'))})))")
    # When it imports the handler module, as Lambda's runtime does
    loaded = set(_run_deployed(code).split())
    # Then none of what the issue-15 decision keeps off its cold path is loaded (docs/architecture.md,
    # "Cold start"): no pydantic, no PyJWT, no X-Ray SDK (nor the Tracer's wrapt), no boto3 (botocore alone
    # makes the clients), no Ed25519 verifier, and none of the management side's modules
    assert not loaded & {"pydantic", "pydantic_core", "jwt", "aws_xray_sdk", "wrapt", "boto3"}, loaded
    assert not loaded & {"keygate.models", "keygate.tokens", "keygate.session", "keygate.stepup", "keygate.wiring",
                         "keygate.service", "keygate.api", "keygate.routes", "kg1.ed25519",
                         "keygate.config.management", "keygate.records.lifecycle"}, loaded
    assert {"keygate.authorizer", "kg1"} <= loaded


def test_the_deployed_authorizer_freezes_the_heap_its_imports_built_and_leaves_the_collector_on():
    # Given a fresh interpreter with the function's code, the layer and kg1 on its path (as Lambda's)
    code = "import gc, sys; sys.path[:0] = sys.argv[1:]; import app; print(gc.isenabled(), gc.get_freeze_count())"
    # When it imports the handler module, as Lambda's runtime does
    enabled, frozen = _run_deployed(code).split()
    # Then what the imports built (botocore, Powertools, KeyGate: tens of thousands of objects) is frozen out of
    # every later collection, and the collector runs again for what requests build (docs/architecture.md,
    # "Cold start")
    assert enabled == "True"
    assert int(frozen) > 20_000


STORAGE_CHILD = r"""
import json, sys
items, secret, event, expected = (json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]),
                                  json.loads(sys.argv[4]))
sys.path[:0] = sys.argv[5:]
import app  # the deployed handler module, as Lambda imports it
from botocore.stub import ANY, Stubber
from keygate.config import StorageConfig
from keygate.storage import aws

def params(value):  # "<any>" stands for a value of the moment (a time, the nonce)
    if isinstance(value, dict):
        return {name: params(entry) for name, entry in value.items()}
    return ANY if value == "<any>" else value

clients = aws.clients(StorageConfig.from_environ().aws_endpoint_url)  # those the composition root takes
with Stubber(clients.dynamodb) as dynamodb, Stubber(clients.secretsmanager) as secretsmanager:
    for item, key in zip(items, expected["keys"]):  # the key's pointer, then its record
        dynamodb.add_response("get_item", {"Item": item}, params({**expected["read"], "Key": key}))
    secretsmanager.add_response("get_secret_value", {"SecretString": secret}, params(expected["secret"]))
    dynamodb.add_response("put_item", {}, params(expected["nonce"]))
    dynamodb.add_response("update_item", {}, params(expected["last_use"]))
    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "SignatureAuthorizerFunction", 512, "r-1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:SignatureAuthorizerFunction"
    allowed = app.handler(event, Context())["policyDocument"]["Statement"][0]["Effect"]
    dynamodb.assert_no_pending_responses()
    secretsmanager.assert_no_pending_responses()
print(allowed, sorted({name.split(".")[0] for name in sys.modules} & {"boto3", "botocore"}))
"""


def test_the_deployed_authorizer_serves_its_first_request_through_botocore_without_importing_boto3():
    # Given a key's pointer and record as layout stores them, its secret, and a request it signed now
    from keygate.storage import layout
    from keygate_dev import template
    from tests.support.stack import AGENT_ADDRESS, NONCES_TABLE_NAME, RESOURCE_NAMES, STAGE, TABLE_NAME
    clocks = Clocks(int(datetime.now(UTC).timestamp() * 1000))
    key_id, secret = keys.new_key_id(PREFIX), keys.new_secret()
    record = ApiKeyRecord(key_id=key_id, user_id="alice", label="bot", permissions=["read"], ip_whitelist=[],
                          status=KeyStatus.ACTIVE, created_at=datetime.now(UTC))
    items = [layout.pointer_item(record), layout.record_item(record)]
    # And the requests the authorizer must send for it, as DynamoDB's typed values ("<any>": a time, the nonce)
    expected = {
        "read": {"TableName": TABLE_NAME, "ConsistentRead": True},
        "keys": [layout.pointer_key(key_id), layout.key(layout.user_pk("alice"), layout.key_sk(key_id))],
        "secret": {"SecretId": "<any>"},
        "nonce": {"TableName": NONCES_TABLE_NAME,
                  "Item": {"pk": {"S": "<any>"}, "expires_at_ms": {"N": "<any>"}, "expires_ttl": {"N": "<any>"},
                           "writer": {"S": "<any>"}},
                  "ConditionExpression": "<any>", "ExpressionAttributeValues": {":now": {"N": "<any>"}},
                  "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
        "last_use": {"TableName": TABLE_NAME, "Key": layout.usage_key("alice", key_id), "UpdateExpression": "<any>",
                     "ConditionExpression": "<any>", "ExpressionAttributeNames": {"#type": "type"},
                     "ExpressionAttributeValues": {":now": {"S": "<any>"}, ":cutoff": {"S": "<any>"},
                                                   ":type": {"S": "usage"}}}}
    parameters = {**template.parameter_defaults(), "Stage": STAGE, "ExchangeAgentAddress": AGENT_ADDRESS,
                  "SessionIssuer": "https://issuer.invalid", "SessionJwksUrl": "https://issuer.invalid/jwks"}
    environment = {**os.environ, **template.function_environment("SignatureAuthorizerFunction", parameters,
                                                                 RESOURCE_NAMES),
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "POWERTOOLS_METRICS_DISABLED": "true"}  # nosec B105
    environment.pop("AWS_ENDPOINT_URL", None)
    # When a fresh interpreter imports the deployed function and serves the request, its AWS calls answered by
    # botocore's Stubber, which checks each request's parameters and order (the real storage adapters, no network)
    output = _run_deployed(STORAGE_CHILD, json.dumps(items), secret,
                           json.dumps(Bot(key_id, secret, clocks).event(resource=SELF)), json.dumps(expected),
                           environment=environment)
    # Then it allows the request, every expected call made, with botocore alone: boto3 is never imported
    # (docs/architecture.md, "Cold start")
    assert output.split("\n")[0] == "Allow ['botocore']"
