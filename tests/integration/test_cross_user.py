"""Invariant 1: a user never sees or changes another user's keys (404, and nothing changes)."""

from datetime import timedelta

import pytest

from keygate.records import now_utc
from keygate_dev.events import seed_key
from tests.support.errors import assert_error
from tests.support.profiles import GAIAEX, PROFILES, ZDEX
from tests.support.stack import onboard, secret_exists, state_snapshot, table_items

# (route, profile) -> method, path of the key's reference, body; the audit log is GaiaEx's only
KEY_ROUTES = {
    ("update", "gaiaex"): ("PATCH", "/v1/trade/api-keys/{key}", GAIAEX.body(label="mine now", ip_whitelist=[])),
    ("revoke", "gaiaex"): ("DELETE", "/v1/trade/api-keys/{key}", None),
    ("audit", "gaiaex"): ("GET", "/v1/trade/api-keys/{key}/audit", None),
    ("update", "zdex"): ("PATCH", "/v1/api-keys/{key}", ZDEX.body(label="mine now", ip_whitelist=[])),
    ("revoke", "zdex"): ("DELETE", "/v1/api-keys/{key}", None),
}
PROFILE = {profile.name: profile for profile in PROFILES}


@pytest.fixture
def alices_key(client, alice):
    created = client.create(label="alice's bot", permissions=["read", "trade"], ip_whitelist=["198.51.100.7"])
    assert created.status == 200
    onboard("bob")
    return created.json()["api_key"]


def alices_key_in_state(client, identity, state: str) -> tuple[str, str]:
    """One of alice's keys, active, revoked or expired (each answers the owner differently, the others
    alike): its id and its handle."""
    onboard("bob")
    if state == "expired":
        seeded = seed_key("alice", at=now_utc() - timedelta(days=2), expires_days=1)
        return seeded.api_key, seeded.handle
    key_id = client.create(label="alice's bot").json()["api_key"]
    if state == "revoked":
        assert client.revoke(key_id).status == 200
    [handle] = [view["id"] for view in client.call("GET", "/v1/api-keys").json()["keys"]
                if view["keyPrefix"] == key_id[:10]]
    return key_id, handle


def _alices_items():
    return sorted((item for item in table_items() if "STEPUP#" not in item["pk"]), key=lambda item: (
        item["pk"], item["sk"]))


@pytest.mark.parametrize("key_state", ["active", "revoked", "expired"])
@pytest.mark.parametrize("route", sorted(KEY_ROUTES), ids=lambda route: "-".join(route))
def test_another_users_key_is_not_found_and_unchanged(client, alice, identity, route, key_state):
    # Given alice's key (active, revoked or expired), and bob with a valid session and step-up token of his own
    key_id, handle = alices_key_in_state(client, identity, key_state)
    method, path, body = KEY_ROUTES[route]
    profile = PROFILE[route[1]]
    alices_ref = key_id if profile is GAIAEX else handle
    before = state_snapshot()
    # When bob calls the route on alice's key (by its id on GaiaEx's routes, by its handle on ZDEX's)
    response = client.call(method, path.format(key=alices_ref), user="bob", body=body)
    # Then he gets exactly what an unknown key gets, and nothing changed (not even his token was recorded)
    error = assert_error(response, 404, "KEY_NOT_FOUND")
    unknown = client.call(method, path.format(key=profile.unknown_ref()), user="bob", body=body)
    assert error == unknown.json()["error"]
    assert state_snapshot() == before
    assert secret_exists(key_id) == (key_state != "revoked")


@pytest.mark.parametrize("route", ["update", "revoke"])
def test_a_step_up_token_of_the_owner_does_not_help_another_user(client, identity, alices_key, route):
    # Given bob holding a step-up token issued to alice
    method, path, body = KEY_ROUTES[(route, "gaiaex")]
    stolen = identity.step_up_token("alice", "api_keys:update" if route == "update" else "api_keys:revoke")
    before = state_snapshot()
    # When he uses it on her key with his session
    response = client.call(method, path.format(key=alices_key), user="bob", body=body, step_up=stolen)
    # Then it is refused and nothing changes
    assert_error(response, 403, "STEP_UP_REQUIRED")
    assert state_snapshot() == before


def test_another_users_revoke_all_leaves_alices_keys_alone(client, alices_key):
    # Given alice's active key
    before = _alices_items()
    # When bob revokes all his keys
    response = client.revoke_all(user="bob")
    # Then he revoked none of hers
    assert response.json() == {"success": True, "revoked_count": 0, "revoked_api_keys": []}
    assert _alices_items() == before
    assert secret_exists(alices_key)
    assert client.list().json()["keys"][0]["is_active"] is True


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.name)
def test_another_users_list_does_not_show_alices_keys(client, alices_key, profile):
    # Given alice's key and one of bob's
    bobs = client.create(user="bob").json()["api_key"]
    # When each lists their keys, in either profile
    listed = {user: client.call("GET", profile.collection, user=user).json()["keys"] for user in ("alice", "bob")}
    # Then each sees only their own
    prefix = "key_prefix" if profile is GAIAEX else "keyPrefix"
    assert [view[prefix] for view in listed["bob"]] == [bobs[:10]]
    assert [view[prefix] for view in listed["alice"]] == [alices_key[:10]]


def test_a_user_id_that_looks_like_a_prefix_of_another_sees_nothing(client, alices_key):
    # Partition keys are exact: "ali" or "alice#" must not match alice's items.
    for user in ("ali", "alice#", "ALICE", "alice "):
        assert client.list(user=user).json() == {"keys": [], "count": 0}
        assert_error(client.audit(alices_key, user=user), 404, "KEY_NOT_FOUND")
