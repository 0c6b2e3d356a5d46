"""The key lifecycle: one method per management route, plus the secret janitor.

`KeyLifecycle` receives its policy and storage ports from the function's
composition root (keygate.wiring) and knows nothing of HTTP. The write order
behind the product's invariants (docs/product.md) 3 and 4, the optimistic-concurrency rules and
the janitor's bounds are explained in docs/architecture.md ("Write order",
"The key limit under concurrency", "Bounds").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keygate import keys
from keygate.config import KeyPolicy
from keygate.errors import ErrorCode, KeyGateError, KeyNotFound, ServiceUnavailable
from keygate.models import (
    ApiKeyList,
    ApiKeyView,
    AuditEntryView,
    AuditLog,
    CallingApiKey,
    CreateApiKeyRequest,
    CreatedApiKey,
    RevokedAll,
    RevokedApiKey,
    UpdateApiKeyRequest,
    UpdatedApiKey,
    check_withdraw_whitelist,
)
from keygate.observability import logger, metrics
from keygate.ports import ConditionFailed, KeyRepository, Revocation, SecretVault
from keygate.records import (
    AccountState,
    ApiKeyRecord,
    AuditEntry,
    AuditEvent,
    KeyStatus,
    UserSnapshot,
    iso,
    now_utc,
)
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


def _prerequisites(account: AccountState, permissions: Iterable[str]) -> None:
    if not account.onboarding_completed:
        raise KeyGateError(ErrorCode.ONBOARDING_REQUIRED,
                           "Complete onboarding (sign the agent authorization) before creating API keys.")
    if {"trade", "withdraw"} & set(permissions) and not account.trading_handshake_completed:
        raise KeyGateError(ErrorCode.TRADING_HANDSHAKE_REQUIRED,
                           "Complete your first trade in the app before creating keys that can trade.")


def _audit(event: AuditEvent, key_id: str, source_ip: str, now: datetime, **details: Any) -> AuditEntry:
    return AuditEntry(event=event, api_key=key_id, ip_address=source_ip, created_at=now, details=details)


def _revocation(record: ApiKeyRecord, source_ip: str, now: datetime, reason: str) -> Revocation:
    after = record.changed(status=KeyStatus.REVOKED, revoked_at=now, version=record.version + 1)
    return record, after, _audit(AuditEvent.KEY_REVOKED, record.key_id, source_ip, now, reason=reason)


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
    def _owned_key(self, user_id: str, key_id: str) -> ApiKeyRecord:
        # A malformed id cannot exist: answer like any other unknown key, without a lookup.
        if not keys.is_well_formed_key_id(key_id, self.policy.key_id_prefix):
            raise KeyNotFound()
        record = self._keys.get_key(user_id, key_id)
        if record is None:
            raise KeyNotFound()
        return record

    def _view(self, record: ApiKeyRecord, now: datetime) -> ApiKeyView:
        return ApiKeyView(api_key=record.key_id,
                          key_prefix=keys.visible_prefix(record.key_id, self.policy.key_id_prefix),
                          label=record.label, permissions=record.permissions, ip_whitelist=record.ip_whitelist,
                          created_at=record.created_at, expires_at=record.expires_at,
                          last_used_at=record.last_used_at, revoked_at=record.revoked_at,
                          is_active=record.is_active(now))

    def list_api_keys(self, user_id: str) -> ApiKeyList:
        now = self._clock()
        records = sorted(self._keys.load_user(user_id).keys, key=lambda record: record.created_at, reverse=True)
        return ApiKeyList(api_keys=[self._view(record, now) for record in records], count=len(records))

    def get_api_key_audit(self, user_id: str, key_id: str, *, limit: int) -> AuditLog:
        self._owned_key(user_id, key_id)
        entries = [AuditEntryView(event=entry.event, api_key=entry.api_key, ip_address=entry.ip_address,
                                  created_at=entry.created_at, details=entry.details)
                   for entry in self._keys.query_audit(key_id, limit)]
        return AuditLog(api_key=key_id, entries=entries)

    def describe_calling_key(self, user_id: str, key_id: str) -> CallingApiKey:
        """The key the signature authorizer just let in (it passes user and key id in its context)."""
        record = self._keys.get_key(user_id, key_id) if user_id and key_id else None
        if record is None:
            raise KeyNotFound()
        return CallingApiKey(api_key=record.key_id, label=record.label, permissions=record.permissions,
                             ip_whitelist=record.ip_whitelist, created_at=record.created_at,
                             expires_at=record.expires_at)

    # ---------------------------------------------------------------- create
    def _check_limit(self, snapshot: UserSnapshot, now: datetime) -> None:
        limit = self.policy.max_active_keys_per_user
        if sum(record.is_active(now) for record in snapshot.keys) >= limit:
            raise KeyGateError(ErrorCode.KEY_LIMIT_REACHED,
                               f"You already have {limit} active API keys, the maximum; revoke one first.")

    def create_api_key(self, user_id: str, request: CreateApiKeyRequest, *, step_up: StepUpUse,
                       source_ip: str) -> CreatedApiKey:
        now = self._clock()
        snapshot = self._keys.load_user(user_id)
        _prerequisites(snapshot.account, request.permissions)
        self._check_limit(snapshot, now)

        key_id, secret = keys.new_key_id(self.policy.key_id_prefix), keys.new_secret()
        cleanup_due = now + timedelta(seconds=self.policy.orphan_grace_seconds)
        self._keys.add_cleanup(key_id, cleanup_due, "create")
        self._secrets.create(key_id, user_id, secret)

        record = ApiKeyRecord(
            key_id=key_id, user_id=user_id, label=request.label, permissions=request.permissions,
            ip_whitelist=request.ip_whitelist, status=KeyStatus.ACTIVE, created_at=now,
            expires_at=None if request.expires_days is None else now + timedelta(days=request.expires_days),
        )
        audit = _audit(AuditEvent.KEY_CREATED, key_id, source_ip, now, label=record.label,
                       permissions=record.permissions, ip_whitelist=record.ip_whitelist,
                       expires_at=iso(record.expires_at))
        seen = [snapshot]

        def commit() -> None:
            if len(seen) > 1:  # lost a race: count again on what the winner left
                self._check_limit(seen[-1], now)
            try:
                self._keys.commit_create(record, audit, step_up, expected_keyset_version=seen[-1].keyset_version,
                                         cleanup_due=cleanup_due, now=now)
            except (ConditionFailed, StepUpTokenReused):
                seen.append(self._keys.load_user(user_id))
                if any(existing.key_id == key_id for existing in seen[-1].keys):
                    return  # our own commit went through after all
                raise

        try:
            _with_retries(commit, conflict="Too many concurrent changes to your keys; retry.")
        except KeyGateError as refused:
            if refused.code is not ErrorCode.SERVICE_UNAVAILABLE:
                # Known not to have committed: the secret goes now (the janitor covers a failure here).
                self._discard_secret(key_id, cleanup_due)
            raise

        metrics.add_metric(name="ApiKeyCreated", unit="Count", value=1)
        logger.info("api key created", extra={"api_key": key_id, "permissions": record.permissions})
        return CreatedApiKey(
            api_key=key_id, api_secret=secret, key_prefix=keys.visible_prefix(key_id, self.policy.key_id_prefix),
            label=record.label, permissions=record.permissions, ip_whitelist=record.ip_whitelist,
            created_at=record.created_at, expires_at=record.expires_at,
        )

    def _discard_secret(self, key_id: str, cleanup_due: datetime) -> None:
        """Delete the secret of a create known not to have committed; the janitor covers a failure."""
        try:
            self._secrets.delete(key_id)
            self._keys.remove_cleanup(key_id, cleanup_due)
        except ServiceUnavailable:
            logger.warning("secret cleanup deferred to the janitor", extra={"api_key": key_id})

    # ---------------------------------------------------------------- update
    def update_api_key(self, user_id: str, key_id: str, request: UpdateApiKeyRequest, *, step_up: StepUpUse,
                       source_ip: str) -> UpdatedApiKey:
        now = self._clock()

        def attempt() -> UpdatedApiKey:
            before = self._owned_key(user_id, key_id)
            if before.status is KeyStatus.REVOKED:
                raise KeyGateError(ErrorCode.KEY_REVOKED, "This API key has been revoked and can no longer be changed.")
            if before.is_expired(now):
                raise KeyGateError(ErrorCode.KEY_EXPIRED, "This API key has expired and can no longer be changed.")
            changes = {name: value for name, value in request.requested_changes().items()
                       if getattr(before, name) != value}
            after = before.changed(**changes, version=before.version + 1)
            try:
                check_withdraw_whitelist(after.permissions, after.ip_whitelist)
            except ValueError as error:
                raise KeyGateError(ErrorCode.INVALID_REQUEST, f"{str(error)[0].upper()}{str(error)[1:]}.") from None
            if not changes:
                # A step-up token is single-use even when the action turns out to change nothing.
                self._keys.consume_step_up(step_up, now)
                return _updated(after, [])
            if "permissions" in changes:
                _prerequisites(self._keys.load_user(user_id).account, set(after.permissions) - set(before.permissions))
            audit = _audit(AuditEvent.KEY_UPDATED, key_id, source_ip, now, updated_fields=sorted(changes),
                           changes={name: {"from": getattr(before, name), "to": value}
                                    for name, value in changes.items()})
            self._keys.commit_update(before, after, audit, step_up, now)
            logger.info("api key updated", extra={"api_key": key_id, "updated_fields": sorted(changes)})
            return _updated(after, sorted(changes))

        return _with_retries(attempt, conflict="This key is being changed concurrently; retry.")

    # ---------------------------------------------------------------- revoke
    def revoke_api_key(self, user_id: str, key_id: str, *, step_up: StepUpUse, source_ip: str) -> RevokedApiKey:
        """Revoke one key. Revoking an already revoked key answers 200 with the
        original revocation time and `already_revoked: true`, and changes nothing."""
        now = self._clock()

        def attempt() -> RevokedApiKey:
            before = self._owned_key(user_id, key_id)
            if before.status is KeyStatus.REVOKED:
                self._keys.consume_step_up(step_up, now)
                return RevokedApiKey(api_key=key_id, revoked_at=before.revoked_at or now, already_revoked=True)
            self._keys.commit_revocations([_revocation(before, source_ip, now, "user_request")], step_up, now)
            self._delete_revoked_secrets([key_id], now)
            metrics.add_metric(name="ApiKeyRevoked", unit="Count", value=1)
            logger.info("api key revoked", extra={"api_key": key_id})
            return RevokedApiKey(api_key=key_id, revoked_at=now, already_revoked=False)

        return _with_retries(attempt, conflict="This key is being changed concurrently; retry.")

    def revoke_all_api_keys(self, user_id: str, *, step_up: StepUpUse, source_ip: str) -> RevokedAll:
        """Emergency revoke of every key that is not yet revoked (expired ones included)."""
        now = self._clock()
        unspent: list[StepUpUse] = [step_up]  # spent with the first batch that commits
        revoked: list[str] = []

        def attempt() -> None:
            pending = [record for record in self._keys.load_user(user_id).keys if record.status is KeyStatus.ACTIVE]
            for start in range(0, len(pending), REVOCATIONS_PER_TRANSACTION):
                batch = pending[start:start + REVOCATIONS_PER_TRANSACTION]
                self._keys.commit_revocations([_revocation(record, source_ip, now, "revoke_all") for record in batch],
                                              unspent[0] if unspent else None, now)
                unspent.clear()
                revoked.extend(record.key_id for record in batch)

        _with_retries(attempt, conflict="Your keys are being changed concurrently; retry.")
        if unspent:
            self._keys.consume_step_up(step_up, now)
        self._delete_revoked_secrets(revoked, now)
        metrics.add_metric(name="ApiKeyRevoked", unit="Count", value=len(revoked))
        logger.info("all api keys revoked", extra={"revoked_count": len(revoked)})
        return RevokedAll(revoked_count=len(revoked), revoked_api_keys=revoked)

    def _delete_revoked_secrets(self, key_ids: Iterable[str], now: datetime) -> None:
        """Best effort: the revocation already committed a cleanup entry due now."""
        for key_id in key_ids:
            try:
                self._secrets.delete(key_id)
                self._keys.remove_cleanup(key_id, now)
            except ServiceUnavailable:
                logger.warning("secret deletion deferred to the janitor", extra={"api_key": key_id})

    # --------------------------------------------------------------- janitor
    def run_secret_janitor(self) -> JanitorReport:
        """Delete the secrets of revoked and expired keys and of failed creates whose cleanup fell due."""
        now = self._clock()
        report = JanitorReport(deleted=[], kept=[], failed=[])
        for entry in self._keys.due_cleanups(now):
            try:
                record = self._keys.get_key_by_id(entry.key_id)
                if record is not None and record.is_active(now):
                    # The key committed after all (or is not yet expired): its secret must stay.
                    report.kept.append(entry.key_id)
                else:
                    self._secrets.delete(entry.key_id)
                    report.deleted.append(entry.key_id)
                self._keys.remove_cleanup(entry.key_id, entry.due)
            except ServiceUnavailable:
                report.failed.append(entry.key_id)
        logger.info("secret janitor run", extra={"deleted": len(report.deleted), "kept": len(report.kept),
                                                 "failed": len(report.failed)})
        return report


def _updated(record: ApiKeyRecord, fields: list[str]) -> UpdatedApiKey:
    return UpdatedApiKey(api_key=record.key_id, updated_fields=fields, label=record.label,
                         permissions=record.permissions, ip_whitelist=record.ip_whitelist)
