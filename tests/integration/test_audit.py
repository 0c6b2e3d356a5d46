"""GET /v1/trade/api-keys/{api_key}/audit?limit=: the key's lifecycle log, newest first."""

from datetime import timedelta

import boto3
import pytest

from keygate import keys
from keygate.ports import ConditionFailed
from keygate.profiles.gaiaex import UpdateApiKeyRequest
from keygate.records import AuditEntry, AuditEvent, now_utc
from keygate.service import KeyRef
from keygate.stepup import StepUpUse
from keygate.storage import layout
from keygate_dev.events import seed_key
from tests.support.errors import assert_error
from tests.support.stack import REGION, TABLE_NAME, gaiaex_time, layer, table_items

ENTRY_FIELDS = {"action", "ip_address", "created_at", "details", "data"}


@pytest.fixture
def key_with_history(alice, identity):
    """A key created 25 minutes ago and renamed once a minute since: 25 entries, a minute apart."""
    start = now_utc() - timedelta(minutes=25)
    key_id = seed_key("alice", at=start, label="v0").api_key
    for minute in range(1, 25):
        moment = start + timedelta(minutes=minute)
        confirmed = StepUpUse(jti=f"update-{minute:02d}-{key_id}", expires_at_epoch=int(moment.timestamp()) + 300)
        layer().lifecycle.at(lambda moment=moment: moment).update_api_key(
            "alice", KeyRef(key_id=key_id), UpdateApiKeyRequest(label=f"v{minute}").domain(), step_up=confirmed,
            source_ip="198.51.100.1")
    return key_id


def test_the_log_shows_every_lifecycle_event_newest_first(client, alice):
    # Given a key created, updated and revoked through the API from known addresses
    key_id = client.call("POST", "/v1/trade/api-keys", body={"label": "bot"}, source_ip="198.51.100.1").json()[
        "api_key"]
    client.call("PATCH", f"/v1/trade/api-keys/{key_id}", body={"label": "bot2"}, source_ip="198.51.100.2",
                headers={"X-Forwarded-For": "192.0.2.66"})
    client.call("DELETE", f"/v1/trade/api-keys/{key_id}", source_ip="2001:db8::3")
    # When its audit log is read
    response = client.audit(key_id)
    # Then it holds the three events newest first, with API Gateway's source IPs (never a header's)
    assert response.status == 200, response.body
    log = response.json()
    assert set(log) == {"api_key", "audit", "count"} and log["api_key"] == key_id and log["count"] == 3
    assert [(entry["action"], entry["ip_address"]) for entry in log["audit"]] == [
        ("key_revoked", "2001:db8::3"), ("key_updated", "198.51.100.2"), ("key_created", "198.51.100.1")]
    for entry in log["audit"]:
        assert set(entry) == ENTRY_FIELDS
    times = [gaiaex_time(entry["created_at"]) for entry in log["audit"]]
    assert times == sorted(times, reverse=True)
    # And each says in a sentence what happened (GaiaEx's `details`), with the data beside it
    assert [entry["details"] for entry in log["audit"]] == [
        "Key revoked", "Key updated: label 'bot' -> 'bot2'", "Key created with permissions: [read]"]
    assert log["audit"][0]["data"] == {"reason": "user_request"}


def test_the_default_limit_is_20_newest(client, key_with_history):
    entries = client.audit(key_with_history).json()["audit"]
    assert len(entries) == 20
    assert [entry["data"]["changes"]["label"]["to"] for entry in entries] == [f"v{n}" for n in range(24, 4, -1)]


@pytest.mark.parametrize(("limit", "expected"), [("1", 1), ("7", 7), ("100", 25), ("", 20)])
def test_limit_chooses_how_many_newest_entries(client, key_with_history, limit, expected):
    entries = client.audit(key_with_history, query=f"limit={limit}").json()["audit"]
    assert len(entries) == expected
    assert entries[0]["data"]["changes"]["label"]["to"] == "v24"


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "1e2", "%201", "10x", "\u0661",
                                   "99999999999999999999"])
def test_a_limit_outside_1_to_100_is_refused(client, alice, limit):
    key_id = client.create().json()["api_key"]
    error = assert_error(client.audit(key_id, query=f"limit={limit}"), 400, "INVALID_REQUEST")
    assert "limit" in error["message"]


def test_a_limit_of_thousands_of_digits_is_a_400_not_a_500(client, alice):
    # Given a key (issue 13, finding 4: Python's int() refuses more than 4,300 digits with a ValueError)
    key_id = client.create().json()["api_key"]
    # When the audit is asked for a limit of 4,301 digits
    response = client.audit(key_id, query="limit=" + "1" * 4301)
    # Then the answer is the ordinary 400 for an out-of-range limit, never the 500 of a crash
    error = assert_error(response, 400, "INVALID_REQUEST")
    assert "limit" in error["message"] and "1" * 50 not in error["message"]


def test_a_revoked_keys_log_stays_readable(client, alice):
    key_id = client.create().json()["api_key"]
    client.revoke(key_id)
    assert [entry["action"] for entry in client.audit(key_id).json()["audit"]] == ["key_revoked", "key_created"]


@pytest.mark.parametrize("key_id_text", [keys.new_key_id("kgk_"), "kgk_nope", "all"],
                         ids=["well-formed-unknown", "malformed", "the-word-all"])
def test_an_unknown_or_malformed_key_is_not_found(client, alice, key_id_text):
    assert_error(client.audit(key_id_text), 404, "KEY_NOT_FOUND")


def test_the_audit_log_needs_a_session(client, alice):
    key_id = client.create().json()["api_key"]
    assert_error(client.audit(key_id, user=None), 401, "UNAUTHORIZED")


def test_the_key_created_entry_shows_the_expiry_the_create_answered(client, alice):
    # Given a key created with an expiry (at a moment with sub-millisecond digits, as real clocks have)
    created = client.create(expires_days=30).json()
    # When its audit log is read
    (entry,) = client.audit(created["api_key"]).json()["audit"]
    # Then the key_created entry names the same expiry, in the API's timestamp format
    assert entry["data"]["expires_at"] == created["expires_at"]
    gaiaex_time(entry["data"]["expires_at"])


def test_a_commit_never_overwrites_an_audit_entry(client, alice):
    # Given a key, and an audit entry already stored exactly where the key's next change would write its own
    # (issue 13, finding 6: audit entries are append-only; a collision would need the same version, time and
    # change id, so the change id is the stored entry's here)
    key_id = client.create(label="bot").json()["api_key"]
    before = layer().keys.get_key("alice", key_id)
    after = before.changed(label="renamed", version=before.version + 1, change_id="f" * 32)
    now = now_utc()
    entry = AuditEntry(event=AuditEvent.KEY_UPDATED, api_key=key_id, ip_address="198.51.100.9", created_at=now,
                       details={"changes": {"label": {"from": "bot", "to": "renamed"}}})
    existing = layout.audit_item(AuditEntry(event=AuditEvent.KEY_UPDATED, api_key=key_id,
                                            ip_address="203.0.113.1", created_at=now), after)
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=TABLE_NAME, Item=existing)
    stored = sorted(map(str, table_items()))
    # When a change commits with that audit entry
    with pytest.raises(ConditionFailed):
        layer().keys.commit_update(before, after, entry,
                                   StepUpUse(jti="append-only-0001", expires_at_epoch=int(now.timestamp()) + 300),
                                   now)
    # Then the transaction is refused as a whole: the stored entry is intact, the key unchanged
    assert sorted(map(str, table_items())) == stored
