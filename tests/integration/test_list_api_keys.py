"""GET /v1/trade/api-keys: every key of the caller, newest first, never a secret."""

from datetime import timedelta

import boto3

from keygate.records import now_utc
from keygate.storage import layout
from keygate_dev.events import seed_key
from tests.support.errors import assert_error
from tests.support.stack import REGION, TABLE_NAME, gaiaex_time, key_lookup, onboard, table_items

VIEW_FIELDS = {"api_key", "key_prefix", "label", "permissions", "ip_whitelist", "created_at", "expires_at",
               "last_used_at", "revoked_at", "is_active", "key_type"}


def test_a_user_without_keys_gets_an_empty_list(client, alice):
    response = client.list()
    assert response.status == 200
    assert response.json() == {"keys": [], "count": 0}
    assert response.headers["Cache-Control"] == "no-store"


def test_the_list_shows_each_key_with_the_documented_fields_and_never_a_secret(client, alice):
    # Given a key created through the API
    created = client.create(label="bot", permissions=["read", "trade"], ip_whitelist=["198.51.100.0/24"],
                            expires_days=30).json()
    # When the list is read
    response = client.list()
    # Then the key shows with exactly the view fields, matching what create answered
    listed = response.json()
    assert listed["count"] == 1
    (view,) = listed["keys"]
    assert set(view) == VIEW_FIELDS
    assert view == {
        "api_key": created["api_key"], "key_prefix": created["key_prefix"], "label": "bot",
        "permissions": ["read", "trade"], "ip_whitelist": ["198.51.100.0/24"],
        "created_at": created["created_at"], "expires_at": created["expires_at"], "last_used_at": None,
        "revoked_at": None, "is_active": True, "key_type": "hmac-sha256",
    }
    # And the secret appears nowhere in the response
    assert created["api_secret"] not in response.body and "kgs_" not in response.body


def test_keys_are_listed_newest_first(client, alice, identity):
    # Given keys created an hour apart (in an order that is not the creation order of their labels)
    now = now_utc()
    for hours_ago, label in [(2, "middle"), (3, "oldest"), (1, "newest")]:
        seed_key("alice", at=now - timedelta(hours=hours_ago), label=label)
    # When the list is read
    views = client.list().json()["keys"]
    # Then the newest comes first
    assert [view["label"] for view in views] == ["newest", "middle", "oldest"]
    assert [gaiaex_time(view["created_at"]) for view in views] == sorted(
        (gaiaex_time(view["created_at"]) for view in views), reverse=True)


def test_revoked_and_expired_keys_are_listed_as_inactive(client, alice, identity):
    # Given an active key, a revoked one, one that expired yesterday and one that expires tomorrow
    now = now_utc()
    seed_key("alice", at=now - timedelta(hours=4), label="active")
    seed_key("alice", at=now - timedelta(hours=3), label="revoked", revoked=True)
    seed_key("alice", at=now - timedelta(days=2), label="expired", expires_days=1)
    seed_key("alice", at=now - timedelta(hours=12), label="expiring", expires_days=1)
    # When the list is read
    views = {view["label"]: view for view in client.list().json()["keys"]}
    # Then is_active is false exactly for the revoked and the expired key
    assert {label: view["is_active"] for label, view in views.items()} == {
        "active": True, "revoked": False, "expired": False, "expiring": True}
    assert gaiaex_time(views["revoked"]["revoked_at"]) >= gaiaex_time(views["revoked"]["created_at"])
    assert views["expired"]["revoked_at"] is None
    assert gaiaex_time(views["expired"]["expires_at"]) < now


def test_last_used_at_shows_the_signature_authorizers_record(client, alice):
    # Given a key the signature authorizer has seen in use
    key_id = client.create().json()["api_key"]
    used_at = now_utc() - timedelta(minutes=5)
    key_lookup().touch_last_used("alice", key_id, used_at, at_most_every_seconds=60)
    # When the list is read
    (view,) = client.list().json()["keys"]
    # Then last_used_at is that moment, in the API's format
    assert gaiaex_time(view["last_used_at"]) == used_at.replace(microsecond=0)


def test_the_list_needs_a_session(client):
    assert_error(client.list(user=None), 401, "UNAUTHORIZED")


def test_each_keys_last_use_comes_from_the_usage_partition(client, alice):
    # Given three keys of alice, two of them seen in use by the signature authorizer at different times,
    # and a key of bob's in use too
    now = now_utc().replace(microsecond=0)
    first, second, idle = (client.create(label=label).json()["api_key"] for label in ("first", "second", "idle"))
    onboard("bob")
    bobs = client.create(label="bob's", user="bob").json()["api_key"]
    for user, key_id, minutes_ago in (("alice", first, 30), ("alice", second, 2), ("bob", bobs, 1)):
        key_lookup().touch_last_used(user, key_id, now - timedelta(minutes=minutes_ago), at_most_every_seconds=60)
    # When alice lists her keys
    views = {view["api_key"]: view for view in client.list().json()["keys"]}
    # Then each key shows its own last use, the idle one none, and bob's key is not there
    assert {key_id: view["last_used_at"] and gaiaex_time(view["last_used_at"]) for key_id, view in views.items()} == {
        first: now - timedelta(minutes=30), second: now - timedelta(minutes=2), idle: None}
    # And those uses live in the usage partitions (USAGE#<user>), not beside the key records
    usage = {(item["pk"], item["sk"]) for item in table_items() if item.get("type") == "usage"}
    assert usage == {("USAGE#alice", first), ("USAGE#alice", second), ("USAGE#bob", bobs)}


def test_a_last_use_stored_by_an_earlier_version_still_shows(client, alice):
    # Given a key whose last use an earlier KeyGate wrote beside its record (USER#<user> / USAGE#<key id>),
    # the layout before usage items got partitions of their own
    key_id = client.create().json()["api_key"]
    used_at = now_utc().replace(microsecond=0) - timedelta(hours=1)
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=TABLE_NAME, Item=layout.to_item({
        "pk": "USER#alice", "sk": f"USAGE#{key_id}", "type": "usage", "last_used_at": layout.stored_time(used_at)}))
    # When the list is read / Then that use shows until the authorizer records a newer one
    assert gaiaex_time(client.list().json()["keys"][0]["last_used_at"]) == used_at
    key_lookup().touch_last_used("alice", key_id, used_at + timedelta(minutes=5), at_most_every_seconds=60)
    assert gaiaex_time(client.list().json()["keys"][0]["last_used_at"]) == used_at + timedelta(minutes=5)
