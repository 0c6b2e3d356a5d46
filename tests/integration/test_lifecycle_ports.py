"""keygate.service.KeyLifecycle on its storage ports, on two back ends with the same expectations.

Every scenario runs twice: on the in-memory fake (tests/support/memory.py) and
on the real adapters (DynamoKeyRepository, SecretsManagerVault, DynamoKeyLookup)
against moto. Outcomes are read through the ports only, so the fake is held to
the adapters' behaviour: where the DynamoDB repository refuses (ConditionFailed,
StepUpTokenReused), the fake refuses the same way. A race is forced by a rival
change that commits between a request's read and its commit (`Watched.before`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from keygate import service
from keygate.config import KeyPolicy, StorageConfig
from keygate.errors import ErrorCode, KeyGateError, ServiceUnavailable
from keygate.models import validation_context
from keygate.ports import ConditionFailed, KeyLookup, KeyRepository, NonceReused, SecretReader, SecretVault
from keygate.profiles.gaiaex import CreateApiKeyRequest, UpdateApiKeyRequest
from keygate.records import AccountState, ApiKeyRecord, AuditEntry, AuditEvent, KeyStatus
from keygate.service import CreatedKey, KeyLifecycle, KeyRef, Rotation
from keygate.stepup import StepUpTokenReused, StepUpUse
from keygate.storage import aws as layer_aws
from keygate.storage.dynamodb import DynamoKeyRepository
from keygate.storage.lookup import DynamoKeyLookup
from keygate.storage.secrets import SecretsManagerVault
from tests.support.clocks import FixedClock
from tests.support.memory import MemoryStorage
from tests.support.stack import NONCES_TABLE_NAME

SOURCE_IP = "198.51.100.7"
STEP_UP_LIFETIME_SECONDS = 305  # what StepUpVerifier gives a token issued now: max age 300 s + 5 s of skew


class Vault(SecretVault, SecretReader, Protocol):
    """Both back ends' vaults are also the authorizer's secret reader."""


@dataclass
class Storage:
    """One back end: the ports the lifecycle and the signature authorizer receive."""

    name: str
    keys: KeyRepository
    secrets: Vault
    lookup: KeyLookup


@pytest.fixture(params=["memory", "dynamodb"])
def storage(request: pytest.FixtureRequest, stack_env: dict[str, str]) -> Storage:
    """The in-memory fake, or the DynamoDB and Secrets Manager adapters on moto (the stack's table)."""
    if request.param == "memory":
        memory = MemoryStorage()
        return Storage("memory", memory.keys, memory.vault, memory.keys)
    request.getfixturevalue("aws")
    config = StorageConfig.from_environ()
    clients = layer_aws.clients(config.aws_endpoint_url)
    return Storage("dynamodb", DynamoKeyRepository(clients, config.table_name),
                   SecretsManagerVault(clients, config.secret_name_prefix, config.secrets_kms_key_id),
                   DynamoKeyLookup(clients, config.table_name, NONCES_TABLE_NAME))


@dataclass
class Watched:
    """A repository whose calls are recorded; `before[method]` runs just before each call of it."""

    keys: KeyRepository
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    before: dict[str, Callable[[], object]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.keys, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if name in self.before:
                self.before[name]()
            return method(*args, **kwargs)

        return watched

    def arguments(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args, _ in self.calls if called == name]


@dataclass
class Rival:
    """A rival change that commits in the gap, the first `times` times it is asked to."""

    change: Callable[[int], object]
    times: int = 1
    results: list[object] = field(default_factory=list)

    def __call__(self) -> None:
        if len(self.results) < self.times:
            self.results.append(self.change(len(self.results)))


class SecretsManagerDown:
    """A vault whose deletions fail (Secrets Manager unreachable); everything else goes through."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vault, name)

    def delete(self, key_id: str, version: str = "") -> None:
        raise ServiceUnavailable()


@dataclass
class Lifecycle:
    """The lifecycle on one back end, on a clock the test moves, with a fresh step-up token per change."""

    storage: Storage
    clock: FixedClock = field(default_factory=FixedClock)
    policy: KeyPolicy = field(default_factory=KeyPolicy)

    def on(self, keys: Any = None, secrets: Any = None) -> KeyLifecycle:
        return KeyLifecycle(self.policy, keys or self.storage.keys, secrets or self.storage.secrets, clock=self.clock)

    def token(self, lifetime: int = STEP_UP_LIFETIME_SECONDS) -> StepUpUse:
        """A verified step-up token, as StepUpVerifier returns it for a token issued now."""
        return StepUpUse(jti=f"jti-{uuid.uuid4().hex}", expires_at_epoch=int(self.clock().timestamp()) + lifetime)

    def onboard(self, user: str = "alice", *, trade: bool = True) -> None:
        self.storage.keys.put_account_state(user, AccountState(onboarding_completed=True,
                                                               trading_handshake_completed=trade))

    def create(self, user: str = "alice", *, step_up: StepUpUse | None = None, keys: Any = None,
               secrets: Any = None, **fields: Any) -> CreatedKey:
        request = CreateApiKeyRequest.model_validate(fields, context=validation_context(self.policy))
        return self.on(keys, secrets).create_api_key(user, request.domain(), step_up=step_up or self.token(),
                                                     source_ip=SOURCE_IP)

    def update(self, key_id: str, user: str = "alice", *, step_up: StepUpUse | None = None, keys: Any = None,
               **fields: Any) -> Any:
        request = UpdateApiKeyRequest.model_validate(fields, context=validation_context(self.policy))
        return self.on(keys).update_api_key(user, KeyRef(key_id=key_id), request.domain(),
                                            step_up=step_up or self.token(), source_ip=SOURCE_IP)

    def revoke(self, key_id: str, user: str = "alice", *, step_up: StepUpUse | None = None, keys: Any = None,
               secrets: Any = None) -> Any:
        return self.on(keys, secrets).revoke_api_key(user, KeyRef(key_id=key_id), step_up=step_up or self.token(),
                                                     source_ip=SOURCE_IP)

    def rotate(self, key_id: str, user: str = "alice", *, step_up: StepUpUse | None = None, keys: Any = None,
               secrets: Any = None, grace_seconds: int = 600) -> Any:
        return self.on(keys, secrets).rotate_api_key(user, KeyRef(key_id=key_id), Rotation(grace_seconds=grace_seconds),
                                                     step_up=step_up or self.token(), source_ip=SOURCE_IP)

    def revoke_all(self, user: str = "alice", *, step_up: StepUpUse | None = None, keys: Any = None) -> Any:
        return self.on(keys).revoke_all_api_keys(user, step_up=step_up or self.token(), source_ip=SOURCE_IP)

    # What is stored, through the ports only.
    def keys_of(self, user: str = "alice") -> dict[str, ApiKeyRecord]:
        return {record.key_id: record for record in self.storage.keys.load_user(user).keys}

    def events(self, key_id: str) -> list[AuditEvent]:
        """The key's audit events, oldest first."""
        return [entry.event for entry in reversed(self.storage.keys.query_audit(key_id, 100))]

    def due_ever(self) -> list[str]:
        """The key ids of every cleanup entry, whenever due (none is due later than a year from now)."""
        return [entry.key_id for entry in self.storage.keys.due_cleanups(self.clock() + timedelta(days=365))]


@pytest.fixture
def world(storage: Storage) -> Iterator[Lifecycle]:
    world = Lifecycle(storage)
    world.onboard()
    yield world


def refused(code: ErrorCode, action: Callable[[], object]) -> KeyGateError:
    with pytest.raises(KeyGateError) as raised:
        action()
    assert raised.value.code is code, raised.value
    return raised.value


# ---------------------------------------------------------------- create
def test_a_create_commits_the_key_its_secret_and_its_audit_entry(world):
    # When an onboarded user creates a trading key
    created = world.create(label="bot", permissions=["read", "trade"], ip_whitelist=["203.0.113.0/24"])
    # Then the key is stored active, as requested, in the keyset's first version
    snapshot = world.storage.keys.load_user("alice")
    (record,) = snapshot.keys
    assert snapshot.keyset_version == 1
    assert (record.key_id, record.label, record.permissions, record.ip_whitelist, record.status, record.version) == (
        created.record.key_id, "bot", ["read", "trade"], ["203.0.113.0/24"], KeyStatus.ACTIVE, 1)
    assert record.created_at == created.record.created_at == world.clock()
    # And its secret is the one returned, for the authorizer too, which finds the key by its id
    assert world.storage.secrets.read(created.record.key_id) == created.secret
    assert world.storage.lookup.get_key_owner(created.record.key_id) == "alice"
    assert world.storage.lookup.get_key("alice", created.record.key_id) == record
    # And the audit log has its creation, and the create's cleanup entry went with the commit
    (entry,) = world.storage.keys.query_audit(created.record.key_id, 10)
    assert (entry.event, entry.ip_address, entry.created_at) == (AuditEvent.KEY_CREATED, SOURCE_IP, world.clock())
    assert entry.details == {"label": "bot", "permissions": ["read", "trade"], "ip_whitelist": ["203.0.113.0/24"],
                             "expires_at": None, "key_type": "hmac-sha256"}
    assert world.due_ever() == []


def test_an_expiring_key_queues_its_secrets_deletion_for_its_expiry(world):
    # When a key that expires in a day is created
    created = world.create(expires_days=1)
    # Then its secret's deletion is queued for the expiry, not before
    assert world.storage.keys.due_cleanups(world.clock() + timedelta(days=1, milliseconds=-1)) == []
    (entry,) = world.storage.keys.due_cleanups(world.clock() + timedelta(days=1))
    assert (entry.key_id, entry.due, entry.reason) == (created.record.key_id, created.record.expires_at, "expired")


def test_the_create_at_the_limit_is_refused_and_spends_nothing(world):
    world.policy = KeyPolicy(max_active_keys_per_user=3)
    # Given a user at the limit
    first = world.create().record.key_id
    world.create()
    world.create()
    # When one more is created
    token = world.token()
    refused(ErrorCode.KEY_LIMIT_REACHED, lambda: world.create(step_up=token))
    # Then nothing was written: still three keys, the keyset at its third version
    assert (len(world.keys_of()), world.storage.keys.load_user("alice").keyset_version) == (3, 3)
    # And once a key is revoked, the same step-up token creates the key: it was not spent
    world.revoke(first)
    assert world.create(step_up=token).record.key_id in world.keys_of()


def test_expired_keys_stop_counting_towards_the_limit(world):
    world.policy = KeyPolicy(max_active_keys_per_user=2)
    # Given a user at the limit with a key that expires in a day
    world.create(expires_days=1)
    world.create()
    refused(ErrorCode.KEY_LIMIT_REACHED, lambda: world.create())
    # When the day has passed, Then a key can be created again
    world.clock.advance(days=1)
    world.create()
    assert len(world.keys_of()) == 3


@pytest.mark.parametrize(("account", "permissions", "code"), [
    (None, ["read"], ErrorCode.ONBOARDING_REQUIRED),
    (AccountState(), ["read"], ErrorCode.ONBOARDING_REQUIRED),
    (AccountState(onboarding_completed=True), ["read", "trade"], ErrorCode.TRADING_HANDSHAKE_REQUIRED),
    (AccountState(onboarding_completed=True), ["read"], None),
], ids=["no-account", "not-onboarded", "no-handshake-trade", "no-handshake-read"])
def test_create_prerequisites(storage, account, permissions, code):
    # Given a user with this account state
    world = Lifecycle(storage)
    if account is not None:
        storage.keys.put_account_state("bob", account)
    # When they create a key
    if code is None:
        world.create("bob", permissions=permissions)
        assert len(world.keys_of("bob")) == 1
        return
    refused(code, lambda: world.create("bob", permissions=permissions))
    # Then a refusal wrote nothing
    assert (world.keys_of("bob"), storage.keys.load_user("bob").keyset_version) == ({}, 0)


def test_an_update_that_adds_trade_needs_the_trading_handshake(world):
    # Given a read key of a user without the trading handshake
    world.onboard("bob", trade=False)
    key_id = world.create("bob").record.key_id
    # When the key is given trade, Then the handshake is required and the key is unchanged
    refused(ErrorCode.TRADING_HANDSHAKE_REQUIRED, lambda: world.update(key_id, "bob", permissions=["read", "trade"]))
    assert (world.keys_of("bob")[key_id].permissions, world.events(key_id)) == (["read"], [AuditEvent.KEY_CREATED])


# ------------------------------------------------------------------ races
def test_a_create_that_lost_a_race_counts_again_and_commits(world):
    # Given a create whose commit finds that a rival create committed after its count
    watched = Watched(world.storage.keys)
    rival = Rival(lambda _: world.create(label="rival"))
    watched.before["commit_create"] = rival
    # When it goes on
    mine = world.create(label="mine", keys=watched)
    # Then it re-read the keys and committed on the keyset's next version: both keys are there
    assert len(watched.arguments("commit_create")) == 2 and len(rival.results) == 1
    assert {record.label for record in world.keys_of().values()} == {"rival", "mine"}
    assert world.storage.keys.load_user("alice").keyset_version == 2
    assert world.storage.secrets.read(mine.record.key_id) == mine.secret


def test_a_create_that_lost_the_last_slot_is_refused_and_leaves_no_secret(world):
    world.policy = KeyPolicy(max_active_keys_per_user=2)
    # Given a user one key below the limit, and a rival create taking the last slot after the count
    world.create(label="first")
    watched = Watched(world.storage.keys)
    watched.before["commit_create"] = Rival(lambda _: world.create(label="rival"))
    # When the create goes on, Then it counts again and refuses
    refused(ErrorCode.KEY_LIMIT_REACHED, lambda: world.create(label="mine", keys=watched))
    # And the secret it had stored is deleted at once, its cleanup entry with it
    ((mine, *_),) = watched.arguments("commit_create")
    assert mine.key_id not in world.keys_of()
    assert world.storage.secrets.read(mine.key_id) is None
    assert world.due_ever() == []


def test_an_update_that_lost_a_race_applies_to_what_the_winner_left(world):
    # Given a key, and a rival rename committing between the update's read and its commit
    key_id = world.create(label="bot").record.key_id
    watched = Watched(world.storage.keys)
    watched.before["commit_update"] = Rival(lambda _: world.update(key_id, label="rival"))
    # When the update goes on
    updated = world.update(key_id, label="mine", keys=watched)
    # Then it re-read the key and committed on the version the rival left, audited from what it replaced
    assert updated.updated_fields == ["label"]
    record = world.keys_of()[key_id]
    assert (record.label, record.version) == ("mine", 3)
    changes = [entry.details.get("changes") for entry in reversed(world.storage.keys.query_audit(key_id, 10))]
    assert changes == [None, {"label": {"from": "bot", "to": "rival"}}, {"label": {"from": "rival", "to": "mine"}}]


MUTATIONS = {
    # the request (on the watched repository), its commit, and the rival that commits before each attempt
    "create": (lambda world, key_id, token, keys: world.create(label="mine", step_up=token, keys=keys),
               "commit_create", lambda world, key_id, number: world.create(label=f"rival {number}")),
    "update": (lambda world, key_id, token, keys: world.update(key_id, label="mine", step_up=token, keys=keys),
               "commit_update", lambda world, key_id, number: world.update(key_id, label=f"rival {number}")),
    "revoke": (lambda world, key_id, token, keys: world.revoke(key_id, step_up=token, keys=keys),
               "commit_revocations", lambda world, key_id, number: world.update(key_id, label=f"rival {number}")),
    "rotate": (lambda world, key_id, token, keys: world.rotate(key_id, step_up=token, keys=keys),
               "commit_rotation", lambda world, key_id, number: world.update(key_id, label=f"rival {number}")),
}


def test_a_rotation_that_lost_a_race_to_another_rotation_rotates_what_the_winner_left(world):
    # Given a key, and a rival rotation that commits between the request's read and its commit
    created = world.create(label="bot")
    key_id = created.record.key_id
    watched = Watched(world.storage.keys)
    rival = Rival(lambda number: world.rotate(key_id))
    watched.before["commit_rotation"] = rival
    # When the request rotates
    mine = world.rotate(key_id, keys=watched)
    # Then it committed on its second attempt: its secret is current, the rival's is in the grace, and the
    # create's secret (whose grace the rival began) is queued for deletion now
    assert len(watched.arguments("commit_rotation")) == 2
    record = world.storage.keys.get_key("alice", key_id)
    (rival_rotation,) = rival.results
    assert record.secret_version == mine.record.secret_version
    assert record.grace.secret_version == rival_rotation.record.secret_version
    assert world.storage.secrets.read(key_id, record.secret_version) == mine.secret
    assert world.storage.secrets.read(key_id, record.grace.secret_version) == rival_rotation.secret
    assert world.events(key_id) == [AuditEvent.KEY_CREATED, AuditEvent.KEY_ROTATED, AuditEvent.KEY_ROTATED]
    report = world.on().run_secret_janitor()
    assert report.deleted == [key_id] and world.storage.secrets.read(key_id) is None
    assert world.storage.secrets.read(key_id, record.grace.secret_version) == rival_rotation.secret


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_mutation_that_loses_five_races_gives_up_and_keeps_its_token(world, mutation):
    send, commit, rival_change = MUTATIONS[mutation]
    world.policy = KeyPolicy(max_active_keys_per_user=30)
    # Given a key, and a rival change that commits before each of the request's commit attempts
    key_id = world.create(label="bot").record.key_id
    watched, token = Watched(world.storage.keys), world.token()
    rival = Rival(lambda number: rival_change(world, key_id, number), times=service.MAX_COMMIT_ATTEMPTS)
    watched.before[commit] = rival
    # When the request is made, Then it gives up after five lost races
    refused(ErrorCode.CONCURRENT_MODIFICATION, lambda: send(world, key_id, token, watched))
    assert len(rival.results) == len(watched.arguments(commit)) == service.MAX_COMMIT_ATTEMPTS
    # And once the races stop, the same step-up token works: it was not spent
    send(world, key_id, token, world.storage.keys)


# --------------------------------------------------------------- step-up
def test_a_reused_step_up_token_is_refused_and_changes_nothing(world):
    # Given a token spent by a create
    token = world.token()
    key_id = world.create(step_up=token).record.key_id
    watched, vault = Watched(world.storage.keys), Watched(world.storage.secrets)
    # When it is used again to create, update or revoke, Then each is refused as STEP_UP_REQUIRED
    for action in (lambda: world.create(step_up=token, keys=watched, secrets=vault),
                   lambda: world.update(key_id, label="again", step_up=token),
                   lambda: world.revoke(key_id, step_up=token)):
        with pytest.raises(StepUpTokenReused):
            action()
    # And nothing changed: one key, unchanged and active
    record = world.keys_of()[key_id]
    assert (list(world.keys_of()), record.label, record.version, record.status) == ([key_id], "", 1, KeyStatus.ACTIVE)
    # And the replayed create was refused before any write: one read of the token's use, no secret, no cleanup
    assert [name for name, _, _ in watched.calls] == ["step_up_spent_by"] and vault.calls == []
    assert world.due_ever() == []


def test_a_spent_token_names_the_change_that_spent_it(world):
    keys, now = world.storage.keys, world.clock()
    # Given a token spent by a change, one never used, and one whose record expired
    spent, unused, expired = world.token(), world.token(), world.token(lifetime=5)
    keys.consume_step_up(spent, now, "change-a")
    keys.consume_step_up(expired, now, "change-b")
    world.clock.advance(seconds=6)
    # Then only the spent token names its change
    assert [keys.step_up_spent_by(token, world.clock()) for token in (spent, unused, expired)] == \
        ["change-a", None, None]


def test_every_committed_key_record_names_the_change_that_wrote_it(world):
    # Given a key created, then renamed, then revoked
    key_id = world.create(label="bot").record.key_id
    created = world.keys_of()[key_id].change_id
    world.update(key_id, label="renamed")
    updated = world.keys_of()[key_id].change_id
    world.revoke(key_id)
    revoked = world.keys_of()[key_id].change_id
    # Then each version carries its own change's id, as stored
    assert all(created and updated and revoked) and len({created, updated, revoked}) == 3


def test_a_spent_token_is_refused_until_its_record_expires(world):
    # Given a token whose record is kept 10 s (until it could no longer pass the age check)
    token = world.token(lifetime=10)
    world.create(step_up=token)
    # When it comes back at its expiry, Then it is still refused
    world.clock.advance(seconds=10)
    with pytest.raises(StepUpTokenReused):
        world.create(step_up=token)
    # And a second later its record, expired but not yet deleted by DynamoDB's TTL, no longer counts
    world.clock.advance(seconds=1)
    world.create(step_up=token)
    assert len(world.keys_of()) == 2


def test_an_update_that_changes_nothing_still_spends_its_token(world):
    # Given a key
    key_id = world.create(label="bot").record.key_id
    # When it is updated to what it already is
    token = world.token()
    unchanged = world.update(key_id, label="bot", step_up=token)
    # Then nothing is written but the token's use
    assert unchanged.updated_fields == []
    assert (world.keys_of()[key_id].version, world.events(key_id)) == (1, [AuditEvent.KEY_CREATED])
    with pytest.raises(StepUpTokenReused):
        world.update(key_id, label="renamed", step_up=token)


# ---------------------------------------------------------------- revoke
def test_revoke_then_revoke_again(world):
    # Given an active key
    key_id = world.create(label="bot").record.key_id
    revoked_at = world.clock()
    # When it is revoked
    first = world.revoke(key_id)
    # Then it is revoked now, audited, its secret deleted at once and nothing left for the janitor
    assert (first.already_revoked, first.record.revoked_at) == (False, revoked_at)
    record = world.keys_of()[key_id]
    assert (record.status, record.revoked_at, record.version) == (KeyStatus.REVOKED, revoked_at, 2)
    assert world.events(key_id) == [AuditEvent.KEY_CREATED, AuditEvent.KEY_REVOKED]
    assert world.storage.secrets.read(key_id) is None
    assert world.due_ever() == []
    # When it is revoked again, later
    world.clock.advance(minutes=5)
    token = world.token()
    second = world.revoke(key_id, step_up=token)
    # Then the answer gives the original revocation and changes nothing, but the token is spent
    assert (second.already_revoked, second.record.revoked_at) == (True, revoked_at)
    assert world.keys_of()[key_id] == record
    assert world.events(key_id) == [AuditEvent.KEY_CREATED, AuditEvent.KEY_REVOKED]
    with pytest.raises(StepUpTokenReused):
        world.create(step_up=token)
    # And the revoked key can no longer be changed
    refused(ErrorCode.KEY_REVOKED, lambda: world.update(key_id, label="late"))


def test_another_users_key_is_not_found(world):
    key_id = world.create().record.key_id
    refused(ErrorCode.KEY_NOT_FOUND, lambda: world.revoke(key_id, "bob"))
    refused(ErrorCode.KEY_NOT_FOUND, lambda: world.update(key_id, "bob", label="mine"))
    assert world.keys_of()[key_id].status is KeyStatus.ACTIVE


def test_revoke_all_commits_its_keys_in_transactions_of_at_most_thirty(world):
    world.policy = KeyPolicy(max_active_keys_per_user=30)
    # Given more keys than one transaction holds: thirty that have expired (revoke-all revokes them too) and one more
    for number in range(30):
        world.create(label=f"old {number}", expires_days=1)
    world.clock.advance(days=1, minutes=1)
    latest = world.create(label="latest").record.key_id
    # When all are revoked
    watched, token = Watched(world.storage.keys), world.token()
    revoked = world.revoke_all(keys=watched, step_up=token)
    # Then every key is revoked, in two transactions; the step-up token is spent with the first
    assert len(revoked) == 31 and revoked == sorted(world.keys_of())
    batches = [(len(revocations), step_up) for revocations, step_up, *_ in watched.arguments("commit_revocations")]
    assert service.REVOCATIONS_PER_TRANSACTION == 30
    assert batches == [(30, token), (1, None)]
    assert {record.status for record in world.keys_of().values()} == {KeyStatus.REVOKED}
    assert world.events(latest) == [AuditEvent.KEY_CREATED, AuditEvent.KEY_REVOKED]
    # And every secret is deleted; only the expired keys' own entries are left, for the janitor to clear
    assert all(world.storage.secrets.read(key_id) is None for key_id in world.keys_of())
    assert sorted(world.due_ever()) == sorted(set(world.keys_of()) - {latest})
    world.on().run_secret_janitor()
    assert world.due_ever() == []


def test_revoke_all_with_nothing_to_revoke_still_spends_its_token(world):
    token = world.token()
    assert world.revoke_all(step_up=token) == []
    with pytest.raises(StepUpTokenReused):
        world.revoke_all(step_up=token)


# --------------------------------------------------------------- janitor
def test_the_janitor_keeps_an_active_keys_secret_and_deletes_a_revoked_ones(world):
    # Given an active key with a cleanup entry that fell due (a create whose entry outlived its commit) ...
    active = world.create(label="active")
    world.storage.keys.add_cleanup(active.record.key_id, world.clock(), "create")
    # ... and a key revoked while Secrets Manager was down: the revocation stands, its secret is left over
    revoked = world.create(label="revoked").record.key_id
    assert world.revoke(revoked, secrets=SecretsManagerDown(world.storage.secrets)).already_revoked is False
    assert world.storage.secrets.read(revoked) is not None
    # When the janitor runs, one period later
    world.clock.advance(seconds=service.JANITOR_PERIOD.total_seconds())
    report = world.on().run_secret_janitor()
    # Then it kept the active key's secret, deleted the revoked one's, and cleared both entries
    assert (report.kept, report.deleted, report.failed) == ([active.record.key_id], [revoked], [])
    assert world.storage.secrets.read(active.record.key_id) == active.secret
    assert world.storage.secrets.read(revoked) is None
    assert world.due_ever() == []


# ------------------------------------------------ the storage's own rules
def _audit(record: ApiKeyRecord, event: AuditEvent, now: datetime) -> AuditEntry:
    return AuditEntry(event=event, api_key=record.key_id, ip_address=SOURCE_IP, created_at=now)


def test_a_commit_on_what_changed_since_it_was_read_is_a_lost_race(world):
    keys, now = world.storage.keys, world.clock()
    # Given a key that was renamed (version 2) after it was read (version 1)
    key_id = world.create(label="bot").record.key_id
    read = world.keys_of()[key_id]
    current = read.changed(label="renamed", version=2)
    keys.commit_update(read, current, _audit(current, AuditEvent.KEY_UPDATED, now), world.token(), now)
    # Then an update or a revocation of what was read loses, and so does a create on a keyset version already used
    stale_token = world.token()
    with pytest.raises(ConditionFailed):
        keys.commit_update(read, read.changed(label="stale", version=2), _audit(read, AuditEvent.KEY_UPDATED, now),
                           stale_token, now)
    stale_revocation = (read, read.changed(status=KeyStatus.REVOKED, revoked_at=now, version=2),
                        _audit(read, AuditEvent.KEY_REVOKED, now))
    with pytest.raises(ConditionFailed):
        keys.commit_revocations([stale_revocation], None, now)
    newcomer = read.changed(key_id=f"{read.key_id[:-1]}x", label="newcomer", version=1)
    with pytest.raises(ConditionFailed):
        keys.commit_create(newcomer, _audit(newcomer, AuditEvent.KEY_CREATED, now), world.token(),
                           expected_keyset_version=0, cleanup_due=now, now=now)
    # And with a spent step-up token too, the token's refusal is the one reported
    spent = world.token()
    keys.consume_step_up(spent, now, "change-1")
    with pytest.raises(StepUpTokenReused):
        keys.commit_update(read, read.changed(label="stale", version=2), _audit(read, AuditEvent.KEY_UPDATED, now),
                           spent, now)
    # And a revoked key loses even against the version it has
    revoked = current.changed(status=KeyStatus.REVOKED, revoked_at=now, version=3)
    keys.commit_revocations([(current, revoked, _audit(current, AuditEvent.KEY_REVOKED, now))], None, now)
    with pytest.raises(ConditionFailed):
        keys.commit_update(revoked, revoked.changed(label="late", version=4),
                           _audit(revoked, AuditEvent.KEY_UPDATED, now), world.token(), now)
    # And nothing a refused commit carried was written, its step-up use included
    assert world.keys_of() == {key_id: revoked}
    assert len(keys.query_audit(key_id, 100)) == 3
    keys.consume_step_up(stale_token, now, "change-2")


def test_a_transaction_of_more_than_a_hundred_items_is_refused_before_anything_is_written(world):
    keys, now = world.storage.keys, world.clock()
    key_id = world.create().record.key_id
    record = world.keys_of()[key_id]
    revocation = (record, record.changed(status=KeyStatus.REVOKED, revoked_at=now, version=2),
                  _audit(record, AuditEvent.KEY_REVOKED, now))
    # 34 revocations of three items each and a step-up use are more than DynamoDB's 100
    with pytest.raises(ValueError):
        keys.commit_revocations([revocation] * 34, world.token(), now)
    assert world.keys_of()[record.key_id] == record


def test_nonces_are_refused_until_their_record_expires(storage):
    lookup = storage.lookup
    # Given a nonce recorded until 2000 ms
    lookup.record_nonce("kgk_a", "nonce-0123456789abcdef", now_ms=1000, expires_at_ms=2000)
    # Then it is refused up to its expiry, for this key only
    for now_ms in (1000, 2000):
        with pytest.raises(NonceReused):
            lookup.record_nonce("kgk_a", "nonce-0123456789abcdef", now_ms=now_ms, expires_at_ms=now_ms + 1000)
    lookup.record_nonce("kgk_b", "nonce-0123456789abcdef", now_ms=1500, expires_at_ms=2500)
    # And after it, the expired record (not yet deleted by DynamoDB's TTL) no longer counts: recorded anew
    lookup.record_nonce("kgk_a", "nonce-0123456789abcdef", now_ms=2001, expires_at_ms=7001)
    with pytest.raises(NonceReused):
        lookup.record_nonce("kgk_a", "nonce-0123456789abcdef", now_ms=7001, expires_at_ms=8001)


@pytest.mark.parametrize("storage", ["dynamodb"], indirect=True)
def test_a_nonce_write_whose_answer_was_lost_is_not_taken_for_a_replay(storage):
    lookup = storage.lookup
    assert isinstance(lookup, DynamoKeyLookup)
    dynamodb = layer_aws.clients(StorageConfig.from_environ().aws_endpoint_url).dynamodb
    lost: list[dict[str, Any]] = []

    def write_then_lose_the_answer(request: Any, **_: Any) -> None:
        # The first PutItem reaches the table (through another client), then its answer times out
        if not lost:
            lost.append(json.loads(request.body))
            other = boto3.client("dynamodb", region_name=dynamodb.meta.region_name,
                                 endpoint_url=dynamodb.meta.endpoint_url)
            other.put_item(**lost[0])
            raise ReadTimeoutError(endpoint_url=request.url)

    dynamodb.meta.events.register_first("before-send.dynamodb.PutItem", write_then_lose_the_answer)
    try:
        # When a request's fresh nonce is written, the answer lost and the write retried by botocore
        lookup.record_nonce("kgk_a", "nonce-0123456789abcdef", now_ms=1000, expires_at_ms=2000)
    finally:
        dynamodb.meta.events.unregister("before-send.dynamodb.PutItem", write_then_lose_the_answer)
    # Then the request passes: the item its retry found is its own write
    assert len(lost) == 1 and lost[0]["Item"]["pk"] == {"S": "kgk_a#nonce-0123456789abcdef"}
    # And the same nonce from any later call is a replay
    with pytest.raises(NonceReused):
        lookup.record_nonce("kgk_a", "nonce-0123456789abcdef", now_ms=1500, expires_at_ms=2500)


def test_a_keys_last_use_is_written_at_most_once_per_interval(world):
    key_id, used = world.create().record.key_id, world.clock()
    # When the authorizer reports uses 30 s apart, at most once a minute
    for seconds in (0, 30, 60, 61):
        world.storage.lookup.touch_last_used("alice", key_id, used + timedelta(seconds=seconds),
                                             at_most_every_seconds=60)
        if seconds == 60:
            # Then a use within the interval changed nothing ...
            assert world.keys_of()[key_id].last_used_at == used
    # ... and the first one after it is recorded, beside the key record (never changing its version)
    record = world.keys_of()[key_id]
    assert (record.last_used_at, record.version) == (used + timedelta(seconds=61), 1)
    assert world.storage.lookup.get_key("alice", key_id).last_used_at is None


def test_the_cleanup_outbox_is_read_oldest_first_up_to_the_limit(world):
    keys, now = world.storage.keys, world.clock()
    # Given entries due at two moments, several at the same one
    for key_id, due in (("kgk_c", now), ("kgk_a", now), ("kgk_b", now - timedelta(seconds=1)),
                        ("kgk_d", now + timedelta(milliseconds=1))):
        keys.add_cleanup(key_id, due, "test")
    # Then those due come oldest first, then by key id, up to the limit
    assert [entry.key_id for entry in keys.due_cleanups(now)] == ["kgk_b", "kgk_a", "kgk_c"]
    assert [(entry.key_id, entry.due) for entry in keys.due_cleanups(now, limit=2)] == [
        ("kgk_b", now - timedelta(seconds=1)), ("kgk_a", now)]
    # And an entry is removed by the due time it was read with
    keys.remove_cleanup("kgk_a", now)
    assert [entry.key_id for entry in keys.due_cleanups(now + timedelta(seconds=1))] == ["kgk_b", "kgk_c", "kgk_d"]
