"""The key lifecycle: one function per management route, plus the secret janitor.

Write order (DESIGN.md invariant 4):

create   1. cleanup entry for the new key id, due after a grace period (DynamoDB)
         2. the secret (Secrets Manager)
         3. one transaction: step-up use, keyset version, key record, pointer,
            audit entry, and removal of the cleanup entry.
         A failure at 1 or 2 leaves no key; at 3 it leaves a secret with no key,
         which the janitor deletes once the cleanup entry falls due. The secret
         is never deleted inline after an unknown transaction outcome: a
         timed-out commit may have succeeded, and an active key must keep it.
revoke   1. one transaction: key flipped to revoked, audit entry, step-up use,
            and a cleanup entry due now;
         2. the secret deleted at once, then its cleanup entry.
         A failure at 2 is retried by the janitor on its next run.

The janitor (`run_secret_janitor`) runs every JANITOR_PERIOD: a revoked key's
secret outlives the revocation by at most one period plus the run's duration,
and a failed create's secret by at most the grace period plus one period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keygate import keys, store
from keygate.auth import Action, verify_step_up
from keygate.config import get_config
from keygate.errors import (
    ConcurrentModification,
    InvalidRequest,
    KeyLimitReached,
    KeyNotActive,
    KeyNotFound,
    PrerequisiteMissing,
    ServiceUnavailable,
    StepUpFailed,
)
from keygate.models import (
    AccountState,
    ApiKeyList,
    ApiKeyRecord,
    ApiKeyView,
    AuditEntry,
    AuditEvent,
    AuditLog,
    CallingApiKey,
    CreateApiKeyRequest,
    CreatedApiKey,
    KeyStatus,
    RevokedAll,
    RevokedApiKey,
    UpdateApiKeyRequest,
    UpdatedApiKey,
    check_withdraw_whitelist,
    iso,
    now_utc,
)
from keygate.observability import logger, metrics

Clock = Callable[[], datetime]
MAX_COMMIT_ATTEMPTS = 5
# Each revoked key takes three transaction items (record, audit, cleanup);
# one more is the step-up use: 30 keys fit within DynamoDB's 100 items.
REVOCATIONS_PER_TRANSACTION = 30
JANITOR_PERIOD = timedelta(minutes=5)
TOKEN_REUSED = "This passkey confirmation has already been used; confirm again."  # noqa: S105  # nosec B105  # message


def _prerequisites(account: AccountState, permissions: Iterable[str]) -> None:
    if not account.onboarding_completed:
        raise PrerequisiteMissing("Complete onboarding (sign the agent authorization) before creating API keys.",
                                  code="ONBOARDING_REQUIRED")
    if {"trade", "withdraw"} & set(permissions) and not account.trading_handshake_completed:
        raise PrerequisiteMissing("Complete your first trade in the app before creating keys that can trade.",
                                  code="TRADING_HANDSHAKE_REQUIRED")


def _view(record: ApiKeyRecord, now: datetime) -> ApiKeyView:
    return ApiKeyView(
        api_key=record.key_id,
        key_prefix=keys.visible_prefix(record.key_id, get_config().key_id_prefix),
        label=record.label,
        permissions=record.permissions,
        ip_whitelist=record.ip_whitelist,
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
        is_active=record.is_active(now),
    )


def _audit(event: AuditEvent, key_id: str, source_ip: str, now: datetime, **details: Any) -> AuditEntry:
    return AuditEntry(event=event, api_key=key_id, ip_address=source_ip, created_at=now, details=details)


def _owned_key(user_id: str, key_id: str) -> ApiKeyRecord:
    # A malformed id cannot exist: answer like any other unknown key, without a lookup.
    if not keys.is_well_formed_key_id(key_id, get_config().key_id_prefix):
        raise KeyNotFound()
    record = store.get_key(user_id, key_id)
    if record is None:
        raise KeyNotFound()
    return record


# ------------------------------------------------------------------- create
def create_api_key(user_id: str, request: CreateApiKeyRequest, *, step_up_token: str | None,
                   source_ip: str, clock: Clock = now_utc) -> CreatedApiKey:
    config = get_config()
    now = clock()
    step_up = verify_step_up(step_up_token, user_id=user_id, action=Action.CREATE, now=now)
    snapshot = store.load_user(user_id)
    _prerequisites(snapshot.account, request.permissions)
    _check_limit(snapshot, now)

    key_id, secret = keys.new_key_id(config.key_id_prefix), keys.new_secret()
    cleanup_due = now + timedelta(seconds=config.orphan_grace_seconds)
    store.add_cleanup(key_id, cleanup_due, "create")
    store.create_secret(key_id, user_id, secret)

    record = ApiKeyRecord(
        key_id=key_id, user_id=user_id, label=request.label, permissions=request.permissions,
        ip_whitelist=request.ip_whitelist, status=KeyStatus.ACTIVE, created_at=now,
        expires_at=None if request.expires_days is None else now + timedelta(days=request.expires_days),
    )
    audit = _audit(AuditEvent.KEY_CREATED, key_id, source_ip, now, label=record.label,
                   permissions=record.permissions, ip_whitelist=record.ip_whitelist,
                   expires_at=iso(record.expires_at))
    for _attempt in range(MAX_COMMIT_ATTEMPTS):
        try:
            store.commit_create(record, audit, step_up, expected_keyset_version=snapshot.keyset_version,
                                cleanup_due=cleanup_due, now=now)
            break
        except (store.ConditionFailed, store.StepUpTokenReused) as lost:
            # Lost a race (or a retried commit already went through): look again.
            snapshot = store.load_user(user_id)
            if any(existing.key_id == key_id for existing in snapshot.keys):
                break
            if isinstance(lost, store.StepUpTokenReused):
                _discard_secret(key_id, cleanup_due)
                raise StepUpFailed(TOKEN_REUSED) from None
            try:
                _check_limit(snapshot, now)
            except KeyLimitReached:
                _discard_secret(key_id, cleanup_due)
                raise
    else:
        _discard_secret(key_id, cleanup_due)
        raise ConcurrentModification("Too many concurrent changes to your keys; retry.")

    metrics.add_metric(name="ApiKeyCreated", unit="Count", value=1)
    logger.info("api key created", extra={"api_key": key_id, "permissions": record.permissions})
    return CreatedApiKey(
        api_key=key_id, api_secret=secret, key_prefix=keys.visible_prefix(key_id, config.key_id_prefix),
        label=record.label, permissions=record.permissions, ip_whitelist=record.ip_whitelist,
        created_at=record.created_at, expires_at=record.expires_at,
    )


def _check_limit(snapshot: store.UserSnapshot, now: datetime) -> None:
    limit = get_config().max_active_keys_per_user
    if sum(record.is_active(now) for record in snapshot.keys) >= limit:
        raise KeyLimitReached(f"You already have {limit} active API keys, the maximum; revoke one first.")


def _discard_secret(key_id: str, cleanup_due: datetime) -> None:
    """Delete the secret of a create known not to have committed; the janitor covers a failure."""
    try:
        store.delete_secret(key_id)
        store.remove_cleanup(key_id, cleanup_due)
    except ServiceUnavailable:
        logger.warning("secret cleanup deferred to the janitor", extra={"api_key": key_id})


# --------------------------------------------------------------------- list
def list_api_keys(user_id: str, *, clock: Clock = now_utc) -> ApiKeyList:
    now = clock()
    records = sorted(store.load_user(user_id).keys, key=lambda record: record.created_at, reverse=True)
    return ApiKeyList(api_keys=[_view(record, now) for record in records], count=len(records))


# ------------------------------------------------------------------- update
def update_api_key(user_id: str, key_id: str, request: UpdateApiKeyRequest, *, step_up_token: str | None,
                   source_ip: str, clock: Clock = now_utc) -> UpdatedApiKey:
    now = clock()
    step_up = verify_step_up(step_up_token, user_id=user_id, action=Action.UPDATE, now=now)
    for _attempt in range(MAX_COMMIT_ATTEMPTS):
        before = _owned_key(user_id, key_id)
        if before.status is KeyStatus.REVOKED:
            raise KeyNotActive("This API key has been revoked and can no longer be changed.", code="KEY_REVOKED")
        if before.is_expired(now):
            raise KeyNotActive("This API key has expired and can no longer be changed.", code="KEY_EXPIRED")
        changes = {name: value for name, value in request.requested_changes().items()
                   if getattr(before, name) != value}
        after = before.model_copy(update={**changes, "version": before.version + 1})
        try:
            check_withdraw_whitelist(after.permissions, after.ip_whitelist)
        except ValueError as error:
            raise InvalidRequest(f"{str(error)[0].upper()}{str(error)[1:]}.") from None
        if not changes:
            _consume(step_up, now)
            return _updated(after, [])
        if "permissions" in changes:
            _prerequisites(store.load_user(user_id).account, set(after.permissions) - set(before.permissions))
        audit = _audit(AuditEvent.KEY_UPDATED, key_id, source_ip, now, updated_fields=sorted(changes),
                       changes={name: {"from": getattr(before, name), "to": value}
                                for name, value in changes.items()})
        try:
            store.commit_update(before, after, audit, step_up, now)
        except store.StepUpTokenReused:
            raise StepUpFailed(TOKEN_REUSED) from None
        except store.ConditionFailed:
            continue
        logger.info("api key updated", extra={"api_key": key_id, "updated_fields": sorted(changes)})
        return _updated(after, sorted(changes))
    raise ConcurrentModification("This key is being changed concurrently; retry.")


def _updated(record: ApiKeyRecord, fields: list[str]) -> UpdatedApiKey:
    return UpdatedApiKey(api_key=record.key_id, updated_fields=fields, label=record.label,
                         permissions=record.permissions, ip_whitelist=record.ip_whitelist)


def _consume(step_up: store.StepUpUse, now: datetime) -> None:
    """A step-up token is single-use even when the action turns out to change nothing."""
    try:
        store.consume_step_up(step_up, now)
    except store.StepUpTokenReused:
        raise StepUpFailed(TOKEN_REUSED) from None


# ------------------------------------------------------------------- revoke
def _revocation(record: ApiKeyRecord, source_ip: str, now: datetime, reason: str
                ) -> tuple[ApiKeyRecord, ApiKeyRecord, AuditEntry]:
    after = record.model_copy(update={"status": KeyStatus.REVOKED, "revoked_at": now,
                                      "version": record.version + 1})
    return record, after, _audit(AuditEvent.KEY_REVOKED, record.key_id, source_ip, now, reason=reason)


def revoke_api_key(user_id: str, key_id: str, *, step_up_token: str | None, source_ip: str,
                   clock: Clock = now_utc) -> RevokedApiKey:
    """Revoke one key. Revoking an already revoked key answers 200 with the
    original revocation time and `already_revoked: true`, and changes nothing."""
    now = clock()
    step_up = verify_step_up(step_up_token, user_id=user_id, action=Action.REVOKE, now=now)
    for _attempt in range(MAX_COMMIT_ATTEMPTS):
        before = _owned_key(user_id, key_id)
        if before.status is KeyStatus.REVOKED:
            _consume(step_up, now)
            return RevokedApiKey(api_key=key_id, revoked_at=before.revoked_at or now, already_revoked=True)
        try:
            store.commit_revocations([_revocation(before, source_ip, now, "user_request")], step_up, now)
        except store.StepUpTokenReused:
            raise StepUpFailed(TOKEN_REUSED) from None
        except store.ConditionFailed:
            continue
        _delete_revoked_secrets([key_id], now)
        metrics.add_metric(name="ApiKeyRevoked", unit="Count", value=1)
        logger.info("api key revoked", extra={"api_key": key_id})
        return RevokedApiKey(api_key=key_id, revoked_at=now, already_revoked=False)
    raise ConcurrentModification("This key is being changed concurrently; retry.")


def revoke_all_api_keys(user_id: str, *, step_up_token: str | None, source_ip: str,
                        clock: Clock = now_utc) -> RevokedAll:
    """Emergency revoke of every key that is not yet revoked (expired ones included)."""
    now = clock()
    step_up: store.StepUpUse | None = verify_step_up(step_up_token, user_id=user_id,
                                                     action=Action.REVOKE_ALL, now=now)
    revoked: list[str] = []
    for _attempt in range(MAX_COMMIT_ATTEMPTS):
        pending = [record for record in store.load_user(user_id).keys if record.status is KeyStatus.ACTIVE]
        if not pending:
            break
        try:
            for start in range(0, len(pending), REVOCATIONS_PER_TRANSACTION):
                batch = pending[start:start + REVOCATIONS_PER_TRANSACTION]
                store.commit_revocations([_revocation(record, source_ip, now, "revoke_all") for record in batch],
                                         step_up, now)
                step_up = None
                revoked.extend(record.key_id for record in batch)
        except store.StepUpTokenReused:
            raise StepUpFailed(TOKEN_REUSED) from None
        except store.ConditionFailed:
            continue
        break
    else:
        raise ConcurrentModification("Your keys are being changed concurrently; retry.")
    if step_up is not None:
        _consume(step_up, now)
    _delete_revoked_secrets(revoked, now)
    metrics.add_metric(name="ApiKeyRevoked", unit="Count", value=len(revoked))
    logger.info("all api keys revoked", extra={"revoked_count": len(revoked)})
    return RevokedAll(revoked_count=len(revoked), revoked_api_keys=revoked)


def _delete_revoked_secrets(key_ids: Iterable[str], now: datetime) -> None:
    """Best effort: the revocation already committed a cleanup entry due now."""
    for key_id in key_ids:
        try:
            store.delete_secret(key_id)
            store.remove_cleanup(key_id, now)
        except ServiceUnavailable:
            logger.warning("secret deletion deferred to the janitor", extra={"api_key": key_id})


# -------------------------------------------------------------------- audit
def get_api_key_audit(user_id: str, key_id: str, *, limit: int) -> AuditLog:
    _owned_key(user_id, key_id)
    return AuditLog(api_key=key_id, entries=store.query_audit(key_id, limit))


# ------------------------------------------------------------ bot-facing
def describe_calling_key(user_id: str, key_id: str) -> CallingApiKey:
    """The key the signature authorizer just let in (it passes user and key id in its context)."""
    record = store.get_key(user_id, key_id) if user_id and key_id else None
    if record is None:
        raise KeyNotFound()
    return CallingApiKey(api_key=record.key_id, label=record.label, permissions=record.permissions,
                         ip_whitelist=record.ip_whitelist, created_at=record.created_at,
                         expires_at=record.expires_at)


# ------------------------------------------------------------------ janitor
@dataclass
class JanitorReport:
    deleted: list[str]
    kept: list[str]
    failed: list[str]


def run_secret_janitor(*, clock: Clock = now_utc) -> JanitorReport:
    """Delete the secrets of revoked and expired keys and of failed creates whose cleanup fell due."""
    now = clock()
    report = JanitorReport(deleted=[], kept=[], failed=[])
    for entry in store.due_cleanups(now):
        try:
            record = store.get_key_by_id(entry.key_id)
            if record is not None and record.status is KeyStatus.ACTIVE and not record.is_expired(now):
                # The key committed after all (or is not yet expired): its secret must stay.
                report.kept.append(entry.key_id)
            else:
                store.delete_secret(entry.key_id)
                report.deleted.append(entry.key_id)
            store.remove_cleanup(entry.key_id, entry.due)
        except ServiceUnavailable:
            report.failed.append(entry.key_id)
    logger.info("secret janitor run", extra={"deleted": len(report.deleted), "kept": len(report.kept),
                                             "failed": len(report.failed)})
    return report
