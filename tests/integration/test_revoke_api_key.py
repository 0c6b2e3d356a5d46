"""DELETE /v1/trade/api-keys/{api_key} and DELETE /v1/trade/api-keys/all."""

from datetime import timedelta

import pytest

from keygate import keys
from keygate.records import now_utc
from keygate.storage import layout
from keygate_dev.events import seed_key
from tests.support.errors import assert_error
from tests.support.stack import gaiaex_time, layer, secret_exists, secret_names, table_items

REVOKED_FIELDS = {"success", "message", "api_key", "is_active", "revoked_at", "already_revoked"}


def _cleanup_entries():
    return [item for item in table_items() if item["pk"] == layout.CLEANUP_PARTITION]


def test_revoke_answers_the_documented_shape_and_deletes_the_secret(client, alice):
    # Given an active key with its secret
    key_id = client.create(label="bot").json()["api_key"]
    assert secret_exists(key_id)
    before = now_utc()
    # When it is revoked
    response = client.revoke(key_id)
    # Then the answer has the documented fields
    assert response.status == 200, response.body
    revoked = response.json()
    assert set(revoked) == REVOKED_FIELDS
    assert (revoked["success"], revoked["message"]) == (True, "API key revoked")
    assert (revoked["api_key"], revoked["is_active"], revoked["already_revoked"]) == (key_id, False, False)
    assert before - timedelta(seconds=1) <= gaiaex_time(revoked["revoked_at"]) <= now_utc()
    # And the secret is gone at once, with no cleanup left for the janitor
    assert not secret_exists(key_id)
    assert layer().secrets.name(key_id) not in secret_names()
    assert _cleanup_entries() == []
    # And the list shows the key inactive with the same revocation time
    (view,) = client.list().json()["keys"]
    assert (view["is_active"], view["revoked_at"]) == (False, revoked["revoked_at"])
    # And the audit log ends with the revocation
    assert client.audit(key_id).json()["audit"][0]["action"] == "key_revoked"


def test_a_second_revoke_answers_the_original_revocation_and_still_uses_the_step_up_token(client, alice):
    # Given a revoked key
    key_id = client.create().json()["api_key"]
    first = client.revoke(key_id).json()
    # When it is revoked again with a fresh step-up token
    token = client.step_up("alice", "api_keys:revoke")
    second = client.call("DELETE", f"/v1/trade/api-keys/{key_id}", step_up=token)
    # Then it answers 200 with the original revoked_at and already_revoked
    assert second.status == 200, second.body
    assert second.json() == {**first, "already_revoked": True}
    # And nothing new is audited
    assert [entry["action"] for entry in client.audit(key_id).json()["audit"]] == ["key_revoked", "key_created"]
    # And that token is spent
    reused = client.call("DELETE", f"/v1/trade/api-keys/{key_id}", step_up=token)
    assert_error(reused, 403, "STEP_UP_REQUIRED")


def test_an_expired_key_can_still_be_revoked(client, alice, identity):
    expired = seed_key("alice", at=now_utc() - timedelta(days=2), expires_days=1).api_key
    response = client.revoke(expired)
    assert response.status == 200 and response.json()["already_revoked"] is False
    assert not secret_exists(expired)


@pytest.mark.parametrize("key_id_text", [
    pytest.param(keys.new_key_id("kgk_"), id="well-formed-unknown"),
    pytest.param("kgk_" + "A" * 28, id="bad-checksum"),
    pytest.param("xyz_abc", id="other-prefix"),
    pytest.param("kgk_" + "é" * 28, id="non-ascii"),
    pytest.param("kgk_" + "A" * 500, id="very-long"),
])
def test_an_unknown_or_malformed_key_is_not_found(client, alice, key_id_text):
    assert_error(client.revoke(key_id_text), 404, "KEY_NOT_FOUND")


def test_revoke_needs_a_session(client, alice):
    key_id = client.create().json()["api_key"]
    assert_error(client.call("DELETE", f"/v1/trade/api-keys/{key_id}", user=None), 401, "UNAUTHORIZED")
    assert secret_exists(key_id)


# --------------------------------------------------------------- revoke-all
def test_revoke_all_revokes_every_key_not_yet_revoked(client, alice, identity):
    # Given two active keys, one expired and one already revoked
    active = [client.create(label=f"bot {number}").json()["api_key"] for number in range(2)]
    expired = seed_key("alice", at=now_utc() - timedelta(days=2), expires_days=1).api_key
    already = seed_key("alice", revoked=True).api_key
    # When she revokes all
    response = client.revoke_all()
    # Then the answer counts and names the keys it revoked, the expired one included
    assert response.status == 200, response.body
    body = response.json()
    assert set(body) == {"success", "revoked_count", "revoked_api_keys"}
    assert body["revoked_count"] == 3
    assert sorted(body["revoked_api_keys"]) == sorted([*active, expired])
    assert already not in body["revoked_api_keys"]
    # And every key is inactive and no secret remains
    assert not any(view["is_active"] for view in client.list().json()["keys"])
    assert not any(secret_exists(key_id) for key_id in [*active, expired, already])
    # And each revocation is audited with its reason
    newest = client.audit(active[0]).json()["audit"][0]
    assert (newest["action"], newest["data"]) == ("key_revoked", {"reason": "revoke_all"})
    assert newest["details"] == "Key revoked (all keys revoked)"


def test_revoke_all_without_keys_revokes_nothing_but_uses_the_step_up_token(client, alice):
    # Given a user without keys and one step-up token
    token = client.step_up("alice", "api_keys:revoke_all")
    # When she revokes all with it
    first = client.call("DELETE", "/v1/trade/api-keys/all", step_up=token)
    # Then nothing is revoked
    assert first.status == 200 and first.json() == {"success": True, "revoked_count": 0, "revoked_api_keys": []}
    # And the token cannot be used again
    assert_error(client.call("DELETE", "/v1/trade/api-keys/all", step_up=token), 403, "STEP_UP_REQUIRED")


def test_revoke_all_commits_more_keys_than_one_transaction_holds(client, alice, identity):
    # Given 10 active keys and 25 expired ones, 35 to revoke (a transaction holds 30 revocations)
    # (seeded oldest first, a day apart, so each had expired before the next was created)
    now = now_utc()
    for days_ago in range(26, 1, -1):
        seed_key("alice", at=now - timedelta(days=days_ago), expires_days=1)
    for _ in range(10):
        seed_key("alice")
    # When she revokes all
    body = client.revoke_all().json()
    # Then all 35 are revoked, with one audit entry each, and no secret is left
    assert body["revoked_count"] == 35 == len(set(body["revoked_api_keys"]))
    revocations = [item for item in table_items() if item.get("event") == "key_revoked"]
    assert len(revocations) == 35
    assert not any(secret_exists(key_id) for key_id in body["revoked_api_keys"])


def test_revoke_all_needs_a_session(client, alice):
    key_id = client.create().json()["api_key"]
    assert_error(client.call("DELETE", "/v1/trade/api-keys/all", user=None), 401, "UNAUTHORIZED")
    assert client.list().json()["keys"][0]["api_key"] == key_id
    assert secret_exists(key_id)


@pytest.mark.parametrize("route", ["update", "revoke", "audit"])
def test_a_malformed_key_id_is_refused_without_any_lookup(client, alice, aws_calls, route):
    # Given an id with a valid prefix and length whose checksum is wrong
    key_id = client.create().json()["api_key"]
    typo = key_id[:-1] + ("A" if key_id[-1] != "A" else "B")
    send = {"update": lambda: client.update(typo, label="x"), "revoke": lambda: client.revoke(typo),
            "audit": lambda: client.audit(typo)}[route]
    # When a route is called with it
    with aws_calls.recording() as operations:
        response = send()
    # Then it is not found, and no AWS call was made for it (the step-up check needs none)
    assert_error(response, 404, "KEY_NOT_FOUND")
    assert operations == []
