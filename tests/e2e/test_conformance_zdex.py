"""ZDEX's published API-key document, replayed against the local server on the ZDEX-style deployment (issue 12).

Every example request of "ZDEX — API Keys" (seed 000_db618422e55404f9) is copied, with its documented
response, into tests/e2e/fixtures/conformance/zdex.json. Each test replays one as a ZDEX client would send it
(a bearer token only), its placeholders filled in at run time (a session token from the server's identity
provider, the id of a key the test created), and checks every documented field with its type and the
documented values. The document shows no status and no error: a success is any 2xx with `"ok": true`, and a
refusal KeyGate's status with `{"ok": false, "error": {"code", "message"}}`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.conformance import (
    assert_documented_response,
    assert_documented_values,
    documented_timestamps,
    load_doc,
    replay,
    use_key,
)
from tests.support.errors import error_of
from tests.support.local_server import AppUser, LocalServer
from tests.support.stack import unique_user

DOC = load_doc("zdex")
EXAMPLES = DOC["examples"]
KEYED = ("update", "revoke")  # the examples whose path names a key (:id)
ACTIVE_KEY_LIMIT = 5


def run_time(name: str) -> list[str]:
    return EXAMPLES[name]["response"]["run_time_values"]


def shown(name: str) -> dict:
    return EXAMPLES[name]["response"]["body"]


@pytest.fixture
def app(zdex_style_server: LocalServer) -> AppUser:
    """A user who completed onboarding and the trading handshake (KeyGate's prerequisites)."""
    return AppUser(zdex_style_server, unique_user())


def create_key(app: AppUser, body: dict | None = None) -> dict:
    response = replay(app, DOC, "create", **({} if body is None else {"body": body}))
    assert response.ok and response.json()["ok"] is True, response.text
    return response.json()


def listed(app: AppUser) -> dict[str, dict]:
    response = replay(app, DOC, "list")
    assert response.ok and response.json()["ok"] is True, response.text
    return {view["id"]: view for view in response.json()["keys"]}


def assert_refused(response, status: int, code: str) -> dict:
    """A refusal with this status, in ZDEX's error shape (`"ok": false` beside the error object)."""
    assert response.status_code == status, (response.status_code, response.text)
    error = error_of(response.json())
    assert error["code"] == code, error
    return error


# ------------------------------------------------------------------ create
def test_create_answers_the_documented_example(app: AppUser):
    # Given a user of the ZDEX-style deployment
    # When the client sends the doc's example create request, with its bearer token only
    response = replay(app, DOC, "create")
    # Then it answers with ok and every documented field, typed and valued as documented
    body = assert_documented_response(response, EXAMPLES["create"])
    assert_documented_values(body, shown("create"), run_time("create"))
    # And the key, its secret and its id are three different strings
    assert len({body["id"], body["apiKey"], body["secretKey"]}) == 3


def test_create_without_optional_fields_gets_the_documented_defaults(app: AppUser):
    # Given the doc's rules: permissions default to ["READ_ONLY"], no whitelist means all IPs
    rules = EXAMPLES["create"]["rules"]
    assert 'Default: ["READ_ONLY"]' in rules["default_permissions"] and "Empty = all IPs" in rules["no_whitelist"]
    # When the client sends a label only
    created = assert_documented_response(replay(app, DOC, "create", body={"label": "My Trading Bot"}),
                                         EXAMPLES["create"])
    # Then the key is read-only and unrestricted
    assert created["permissions"] == ["READ_ONLY"]
    assert listed(app)[created["id"]]["ipWhitelist"] == []


def test_withdraw_is_full_access(app: AppUser):
    # Given the doc's WITHDRAW scope ("Full access including withdrawals"), enabled on this deployment
    [withdraw] = [scope for scope in DOC["permissions"] if scope["permission"] == "WITHDRAW"]
    assert withdraw["access"] == "Full access including withdrawals"
    # When the client asks for a WITHDRAW key restricted to one address
    response = replay(app, DOC, "create", body={"label": "treasury", "permissions": ["WITHDRAW"],
                                                "ipWhitelist": ["203.0.113.50"]})
    # Then the key holds every scope
    body = assert_documented_response(response, EXAMPLES["create"])
    assert body["permissions"] == [scope["permission"] for scope in DOC["permissions"]]


def test_withdraw_keeps_requiring_an_ip_whitelist(app: AppUser):
    # Given KeyGate's rule beside the doc (issue 12): a key that can withdraw needs an IP whitelist, where the
    # doc says an empty whitelist allows all IPs
    # When the client asks for a WITHDRAW key without one
    response = replay(app, DOC, "create", body={"label": "treasury", "permissions": ["WITHDRAW"]})
    # Then it is refused, and no key is made
    error = assert_refused(response, 400, "INVALID_REQUEST")
    assert "whitelist" in error["message"]
    assert listed(app) == {}


def test_a_key_may_expire(app: AppUser):
    # Given the doc's "Keys can optionally have an expiration date" (KeyGate's field: expiresAt)
    assert "optionally have an expiration date" in DOC["limits"]["rules"][1]
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    # When the client creates a key with one
    response = replay(app, DOC, "create", body={"label": "My Trading Bot",
                                                "expiresAt": expires_at.isoformat().replace("+00:00", "Z")})
    # Then the key expires then, and is active until then
    created = assert_documented_response(response, EXAMPLES["create"])
    view = listed(app)[created["id"]]
    assert datetime.fromisoformat(view["expiresAt"]) == expires_at and view["isActive"] is True


# -------------------------------------------------------------------- list
def test_list_answers_the_documented_example(app: AppUser):
    # Given the doc's example key
    created = create_key(app)
    # When the client sends the doc's list request
    response = replay(app, DOC, "list")
    # Then it answers with ok and `keys`, each with every documented field, typed and valued as documented
    body = assert_documented_response(response, EXAMPLES["list"])
    [view] = body["keys"]
    [doc_view] = shown("list")["keys"]
    assert_documented_values(view, doc_view, run_time("list"))
    assert view["id"] == created["id"] and view["lastUsedAt"] is None
    # And the key prefix is the beginning of the key, as the doc's zdex_a1b2c3d4 is of zdex_a1b2c3d4e5f6789...
    assert shown("create")["apiKey"].startswith(doc_view["keyPrefix"])
    assert created["apiKey"].startswith(view["keyPrefix"]) and len(view["keyPrefix"]) < len(created["apiKey"])
    # And neither the key nor its secret is listed
    assert created["apiKey"] not in response.text and created["secretKey"] not in response.text


def test_timestamps_are_written_as_the_doc_writes_them(app: AppUser, zdex_style_server: LocalServer):
    # Given a key restricted to this machine that a bot has used once, and the doc's timestamp format
    pattern = re.compile(DOC["timestamp_pattern"])
    assert all(pattern.match(stamp) for stamp in documented_timestamps(shown("list"), EXAMPLES["list"]))
    created = create_key(app, {"label": "bot", "ipWhitelist": ["127.0.0.1"]})
    assert use_key(zdex_style_server, created["apiKey"], created["secretKey"]).status_code == 200
    # When the client lists its keys
    body = assert_documented_response(replay(app, DOC, "list"), EXAMPLES["list"])
    # Then createdAt and lastUsedAt are timestamps written as the doc writes them
    written = documented_timestamps(body, EXAMPLES["list"])
    assert len(written) == 2 and [stamp for stamp in written if not pattern.match(stamp)] == []


# ------------------------------------------------------------------ update
def test_update_replays_the_documented_example(app: AppUser):
    # Given the doc's example key
    created = create_key(app)
    # When the client sends the doc's update request for it
    response = replay(app, DOC, "update", key=created["id"])
    # Then it answers with ok
    assert_documented_response(response, EXAMPLES["update"])
    # And the key has the label, permissions and (empty) whitelist sent
    view = listed(app)[created["id"]]
    sent = EXAMPLES["update"]["request"]["body"]
    assert {name: view[name] for name in sent} == sent


@pytest.mark.parametrize("sent", [{"label": "Updated Name"}, {"permissions": ["READ_ONLY"]}, {"ipWhitelist": []}],
                         ids=["label", "permissions", "ipWhitelist"])
def test_update_changes_only_the_fields_sent(app: AppUser, sent: dict):
    # Given the doc's example key, and "All fields are optional. Only provided fields are updated."
    assert "Only provided fields are updated" in EXAMPLES["update"]["rules"]["partial"]
    created = create_key(app)
    before = listed(app)[created["id"]]
    # When the client sends one of the doc's fields
    response = replay(app, DOC, "update", key=created["id"], body=sent)
    # Then that field changes, and nothing else
    assert_documented_response(response, EXAMPLES["update"])
    assert listed(app)[created["id"]] == {**before, **sent}


def test_an_update_that_sends_no_field_is_accepted(app: AppUser):
    # Given the doc's example key
    created = create_key(app)
    before = listed(app)[created["id"]]
    # When the client sends an update with no field
    response = replay(app, DOC, "update", key=created["id"], body={})
    # Then it answers with ok, and nothing changed
    assert_documented_response(response, EXAMPLES["update"])
    assert listed(app)[created["id"]] == before


# ------------------------------------------------------------------ revoke
def test_revoke_replays_the_documented_example_and_is_permanent(app: AppUser):
    # Given the doc's example key
    created = create_key(app)
    # When the client sends the doc's revoke request for it
    response = replay(app, DOC, "revoke", key=created["id"])
    # Then it answers with ok, and the key is listed as inactive
    assert_documented_response(response, EXAMPLES["revoke"])
    assert listed(app)[created["id"]]["isActive"] is False
    # And "Revoked keys are permanently deactivated and cannot be restored."
    assert "cannot be restored" in EXAMPLES["revoke"]["rules"]["permanent"]
    for body in ({"isActive": True}, {"label": "restored"}):
        refused = replay(app, DOC, "update", key=created["id"], body=body)
        assert_refused(refused, 400, "KEY_REVOKED" if "label" in body else "INVALID_REQUEST")
    assert listed(app)[created["id"]]["isActive"] is False


# ------------------------------------------------------------------ limits
def test_at_most_five_keys_are_active(app: AppUser):
    # Given the doc's "Maximum 5 active API keys per account", and a user with five
    assert DOC["limits"]["rules"][0] == f"Maximum {ACTIVE_KEY_LIMIT} active API keys per account"
    keys = [create_key(app, {"label": f"bot {number}"}) for number in range(ACTIVE_KEY_LIMIT)]
    # When the client asks for a sixth
    refused = replay(app, DOC, "create")
    # Then it is refused, and five keys remain
    assert_refused(refused, 400, "KEY_LIMIT_REACHED")
    assert len(listed(app)) == ACTIVE_KEY_LIMIT
    # And once one is revoked, the client may create another: only active keys count
    assert replay(app, DOC, "revoke", key=keys[0]["id"]).ok
    assert_documented_response(replay(app, DOC, "create"), EXAMPLES["create"])


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(("body", "field"), [
    pytest.param({"permissions": ["READ_ONLY"]}, "label", id="no-label"),
    pytest.param({"label": ""}, "label", id="empty-label"),
    pytest.param({"label": "x" * 51}, "label", id="51-characters"),
    pytest.param({"label": "bot", "permissions": ["ADMIN"]}, "permissions", id="unknown-permission"),
    pytest.param({"label": "bot", "permissions": ["read"]}, "permissions", id="gaiaex-spelling"),
    pytest.param({"label": "bot", "permissions": "READ_ONLY"}, "permissions", id="not-an-array"),
    pytest.param({"label": "bot", "ipWhitelist": ["not-an-ip"]}, "ipWhitelist", id="not-an-ip"),
    pytest.param({"label": "bot", "ipWhitelist": ["203.0.113.0/33"]}, "ipWhitelist", id="prefix-too-long"),
])
def test_a_create_that_breaks_the_documented_fields_is_refused(app: AppUser, body: dict, field: str):
    # Given the doc's create fields: a required label of at most 50 characters, READ_ONLY / TRADE / WITHDRAW,
    # IP addresses
    assert EXAMPLES["create"]["rules"]["label"] == "A descriptive name (max 50 chars)"
    # When the client sends a body that breaks one of them
    response = replay(app, DOC, "create", body=body)
    # Then it is refused with 400 and ok false, naming the field, and no key is made
    error = assert_refused(response, 400, "INVALID_REQUEST")
    assert field in error["message"]
    assert listed(app) == {}


def test_a_label_of_50_characters_is_fine_and_51_is_not_on_update_either(app: AppUser):
    # Given a key whose label has the doc's maximum of 50 characters
    created = create_key(app, {"label": "x" * 50})
    assert created["label"] == "x" * 50
    # When the client renames it to 51 characters, Then it is refused and the label is unchanged
    refused = replay(app, DOC, "update", key=created["id"], body={"label": "y" * 51})
    assert "label" in assert_refused(refused, 400, "INVALID_REQUEST")["message"]
    assert listed(app)[created["id"]]["label"] == "x" * 50


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_route_without_a_bearer_token_is_401(app: AppUser, name: str):
    # Given a key of the user
    created = create_key(app, {"label": "mine"})
    # When the doc's request is sent without its Authorization header
    response = replay(app, DOC, name, key=created["id"] if name in KEYED else None, without=("Authorization",))
    # Then it is refused with 401 and ok false, and the key is untouched
    assert_refused(response, 401, "UNAUTHORIZED")
    view = listed(app)[created["id"]]
    assert (view["isActive"], view["label"], view["permissions"]) == (True, "mine", ["READ_ONLY"])


@pytest.mark.parametrize("name", ["create", "list"])
def test_an_expired_bearer_token_is_401(app: AppUser, zdex_style_server: LocalServer, name: str):
    # Given a session token that expired an hour ago
    expired = zdex_style_server.identity.session_token(app.user, now=time.time() - 7200)
    # When the doc's request is sent with it
    response = replay(app, DOC, name, headers={"Authorization": f"Bearer {expired}"})
    # Then it is refused with 401 and ok false, its code saying the session expired (issue 15)
    assert_refused(response, 401, "SESSION_EXPIRED")


def test_the_bearer_token_alone_is_enough_and_a_step_up_header_is_ignored(app: AppUser):
    # Given the doc's requests carry no step-up header (StepUpRequired=false on this deployment)
    assert all("X-PASSKEY-TOKEN" not in example["request"]["headers"] for example in EXAMPLES.values())
    # When a client sends one anyway, holding nothing valid
    response = replay(app, DOC, "create", headers={"X-PASSKEY-TOKEN": "not-a-token"})
    # Then it is ignored: the key is created
    created = assert_documented_response(response, EXAMPLES["create"])
    assert list(listed(app)) == [created["id"]]


def test_without_the_trading_handshake_no_key_may_trade(zdex_style_server: LocalServer):
    # Given a user who completed onboarding but never traded (KeyGate's prerequisite, the same on both profiles)
    app = AppUser(zdex_style_server, unique_user(), onboard="no-trade")
    # When the client asks for the doc's example key (READ_ONLY and TRADE)
    response = replay(app, DOC, "create")
    # Then it is refused with 403 and ok false
    assert_refused(response, 403, "TRADING_HANDSHAKE_REQUIRED")
    # But a read-only key is issued
    created = create_key(app, {"label": "reader"})
    assert created["permissions"] == ["READ_ONLY"]


def test_without_onboarding_no_key_is_issued(zdex_style_server: LocalServer):
    # Given a user who never completed onboarding
    app = AppUser(zdex_style_server, unique_user(), onboard=None)
    # When the client asks even for a read-only key, Then it is refused with 403 and ok false
    assert_refused(replay(app, DOC, "create", body={"label": "reader"}), 403, "ONBOARDING_REQUIRED")
    assert listed(app) == {}
