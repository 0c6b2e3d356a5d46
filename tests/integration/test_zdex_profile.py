"""ZDEX's routes (/v1/api-keys): its names, its scopes, its required label and its `ok`, on the same keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keygate import keys
from tests.support.errors import assert_error
from tests.support.profiles import ZDEX
from tests.support.stack import ZDEX_STYLE_STACK, onboard, secret_value, state_snapshot, zdex_time

CREATED_FIELDS = {"ok", "id", "apiKey", "secretKey", "label", "permissions", "message", "ipWhitelist", "keyPrefix",
                  "createdAt", "expiresAt", "keyType"}
LISTED_FIELDS = {"id", "label", "keyPrefix", "permissions", "ipWhitelist", "isActive", "lastUsedAt", "createdAt",
                 "expiresAt", "revokedAt", "keyType"}
WITHDRAW_ENABLED = {"AllowedPermissions": "read,trade,withdraw"}


def create(client, body, user="alice"):
    return client.call("POST", "/v1/api-keys", user=user, body=body)


def test_create_answers_zdex_fields_and_the_key_is_addressed_by_an_opaque_id(client, alice):
    # Given an onboarded user
    # When she creates a key as ZDEX's doc shows
    response = create(client, {"label": "My Trading Bot", "permissions": ["READ_ONLY", "TRADE"],
                               "ipWhitelist": ["203.0.113.50"]})
    # Then she gets ok, the documented fields (and KeyGate's beside them), the secret once
    assert response.status == 200, response.status
    created = response.json()
    assert set(created) == CREATED_FIELDS and created["ok"] is True
    assert (created["label"], created["permissions"], created["ipWhitelist"]) == (
        "My Trading Bot", ["READ_ONLY", "TRADE"], ["203.0.113.50"])
    assert created["message"] == "Save your secret key now. It will not be shown again."
    assert keys.is_well_formed_key_id(created["apiKey"], "kgk_")
    assert secret_value(created["apiKey"]) == created["secretKey"]
    # And the id is a handle of its own: neither the key nor any part of it
    assert keys.is_well_formed_handle(created["id"])
    assert created["id"] not in created["apiKey"] and created["apiKey"][4:14] not in created["id"]
    zdex_time(created["createdAt"])
    assert created["expiresAt"] is None


def test_the_list_shows_the_prefix_never_the_key(client, alice):
    # Given a key created on ZDEX's route
    created = create(client, {"label": "bot"}).json()
    # When ZDEX's list is read
    listed = client.call("GET", "/v1/api-keys").json()
    # Then it shows the key's id and prefix, with ok, and nowhere the key or its secret
    assert listed["ok"] is True
    (view,) = listed["keys"]
    assert set(view) == LISTED_FIELDS
    assert (view["id"], view["keyPrefix"], view["permissions"], view["isActive"]) == (
        created["id"], created["apiKey"][:10], ["READ_ONLY"], True)
    text = str(listed)
    assert created["apiKey"] not in text and created["secretKey"] not in text


@pytest.mark.parametrize(("body", "message_part"), [
    pytest.param({}, "label", id="no-label"),
    pytest.param({"label": ""}, "label", id="empty-label"),
    pytest.param({"label": "   "}, "label", id="blank-label"),
    pytest.param({"label": "x" * 51}, "50", id="51-characters"),
    pytest.param({"label": "bot", "permissions": ["READ"]}, "permissions", id="unknown-scope"),
    pytest.param({"label": "bot", "permissions": ["read"]}, "permissions", id="gaiaex-spelling"),
    pytest.param({"label": "bot", "permissions": ["TRADE", "TRADE"]}, "twice", id="duplicate-scope"),
    pytest.param({"label": "bot", "permissions": []}, "permission", id="no-scope"),
    pytest.param({"label": "bot", "ipWhitelist": ["10.1.2.3/8"]}, "10.0.0.0/8", id="host-bits"),
    pytest.param({"label": "bot", "ipWhitelist": ["not-an-ip"]}, "ipWhitelist", id="not-an-ip"),
    pytest.param({"label": "bot", "ip_whitelist": []}, "ip_whitelist", id="gaiaex-field-name"),
    pytest.param({"label": "bot", "expiresAt": "2020-01-01T00:00:00Z"}, "future", id="expiry-in-the-past"),
    pytest.param({"label": "bot", "expiresAt": "2099-01-01T00:00:00Z"}, "10 years", id="expiry-too-far"),
    pytest.param({"label": "bot", "expiresAt": "2030-01-01T00:00:00"}, "expiresAt", id="expiry-without-zone"),
    pytest.param({"label": "bot", "expiresAt": "tomorrow"}, "expiresAt", id="expiry-not-a-date"),
    pytest.param({"label": "bot", "permissions": ["WITHDRAW"], "ipWhitelist": ["203.0.113.7"]}, "withdraw",
                 id="withdraw-not-enabled"),
])
def test_a_create_that_breaks_zdex_rules_is_a_400_with_ok_false_and_changes_nothing(client, alice, body,
                                                                                   message_part):
    before = state_snapshot()
    response = create(client, body)
    error = assert_error(response, 400, "INVALID_REQUEST")
    assert message_part in error["message"]
    assert state_snapshot() == before


def test_a_50_character_label_is_fine(client, alice):
    assert create(client, {"label": "x" * 50}).json()["label"] == "x" * 50


def test_an_expiry_in_the_future_is_kept_as_sent(client, alice):
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = create(client, {"label": "bot", "expiresAt": expires_at.isoformat().replace("+00:00", "Z")}).json()
    assert zdex_time(created["expiresAt"]) == expires_at


@pytest.mark.parametrize("stack_env", [WITHDRAW_ENABLED], indirect=True)
def test_withdraw_is_full_access_and_keeps_requiring_a_whitelist(client, alice, stack_env):
    # Given a stack with withdraw enabled
    # When a WITHDRAW key is asked for without a whitelist, Then it is refused
    assert_error(create(client, {"label": "w", "permissions": ["WITHDRAW"]}), 400, "INVALID_REQUEST")
    # When with one, Then the key holds read, trade and withdraw
    created = create(client, {"label": "w", "permissions": ["WITHDRAW"], "ipWhitelist": ["203.0.113.7"]}).json()
    assert created["permissions"] == ["READ_ONLY", "TRADE", "WITHDRAW"]
    gaiaex_view = client.list().json()["keys"][0]
    assert gaiaex_view["permissions"] == ["read", "trade", "withdraw"]
    # And lifting its whitelist is refused
    update = client.call("PATCH", f"/v1/api-keys/{created['id']}", body={"ipWhitelist": []})
    assert_error(update, 400, "INVALID_REQUEST")


def test_patch_changes_only_the_fields_sent(client, alice):
    # Given a key
    created = create(client, {"label": "bot", "permissions": ["READ_ONLY", "TRADE"],
                              "ipWhitelist": ["203.0.113.50"]}).json()
    # When only its label and whitelist are sent, ZDEX's names
    response = client.call("PATCH", f"/v1/api-keys/{created['id']}", body={"label": "Updated Name", "ipWhitelist": []})
    # Then those change, and the answer names them as ZDEX does
    assert response.status == 200, response.body
    assert response.json() == {"ok": True, "id": created["id"], "updatedFields": ["ipWhitelist", "label"],
                               "label": "Updated Name", "permissions": ["READ_ONLY", "TRADE"], "ipWhitelist": []}


def test_delete_revokes_for_good(client, alice):
    created = create(client, {"label": "bot"}).json()
    response = client.call("DELETE", f"/v1/api-keys/{created['id']}")
    assert response.status == 200
    assert response.json()["ok"] is True and response.json()["id"] == created["id"]
    assert response.json()["message"] == "API key revoked"
    (view,) = client.call("GET", "/v1/api-keys").json()["keys"]
    assert view["isActive"] is False and view["revokedAt"]
    assert_error(client.call("PATCH", f"/v1/api-keys/{created['id']}", body={"label": "again"}), 400, "KEY_REVOKED")


@pytest.mark.parametrize("reference", ["kgk_not-a-handle", "c" + "0" * 24, "the-api-key"],
                         ids=["a-key-id", "unknown-handle", "garbage"])
def test_an_id_that_is_not_one_of_the_callers_handles_is_not_found(client, alice, reference):
    created = create(client, {"label": "bot"}).json()
    if reference == "the-api-key":
        reference = created["apiKey"]  # the key itself is not its id
    assert_error(client.call("DELETE", f"/v1/api-keys/{reference}"), 404, "KEY_NOT_FOUND")


def test_one_key_two_profiles(client, alice):
    # A key created on GaiaEx's route is ZDEX's too, and the other way round
    gaiaex_key = client.create(label="from gaiaex").json()["api_key"]
    zdex_key = create(client, {"label": "from zdex"}).json()["apiKey"]
    assert {view["keyPrefix"] for view in client.call("GET", "/v1/api-keys").json()["keys"]} == {
        gaiaex_key[:10], zdex_key[:10]}
    assert {view["api_key"] for view in client.list().json()["keys"]} == {gaiaex_key, zdex_key}


# ------------------------------------------------------------ StepUpRequired
@pytest.mark.parametrize("stack_env", [ZDEX_STYLE_STACK], indirect=True)
def test_without_step_up_a_session_alone_changes_keys_on_both_profiles(client, stack_env):
    # Given a ZDEX-style stack (StepUpRequired=false) and an onboarded user
    onboard("alice")
    # When she creates, updates and revokes keys with her session only, on both profiles
    zdex = client.call("POST", "/v1/api-keys", body={"label": "bot"}, step_up=None)
    gaiaex = client.call("POST", "/v1/trade/api-keys", body={"label": "bot"}, step_up=None)
    # Then each works
    assert (zdex.status, gaiaex.status) == (200, 200)
    zdex_id, gaiaex_key = zdex.json()["id"], gaiaex.json()["api_key"]
    assert client.call("PATCH", f"/v1/api-keys/{zdex_id}", body={"label": "b"}, step_up=None).status == 200
    assert client.call("DELETE", f"/v1/trade/api-keys/{gaiaex_key}", step_up=None).status == 200
    assert client.call("DELETE", "/v1/trade/api-keys/all", step_up=None).status == 200
    # And a header sent anyway is ignored, whatever it holds
    ignored = client.call("POST", "/v1/api-keys", body={"label": "bot"}, step_up="not-a-token")
    assert ignored.status == 200


@pytest.mark.parametrize("profile_path", ["/v1/api-keys", "/v1/trade/api-keys"])
def test_by_default_both_profiles_need_the_step_up_token(client, alice, profile_path):
    body = {"label": "bot"}
    assert_error(client.call("POST", profile_path, body=body, step_up=None), 403, "STEP_UP_REQUIRED")


@pytest.mark.parametrize("stack_env", [ZDEX_STYLE_STACK], indirect=True)
def test_the_zdex_style_limit_is_five(client, stack_env):
    onboard("alice")
    for number in range(5):
        assert create(client, {"label": f"bot {number}"}).status == 200
    assert_error(create(client, {"label": "sixth"}), 400, "KEY_LIMIT_REACHED")


def test_zdex_keys_are_the_same_keys_to_the_unknown_check(client, alice):
    # A well-formed handle of nobody's key is 404 on every ZDEX route that names one
    unknown = ZDEX.unknown_ref()
    assert_error(client.call("PATCH", ZDEX.key_path(unknown), body={"label": "x"}), 404, "KEY_NOT_FOUND")
    assert_error(client.call("DELETE", ZDEX.key_path(unknown)), 404, "KEY_NOT_FOUND")
