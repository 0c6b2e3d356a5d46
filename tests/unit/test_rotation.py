"""Rotation with a grace period (issue 15), pure logic: the lifecycle and the signature authorizer on one
in-memory table and vault, on the same injected clocks, so every bound is checked without sleeping.

A rotated key's record names its current secret (or public key) and, until the grace ends, the previous
one; the authorizer caches records for RecordCacheTtlSeconds and secrets by version, so the new secret
verifies once each instance has re-read the record (`usable_from`) and the previous one stops at the
grace's end whatever the janitor does (docs/architecture.md, "Rotation").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keygate.authorizer import SignatureAuthorizer
from keygate.config import KeyPolicy
from keygate.errors import KeyGateError
from keygate.records import AuditEvent, KeyStatus, secret_ref
from keygate.service import KeyLifecycle, KeyRef, Rotation
from kg1 import ed25519 as kg1_ed25519
from tests.support.bots import Bot
from tests.support.clocks import Clocks
from tests.support.memory import MemoryStorage
from tests.unit.test_authorizer import make_config

NOW_MS = 1_795_000_000_000
TTL = 5  # RecordCacheTtlSeconds
GRACE = 60


class World:
    """One table and vault; the lifecycle and `instances` warm authorizer instances on the same clocks."""

    def __init__(self, instances: int = 3, *, ed25519: bool = False) -> None:
        self.storage, self.clocks = MemoryStorage(), Clocks(NOW_MS)
        self.lifecycle = KeyLifecycle(KeyPolicy(record_cache_ttl_seconds=TTL), self.storage.keys, self.storage.vault,
                                      clock=self.now)
        self.authorizers = [SignatureAuthorizer(make_config(record_cache_ttl_seconds=TTL), self.storage.keys,
                                                self.storage.vault, clock_ms=self.clocks.wall_clock_ms,
                                                monotonic=self.clocks.monotonic_clock) for _ in range(instances)]
        if ed25519:
            self.key_id, private_key = self.storage.add_ed25519_key()
            self.bot = Bot(self.key_id, None, self.clocks, private_key=private_key)
        else:
            self.key_id, secret = self.storage.add_key()
            self.bot = Bot(self.key_id, secret, self.clocks)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clocks.wall_ms / 1000, UTC)

    def rotate(self, grace_seconds: int = GRACE, public_key: str | None = None):
        return self.lifecycle.rotate_api_key("alice", KeyRef(key_id=self.key_id),
                                             Rotation(grace_seconds=grace_seconds, public_key=public_key),
                                             step_up=None, source_ip="203.0.113.10")

    def send(self, bot: Bot, instance: int = 0):
        return self.authorizers[instance].authorize(bot.request())


def test_a_bot_rotating_while_it_sends_continuously_loses_no_request():
    # Given a bot sending a request every 250 ms, spread over three warm authorizer instances whose caches
    # were filled at different moments
    world = World(instances=3)
    sent, refused = 0, []
    current, pending, switch_at_ms = world.bot, None, None

    def tick(count: int) -> None:
        nonlocal sent, current, pending
        for _ in range(count):
            if pending is not None and world.clocks.wall_ms >= switch_at_ms:
                current, pending = pending, None  # the bot switches to the new secret at usable_from
            decision = world.send(current, sent % 3)
            sent += 1
            if not decision.allowed:
                refused.append((world.clocks.wall_ms, decision.code))
            world.clocks.advance(0.25)

    tick(7)
    # When it rotates its key (an hour's grace by default) in the middle of that stream
    rotated = world.rotate(grace_seconds=3600)
    pending = Bot(world.key_id, rotated.secret, world.clocks)
    switch_at_ms = int(rotated.usable_from.timestamp() * 1000)
    # ... and keeps sending with the old secret until usable_from, then with the new one, for two minutes
    tick(480)
    # Then not one request was refused, and the bot did switch
    assert refused == []
    assert current is not world.bot and sent == 487
    # And usable_from is at most RecordCacheTtlSeconds after the rotation
    assert rotated.usable_from - rotated.record.grace.valid_until + timedelta(seconds=3600) <= timedelta(seconds=TTL)


def test_the_new_secret_verifies_everywhere_from_usable_from_and_the_old_one_until_the_grace_ends():
    world = World(instances=3)
    old = world.bot
    for instance in range(3):  # every instance has the record (old secret only) cached
        assert world.send(old, instance).allowed
        world.clocks.advance(1)
    rotated = world.rotate(grace_seconds=GRACE)
    new = Bot(world.key_id, rotated.secret, world.clocks)
    # From usable_from on, every instance verifies the new secret (its cached record has expired by then)
    world.clocks.wall_ms = int(rotated.usable_from.timestamp() * 1000)
    world.clocks.monotonic += TTL
    for instance in range(3):
        assert world.send(new, instance).allowed
        assert world.send(old, instance).allowed  # still inside the grace
    # Just before the grace ends the old secret still verifies; from its end it is refused on every instance,
    # even while the instance's cached record and secret are fresh and the janitor has not run
    grace_ends_ms = int(rotated.previous_valid_until.timestamp() * 1000)
    world.clocks.wall_ms = grace_ends_ms - 1
    assert all(world.send(old, instance).allowed for instance in range(3))
    world.clocks.wall_ms = grace_ends_ms
    assert [world.send(old, instance).code for instance in range(3)] == ["SIGNATURE_MISMATCH"] * 3
    assert secret_ref(world.key_id) in world.storage.vault.secrets  # (the janitor has not deleted it yet)
    assert all(world.send(new, instance).allowed for instance in range(3))


def _slow_rotation(grace_seconds: int, monkeypatch: pytest.MonkeyPatch):
    """A rotation call that takes 4 s to make the new secret, 1 s to commit and 1 s more to be told so, while three
    instances each read the record (the old secret only) just before the commit; the world and the answer."""
    world = World(instances=3)
    create, commit = world.storage.vault.create, world.storage.keys.commit_rotation

    def slow_create(*args, **kwargs):
        world.clocks.advance(4)
        return create(*args, **kwargs)

    def slow_commit(*args, **kwargs):
        assert all(world.send(world.bot, instance).allowed for instance in range(3))
        world.clocks.advance(1)
        commit(*args, **kwargs)
        world.clocks.advance(1)

    monkeypatch.setattr(world.storage.vault, "create", slow_create)
    monkeypatch.setattr(world.storage.keys, "commit_rotation", slow_commit)
    return world, world.rotate(grace_seconds=grace_seconds)


@pytest.mark.parametrize("grace_seconds", [0, GRACE])
def test_after_a_slow_rotation_call_the_old_secret_is_refused_everywhere_within_the_ttl_of_previous_valid_until(
        grace_seconds, monkeypatch):
    # Given a slow rotation call, and instances whose cached records predate its commit
    world, rotated = _slow_rotation(grace_seconds, monkeypatch)
    # When the old secret is sent RecordCacheTtlSeconds after the answer's previous_valid_until (or now, if later)
    refused_from_ms = int((rotated.previous_valid_until + timedelta(seconds=TTL)).timestamp() * 1000)
    world.clocks.advance(max(0, refused_from_ms - world.clocks.wall_ms) / 1000)
    # Then every instance refuses it: previous_valid_until is the grace's end from the commit, and never before
    # the commit was answered
    assert [world.send(world.bot, instance).code for instance in range(3)] == ["SIGNATURE_MISMATCH"] * 3


def test_after_a_slow_rotation_call_a_grace_of_the_ttl_plus_ten_seconds_still_reaches_usable_from(monkeypatch):
    # Given a slow rotation call with the shortest grace the docs promise to lose nothing with
    world, rotated = _slow_rotation(TTL + 10, monkeypatch)
    new = Bot(world.key_id, rotated.secret, world.clocks)
    # When a bot sends with the old secret just before usable_from, then with the new one from it
    world.clocks.advance((int(rotated.usable_from.timestamp() * 1000) - 1 - world.clocks.wall_ms) / 1000)
    before = [world.send(world.bot, instance).allowed for instance in range(3)]
    world.clocks.advance(0.001)
    after = [world.send(new, instance).allowed for instance in range(3)]
    # Then every instance lets each in: the grace, counted from the commit, outlasts usable_from
    assert before == after == [True] * 3
    assert rotated.previous_valid_until > rotated.usable_from


def test_a_failed_signature_never_forces_a_fresh_read_of_the_record():
    world = World(instances=1)
    assert world.send(world.bot).allowed
    rotated = world.rotate()
    new = Bot(world.key_id, rotated.secret, world.clocks)
    reads = world.storage.calls.count("get_key")
    # When the new secret is tried before the cached record expires, a hundred times
    for _ in range(100):
        assert world.send(new).code == "SIGNATURE_MISMATCH"
        world.clocks.advance(0.01)
    # Then no request read the record again: a forged signature costs no DynamoDB read
    assert world.storage.calls.count("get_key") == reads
    # And once the record's TTL has passed, the new secret verifies
    world.clocks.advance(TTL)
    assert world.send(new).allowed


def test_the_janitor_deletes_the_previous_secret_once_the_grace_has_ended():
    world = World(instances=1)
    rotated = world.rotate(grace_seconds=GRACE)
    new_name = secret_ref(world.key_id, rotated.record.secret_version)
    assert world.storage.vault.secrets[new_name] == rotated.secret
    # Before the grace ends the janitor keeps both secrets
    world.clocks.advance(GRACE - 1)
    world.lifecycle.run_secret_janitor()
    assert {secret_ref(world.key_id), new_name} <= set(world.storage.vault.secrets)
    # After it, the first run deletes the previous one, and the current one stays
    world.clocks.advance(1)
    report = world.lifecycle.run_secret_janitor()
    assert report.deleted == [world.key_id]
    assert set(world.storage.vault.secrets) == {new_name}
    assert world.storage.keys.cleanups == {}


def test_a_rotation_during_a_grace_ends_the_earlier_grace_at_once():
    world = World(instances=1)
    first = world.rotate(grace_seconds=GRACE)
    second_bot = Bot(world.key_id, first.secret, world.clocks)
    world.clocks.advance(10)
    second = world.rotate(grace_seconds=GRACE)
    third_bot = Bot(world.key_id, second.secret, world.clocks)
    world.clocks.advance(TTL)  # the record re-read
    # Then the original secret no longer verifies (its grace ended with the second rotation), the first
    # rotation's secret is in the new grace, the second's is current
    assert world.send(world.bot).code == "SIGNATURE_MISMATCH"
    assert world.send(second_bot).allowed
    assert world.send(third_bot).allowed
    # And the janitor deletes the original secret at once (its cleanup fell due with the second rotation)
    world.lifecycle.run_secret_janitor()
    assert secret_ref(world.key_id) not in world.storage.vault.secrets
    assert set(world.storage.vault.secrets) == {secret_ref(world.key_id, first.record.secret_version),
                                                secret_ref(world.key_id, second.record.secret_version)}


def test_no_grace_stops_the_previous_secret_at_once():
    world = World(instances=1)
    rotated = world.rotate(grace_seconds=0)
    world.clocks.advance(TTL)
    assert world.send(world.bot).code == "SIGNATURE_MISMATCH"
    assert world.send(Bot(world.key_id, rotated.secret, world.clocks)).allowed
    assert rotated.record.grace is None
    world.lifecycle.run_secret_janitor()
    assert secret_ref(world.key_id) not in world.storage.vault.secrets


def test_rotation_keeps_everything_but_the_secret_and_is_audited():
    world = World(instances=1)
    before = world.storage.keys.records[world.key_id]
    rotated = world.rotate()
    after = world.storage.keys.records[world.key_id]
    assert (after.key_id, after.label, after.permissions, after.ip_whitelist, after.expires_at, after.handle) == \
        (before.key_id, before.label, before.permissions, before.ip_whitelist, before.expires_at, before.handle)
    assert after.version == before.version + 1 and after.secret_version == rotated.record.secret_version != ""
    [entry] = world.lifecycle.get_api_key_audit("alice", KeyRef(key_id=world.key_id), limit=5).entries
    assert entry.event is AuditEvent.KEY_ROTATED
    assert entry.details["grace_seconds"] == GRACE
    assert rotated.secret not in str(entry.details)


def test_revoking_a_rotated_key_deletes_both_of_its_secrets():
    world = World(instances=1)
    world.rotate()
    assert len(world.storage.vault.secrets) == 2
    world.lifecycle.revoke_api_key("alice", KeyRef(key_id=world.key_id), step_up=None, source_ip="203.0.113.10")
    assert world.storage.vault.secrets == {}


@pytest.mark.parametrize(("state", "code"), [("revoked", "KEY_REVOKED"), ("expired", "KEY_EXPIRED")])
def test_a_revoked_or_expired_key_cannot_be_rotated(state, code):
    world = World(instances=1)
    record = world.storage.keys.records[world.key_id]
    world.storage.keys.put_record(record.changed(status=KeyStatus.REVOKED) if state == "revoked"
                                  else record.changed(expires_at=world.now() - timedelta(seconds=1)))
    with pytest.raises(KeyGateError) as refused:
        world.rotate()
    assert (refused.value.code, refused.value.status) == (code, 400)
    # And no secret was made for it
    assert list(world.storage.vault.secrets) == [secret_ref(world.key_id)]


def test_a_rotation_that_loses_its_commit_deletes_the_secret_it_made():
    world = World(instances=1)
    world.storage.failing.add("commit_rotation")
    with pytest.raises(KeyGateError):
        world.rotate()
    # A fault may hide a commit: the secret stays for the janitor, which deletes it once the key shows it unused
    world.storage.failing.clear()
    world.clocks.advance(KeyPolicy.orphan_grace_seconds)
    world.lifecycle.run_secret_janitor()
    assert list(world.storage.vault.secrets) == [secret_ref(world.key_id)]
    assert world.storage.keys.cleanups == {}
    assert world.send(world.bot).allowed


# ------------------------------------------------------------------ Ed25519
def test_an_ed25519_key_rotates_to_the_public_key_sent_with_the_same_grace():
    world = World(instances=2, ed25519=True)
    assert world.send(world.bot).allowed
    new_private = kg1_ed25519.generate_private_key()
    new_public = kg1_ed25519.public_key_base64(kg1_ed25519.public_key_of(new_private))
    rotated = world.rotate(public_key=new_public)
    assert rotated.secret is None and world.storage.vault.secrets == {}  # no secret, ever
    new = Bot(world.key_id, None, world.clocks, private_key=new_private)
    world.clocks.wall_ms = int(rotated.usable_from.timestamp() * 1000)
    world.clocks.monotonic += TTL
    assert world.send(new, 0).allowed and world.send(new, 1).allowed
    assert world.send(world.bot, 0).allowed  # the previous public key, inside the grace
    world.clocks.wall_ms = int(rotated.previous_valid_until.timestamp() * 1000)
    assert world.send(world.bot, 1).code == "SIGNATURE_MISMATCH"
    assert world.send(new, 1).allowed


@pytest.mark.parametrize(("ed25519", "public_key", "says"), [
    (True, None, "new public key"),
    (False, "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8=", "send no public key"),
])
def test_the_public_key_is_sent_for_an_ed25519_key_and_only_then(ed25519, public_key, says):
    world = World(instances=1, ed25519=ed25519)
    with pytest.raises(KeyGateError) as refused:
        world.rotate(public_key=public_key)
    assert refused.value.code == "INVALID_REQUEST" and says in refused.value.message
