"""What the domain needs from storage, as `typing.Protocol`s; keygate.storage implements them on AWS.

Split by who calls: the key lifecycle (`KeyRepository`, `SecretVault`), the
signature authorizer (`KeyLookup`, `SecretReader`). Tests also run the
lifecycle on an in-memory implementation (tests/support/memory.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # not at run time: the signature authorizer imports this module (docs/architecture.md, "Cold start")
    from keygate.records import (
        AccountState,
        ApiKeyRecord,
        AuditEntry,
        DueNotice,
        Onboarding,
        PendingCleanup,
        Trade,
        UserSnapshot,
    )
    from keygate.stepup import StepUpUse

# One revocation: the record as read, as it will be, and its audit entry.
type Revocation = tuple[ApiKeyRecord, ApiKeyRecord, AuditEntry]


class ConditionFailed(Exception):
    """A conditional write lost a race (another request changed the item first); read again and retry."""


class NonceReused(Exception):
    """The nonce was already recorded for this key inside its window."""


class KeyRepository(Protocol):
    """Key records, their audit log, step-up uses and the secret-cleanup outbox.

    Every `commit_*` is one atomic write. It raises ConditionFailed when the
    records changed since they were read, and StepUpTokenReused when the
    step-up token was already spent (docs/architecture.md, "Write order"). The
    spent token's record names the change that spent it (the records' `change_id`).
    """

    def load_user(self, user_id: str) -> UserSnapshot: ...

    def get_key(self, user_id: str, key_id: str) -> ApiKeyRecord | None:
        """The user's own key record, or None: another user's key is never read."""

    def get_key_by_handle(self, user_id: str, handle: str) -> ApiKeyRecord | None:
        """The user's own key with this handle, or None."""

    def get_key_by_id(self, key_id: str) -> ApiKeyRecord | None: ...

    def query_audit(self, key_id: str, limit: int) -> list[AuditEntry]:
        """A key's audit entries, newest first."""

    def put_account_state(self, user_id: str, state: AccountState) -> None: ...

    def commit_create(self, record: ApiKeyRecord, audit: AuditEntry, step_up: StepUpUse | None, *,
                      expected_keyset_version: int, cleanup_due: datetime, now: datetime,
                      secret_fingerprint: str | None = None) -> None: ...

    def key_of_fingerprint(self, fingerprint: str) -> ApiKeyRecord | None:
        """The key whose secret (current or rotated out) has this fingerprint (keygate.keys.secret_fingerprint)."""

    def commit_update(self, before: ApiKeyRecord, after: ApiKeyRecord, audit: AuditEntry,
                      step_up: StepUpUse | None, now: datetime) -> None: ...

    def commit_revocations(self, revocations: Iterable[Revocation], step_up: StepUpUse | None,
                           now: datetime) -> None: ...

    def commit_rotation(self, before: ApiKeyRecord, after: ApiKeyRecord, audit: AuditEntry,
                        step_up: StepUpUse | None, now: datetime, *, cleanups: Iterable[PendingCleanup],
                        retired: PendingCleanup | None, secret_fingerprint: str | None = None) -> None:
        """The record with its new credential, its audit entry, the rotated-away secrets' deletions queued, the
        new secret's own cleanup entry retired and its fingerprint stored (a leak of it then finds the key)."""

    def audit_entry_written(self, entry: AuditEntry, changed: ApiKeyRecord) -> bool:
        """Whether `entry`, the audit entry of the change that gave `changed` its version, is stored: written in
        that change's own transaction, it shows the change committed, whatever changed the key since."""

    def consume_step_up(self, step_up: StepUpUse, now: datetime, change_id: str) -> None:
        """Record a step-up token's use on a path that changes nothing else."""

    def step_up_spent_by(self, step_up: StepUpUse, now: datetime) -> str | None:
        """The id of the change that spent this step-up token, or None while it is unspent."""

    def add_cleanup(self, key_id: str, due: datetime, reason: str, secret_version: str | None = None) -> None:
        """Queue the deletion of the key's secrets (one version's, when given)."""

    def remove_cleanup(self, key_id: str, due: datetime, secret_version: str | None = None) -> None: ...

    def due_cleanups(self, now: datetime, limit: int = 500) -> list[PendingCleanup]:
        """Cleanup entries due at `now`, oldest first."""

    def due_expiry_notices(self, now: datetime, limit: int = 500) -> list[DueNotice]:
        """Expiry notices due at `now`, oldest first (written with the records whose expiry they announce)."""

    def commit_notice(self, record: ApiKeyRecord, notice: DueNotice, now: datetime) -> bool:
        """Record a notice as sent and retire it from the due ones, atomically; False if it was sent before."""

    def drop_expiry_notice(self, notice: DueNotice) -> None:
        """Retire a due notice that is not to be sent."""


class SecretVault(Protocol):
    """Where HMAC secrets are kept: written by the create path, deleted by revocations and the janitor."""

    def create(self, key_id: str, user_id: str, secret: str, version: str = "") -> None:
        """Store one of the key's secrets: the first (version "") or a rotation's (records.secret_ref)."""

    def delete(self, key_id: str, version: str = "") -> None:
        """Delete at once; deleting a missing secret is no error."""


class SecretReader(Protocol):
    def read(self, key_id: str, version: str = "") -> str | None:
        """One of the key's secrets, or None once it is deleted."""


class KeyLookup(Protocol):
    """The signature authorizer's reads and writes."""

    def get_key_owner(self, key_id: str) -> str | None: ...

    def get_key(self, user_id: str, key_id: str) -> ApiKeyRecord | None: ...

    def record_nonce(self, key_id: str, nonce: str, *, now_ms: int, expires_at_ms: int) -> None:
        """Record a nonce once per key, else NonceReused."""

    def touch_last_used(self, user_id: str, key_id: str, now: datetime, *, at_most_every_seconds: int) -> None: ...


class AccountLedger(Protocol):
    """What the exchange's events record on a user's account (docs/architecture.md, "Events in").

    Each call is one atomic write of the account item and its audit entry; it answers False, writing
    nothing, when the account already records this event or one that wins over it (a flag never goes
    back to false). An AWS fault raises ServiceUnavailable (the event is retried).
    """

    def record_onboarding(self, onboarding: Onboarding, now: datetime) -> bool: ...

    def record_trade(self, trade: Trade, now: datetime) -> bool: ...
