"""The key lifecycle: one method per management operation, plus the secret janitor.

`KeyLifecycle` receives its policy and storage ports from the function's
composition root (keygate.wiring) and knows nothing of HTTP or of either wire
profile: it takes domain requests (`NewKey`, `KeyChange`, `KeyRef`) and answers
domain results, which keygate.profiles turn into GaiaEx's or ZDEX's shapes. The write order
behind the product's invariants (docs/product.md) 3 and 4, the optimistic-concurrency rules and
the janitor's bounds are explained in docs/architecture.md ("Write order",
"The key limit under concurrency", "Bounds").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from keygate import keys
from keygate.config import KeyPolicy
from keygate.errors import ErrorCode, KeyGateError, KeyNotFound, ServiceUnavailable
from keygate.observability import logger, metrics
from keygate.ports import ConditionFailed, KeyRepository, Revocation, SecretVault
from keygate.records import (
    ED25519,
    HMAC_SHA256,
    AccountState,
    ApiKeyRecord,
    AuditEntry,
    AuditEvent,
    Credential,
    KeyStatus,
    PendingCleanup,
    UserSnapshot,
    iso,
    now_utc,
)
from keygate.rules import EXPIRES_DAYS_MAX, check_withdraw_whitelist
from keygate.stepup import StepUpTokenReused, StepUpUse

Clock = Callable[[], datetime]
MAX_COMMIT_ATTEMPTS = 5
# Each revoked key takes three transaction items (record, audit, cleanup);
# one more is the step-up use: 30 keys fit within DynamoDB's 100 items.
REVOCATIONS_PER_TRANSACTION = 30
JANITOR_PERIOD = timedelta(minutes=5)


def _with_retries[Result](attempt: Callable[[], Result], *, conflict: str) -> Result:
    """Run `attempt` (which reads, decides and commits) until its commit wins a race, at most
    MAX_COMMIT_ATTEMPTS times; a commit that lost (ConditionFailed) is simply tried again."""
    for _ in range(MAX_COMMIT_ATTEMPTS):
        try:
            return attempt()
        except ConditionFailed:
            continue
    raise KeyGateError(ErrorCode.CONCURRENT_MODIFICATION, conflict)


def _new_change_id() -> str:
    """Names one management call's change; its committed items carry it."""
    return uuid4().hex


def _prerequisites(account: AccountState, permissions: Iterable[str]) -> None:
    if not account.onboarding_completed:
        raise KeyGateError(ErrorCode.ONBOARDING_REQUIRED,
                           "Complete onboarding (sign the agent authorization) before creating API keys.")
    if {"trade", "withdraw"} & set(permissions) and not account.trading_handshake_completed:
        raise KeyGateError(ErrorCode.TRADING_HANDSHAKE_REQUIRED,
                           "Complete your first trade in the app before creating keys that can trade.")


def _audit(event: AuditEvent, key_id: str, source_ip: str, now: datetime, **details: Any) -> AuditEntry:
    return AuditEntry(event=event, api_key=key_id, ip_address=source_ip, created_at=now, details=details)


def _verifying(record: ApiKeyRecord, now: datetime) -> list[str]:
    """The HMAC secret versions that verify the key's signatures at `now`: the current one, and the previous
    one during a rotation's grace."""
    grace = record.grace_at(now)
    return [record.secret_version] + ([grace.secret_version] if grace is not None else [])


def _revocation(record: ApiKeyRecord, source_ip: str, now: datetime, reason: str, change_id: str) -> Revocation:
    after = record.changed(status=KeyStatus.REVOKED, revoked_at=now, version=record.version + 1, change_id=change_id)
    return record, after, _audit(AuditEvent.KEY_REVOKED, record.key_id, source_ip, now, reason=reason)


# ------------------------------------------------------------ domain requests
@dataclass(frozen=True)
class KeyRef:
    """One of the caller's keys, by its id (GaiaEx) or by its opaque handle (ZDEX)."""

    key_id: str | None = None
    handle: str | None = None


@dataclass(frozen=True)
class NewKey:
    """A key to create, its fields validated and normalised (keygate.rules). At most one expiry."""

    label: str = ""
    permissions: list[str] = field(default_factory=lambda: ["read"])
    ip_whitelist: list[str] = field(default_factory=list)
    expires_in_days: int | None = None
    expires_at: datetime | None = None
    key_type: str = HMAC_SHA256  # ed25519: `public_key` (normalised, keygate.rules) and no secret
    public_key: str | None = None


@dataclass(frozen=True)
class Rotation:
    """A rotation's request, normalised: how long the previous secret (or public key) keeps verifying, and an
    Ed25519 key's new public key (base64 of its 32 bytes). `change()` is its canonical form (what a passkey
    confirmation of exactly this rotation is bound to)."""

    grace_seconds: int = 3600
    public_key: str | None = None

    def change(self) -> dict[str, Any]:
        return {"grace_seconds": self.grace_seconds, "public_key": self.public_key}


@dataclass(frozen=True)
class KeyChange:
    """The fields an update names (label, permissions, ip_whitelist), validated and normalised."""

    fields: dict[str, Any]


# ------------------------------------------------------------- domain results
@dataclass(frozen=True)
class CreatedKey:
    record: ApiKeyRecord
    # Shown in this one answer, never in a repr, a log line or an error; None for an Ed25519 key (KeyGate has none).
    secret: str | None = field(repr=False)


@dataclass(frozen=True)
class RotatedKey:
    record: ApiKeyRecord
    secret: str | None = field(repr=False)  # the new secret, in this one answer; None for an Ed25519 key
    usable_from: datetime  # from when every authorizer verifies the new secret (RecordCacheTtlSeconds after commit)
    # When the previous secret's (or public key's) grace ends, or the commit was answered if later: every
    # authorizer refuses it at most RecordCacheTtlSeconds after
    previous_valid_until: datetime


@dataclass(frozen=True)
class UpdatedKey:
    record: ApiKeyRecord
    updated_fields: list[str]  # only the fields whose value changed


@dataclass(frozen=True)
class RevokedKey:
    record: ApiKeyRecord
    already_revoked: bool


@dataclass(frozen=True)
class KeyAudit:
    record: ApiKeyRecord
    entries: list[AuditEntry]  # newest first


@dataclass
class NoticeReport:
    sent: list[str]  # "<key id> <notice>"
    dropped: list[str]  # due notices of a key revoked, gone or no longer expiring then, or superseded
    failed: list[str]


@dataclass
class JanitorReport:
    deleted: list[str]
    kept: list[str]
    failed: list[str]


class KeyLifecycle:
    def __init__(self, policy: KeyPolicy, keys: KeyRepository, secrets: SecretVault, *,
                 clock: Clock = now_utc) -> None:
        self.policy = policy
        self._keys = keys
        self._secrets = secrets
        self._clock = clock

    def at(self, clock: Clock) -> KeyLifecycle:
        """The same lifecycle on another clock (tests, seeding past states, the janitor's runs)."""
        return KeyLifecycle(self.policy, self._keys, self._secrets, clock=clock)

    # ----------------------------------------------------------------- reads
    def _owned_key(self, user_id: str, key: KeyRef) -> ApiKeyRecord:
        # A malformed id or handle cannot exist: answer like any other unknown key, without a lookup.
        record = None
        if key.key_id is not None and keys.is_well_formed_key_id(key.key_id, self.policy.key_id_prefix):
            record = self._keys.get_key(user_id, key.key_id)
        elif key.handle is not None and keys.is_well_formed_handle(key.handle):
            record = self._keys.get_key_by_handle(user_id, key.handle)
        if record is None:
            raise KeyNotFound()
        return record

    def owned_key(self, user_id: str, key: KeyRef) -> ApiKeyRecord:
        """One of the caller's keys; KeyNotFound for an unknown one and another user's alike."""
        return self._owned_key(user_id, key)

    def list_api_keys(self, user_id: str) -> list[ApiKeyRecord]:
        """The caller's keys, newest first (revoked and expired ones included)."""
        return sorted(self._keys.load_user(user_id).keys, key=lambda record: record.created_at, reverse=True)

    def get_api_key_audit(self, user_id: str, key: KeyRef, *, limit: int) -> KeyAudit:
        record = self._owned_key(user_id, key)
        return KeyAudit(record=record, entries=self._keys.query_audit(record.key_id, limit))

    def describe_calling_key(self, user_id: str, key_id: str) -> ApiKeyRecord:
        """The key the signature authorizer just let in (it passes user and key id in its context)."""
        record = self._keys.get_key(user_id, key_id) if user_id and key_id else None
        if record is None:
            raise KeyNotFound()
        return record

    def is_active(self, record: ApiKeyRecord) -> bool:
        return record.is_active(self._clock())

    # ---------------------------------------------------------------- create
    def _check_limit(self, snapshot: UserSnapshot, now: datetime) -> None:
        limit = self.policy.max_active_keys_per_user
        if sum(record.is_active(now) for record in snapshot.keys) >= limit:
            raise KeyGateError(ErrorCode.KEY_LIMIT_REACHED,
                               f"You already have {limit} active API keys, the maximum; revoke one first.")

    def _expiry(self, request: NewKey, now: datetime) -> datetime | None:
        if request.expires_in_days is not None:
            return now + timedelta(days=request.expires_in_days)
        if request.expires_at is None:
            return None
        if request.expires_at <= now:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, "The expiry must be in the future.")
        if request.expires_at > now + timedelta(days=EXPIRES_DAYS_MAX):
            raise KeyGateError(ErrorCode.INVALID_REQUEST,
                               f"The expiry must be at most {EXPIRES_DAYS_MAX // 365} years ahead.")
        return request.expires_at

    def create_api_key(self, user_id: str, request: NewKey, *, step_up: StepUpUse | None,
                       source_ip: str) -> CreatedKey:
        now = self._clock()
        expires_at = self._expiry(request, now)
        if step_up is not None and self._keys.step_up_spent_by(step_up, now) is not None:
            # Refused before any write: a replayed token must not cost a secret (docs/architecture.md, "Write order").
            raise StepUpTokenReused()
        snapshot = self._keys.load_user(user_id)
        _prerequisites(snapshot.account, request.permissions)
        self._check_limit(snapshot, now)

        key_id = keys.new_key_id(self.policy.key_id_prefix)
        cleanup_due = now + timedelta(seconds=self.policy.orphan_grace_seconds)
        secret = None
        if request.key_type == HMAC_SHA256:
            secret = keys.new_secret()
            self._keys.add_cleanup(key_id, cleanup_due, "create")
            self._secrets.create(key_id, user_id, secret)
        # An Ed25519 key: nothing in Secrets Manager, the public key lives in the record.

        record = ApiKeyRecord(
            key_id=key_id, user_id=user_id, label=request.label, permissions=list(request.permissions),
            ip_whitelist=list(request.ip_whitelist), status=KeyStatus.ACTIVE, created_at=now, expires_at=expires_at,
            handle=keys.new_handle(), change_id=_new_change_id(), key_type=request.key_type,
            public_key=request.public_key if request.key_type == ED25519 else None,
        )
        audit = _audit(AuditEvent.KEY_CREATED, key_id, source_ip, now, label=record.label,
                       permissions=record.permissions, ip_whitelist=record.ip_whitelist,
                       expires_at=iso(record.expires_at), key_type=record.key_type)
        seen = [snapshot]

        def commit() -> None:
            if len(seen) > 1:  # lost a race: count again on what the winner left
                self._check_limit(seen[-1], now)
            try:
                self._keys.commit_create(record, audit, step_up, expected_keyset_version=seen[-1].keyset_version,
                                         cleanup_due=cleanup_due, now=now,
                                         secret_fingerprint=None if secret is None else keys.secret_fingerprint(secret))
            except (ConditionFailed, StepUpTokenReused):
                seen.append(self._keys.load_user(user_id))
                if any(existing.key_id == record.key_id for existing in seen[-1].keys):
                    return  # this very create committed; its answer was lost ("Committed, answer lost")
                raise

        try:
            _with_retries(commit, conflict="Too many concurrent changes to your keys; retry.")
        except KeyGateError as refused:
            if secret is not None and refused.code is not ErrorCode.SERVICE_UNAVAILABLE:
                # Known not to have committed: the secret goes now (the janitor covers a failure here).
                self._discard_secret(key_id, cleanup_due)
            raise

        metrics.add_metric(name="ApiKeyCreated", unit="Count", value=1)
        logger.info("api key created", extra={"api_key": key_id, "permissions": record.permissions})
        return CreatedKey(record=record, secret=secret)

    def _discard_secret(self, key_id: str, cleanup_due: datetime, version: str | None = None) -> None:
        """Delete the secret of a create (or a rotation's, `version`) known not to have committed; the janitor
        covers a failure."""
        try:
            if version:
                self._secrets.delete(key_id, version)
            else:
                self._secrets.delete(key_id)
            self._keys.remove_cleanup(key_id, cleanup_due, version)
        except ServiceUnavailable:
            logger.warning("secret cleanup deferred to the janitor", extra={"api_key": key_id})

    # ---------------------------------------------------------------- update
    def update_api_key(self, user_id: str, key: KeyRef, request: KeyChange, *, step_up: StepUpUse | None,
                       source_ip: str) -> UpdatedKey:
        now = self._clock()
        change_id = _new_change_id()

        def attempt() -> UpdatedKey:
            before = self._owned_key(user_id, key)
            key_id = before.key_id
            if before.status is KeyStatus.REVOKED:
                raise KeyGateError(ErrorCode.KEY_REVOKED, "This API key has been revoked and can no longer be changed.")
            if before.is_expired(now):
                raise KeyGateError(ErrorCode.KEY_EXPIRED, "This API key has expired and can no longer be changed.")
            changes = {name: value for name, value in sorted(request.fields.items()) if getattr(before, name) != value}
            after = before.changed(**changes, version=before.version + 1, change_id=change_id)
            try:
                check_withdraw_whitelist(after.permissions, after.ip_whitelist)
            except ValueError as error:
                raise KeyGateError(ErrorCode.INVALID_REQUEST, f"{str(error)[0].upper()}{str(error)[1:]}.") from None
            if not changes:
                # A step-up token is single-use even when the action turns out to change nothing.
                self._spend(step_up, now, change_id)
                return UpdatedKey(record=before, updated_fields=[])
            if "permissions" in changes:
                _prerequisites(self._keys.load_user(user_id).account, set(after.permissions) - set(before.permissions))
            audit = _audit(AuditEvent.KEY_UPDATED, key_id, source_ip, now, updated_fields=sorted(changes),
                           changes={name: {"from": getattr(before, name), "to": value}
                                    for name, value in changes.items()})
            self._commit(after, self._keys.commit_update, before, after, audit, step_up, now)
            logger.info("api key updated", extra={"api_key": key_id, "updated_fields": sorted(changes)})
            return UpdatedKey(record=after, updated_fields=sorted(changes))

        return _with_retries(attempt, conflict="This key is being changed concurrently; retry.")

    # ---------------------------------------------------------------- rotate
    def rotate_api_key(self, user_id: str, key: KeyRef, request: Rotation, *, step_up: StepUpUse | None,
                       source_ip: str) -> RotatedKey:
        """Give a key a new secret (an Ed25519 key: the new public key sent), keeping its id, label, permissions,
        whitelist and expiry. The previous one verifies until the grace ends; a rotation during an earlier
        grace ends that grace at once (docs/architecture.md, "Rotation")."""
        now = self._clock()
        change_id = _new_change_id()
        if step_up is not None and self._keys.step_up_spent_by(step_up, now) is not None:
            raise StepUpTokenReused()  # before any write: a replayed token must not cost a secret
        first = self._rotatable(self._owned_key(user_id, key), request, now)
        secret, version = None, ""
        orphan: PendingCleanup | None = None
        if first.key_type == HMAC_SHA256:
            # The new secret is written first, under its own name, with a cleanup entry that deletes it should
            # the commit never happen (as a create's: docs/architecture.md, "Write order").
            secret, version = keys.new_secret(), change_id
            orphan = PendingCleanup(key_id=first.key_id, due=now + timedelta(seconds=self.policy.orphan_grace_seconds),
                                    reason="rotate", secret_version=version)
            self._keys.add_cleanup(orphan.key_id, orphan.due, orphan.reason, version)
            self._secrets.create(first.key_id, user_id, secret, version)
        reads = [first]
        grace = timedelta(seconds=request.grace_seconds)
        grace_ends = now

        def attempt() -> ApiKeyRecord:
            nonlocal grace_ends
            before = reads.pop() if reads else self._rotatable(self._owned_key(user_id, key), request, now)
            # From the commit, not the request's start: the secret's creation and a lost race take time that
            # would come off the grace (docs/architecture.md, "Rotation")
            grace_ends = max(self._clock(), now) + grace
            previous = Credential(valid_until=grace_ends, secret_version=before.secret_version,
                                  public_key=before.public_key)
            after = before.changed(secret_version=version, public_key=request.public_key,
                                   grace=previous if request.grace_seconds > 0 else None,
                                   version=before.version + 1, change_id=change_id)
            cleanups = []
            if before.key_type == HMAC_SHA256:
                # The previous secret goes when its grace ends; one still in an earlier grace goes now.
                cleanups.append(PendingCleanup(before.key_id, grace_ends, "rotated", before.secret_version))
                ended = before.grace_at(now)
                if ended is not None:
                    cleanups.append(PendingCleanup(before.key_id, now, "grace_ended", ended.secret_version))
            audit = _audit(AuditEvent.KEY_ROTATED, before.key_id, source_ip, now, key_type=before.key_type,
                           grace_seconds=request.grace_seconds, previous_valid_until=iso(grace_ends),
                           earlier_grace_ended=before.grace_at(now) is not None)
            fingerprint = None if secret is None else keys.secret_fingerprint(secret)
            try:
                self._keys.commit_rotation(before, after, audit, step_up, now, cleanups=cleanups, retired=orphan,
                                           secret_fingerprint=fingerprint)
            except (ConditionFailed, StepUpTokenReused):
                # Committed, answer lost: told by the audit entry, not the record, which another change may have
                # moved on since (docs/architecture.md, "Committed, answer lost")
                if not self._keys.audit_entry_written(audit, after):
                    raise
            return after

        try:
            rotated = _with_retries(attempt, conflict="This key is being changed concurrently; retry.")
        except KeyGateError as refused:
            if orphan is not None and refused.code is not ErrorCode.SERVICE_UNAVAILABLE:
                self._discard_secret(orphan.key_id, orphan.due, version)  # known not to have committed
            raise
        # Every authorizer instance re-reads the record within RecordCacheTtlSeconds of the commit, which came
        # before `committed`: one that read it just before still accepts the previous credential until then.
        committed = max(self._clock(), now)
        usable_from = committed + timedelta(seconds=self.policy.record_cache_ttl_seconds)
        metrics.add_metric(name="ApiKeyRotated", unit="Count", value=1)
        logger.info("api key rotated", extra={"api_key": rotated.key_id, "grace_seconds": request.grace_seconds})
        return RotatedKey(record=rotated, secret=secret, usable_from=usable_from,
                          previous_valid_until=max(grace_ends, committed))

    def check_rotation(self, record: ApiKeyRecord, request: Rotation) -> None:
        """Refuse now what the rotation of `record` (one of the caller's keys) would refuse: a revoked or expired
        key, a public key that does not fit its type. The step-up options ask first, so that a passkey never
        confirms a rotation that cannot be."""
        self._rotatable(record, request, self._clock())

    def _rotatable(self, record: ApiKeyRecord, request: Rotation, now: datetime) -> ApiKeyRecord:
        if record.status is KeyStatus.REVOKED:
            raise KeyGateError(ErrorCode.KEY_REVOKED, "This API key has been revoked and cannot be rotated; create "
                                                      "a new key.")
        if record.is_expired(now):
            raise KeyGateError(ErrorCode.KEY_EXPIRED, "This API key has expired and cannot be rotated; create a "
                                                      "new key.")
        # "public key", not a field name: each wire profile spells the field its own way
        if record.key_type == ED25519 and request.public_key is None:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, "This is an Ed25519 key: send its new public key (PEM or "
                                                          "base64 of its 32 raw bytes) to rotate it.")
        if record.key_type != ED25519 and request.public_key is not None:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, "This is an HMAC-SHA256 key: KeyGate makes its new secret, "
                                                          "so send no public key.")
        if record.key_type == ED25519 and request.public_key == record.public_key:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, "The public key sent is already this key's: make a new key "
                                                          "pair and send its public key.")
        return record

    # ---------------------------------------------------------------- revoke
    def revoke_api_key(self, user_id: str, key: KeyRef, *, step_up: StepUpUse | None,
                       source_ip: str) -> RevokedKey:
        """Revoke one key. Revoking an already revoked key changes nothing and says so
        (`already_revoked`, with the original revocation time)."""
        now = self._clock()
        change_id = _new_change_id()

        def attempt() -> RevokedKey:
            before = self._owned_key(user_id, key)
            if before.status is KeyStatus.REVOKED:
                self._spend(step_up, now, change_id)
                return RevokedKey(record=before, already_revoked=True)
            revocation = _revocation(before, source_ip, now, "user_request", change_id)
            self._commit(revocation[1], self._keys.commit_revocations, [revocation], step_up, now)
            self._delete_revoked_secrets([revocation[1]], now)
            metrics.add_metric(name="ApiKeyRevoked", unit="Count", value=1)
            logger.info("api key revoked", extra={"api_key": before.key_id})
            return RevokedKey(record=revocation[1], already_revoked=False)

        return _with_retries(attempt, conflict="This key is being changed concurrently; retry.")

    def revoke_all_api_keys(self, user_id: str, *, step_up: StepUpUse | None, source_ip: str) -> list[str]:
        """Emergency revoke of every key that is not yet revoked (expired ones included); the ids revoked."""
        now = self._clock()
        change_id = _new_change_id()
        unspent: list[StepUpUse] = [step_up] if step_up is not None else []  # spent with the first batch
        revoked: list[ApiKeyRecord] = []

        def attempt() -> None:
            pending = [record for record in self._keys.load_user(user_id).keys if record.status is KeyStatus.ACTIVE]
            for start in range(0, len(pending), REVOCATIONS_PER_TRANSACTION):
                revocations = [_revocation(record, source_ip, now, "revoke_all", change_id)
                               for record in pending[start:start + REVOCATIONS_PER_TRANSACTION]]
                self._commit(revocations[0][1], self._keys.commit_revocations, revocations,
                             unspent[0] if unspent else None, now)
                unspent.clear()
                revoked.extend(after for _, after, _ in revocations)

        _with_retries(attempt, conflict="Your keys are being changed concurrently; retry.")
        if unspent:
            self._spend(unspent[0], now, change_id)
        self._delete_revoked_secrets(revoked, now)
        metrics.add_metric(name="ApiKeyRevoked", unit="Count", value=len(revoked))
        logger.info("all api keys revoked", extra={"revoked_count": len(revoked)})
        return [record.key_id for record in revoked]

    def _spend(self, step_up: StepUpUse | None, now: datetime, change_id: str) -> None:
        """Record a step-up token's use on a path that changes nothing else (a deployment without step-up has none)."""
        if step_up is None:
            return
        try:
            self._keys.consume_step_up(step_up, now, change_id)
        except StepUpTokenReused:
            if self._keys.step_up_spent_by(step_up, now) != change_id:
                raise  # spent by another change, not by this one's earlier attempt

    def _commit(self, after: ApiKeyRecord, write: Callable[..., None], *arguments: Any, **options: Any) -> None:
        """`write(*arguments)`, a commit that writes `after`. A refusal of a commit that had in fact gone
        through (its answer lost, the retry refused: docs/architecture.md, "Committed, answer lost")
        counts as committed."""
        try:
            write(*arguments, **options)
        except (ConditionFailed, StepUpTokenReused):
            current = self._keys.get_key(after.user_id, after.key_id)
            if current is None or current.change_id != after.change_id:
                raise

    def _delete_revoked_secrets(self, records: Iterable[ApiKeyRecord], now: datetime) -> None:
        """Best effort: the revocation already committed a cleanup entry due now. Every secret the record
        names goes (a rotation's previous one too); an Ed25519 key has none."""
        for record in records:
            try:
                for version in record.secret_versions():
                    self._secrets.delete(record.key_id, version)
                self._keys.remove_cleanup(record.key_id, now)
            except ServiceUnavailable:
                logger.warning("secret deletion deferred to the janitor", extra={"api_key": record.key_id})

    # -------------------------------------------------------- expiry notices
    def send_expiry_notices(self) -> NoticeReport:
        """Record every expiry notice that is due (7 days and 1 day ahead, and at the expiry) for the keys
        that still expire then; the stream publishes each once recorded (docs/architecture.md, "Expiry
        notices"). A notice is recorded at most once per key, notice and expiry; one that a later notice of
        the same expiry supersedes (a late run) is dropped."""
        now = self._clock()
        report = NoticeReport(sent=[], dropped=[], failed=[])
        for notice in self._keys.due_expiry_notices(now):
            name = f"{notice.key_id} {notice.notice}"
            try:
                record = self._keys.get_key_by_id(notice.key_id)
                if record is None or record.status is not KeyStatus.ACTIVE or record.expires_at != notice.expires_at \
                        or notice.superseded(now):
                    self._keys.drop_expiry_notice(notice)
                    report.dropped.append(name)
                elif self._keys.commit_notice(record, notice, now):
                    report.sent.append(name)
                else:
                    report.dropped.append(name)
            except ServiceUnavailable:
                report.failed.append(name)  # still due: the next run tries again
        logger.info("expiry notices run", extra={"sent": len(report.sent), "dropped": len(report.dropped),
                                                 "failed": len(report.failed)})
        return report

    # --------------------------------------------------------------- janitor
    def run_secret_janitor(self) -> JanitorReport:
        """Delete the secrets of revoked and expired keys and of failed creates whose cleanup fell due."""
        now = self._clock()
        report = JanitorReport(deleted=[], kept=[], failed=[])
        for entry in self._keys.due_cleanups(now):
            try:
                record = self._keys.get_key_by_id(entry.key_id)
                if entry.secret_version is not None:  # one secret a rotation made or replaced
                    if record is not None and record.is_active(now) and entry.secret_version in _verifying(record, now):
                        report.kept.append(entry.key_id)  # the rotation committed after all: its secret is current
                    else:
                        self._secrets.delete(entry.key_id, entry.secret_version)
                        report.deleted.append(entry.key_id)
                elif record is not None and record.is_active(now):
                    # The key committed after all (or is not yet expired): its secret must stay.
                    report.kept.append(entry.key_id)
                else:
                    for version in record.secret_versions() if record is not None else [""]:
                        self._secrets.delete(entry.key_id, version)
                    report.deleted.append(entry.key_id)
                self._keys.remove_cleanup(entry.key_id, entry.due, entry.secret_version)
            except ServiceUnavailable:
                report.failed.append(entry.key_id)
        logger.info("secret janitor run", extra={"deleted": len(report.deleted), "kept": len(report.kept),
                                                 "failed": len(report.failed)})
        return report

    # --------------------------------- issue 16: leaked keys and operators (no session, no step-up)
    def key_of_secret(self, secret: str) -> ApiKeyRecord | None:
        """The key a secret (current or rotated out) belongs to, found by its fingerprint: no secret is read."""
        return self._keys.key_of_fingerprint(keys.secret_fingerprint(secret))

    def revoke_for_security(self, user_id: str, key_id: str | None, *, event: AuditEvent, source_ip: str,
                            **details: Any) -> list[str]:
        """Revoke one of a user's keys, or all of them (`key_id` None), for the security team or a secret
        scanner: audited as `event` with `details`. The ids revoked now (an already revoked key is left as it
        is); a key id that is not the user's is KeyNotFound."""
        now = self._clock()
        change_id = _new_change_id()
        revoked: list[str] = []
        revoked_records: list[ApiKeyRecord] = []

        def attempt() -> None:
            if key_id is None:
                candidates = self._keys.load_user(user_id).keys
            else:
                candidates = [self._owned_key(user_id, KeyRef(key_id=key_id))]
            pending = [record for record in candidates
                       if record.status is KeyStatus.ACTIVE and record.key_id not in revoked]
            for start in range(0, len(pending), REVOCATIONS_PER_TRANSACTION):
                revocations = []
                for record in pending[start:start + REVOCATIONS_PER_TRANSACTION]:
                    after = record.changed(status=KeyStatus.REVOKED, revoked_at=now, version=record.version + 1,
                                           change_id=change_id)
                    revocations.append((record, after, _audit(event, record.key_id, source_ip, now, **details)))
                self._commit(revocations[0][1], self._keys.commit_revocations, revocations, None, now)
                revoked.extend(after.key_id for _, after, _ in revocations)
                revoked_records.extend(after for _, after, _ in revocations)

        _with_retries(attempt, conflict="These keys are being changed concurrently; retry.")
        self._delete_revoked_secrets(revoked_records, now)
        if revoked:
            metrics.add_metric(name="ApiKeyRevoked", unit="Count", value=len(revoked))
        logger.info("api keys revoked for security", extra={"event": event.value, "user_id": user_id,
                                                            "revoked": revoked})
        return revoked
