"""The bot-facing routes: GET /v1/time (no auth) and GET /v1/trade/api-keys/self (behind the signature)."""

import time

from tests.support.apigw_events import ProxyRequest, proxy_event
from tests.support.bots import BOT_IP
from tests.support.client import call_handler
from tests.support.errors import assert_error

SELF = "/v1/trade/api-keys/self"


def test_server_time_needs_no_auth_and_is_in_milliseconds(client):
    # When anyone asks for the time, without any credential
    before = time.time_ns() // 1_000_000
    response = client.gateway.request("GET", "/v1/time")
    after = time.time_ns() // 1_000_000
    # Then it is the server's clock in ms since the epoch, never cached by a proxy
    assert response.status == 200
    assert set(response.json()) == {"server_time"}
    assert before <= response.json()["server_time"] <= after
    assert response.headers["Cache-Control"] == "no-store"


def test_self_is_its_own_route_not_a_key_id(client):
    assert client.gateway.resource_of("GET", SELF) == SELF
    assert client.gateway.resource_of("PATCH", "/v1/trade/api-keys/kgk_x") == "/v1/trade/api-keys/{api_key}"


def test_a_bot_reads_its_own_key_restrictions(gate):
    # Given a key with a label, permissions, a whitelist and an expiry
    key = gate.create_key(label="grid bot", permissions=["read", "trade"], ip_whitelist=["203.0.113.0/24"],
                          expires_days=30)
    # When the bot signs GET /v1/trade/api-keys/self and sends it through API Gateway and the authorizer
    response = gate.client.gateway.request("GET", SELF, headers=gate.headers(key, "GET", SELF), source_ip=BOT_IP)
    # Then it sees what its key may do, and nothing secret
    assert response.status == 200, response.body
    body = response.json()
    assert {name: body[name] for name in ("api_key", "label", "permissions", "ip_whitelist")} == {
        "api_key": key[0], "label": "grid bot", "permissions": ["read", "trade"], "ip_whitelist": ["203.0.113.0/24"]}
    assert body["expires_at"].endswith("Z") and body["created_at"].endswith("Z")
    assert set(body) == {"api_key", "label", "permissions", "ip_whitelist", "created_at", "expires_at"}
    assert key[1] not in response.body


def test_self_without_a_signature_is_refused_with_the_missing_header_named(client):
    # When a bot calls its route without any X-KG-* header
    response = client.gateway.request("GET", SELF)
    # Then the authorizer (API Gateway invokes it: it declares no identity sources) says which header is missing
    error = assert_error(response, 401, "MISSING_HEADER")
    assert "X-KG-API-KEY" in error["message"]


def _self_with_context(authorizer):
    return call_handler("GetCallingApiKeyFunction", proxy_event(ProxyRequest("GET", SELF), SELF, {}, authorizer))


def test_the_handler_refuses_a_request_without_the_authorizers_context(client):
    assert_error(_self_with_context(None), 401, "UNAUTHORIZED")


def test_self_for_a_key_the_context_does_not_name_is_not_found(gate):
    key = gate.create_key()
    forged_context = {"principalId": "alice", "user_id": "alice", "key_id": key[0][:-1] + "0"}
    assert_error(_self_with_context(forged_context), 404, "KEY_NOT_FOUND")
    other_users = {"principalId": "bob", "user_id": "bob", "key_id": key[0]}
    assert_error(_self_with_context(other_users), 404, "KEY_NOT_FOUND")
