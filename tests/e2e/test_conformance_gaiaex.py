"""GaiaEx's published API-key document, replayed against the local server on the stack's defaults (issue 12).

Every example request of "GaiaEx — API Key Creation & Management" (seed 001_d23c458c620df161) is copied,
with its documented response, into tests/e2e/fixtures/conformance/gaiaex.json. Each test replays one as the
app would send it, its placeholders filled in at run time (tokens from the server's identity provider, the
api_key of a key the test created), and checks the documented status, every documented field with its type,
and the documented values. The error cases are the document's error table and prerequisites.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
import requests

from keygate_client import RequestsAuth, ServerClock
from tests.support.conformance import (
    assert_documented_response,
    assert_documented_values,
    documented_timestamps,
    has_type,
    load_doc,
    replay,
    use_key,
)
from tests.support.errors import error_of
from tests.support.local_server import HTTP_TIMEOUT_SECONDS, AppUser, LocalServer
from tests.support.stack import unique_user

DOC = load_doc("gaiaex")
EXAMPLES = DOC["examples"]
KEYED = ("update", "revoke", "audit")  # the examples whose path names a key


def documented_status(reason: str) -> int:
    """The status the doc's error table gives for a reason (a fragment of its text)."""
    [status] = [row["code"] for row in DOC["errors"]["table"] if reason in row["reason"]]
    return status


def documented_key_limit() -> int:
    return int(re.search(r"max (\d+) keys per user", DOC["errors"]["table"][0]["reason"]).group(1))


def run_time(name: str) -> list[str]:
    return EXAMPLES[name]["response"]["run_time_values"]


def shown(name: str) -> dict:
    return EXAMPLES[name]["response"]["body"]


@pytest.fixture
def app(default_server: LocalServer) -> AppUser:
    """A user of the app who completed onboarding and the trading handshake (the doc's two prerequisites)."""
    return AppUser(default_server, unique_user())


def create_example_key(app: AppUser, body: dict | None = None) -> dict:
    response = replay(app, DOC, "create", **({} if body is None else {"body": body}))
    assert response.status_code == 200, response.text
    return response.json()


def listed(app: AppUser) -> dict[str, dict]:
    response = replay(app, DOC, "list")
    assert response.status_code == 200, response.text
    return {view["api_key"]: view for view in response.json()["keys"]}


def assert_refused(response, status: int, code: str) -> dict:
    """A refusal with the documented status, in the error shape every KeyGate refusal has."""
    assert response.status_code == status, (response.status_code, response.text)
    error = error_of(response.json())
    assert error["code"] == code, error
    return error


# ------------------------------------------------------------------ create
def test_create_answers_the_documented_example(app: AppUser):
    # Given a user who meets both prerequisites
    # When the app sends the doc's example create request
    response = replay(app, DOC, "create")
    # Then it answers 200 with every documented field, typed as documented, and the documented values
    body = assert_documented_response(response, EXAMPLES["create"])
    assert_documented_values(body, shown("create"), run_time("create"))
    # And the key expires the 90 days after its creation that the doc's example shows
    doc_lifetime = datetime.fromisoformat(shown("create")["expires_at"]) - \
        datetime.fromisoformat(shown("create")["created_at"])
    assert datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["created_at"]) == doc_lifetime
    # And the secret is in this response, beside the key
    assert body["api_secret"] and body["api_secret"] != body["api_key"]


def test_create_without_optional_fields_gets_the_documented_defaults(app: AppUser):
    # Given the doc's rules for a create body without optional fields
    rules = EXAMPLES["create"]["rules"]
    assert 'Defaults to ["read"]' in rules["default_permissions"] and "Omit" in rules["no_expiry"]
    # When the app creates a key with an empty body
    response = replay(app, DOC, "create", body={})
    # Then the key can read, from any address, and never expires
    body = assert_documented_response(response, EXAMPLES["create"])
    assert (body["permissions"], body["ip_whitelist"], body["expires_at"]) == (["read"], [], None)


# -------------------------------------------------------------------- list
def test_list_answers_the_documented_example(app: AppUser):
    # Given the doc's example key
    created = create_example_key(app)
    # When the app sends the doc's list request
    response = replay(app, DOC, "list")
    # Then it answers 200 with `keys`, each with every documented field, typed and valued as documented
    body = assert_documented_response(response, EXAMPLES["list"])
    [view] = body["keys"]
    [doc_view] = shown("list")["keys"]
    assert_documented_values(view, doc_view, run_time("list"))
    assert (view["api_key"], view["created_at"], view["expires_at"]) == (
        created["api_key"], created["created_at"], created["expires_at"])
    # And a key nobody used yet has no last use
    assert view["last_used_at"] is None
    # And "Secrets are never included in this response."
    assert "Secrets are never included" in EXAMPLES["list"]["rules"]["no_secrets"]
    assert "api_secret" not in view and created["api_secret"] not in response.text


def test_a_key_a_bot_used_shows_its_last_use_and_the_audit_log_does_not_record_calls(app: AppUser,
                                                                                     default_server: LocalServer):
    # Given a read key for this machine, used once by a bot that signs its request
    created = create_example_key(app, {"label": "bot", "permissions": ["read"], "ip_whitelist": ["127.0.0.1"]})
    assert use_key(default_server, created["api_key"], created["api_secret"]).status_code == 200
    # When the app lists its keys
    view = listed(app)[created["api_key"]]
    # Then last_used_at is a timestamp, the type the doc's example shows
    assert EXAMPLES["list"]["response"]["item_fields"]["keys"]["last_used_at"] == "iso8601|null"
    assert has_type(view["last_used_at"], "iso8601"), view
    # And the audit log holds the key's creation only: "Does NOT log per-request API call traffic."
    assert "Does NOT log per-request" in EXAMPLES["audit"]["rules"]["lifecycle_only"]
    audit = replay(app, DOC, "audit", key=created["api_key"]).json()
    assert [entry["action"] for entry in audit["audit"]] == ["key_created"]


def test_a_bot_cannot_issue_keys_with_its_own_key(app: AppUser, default_server: LocalServer):
    # Given a bot holding a key ("bots cannot self-issue API keys")
    assert "bots cannot self-issue API keys" in DOC["errors"]["also_documented"]["bots"]
    created = create_example_key(app, {"label": "bot", "ip_whitelist": ["127.0.0.1"]})
    # When it sends the doc's create request signed with its key instead of the app's session
    auth = RequestsAuth(created["api_key"], created["api_secret"], clock=ServerClock.sync(default_server.base_url))
    response = requests.post(default_server.base_url + EXAMPLES["create"]["request"]["path"], auth=auth,
                             json=EXAMPLES["create"]["request"]["body"], timeout=HTTP_TIMEOUT_SECONDS)
    # Then it is refused for want of a session, and no key was made
    assert_refused(response, documented_status("Missing or expired session"), "UNAUTHORIZED")
    assert list(listed(app)) == [created["api_key"]]


# ------------------------------------------------------------------ update
def test_update_answers_the_documented_example(app: AppUser):
    # Given the doc's example key (read and trade)
    created = create_example_key(app)
    # When the app changes its permissions, as the doc's example response reports
    response = replay(app, DOC, "update", key=created["api_key"])
    # Then it answers 200 with success, the key and the changed field, typed and valued as documented
    body = assert_documented_response(response, EXAMPLES["update"])
    assert_documented_values(body, shown("update"), run_time("update"))
    assert body["api_key"] == created["api_key"]
    # And the list shows the new permissions, the other fields as they were
    view = listed(app)[created["api_key"]]
    assert (view["permissions"], view["label"], view["ip_whitelist"]) == (
        ["read"], created["label"], created["ip_whitelist"])


def test_update_changes_any_documented_field_and_an_empty_whitelist_lifts_the_restriction(app: AppUser):
    # Given the doc's example key, restricted to one address
    created = create_example_key(app)
    assert "Pass empty array to remove restriction" in EXAMPLES["update"]["rules"]["lift_whitelist"]
    # When the app sends a new label and an empty whitelist
    response = replay(app, DOC, "update", key=created["api_key"], body={"label": "grid-bot-prod", "ip_whitelist": []})
    # Then both are reported as changed
    body = assert_documented_response(response, EXAMPLES["update"])
    assert sorted(body["updated_fields"]) == ["ip_whitelist", "label"]
    # And the key is renamed and no longer restricted; its permissions are unchanged
    view = listed(app)[created["api_key"]]
    assert (view["label"], view["ip_whitelist"], view["permissions"]) == ("grid-bot-prod", [], ["read", "trade"])


def test_an_update_that_sends_no_field_is_accepted(app: AppUser):
    # Given the doc's example key, and the doc's "all fields optional"
    created = create_example_key(app)
    assert "all fields optional" in EXAMPLES["update"]["rules"]["all_optional"]
    # When the app sends an update with none of them
    response = replay(app, DOC, "update", key=created["api_key"], body={})
    # Then it answers 200, reporting nothing changed
    body = assert_documented_response(response, EXAMPLES["update"])
    assert body["updated_fields"] == []


# ------------------------------------------------------------------ revoke
def test_revoke_answers_the_documented_example_and_is_irreversible(app: AppUser):
    # Given the doc's example key
    created = create_example_key(app)
    # When the app revokes it
    response = replay(app, DOC, "revoke", key=created["api_key"])
    # Then it answers 200 with success and the documented message
    body = assert_documented_response(response, EXAMPLES["revoke"])
    assert_documented_values(body, shown("revoke"), run_time("revoke"))
    # And the key is listed as inactive
    assert listed(app)[created["api_key"]]["is_active"] is False
    # And "This action is irreversible.": no update brings it back
    assert "irreversible" in EXAMPLES["revoke"]["rules"]["irreversible"]
    again = replay(app, DOC, "update", key=created["api_key"], body={"label": "again"})
    assert_refused(again, 400, "KEY_REVOKED")
    assert listed(app)[created["api_key"]]["is_active"] is False


def test_revoke_all_answers_the_documented_example(app: AppUser):
    # Given as many active keys as the doc's example revokes, and one already revoked
    revoked = create_example_key(app, {"label": "old"})
    assert replay(app, DOC, "revoke", key=revoked["api_key"]).status_code == 200
    active = [create_example_key(app, {"label": f"bot {number}"})["api_key"]
              for number in range(shown("revoke_all")["revoked_count"])]
    # When the app revokes all keys
    response = replay(app, DOC, "revoke_all")
    # Then it answers 200 with success and the number of active keys it revoked, as documented
    body = assert_documented_response(response, EXAMPLES["revoke_all"])
    assert_documented_values(body, shown("revoke_all"), run_time("revoke_all"))
    # And no key is active any more
    views = listed(app)
    assert set(views) == {revoked["api_key"], *active}
    assert not any(view["is_active"] for view in views.values())


# ------------------------------------------------------------------- audit
def test_audit_answers_the_documented_example(app: AppUser):
    # Given the doc's example key, just created
    created = create_example_key(app)
    # When the app reads its audit log
    response = replay(app, DOC, "audit", key=created["api_key"])
    # Then it answers 200 with the key, its entries and their count, typed and valued as documented
    body = assert_documented_response(response, EXAMPLES["audit"])
    assert_documented_values(body, shown("audit"), run_time("audit"))
    assert body["api_key"] == created["api_key"]
    # And its one entry is the doc's: the action and the sentence of the key's creation
    [entry] = body["audit"]
    [doc_entry] = shown("audit")["audit"]
    assert_documented_values(entry, doc_entry, run_time("audit"))
    # And the address is the app's, as the server saw it
    assert entry["ip_address"] == "127.0.0.1"


def test_audit_records_create_update_and_revoke_newest_first(app: AppUser):
    # Given a key that was created, updated and revoked
    created = create_example_key(app)
    assert replay(app, DOC, "update", key=created["api_key"]).status_code == 200
    assert replay(app, DOC, "revoke", key=created["api_key"]).status_code == 200
    # When the app reads its audit log
    body = assert_documented_response(replay(app, DOC, "audit", key=created["api_key"]), EXAMPLES["audit"])
    # Then it holds the three lifecycle actions, newest first, and counts them
    assert [entry["action"] for entry in body["audit"]] == ["key_revoked", "key_updated", "key_created"]
    assert body["count"] == 3
    stamps = [datetime.fromisoformat(entry["created_at"]) for entry in body["audit"]]
    assert stamps == sorted(stamps, reverse=True)


def test_audit_limit_defaults_to_20_and_goes_up_to_100(app: AppUser):
    # Given the doc's `limit` (default 20, max 100) and a key with 21 lifecycle entries
    limit = EXAMPLES["audit"]["request"]["query"]["limit"]
    created = create_example_key(app)
    for number in range(limit["default"]):
        assert replay(app, DOC, "update", key=created["api_key"], body={"label": f"v{number}"}).status_code == 200

    def audit(**query: str) -> dict:
        return assert_documented_response(replay(app, DOC, "audit", key=created["api_key"], query=query),
                                          EXAMPLES["audit"])

    # When the app reads the log without a limit, Then it gets the 20 newest entries
    default = audit()
    assert default["count"] == len(default["audit"]) == limit["default"]
    assert "key_created" not in [entry["action"] for entry in default["audit"]]
    # When with a smaller limit, Then that many
    assert audit(limit="5")["count"] == 5
    # When with the maximum, Then all 21
    everything = audit(limit=str(limit["max"]))
    assert everything["count"] == limit["default"] + 1 and everything["audit"][-1]["action"] == "key_created"
    # When above the maximum, Then KeyGate refuses it rather than answering more than 100
    assert_refused(replay(app, DOC, "audit", key=created["api_key"], query={"limit": str(limit["max"] + 1)}),
                   400, "INVALID_REQUEST")


def test_timestamps_are_written_as_the_doc_writes_them(app: AppUser):
    # Given the doc's example key, and the format of every timestamp the doc shows
    pattern = re.compile(DOC["timestamp_pattern"])
    assert all(pattern.match(shown("create")[name]) for name in ("created_at", "expires_at"))
    created = create_example_key(app)
    # When the app reads it back from the create answer, the list and the audit log
    answers = {"create": created, "list": replay(app, DOC, "list").json(),
               "audit": replay(app, DOC, "audit", key=created["api_key"]).json()}
    # Then every documented timestamp has the doc's format
    written = [stamp for name, body in answers.items() for stamp in documented_timestamps(body, EXAMPLES[name])]
    assert written and [stamp for stamp in written if not pattern.match(stamp)] == []


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(("body", "reason"), [
    pytest.param({"permissions": ["withdraw"], "ip_whitelist": ["203.0.113.50"]}, "Invalid permission value",
                 id="withdraw-no-such-scope"),
    pytest.param({"permissions": ["admin"]}, "Invalid permission value", id="unknown-permission"),
    pytest.param({"permissions": ["READ"]}, "Invalid permission value", id="wrong-spelling"),
    pytest.param({"permissions": "read"}, "Invalid permission value", id="not-an-array"),
    pytest.param({"ip_whitelist": ["not-an-ip"]}, "invalid IP/CIDR", id="not-an-ip"),
    pytest.param({"ip_whitelist": ["203.0.113.256"]}, "invalid IP/CIDR", id="octet-out-of-range"),
    pytest.param({"ip_whitelist": ["203.0.113.0/33"]}, "invalid IP/CIDR", id="prefix-too-long"),
])
def test_a_create_with_a_bad_permission_or_address_is_refused(app: AppUser, body: dict, reason: str):
    # Given the doc's error table ("Invalid permission value, invalid IP/CIDR, ..." is a 400)
    # When the app asks for a key with a permission or an address the doc does not allow
    response = replay(app, DOC, "create", body=body)
    # Then it is refused with the documented status, in the error shape, and no key is made
    error = assert_refused(response, documented_status(reason), "INVALID_REQUEST")
    assert ("permission" if "permission" in reason else "ip_whitelist") in error["message"]
    assert listed(app) == {}


def test_the_key_limit_is_documented_max_per_user(app: AppUser):
    # Given a user with as many keys as the doc's maximum ("max 10 keys per user")
    limit = documented_key_limit()
    for number in range(limit):
        create_example_key(app, {"label": f"bot {number}"})
    # When the app asks for one more
    response = replay(app, DOC, "create")
    # Then it is refused with the documented status, and the user still has the maximum
    assert_refused(response, documented_status("maximum key limit reached"), "KEY_LIMIT_REACHED")
    assert len(listed(app)) == limit


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_route_without_a_session_is_401(app: AppUser, name: str):
    # Given a key of the user
    created = create_example_key(app, {"label": "mine"})
    # When the doc's request is sent without the session token
    response = replay(app, DOC, name, key=created["api_key"] if name in KEYED else None, without=("Authorization",))
    # Then it is refused with the documented status, and the key is untouched
    assert_refused(response, documented_status("Missing or expired session token"), "UNAUTHORIZED")
    view = listed(app)[created["api_key"]]
    assert (view["is_active"], view["label"], view["permissions"]) == (True, "mine", ["read"])


@pytest.mark.parametrize("name", ["create", "list"])
def test_an_expired_session_is_401(app: AppUser, default_server: LocalServer, name: str):
    # Given a session token that expired an hour ago
    expired = default_server.identity.session_token(app.user, now=time.time() - 7200)
    # When the doc's request is sent with it
    response = replay(app, DOC, name, headers={"Authorization": f"Bearer {expired}"})
    # Then it is refused with the documented status
    assert_refused(response, documented_status("Missing or expired session token"), "SESSION_EXPIRED")


@pytest.mark.parametrize("step_up", ["missing", "not-a-token", "another-action", "another-user"])
def test_a_create_whose_step_up_fails_is_403(app: AppUser, default_server: LocalServer, step_up: str):
    # Given a passkey step-up token that is missing, not a token, or not for this user's create
    headers = {"not-a-token": {"X-PASSKEY-TOKEN": "not-a-token"},
               "another-action": {"X-PASSKEY-TOKEN": app.step_up("api_keys:revoke_all", method="DELETE",
                                                                 path="/v1/trade/api-keys/all")},
               "another-user": {"X-PASSKEY-TOKEN": default_server.identity.step_up_token("mallory",
                                                                                         "api_keys:create")},
               }.get(step_up, {})
    # When the doc's create request is sent with it
    response = replay(app, DOC, "create", without=("X-PASSKEY-TOKEN",) if step_up == "missing" else (),
                      headers=headers)
    # Then it is refused with the documented status ("Passkey step-up failed"), and no key is made
    assert_refused(response, documented_status("Passkey step-up failed"), "STEP_UP_REQUIRED")
    assert listed(app) == {}


def test_a_step_up_token_used_twice_fails_the_second_time(app: AppUser):
    # Given a step-up token the app used for a create
    create = EXAMPLES["create"]["request"]
    token = app.step_up(EXAMPLES["create"]["step_up_action"], method=create["method"], path=create["path"],
                        body=create["body"])
    first = replay(app, DOC, "create", headers={"X-PASSKEY-TOKEN": token})
    assert first.status_code == 200, first.text
    # When the same token is sent again
    second = replay(app, DOC, "create", headers={"X-PASSKEY-TOKEN": token})
    # Then the step-up fails, and only the first key exists
    assert_refused(second, documented_status("Passkey step-up failed"), "STEP_UP_REQUIRED")
    assert list(listed(app)) == [first.json()["api_key"]]


@pytest.mark.parametrize("name", ["update", "revoke", "revoke_all"])
def test_every_other_change_without_step_up_is_403(app: AppUser, name: str):
    # Given a key of the user
    created = create_example_key(app, {"label": "mine"})
    # When the doc's request is sent without a step-up token
    response = replay(app, DOC, name, key=created["api_key"] if name in KEYED else None,
                      without=("X-PASSKEY-TOKEN",))
    # Then it is refused with the documented status, and the key is untouched
    assert_refused(response, documented_status("Passkey step-up failed"), "STEP_UP_REQUIRED")
    view = listed(app)[created["api_key"]]
    assert (view["is_active"], view["label"], view["permissions"]) == (True, "mine", ["read"])


def test_without_the_trading_handshake_no_key_may_trade(default_server: LocalServer):
    # Given a user who completed onboarding but never traded
    app = AppUser(default_server, unique_user(), onboard="no-trade")
    # When the app asks for the doc's example key (read and trade)
    response = replay(app, DOC, "create")
    # Then it is refused with the documented status ("account has not completed trading handshake")
    assert_refused(response, documented_status("trading handshake"), "TRADING_HANDSHAKE_REQUIRED")
    # But a read key is issued ("Keys with trade permission cannot be issued to accounts that have never traded")
    read_key = create_example_key(app, {"permissions": ["read"]})
    # And it cannot be widened to trade
    widened = replay(app, DOC, "update", key=read_key["api_key"], body={"permissions": ["read", "trade"]})
    assert_refused(widened, documented_status("trading handshake"), "TRADING_HANDSHAKE_REQUIRED")
    assert listed(app)[read_key["api_key"]]["permissions"] == ["read"]


def test_without_onboarding_no_key_is_issued(default_server: LocalServer):
    # Given a user who never signed the wallet agent authorizations (the doc's first prerequisite)
    assert "Completed onboarding" in DOC["errors"]["also_documented"]["prerequisites"]
    app = AppUser(default_server, unique_user(), onboard=None)
    # When the app asks even for a read key
    response = replay(app, DOC, "create", body={"permissions": ["read"]})
    # Then it is refused with 403, the table's status for a missing prerequisite
    assert_refused(response, documented_status("trading handshake"), "ONBOARDING_REQUIRED")
    assert listed(app) == {}
