"""keygate.ports in memory, with the semantics of the DynamoDB and Secrets Manager adapters (keygate.storage).

`MemoryKeyStore` stands for the table: the lifecycle's KeyRepository and the
signature authorizer's KeyLookup over the same records, so a key the lifecycle
creates is one the authorizer finds. `MemoryVault` stands for Secrets Manager:
SecretVault and SecretReader. Every commit is atomic and carries the
conditions of keygate.storage.dynamodb, refusing where it refuses:

- a step-up use: StepUpTokenReused while the token's record exists and has not
  expired (`expires_ttl < now`, in whole seconds, lets an expired one be used
  again, as DynamoDB deletes expired items late); it is checked first, as the
  repository reads the step-up item's cancellation reason first;
- a create: ConditionFailed unless the user's keyset version is the one read
  (or there is no keyset yet) and the key id is new;
- an update or a revocation: ConditionFailed unless the record's version is
  the one read and the key is still active;
- a transaction of more than 100 items: ValueError, before anything is written.

Nonces are refused (NonceReused) while their record has not expired, a last
use is written at most once per interval (a refusal is silent), times are kept
to the millisecond as the table keeps them, key records come back in the
table's order (by key id), audit entries newest first (commit order, which is
the order of the versions their changes committed), and cleanup entries
oldest first by (due time, key id).

`calls` lists the port methods called, in order; an operation named in
`failing` raises ServiceUnavailable instead, as an unreachable AWS would. A
vault made with `MemoryVault.beside(store)` shares the store's list and set;
`MemoryStorage` is such a pair, plus keys put there directly for a test.
tests/integration/test_lifecycle_ports.py runs the same scenarios on these
and on the DynamoDB adapters against moto, and expects the same outcomes.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from keygate import keys as keygate_keys
from keygate.errors import ServiceUnavailable
from keygate.ports import ConditionFailed, NonceReused, Revocation
from keygate.records import (
    AccountState,
    ApiKeyRecord,
    AuditEntry,
    KeyStatus,
    PendingCleanup,
    UserSnapshot,
    secret_ref,
)
from keygate.stepup import StepUpTokenReused, StepUpUse

TRANSACTION_MAX_ITEMS = 100  # DynamoDB's limit, which keygate.storage.dynamodb enforces before calling it


def stored_time(moment: datetime) -> datetime:
    """`moment` as the table gives it back: UTC, to the millisecond (truncated)."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _stored_record(record: ApiKeyRecord) -> ApiKeyRecord:
    def optional(moment: datetime | None) -> datetime | None:
        return None if moment is None else stored_time(moment)

    return record.changed(permissions=list(record.permissions), ip_whitelist=list(record.ip_whitelist),
                          created_at=stored_time(record.created_at), expires_at=optional(record.expires_at),
                          revoked_at=optional(record.revoked_at), last_used_at=optional(record.last_used_at))


@dataclass
class _Recorded:
    calls: list[str] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)

    def _call(self, operation: str) -> None:
        self.calls.append(operation)
        if operation in self.failing:
            raise ServiceUnavailable()


@dataclass
class MemoryKeyStore(_Recorded):
    """keygate.ports.KeyRepository and KeyLookup in memory (the table)."""

    accounts: dict[str, AccountState] = field(default_factory=dict)
    keyset_versions: dict[str, int] = field(default_factory=dict)
    records: dict[str, ApiKeyRecord] = field(default_factory=dict)  # by key id (its pointer names the user)
    audit: dict[str, list[AuditEntry]] = field(default_factory=dict)  # by key id, in commit (= version) order
    audited_changes: set[tuple[str, int, str]] = field(default_factory=set)  # (key id, version, change id)
    step_ups: dict[str, tuple[int, str]] = field(default_factory=dict)  # jti -> (expires_ttl, change id)
    nonces: dict[tuple[str, str], int] = field(default_factory=dict)  # (key id, nonce) -> expires_at_ms
    last_used: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (user id, key id)
    # (due ms, key id, secret version or None for all the key's secrets) -> reason
    cleanups: dict[tuple[int, str, str | None], str] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)  # secret fingerprint -> key id
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    # ---------------------------------------------------------- test set-up
    def put_record(self, record: ApiKeyRecord) -> None:
        """A key record and its pointer, as a committed create (or later change) leaves them; not a port call."""
        with self._lock:
            self.records[record.key_id] = _stored_record(record)

    # --------------------------------------------------- KeyRepository reads
    def load_user(self, user_id: str) -> UserSnapshot:
        self._call("load_user")
        with self._lock:
            keys = []
            for key_id in sorted(key_id for key_id, record in self.records.items() if record.user_id == user_id):
                record = self.records[key_id]
                used = self.last_used.get((user_id, key_id))
                keys.append(record.changed(last_used_at=used) if used else record)
            return UserSnapshot(account=self.accounts.get(user_id, AccountState()),
                                keyset_version=self.keyset_versions.get(user_id, 0), keys=keys)

    def _record(self, user_id: str, key_id: str) -> ApiKeyRecord | None:
        record = self.records.get(key_id)
        return record if record is not None and record.user_id == user_id else None

    def get_key(self, user_id: str, key_id: str) -> ApiKeyRecord | None:
        self._call("get_key")
        with self._lock:
            return self._record(user_id, key_id)

    def get_key_by_handle(self, user_id: str, handle: str) -> ApiKeyRecord | None:
        self._call("get_key_by_handle")
        with self._lock:
            found = [record for record in self.records.values()
                     if record.user_id == user_id and record.handle == handle]
            return found[0] if found else None

    def get_key_by_id(self, key_id: str) -> ApiKeyRecord | None:
        self._call("get_key_by_id")
        with self._lock:
            return self.records.get(key_id)

    def key_of_fingerprint(self, fingerprint: str) -> ApiKeyRecord | None:
        self._call("key_of_fingerprint")
        with self._lock:
            key_id = self.fingerprints.get(fingerprint)
            return None if key_id is None else self.records.get(key_id)

    def query_audit(self, key_id: str, limit: int) -> list[AuditEntry]:
        self._call("query_audit")
        with self._lock:
            return [copy.deepcopy(entry) for entry in reversed(self.audit.get(key_id, []))][:limit]

    def put_account_state(self, user_id: str, state: AccountState) -> None:
        self._call("put_account_state")
        with self._lock:
            self.accounts[user_id] = state

    # ------------------------------------------------------- cleanup outbox
    def add_cleanup(self, key_id: str, due: datetime, reason: str, secret_version: str | None = None) -> None:
        self._call("add_cleanup")
        with self._lock:
            self.cleanups[(_epoch_ms(due), key_id, secret_version)] = reason

    def remove_cleanup(self, key_id: str, due: datetime, secret_version: str | None = None) -> None:
        self._call("remove_cleanup")
        with self._lock:
            self.cleanups.pop((_epoch_ms(due), key_id, secret_version), None)

    def due_cleanups(self, now: datetime, limit: int = 500) -> list[PendingCleanup]:
        self._call("due_cleanups")
        with self._lock:
            due = [entry for entry in sorted(self.cleanups, key=lambda entry: (entry[0], entry[1], entry[2] or ""))
                   if entry[0] <= _epoch_ms(now)][:limit]
            return [PendingCleanup(key_id=key_id, due=datetime.fromtimestamp(due_ms / 1000, UTC),
                                   reason=self.cleanups[(due_ms, key_id, version)], secret_version=version)
                    for due_ms, key_id, version in due]

    # ----------------------------------------------------------- transactions
    def _spender(self, step_up: StepUpUse, now: datetime) -> str | None:
        spent = self.step_ups.get(step_up.jti)
        return None if spent is None or spent[0] < int(now.timestamp()) else spent[1]

    def step_up_spent_by(self, step_up: StepUpUse, now: datetime) -> str | None:
        self._call("step_up_spent_by")
        with self._lock:
            return self._spender(step_up, now)

    def _versioned_update_fails(self, before: ApiKeyRecord, after: ApiKeyRecord) -> bool:
        current = self._record(after.user_id, after.key_id)
        return current is None or current.version != before.version or current.status is not KeyStatus.ACTIVE

    def _commit(self, items: int, step_up: StepUpUse | None, now: datetime, conditions_fail: bool,
                change_id: str) -> None:
        """Refuse the transaction as DynamoDB and the repository would; else record the step-up use."""
        if items > TRANSACTION_MAX_ITEMS:
            raise ValueError("a transaction holds at most 100 items")
        if step_up is not None and self._spender(step_up, now) is not None:
            raise StepUpTokenReused()
        if conditions_fail:
            raise ConditionFailed("ConditionalCheckFailed")
        if step_up is not None:
            self.step_ups[step_up.jti] = (step_up.expires_at_epoch, change_id)

    def _add_audit(self, entry: AuditEntry, changed: ApiKeyRecord) -> None:
        stored = AuditEntry(event=entry.event, api_key=entry.api_key, ip_address=entry.ip_address,
                            created_at=stored_time(entry.created_at), details=copy.deepcopy(entry.details))
        self.audit.setdefault(entry.api_key, []).append(stored)
        self.audited_changes.add((entry.api_key, changed.version, changed.change_id))

    def audit_entry_written(self, entry: AuditEntry, changed: ApiKeyRecord) -> bool:
        self._call("audit_entry_written")
        with self._lock:
            return (entry.api_key, changed.version, changed.change_id) in self.audited_changes

    def commit_create(self, record: ApiKeyRecord, audit: AuditEntry, step_up: StepUpUse | None, *,
                      expected_keyset_version: int, cleanup_due: datetime, now: datetime,
                      secret_fingerprint: str | None = None) -> None:
        self._call("commit_create")
        with self._lock:
            keyset = self.keyset_versions.get(record.user_id)
            has_secret = record.key_type == "hmac-sha256"
            items = (5 + (step_up is not None) + has_secret + (has_secret and record.expires_at is not None)
                     + (secret_fingerprint is not None))
            self._commit(items, step_up, now, conditions_fail=(keyset is not None and keyset != expected_keyset_version)
                         or record.key_id in self.records, change_id=record.change_id)
            self.keyset_versions[record.user_id] = expected_keyset_version + 1
            self.records[record.key_id] = _stored_record(record)
            if secret_fingerprint is not None:
                self.fingerprints[secret_fingerprint] = record.key_id
            self._add_audit(audit, record)
            if has_secret:
                self.cleanups.pop((_epoch_ms(cleanup_due), record.key_id, None), None)
            if has_secret and record.expires_at is not None:
                # An expiring key's secret is deleted by the janitor once the key has expired.
                self.cleanups[(_epoch_ms(record.expires_at), record.key_id, None)] = "expired"

    def commit_update(self, before: ApiKeyRecord, after: ApiKeyRecord, audit: AuditEntry,
                      step_up: StepUpUse | None, now: datetime) -> None:
        self._call("commit_update")
        with self._lock:
            self._commit(2 + (step_up is not None), step_up, now,
                         conditions_fail=self._versioned_update_fails(before, after), change_id=after.change_id)
            self.records[after.key_id] = _stored_record(after)
            self._add_audit(audit, after)

    def commit_revocations(self, revocations: Iterable[Revocation], step_up: StepUpUse | None,
                           now: datetime) -> None:
        self._call("commit_revocations")
        revocations = list(revocations)
        with self._lock:
            self._commit((step_up is not None) + 3 * len(revocations), step_up, now, conditions_fail=any(
                self._versioned_update_fails(before, after) for before, after, _ in revocations),
                change_id=revocations[0][1].change_id if revocations else "")
            for _, after, audit in revocations:
                self.records[after.key_id] = _stored_record(after)
                self._add_audit(audit, after)
                self.cleanups[(_epoch_ms(now), after.key_id, None)] = "revoked"

    def commit_rotation(self, before: ApiKeyRecord, after: ApiKeyRecord, audit: AuditEntry,
                        step_up: StepUpUse | None, now: datetime, *, cleanups: Iterable[PendingCleanup],
                        retired: PendingCleanup | None, secret_fingerprint: str | None = None) -> None:
        self._call("commit_rotation")
        cleanups = list(cleanups)
        with self._lock:
            self._commit(2 + (step_up is not None) + len(cleanups) + (retired is not None)
                         + (secret_fingerprint is not None), step_up, now,
                         conditions_fail=self._versioned_update_fails(before, after), change_id=after.change_id)
            if secret_fingerprint is not None:
                self.fingerprints[secret_fingerprint] = after.key_id
            self.records[after.key_id] = _stored_record(after)
            self._add_audit(audit, after)
            for entry in cleanups:
                self.cleanups[(_epoch_ms(entry.due), entry.key_id, entry.secret_version)] = entry.reason
            if retired is not None:
                self.cleanups.pop((_epoch_ms(retired.due), retired.key_id, retired.secret_version), None)

    def consume_step_up(self, step_up: StepUpUse, now: datetime, change_id: str) -> None:
        self._call("consume_step_up")
        with self._lock:
            self._commit(1, step_up, now, conditions_fail=False, change_id=change_id)

    # ------------------------------------------------------------ KeyLookup
    def get_key_owner(self, key_id: str) -> str | None:
        self._call("get_key_owner")
        with self._lock:
            record = self.records.get(key_id)
            return None if record is None else record.user_id

    def record_nonce(self, key_id: str, nonce: str, *, now_ms: int, expires_at_ms: int) -> None:
        self._call("record_nonce")
        with self._lock:
            existing = self.nonces.get((key_id, nonce))
            if existing is not None and not existing < now_ms:
                raise NonceReused()
            self.nonces[(key_id, nonce)] = expires_at_ms

    def touch_last_used(self, user_id: str, key_id: str, now: datetime, *, at_most_every_seconds: int) -> None:
        self._call("touch_last_used")
        with self._lock:
            previous = self.last_used.get((user_id, key_id))
            if previous is None or previous < stored_time(now - timedelta(seconds=at_most_every_seconds)):
                self.last_used[(user_id, key_id)] = stored_time(now)


@dataclass
class MemoryVault(_Recorded):
    """keygate.ports.SecretVault and SecretReader in memory (Secrets Manager)."""

    secrets: dict[str, str] = field(default_factory=dict)  # records.secret_ref (key id[/version]) -> secret
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def beside(cls, store: MemoryKeyStore) -> MemoryVault:
        """A vault whose calls go to the store's `calls` and obey its `failing`."""
        return cls(calls=store.calls, failing=store.failing)

    def create(self, key_id: str, user_id: str, secret: str, version: str = "") -> None:
        self._call("create")
        with self._lock:
            if secret_ref(key_id, version) in self.secrets:
                raise ServiceUnavailable()  # Secrets Manager's ResourceExistsException, a fault to the vault
            self.secrets[secret_ref(key_id, version)] = secret

    def delete(self, key_id: str, version: str = "") -> None:
        self._call("delete")
        with self._lock:
            self.secrets.pop(secret_ref(key_id, version), None)

    def read(self, key_id: str, version: str = "") -> str | None:
        self._call("read")
        with self._lock:
            return self.secrets.get(secret_ref(key_id, version))


@dataclass
class MemoryStorage:
    """A table and a vault in memory sharing one call log, and the keys a test puts there directly."""

    keys: MemoryKeyStore = field(default_factory=MemoryKeyStore)
    vault: MemoryVault = field(init=False)

    def __post_init__(self) -> None:
        self.vault = MemoryVault.beside(self.keys)

    @property
    def calls(self) -> list[str]:
        return self.keys.calls

    @property
    def failing(self) -> set[str]:
        return self.keys.failing

    def add_key(self, *, user_id: str = "alice", permissions: list[str] | None = None,
                ip_whitelist: list[str] | None = None, secret: str | None = None, expires_at: datetime | None = None,
                created_at: datetime = datetime(2025, 1, 1, tzinfo=UTC), prefix: str = "kgk_") -> tuple[str, str]:
        """An active key (read and trade unless told), as a committed create leaves it; its id and secret."""
        key_id, secret = keygate_keys.new_key_id(prefix), secret or keygate_keys.new_secret()
        self.keys.put_record(ApiKeyRecord(
            key_id=key_id, user_id=user_id, label="bot", permissions=permissions or ["read", "trade"],
            ip_whitelist=ip_whitelist or [], status=KeyStatus.ACTIVE, created_at=created_at, expires_at=expires_at))
        self.vault.secrets[key_id] = secret
        return key_id, secret

    def add_ed25519_key(self, *, user_id: str = "alice", permissions: list[str] | None = None,
                        ip_whitelist: list[str] | None = None, public_key_form: str = "base64",
                        prefix: str = "kgk_") -> tuple[str, Any]:
        """An active Ed25519 key: its record carries the public key (`base64` or `pem`), the vault nothing;
        its id and the private key the bot holds."""
        from kg1 import ed25519

        key_id, private_key = keygate_keys.new_key_id(prefix), ed25519.generate_private_key()
        raw = ed25519.public_key_of(private_key)
        public = ed25519.public_key_pem(raw) if public_key_form == "pem" else ed25519.public_key_base64(raw)
        self.keys.put_record(ApiKeyRecord(
            key_id=key_id, user_id=user_id, label="ed25519 bot", permissions=permissions or ["read", "trade"],
            ip_whitelist=ip_whitelist or [], status=KeyStatus.ACTIVE, created_at=datetime(2025, 1, 1, tzinfo=UTC),
            key_type="ed25519", public_key=public))
        return key_id, private_key

    def revoke(self, key_id: str) -> None:
        """As a committed revocation leaves the key once its secret is deleted."""
        self.keys.put_record(self.keys.records[key_id].changed(status=KeyStatus.REVOKED))
        self.vault.secrets.pop(key_id, None)
