"""keygate.passkeys.PasskeyStore: the DynamoDB adapter (on moto, the template's table) and the in-memory
store the unit tests use, held to one contract; then the items the adapter writes, and the ceremonies
end to end on DynamoDB."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from keygate.config import StorageConfig
from keygate.passkeys import (
    Challenge,
    ChallengeNotConsumed,
    Passkey,
    PasskeyAlreadyRegistered,
    PasskeyConfig,
    PasskeyRefused,
    Passkeys,
    PasskeyStore,
    Purpose,
    Refusal,
)
from keygate.storage import aws as layer_aws
from keygate.storage import layout
from keygate.storage.passkeys import DynamoPasskeyStore
from tests.support.authenticator import SoftAuthenticator
from tests.support.clocks import FixedClock
from tests.support.faults import run_together
from tests.support.passkey_store import MemoryPasskeyStore
from tests.support.stack import REGION, layer, table_items

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=120)


def dynamo_store() -> DynamoPasskeyStore:
    storage = StorageConfig.from_environ()
    return DynamoPasskeyStore(layer_aws.clients(storage.aws_endpoint_url), storage.table_name)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> PasskeyStore:
    if request.param == "memory":
        return MemoryPasskeyStore()
    request.getfixturevalue("atomic_aws")  # moto, each request atomic as DynamoDB's are
    return dynamo_store()


def challenge(value: str = "c" * 86, *, user: str = "alice", purpose: Purpose = Purpose.STEP_UP,
              created_at: datetime = NOW, **bound: str | None) -> Challenge:
    if purpose is Purpose.STEP_UP:
        bound = {"action": "api_keys:update", "target": "kgk_a", "change": "sha256:ab", **bound}
    return Challenge(value=value, user_id=user, purpose=purpose, created_at=created_at,
                     expires_at=created_at + TTL, **bound)


def passkey(credential_id: str = "cred-1", *, user: str = "alice", created_at: datetime = NOW,
            **fields: object) -> Passkey:
    return Passkey(**{"credential_id": credential_id, "user_id": user, "public_key": b"\xa5\x01\x02\x03\x26",
                      "sign_count": 0, "backed_up": False, "label": "phone", "created_at": created_at,
                      "transports": ("internal", "hybrid"), "user_handle": "aGFuZGxl", "aaguid": "0" * 8,
                      **fields})


def not_consumed(consume: Callable[[], Challenge]) -> Challenge | None:
    with pytest.raises(ChallengeNotConsumed) as refused:
        consume()
    return refused.value.found


# ------------------------------------------------------------------ challenges
def test_a_challenge_is_consumed_once_and_returned_with_what_it_binds(store: PasskeyStore):
    # Given a saved step-up challenge
    saved = challenge()
    store.save_challenge(saved)
    # When alice consumes it
    used = store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.STEP_UP,
                                   now=NOW + timedelta(seconds=5))
    # Then it comes back with its bindings and the time of use
    assert used == replace(saved, used_at=NOW + timedelta(seconds=5))
    # And a second consumption fails, showing the use
    found = not_consumed(lambda: store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.STEP_UP,
                                                         now=NOW + timedelta(seconds=6)))
    assert found == used


def test_an_unknown_challenge_is_not_consumed(store: PasskeyStore):
    assert not_consumed(lambda: store.consume_challenge("nope", user_id="alice", purpose=Purpose.STEP_UP,
                                                        now=NOW)) is None


def test_an_expired_challenge_is_not_consumed_though_still_stored(store: PasskeyStore):
    # Given a challenge whose expiry has passed, which nothing deleted yet
    saved = challenge()
    store.save_challenge(saved)
    # When it is consumed at its expiry, then it is refused and shown as stored, unused
    found = not_consumed(lambda: store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.STEP_UP,
                                                         now=saved.expires_at))
    assert found == saved
    # And a millisecond earlier it would have been consumed
    assert store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.STEP_UP,
                                   now=saved.expires_at - timedelta(milliseconds=1))


def test_another_users_challenge_is_not_consumed_nor_spent(store: PasskeyStore):
    saved = challenge()
    store.save_challenge(saved)
    assert not_consumed(lambda: store.consume_challenge(saved.value, user_id="bob", purpose=Purpose.STEP_UP,
                                                        now=NOW)) == saved
    assert store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.STEP_UP, now=NOW).used_at == NOW


def test_a_challenge_is_not_consumed_for_another_ceremony(store: PasskeyStore):
    saved = challenge(purpose=Purpose.REGISTRATION, user_handle="aGFuZGxl")
    store.save_challenge(saved)
    assert not_consumed(lambda: store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.STEP_UP,
                                                        now=NOW)) == saved
    used = store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.REGISTRATION, now=NOW)
    assert (used.user_handle, used.action, used.target, used.change) == ("aGFuZGxl", None, None, None)


def test_a_challenge_without_target_keeps_none(store: PasskeyStore):
    saved = challenge(target=None)
    store.save_challenge(saved)
    assert store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.STEP_UP, now=NOW).target is None


def test_of_concurrent_consumptions_exactly_one_succeeds(store: PasskeyStore):
    # Given one challenge, and eight requests that consume it at the same moment
    saved = challenge()
    store.save_challenge(saved)

    def consume() -> bool:
        try:
            store.consume_challenge(saved.value, user_id="alice", purpose=Purpose.STEP_UP, now=NOW)
        except ChallengeNotConsumed:
            return False
        return True

    # Then exactly one of them consumed it
    assert sorted(run_together([consume] * 8)) == [False] * 7 + [True]


# -------------------------------------------------------------------- passkeys
def test_passkeys_are_saved_listed_oldest_first_and_read_back(store: PasskeyStore):
    # Given two passkeys of alice's and one of bob's
    later = passkey("cred-2", created_at=NOW + timedelta(minutes=1), backed_up=True, backup_eligible=True,
                    last_used_at=NOW + timedelta(minutes=2), transports=())
    first = passkey("cred-1")
    for saved in (later, first, passkey("cred-3", user="bob")):
        store.save_passkey(saved)
    # Then alice's list holds hers, oldest first, exactly as saved
    assert store.list_passkeys("alice") == [first, later]
    assert store.get_passkey("alice", "cred-2") == later
    # And another user's passkey is not hers
    assert store.get_passkey("alice", "cred-3") is None
    assert store.list_passkeys("carol") == []


def test_a_passkey_is_saved_once_per_user(store: PasskeyStore):
    store.save_passkey(passkey())
    with pytest.raises(PasskeyAlreadyRegistered):
        store.save_passkey(passkey(label="again"))
    assert store.get_passkey("alice", "cred-1").label == "phone"
    store.save_passkey(passkey(user="bob"))  # the same credential id under another user is another item


def test_a_deleted_passkey_is_returned_once(store: PasskeyStore):
    saved = passkey()
    store.save_passkey(saved)
    assert store.delete_passkey("bob", "cred-1") is None
    assert store.delete_passkey("alice", "cred-1") == saved
    assert store.delete_passkey("alice", "cred-1") is None
    assert store.list_passkeys("alice") == []


def test_a_use_records_the_counter_only_upwards(store: PasskeyStore):
    # Given a passkey with counter 5
    store.save_passkey(passkey(sign_count=5))
    at = NOW + timedelta(minutes=5)
    # When a use with counter 9 is recorded, then the counter, the time and the backup state are stored
    assert store.record_use("alice", "cred-1", sign_count=9, backed_up=True, used_at=at)
    stored = store.get_passkey("alice", "cred-1")
    assert (stored.sign_count, stored.last_used_at, stored.backed_up) == (9, at, True)
    # And a use recorded late with a lower counter (a concurrent one stored 9 first) keeps 9
    assert store.record_use("alice", "cred-1", sign_count=7, backed_up=True, used_at=at + timedelta(seconds=1))
    stored = store.get_passkey("alice", "cred-1")
    assert (stored.sign_count, stored.last_used_at) == (9, at + timedelta(seconds=1))


def test_a_use_with_counter_zero_records_the_time(store: PasskeyStore):
    store.save_passkey(passkey())
    assert store.record_use("alice", "cred-1", sign_count=0, backed_up=False, used_at=NOW)
    assert store.get_passkey("alice", "cred-1").last_used_at == NOW


def test_a_use_of_a_missing_passkey_is_reported(store: PasskeyStore):
    assert store.record_use("alice", "cred-1", sign_count=3, backed_up=False, used_at=NOW) is False
    assert store.record_use("alice", "cred-1", sign_count=0, backed_up=False, used_at=NOW) is False
    assert store.get_passkey("alice", "cred-1") is None


# ------------------------------------------------------------ DynamoDB's items
def test_the_items_are_where_the_layout_puts_them(aws: None):
    # Given a passkey and a challenge saved on DynamoDB
    store = dynamo_store()
    store.save_passkey(passkey(last_used_at=NOW))
    store.save_challenge(challenge())
    items = {(item["pk"], item["sk"]): item for item in table_items()}
    # Then the passkey is in alice's partition, with its key as binary
    saved = items[(layout.user_pk("alice"), "PASSKEY#cred-1")]
    assert saved["type"] == "passkey"
    assert saved["public_key"] == b"\xa5\x01\x02\x03\x26"
    assert (saved["sign_count"], saved["transports"], saved["created_at"]) == \
        (0, ["internal", "hybrid"], "2026-11-24T12:00:00.000+00:00")
    # And the challenge has its own partition, an expiry readers compare and a TTL for DynamoDB
    stored = items[("PASSKEY_CHALLENGE#" + "c" * 86, "CHALLENGE")]
    assert stored["type"] == "passkey_challenge"
    assert stored["expires_at_ms"] == layout.epoch_ms(NOW + TTL)
    assert stored["expires_ttl"] == int((NOW + TTL).timestamp()) + 1
    assert "used_at" not in stored
    # And the table's TTL attribute is the one the challenge carries
    ttl = boto3.client("dynamodb", region_name=REGION).describe_time_to_live(TableName=StorageConfig.from_environ()
                                                                             .table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_ttl"


def test_the_key_lifecycle_ignores_passkeys_in_the_users_partition(aws: None):
    # Given alice has a passkey
    dynamo_store().save_passkey(passkey())
    # When the key lifecycle reads her partition, then it sees no key and no error
    snapshot = layer().keys.load_user("alice")
    assert snapshot.keys == []


def test_the_ceremonies_run_on_dynamodb(aws: None):
    # Given the ceremonies on the stack's table
    clock = FixedClock()
    config = PasskeyConfig(rp_id="app.example.com", rp_name="GaiaEx", origins=("https://app.example.com",))
    passkeys = Passkeys(config, dynamo_store(), clock=clock)
    device = SoftAuthenticator(origin="https://app.example.com")
    # When alice registers a passkey and confirms a change with it
    options = passkeys.registration_options("alice")
    registered = passkeys.register("alice", device.create(options.options), label="phone")
    step_up = passkeys.step_up_options("alice", action="api_keys:create", target=None, change="sha256:cd")
    assertion = device.get(step_up.options)
    approval = passkeys.verify_step_up("alice", assertion)
    # Then the approval names the change, and the passkey's use is stored
    assert (approval.action, approval.target, approval.change) == ("api_keys:create", None, "sha256:cd")
    stored = dynamo_store().get_passkey("alice", registered.credential_id)
    assert (stored.sign_count, stored.last_used_at) == (1, clock())
    # And the assertion cannot be replayed
    with pytest.raises(PasskeyRefused) as error:
        passkeys.verify_step_up("alice", assertion)
    assert error.value.reason is Refusal.CHALLENGE_REUSED
    # And an expired challenge is refused though DynamoDB still holds it
    late = passkeys.step_up_options("alice", action="api_keys:create", target=None, change="sha256:cd")
    clock.advance(seconds=config.step_up_ttl_seconds)
    with pytest.raises(PasskeyRefused) as error:
        passkeys.verify_step_up("alice", device.get(late.options))
    assert error.value.reason is Refusal.CHALLENGE_EXPIRED
