"""GET /v1/trade/api-keys: every key of the caller, newest first, never a secret."""

from datetime import timedelta

from keygate.records import now_utc
from keygate_dev.events import seed_key
from tests.support.errors import assert_error
from tests.support.stack import gaiaex_time, key_lookup

VIEW_FIELDS = {"api_key", "key_prefix", "label", "permissions", "ip_whitelist", "created_at", "expires_at",
               "last_used_at", "revoked_at", "is_active"}


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
        "revoked_at": None, "is_active": True,
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
