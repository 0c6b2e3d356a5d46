"""PATCH /v1/trade/api-keys/{api_key}: label, permissions and ip_whitelist; `updated_fields` names
only the fields whose value changed."""

from datetime import timedelta

import pytest

from keygate import keys
from keygate.records import AccountState, now_utc
from keygate_dev.events import seed_key
from tests.support.errors import assert_error
from tests.support.stack import layer, onboard, state_snapshot

UPDATED_FIELDS = {"success", "api_key", "updated_fields", "label", "permissions", "ip_whitelist"}
WITHDRAW_ENABLED = {"AllowedPermissions": "read,trade,withdraw"}


@pytest.fixture
def key_id(client, alice):
    created = client.create(label="bot", permissions=["read"], ip_whitelist=["198.51.100.7"])
    assert created.status == 200, created.body
    return created.json()["api_key"]


def _audit_events(client, key_id):
    return [entry["action"] for entry in client.audit(key_id).json()["audit"]]


def test_changing_the_label_answers_the_documented_shape(client, key_id):
    # Given a key labelled "bot"
    # When the label is changed (with surrounding spaces, which are trimmed)
    response = client.update(key_id, label="  grid bot  ")
    # Then only the label is named as updated and the response shows the key's settings now
    assert response.status == 200, response.body
    assert response.json() == {"success": True, "api_key": key_id, "updated_fields": ["label"], "label": "grid bot",
                               "permissions": ["read"], "ip_whitelist": ["198.51.100.7"]}
    # And the list agrees
    assert client.list().json()["keys"][0]["label"] == "grid bot"


def test_changing_everything_names_every_field_sorted(client, key_id):
    updated = client.update(key_id, label="b2", permissions=["trade", "read"], ip_whitelist=["2001:db8::/32"])
    assert set(updated.json()) == UPDATED_FIELDS
    assert updated.json()["updated_fields"] == ["ip_whitelist", "label", "permissions"]
    assert updated.json()["permissions"] == ["read", "trade"]


@pytest.mark.parametrize("body", [
    pytest.param({"label": "bot"}, id="same-label"),
    pytest.param({"label": "  bot\t"}, id="same-label-after-trim"),
    pytest.param({"permissions": ["read"]}, id="same-permissions"),
    pytest.param({"ip_whitelist": ["198.51.100.7/32"]}, id="same-whitelist-after-normalising"),
    pytest.param({"ip_whitelist": ["198.51.100.7", "198.51.100.7"]}, id="duplicate-entries-collapse"),
    pytest.param({"label": "bot", "permissions": ["read"], "ip_whitelist": ["198.51.100.7"]}, id="all-same"),
])
def test_an_update_that_changes_nothing_answers_an_empty_list_and_writes_no_audit(client, key_id, body):
    # Given a key and a change that turns out to change nothing
    # When it is sent
    response = client.update(key_id, **body)
    # Then updated_fields is empty and no key_updated entry is written
    assert response.status == 200, response.body
    assert response.json()["updated_fields"] == []
    assert _audit_events(client, key_id) == ["key_created"]


def test_a_partial_change_names_only_what_changed(client, key_id):
    response = client.update(key_id, label="bot", permissions=["read", "trade"])
    assert response.json()["updated_fields"] == ["permissions"]


def test_an_empty_whitelist_lifts_the_restriction(client, key_id):
    response = client.update(key_id, ip_whitelist=[])
    assert response.json()["updated_fields"] == ["ip_whitelist"]
    assert client.list().json()["keys"][0]["ip_whitelist"] == []


def test_the_update_is_audited_with_what_changed_from_what(client, key_id):
    # Given a key
    # When its label and whitelist change, from a known source IP
    client.call("PATCH", f"/v1/trade/api-keys/{key_id}", body={"label": "new", "ip_whitelist": []},
                source_ip="198.51.100.99")
    # Then the newest audit entry records both changes and where they came from
    newest = client.audit(key_id).json()["audit"][0]
    assert newest["action"] == "key_updated" and newest["ip_address"] == "198.51.100.99"
    assert newest["data"] == {"updated_fields": ["ip_whitelist", "label"], "changes": {
        "label": {"from": "bot", "to": "new"}, "ip_whitelist": {"from": ["198.51.100.7"], "to": []}}}
    assert newest["details"] == "Key updated: IP whitelist [198.51.100.7] -> []; label 'bot' -> 'new'"


def test_a_revoked_key_cannot_be_updated(client, key_id):
    assert client.revoke(key_id).status == 200
    before = state_snapshot()
    error = assert_error(client.update(key_id, label="again"), 400, "KEY_REVOKED")
    assert "revoked" in error["message"]
    assert state_snapshot() == before


def test_an_expired_key_cannot_be_updated(client, alice, identity):
    # Given a key that expired yesterday
    expired = seed_key("alice", at=now_utc() - timedelta(days=2), expires_days=1).api_key
    before = state_snapshot()
    # When its label is changed
    # Then the change is refused and nothing is written
    assert_error(client.update(expired, label="again"), 400, "KEY_EXPIRED")
    assert state_snapshot() == before


@pytest.mark.parametrize("key_id_text", [
    pytest.param(keys.new_key_id("kgk_"), id="well-formed-unknown"),
    pytest.param("kgk_short", id="too-short"),
    pytest.param("all", id="the-word-all"),
])
def test_an_unknown_key_is_not_found(client, alice, key_id_text):
    assert_error(client.update(key_id_text, label="x"), 404, "KEY_NOT_FOUND")


@pytest.mark.parametrize("raw_body", [None, "", "  "], ids=["none", "empty", "whitespace"])
def test_an_update_needs_a_json_object(client, key_id, raw_body):
    response = client.call("PATCH", f"/v1/trade/api-keys/{key_id}", raw_body=raw_body)
    assert_error(response, 400, "INVALID_REQUEST")


def test_an_update_of_no_field_changes_nothing_and_spends_its_token(client, key_id):
    # Given a key, and a step-up token (GaiaEx: "all fields optional", so `{}` is a valid update)
    token = client.step_up("alice", "api_keys:update")
    before = client.list("alice").json()["keys"]
    # When an update names no field
    response = client.call("PATCH", f"/v1/trade/api-keys/{key_id}", raw_body="{}", step_up=token)
    # Then it answers that nothing changed, and nothing did
    assert response.status == 200 and response.json()["success"] is True, response.body
    assert response.json()["updated_fields"] == []
    assert client.list("alice").json()["keys"] == before
    # And the token is spent like any other update's
    again = client.call("PATCH", f"/v1/trade/api-keys/{key_id}", body={"label": "x"}, step_up=token)
    assert_error(again, 403, "STEP_UP_REQUIRED")


def test_adding_trade_needs_the_trading_handshake(client, identity):
    # Given a read key of a user who has not traded yet
    onboard("carol", trade=False)
    key_id = seed_key("carol").api_key
    before = state_snapshot()
    # When trade is added
    # Then it is refused and nothing changes
    assert_error(client.update(key_id, user="carol", permissions=["read", "trade"]), 403,
                 "TRADING_HANDSHAKE_REQUIRED")
    assert state_snapshot() == before
    # And her other changes still work
    assert client.update(key_id, user="carol", label="reader").status == 200


def test_withdraw_is_refused_unless_the_stack_allows_it(client, key_id):
    assert_error(client.update(key_id, permissions=["read", "withdraw"]), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("stack_env", [WITHDRAW_ENABLED], indirect=True)
def test_withdraw_keys_keep_a_non_empty_whitelist(client, alice):
    # Given a withdraw-enabled stack and an unrestricted read key
    key_id = client.create().json()["api_key"]
    # When withdraw is added without a whitelist
    # Then it is refused
    assert_error(client.update(key_id, permissions=["read", "withdraw"]), 400, "INVALID_REQUEST")
    # And together with a whitelist it is accepted
    accepted = client.update(key_id, permissions=["read", "withdraw"], ip_whitelist=["198.51.100.7"])
    assert accepted.status == 200, accepted.body
    assert accepted.json()["updated_fields"] == ["ip_whitelist", "permissions"]
    # And the whitelist of a withdraw key cannot be lifted afterwards
    error = assert_error(client.update(key_id, ip_whitelist=[]), 400, "INVALID_REQUEST")
    assert "IP whitelist" in error["message"]
    # Nor widened beyond a /24
    error = assert_error(client.update(key_id, ip_whitelist=["198.0.0.0/8"]), 400, "INVALID_REQUEST")
    assert "/24" in error["message"]


def test_update_needs_a_session(client, key_id):
    assert_error(client.call("PATCH", f"/v1/trade/api-keys/{key_id}", user=None, body={"label": "x"}),
                 401, "UNAUTHORIZED")


def test_adding_a_permission_after_the_account_lost_its_onboarding_is_refused(client, identity):
    # Given a read key of a user whose account record no longer says onboarding is complete
    onboard("carol")
    key_id = seed_key("carol").api_key
    layer().keys.put_account_state("carol", AccountState())
    before = state_snapshot()
    # When trade is added
    # Then it is refused with ONBOARDING_REQUIRED and nothing changes
    assert_error(client.update(key_id, user="carol", permissions=["read", "trade"]), 403, "ONBOARDING_REQUIRED")
    assert state_snapshot() == before
