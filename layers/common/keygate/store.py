"""All DynamoDB and Secrets Manager access. Nothing above this module touches boto3.

Single-table layout (partition key `pk`, sort key `sk`, TTL attribute `expires_ttl`):

    USER#<user>     KEY#<key id>        the key record (metadata, never the secret)
    USER#<user>     KEYSET              version bumped by every create (optimistic lock
                                        that keeps the active count within the limit)
    USER#<user>     ACCOUNT             onboarding / trading-handshake state
    USER#<user>     USAGE#<key id>      last use of a key (written by the signature authorizer)
    KEY#<key id>    KEY                 immutable pointer key id -> user (authorizer lookup)
    AUDIT#<key id>  <version>#<time>#<uuid>  audit entries, newest first by sort key (the key
                                        record's version: commit order, whatever the clocks say)
    STEPUP#<jti>    STEPUP              used step-up token ids (TTL)
    NONCE#<key id>#<nonce>  NONCE       used request nonces (TTL)
    SECRET_CLEANUP  <due ms>#<key id>   secrets that must be deleted (outbox for the janitor)

Every access is a GetItem, Query or transaction on a known key: no Scan. AWS
faults become `ServiceUnavailable`; expected conflicts become the typed
exceptions below, so the service layer never sees a botocore error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from keygate.config import get_config
from keygate.errors import ServiceUnavailable
from keygate.models import AccountState, ApiKeyRecord, AuditEntry, AuditEvent, KeyStatus
from keygate.observability import logger, tracer

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
CLEANUP_PARTITION = "SECRET_CLEANUP"
TRANSACTION_MAX_ITEMS = 100

# Short timeouts and few retries: a Lambda behind API Gateway has 29 s at most,
# and the caller is better served by a quick 503 with Retry-After.
_BOTO_CONFIG = BotoConfig(
    connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}
)


class ConditionFailed(Exception):
    """A conditional write lost a race (another request changed the item first)."""


class StepUpTokenReused(Exception):
    """The step-up token's jti is already recorded."""


# -------------------------------------------------------------------- clients
@lru_cache(maxsize=1)
def _dynamodb() -> Any:
    return boto3.client("dynamodb", config=_BOTO_CONFIG, endpoint_url=get_config().aws_endpoint_url)


@lru_cache(maxsize=1)
def _secretsmanager() -> Any:
    return boto3.client("secretsmanager", config=_BOTO_CONFIG, endpoint_url=get_config().aws_endpoint_url)


def reset_clients() -> None:
    """Drop cached clients (tests switch between mocked and real endpoints)."""
    _dynamodb.cache_clear()
    _secretsmanager.cache_clear()


def _table() -> str:
    return get_config().table_name


def secret_name(key_id: str) -> str:
    return f"{get_config().secret_name_prefix}{key_id}"


# ------------------------------------------------------------------- helpers
def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in values.items() if value is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(_DESERIALIZER.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(entry) for entry in value]
    if isinstance(value, dict):
        return {name: _plain(entry) for name, entry in value.items()}
    return value


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _unavailable(operation: str, error: Exception) -> ServiceUnavailable:
    code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
    logger.warning("aws call failed", extra={"operation": operation, "error_code": code})
    return ServiceUnavailable()


def _call(operation: str, function: Any, **kwargs: Any) -> Any:
    try:
        return function(**kwargs)
    except (ClientError, BotoCoreError) as error:
        raise _unavailable(operation, error) from error


# -------------------------------------------------------------- key records
def _record_item(record: ApiKeyRecord) -> dict[str, Any]:
    return _to_item({
        "pk": _user_pk(record.user_id),
        "sk": f"KEY#{record.key_id}",
        "type": "key",
        "key_id": record.key_id,
        "user_id": record.user_id,
        "label": record.label,
        "permissions": list(record.permissions),
        "ip_whitelist": list(record.ip_whitelist),
        "status": record.status.value,
        "created_at": _iso(record.created_at),
        "expires_at": _iso(record.expires_at),
        "revoked_at": _iso(record.revoked_at),
        "last_used_at": _iso(record.last_used_at),
        "version": record.version,
    })


def _record_from(values: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=values["key_id"],
        user_id=values["user_id"],
        label=values.get("label", ""),
        permissions=values.get("permissions", []),
        ip_whitelist=values.get("ip_whitelist", []),
        status=KeyStatus(values["status"]),
        created_at=datetime.fromisoformat(values["created_at"]),
        expires_at=_parse_time(values.get("expires_at")),
        revoked_at=_parse_time(values.get("revoked_at")),
        last_used_at=_parse_time(values.get("last_used_at")),
        version=values.get("version", 1),
    )


@dataclass(frozen=True)
class UserSnapshot:
    """Everything in a user's partition, read in one strongly consistent Query."""

    account: AccountState
    keyset_version: int
    keys: list[ApiKeyRecord] = field(default_factory=list)


def _query_pages(**kwargs: Any) -> Iterator[dict[str, Any]]:
    client = _dynamodb()
    while True:
        page = _call("Query", client.query, **kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@tracer.capture_method(capture_response=False)
def load_user(user_id: str) -> UserSnapshot:
    account = AccountState()
    keyset_version = 0
    keys: list[ApiKeyRecord] = []
    last_used: dict[str, datetime | None] = {}
    for item in _query_pages(
        TableName=_table(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": _user_pk(user_id)}},
        ConsistentRead=True,
    ):
        values = _from_item(item)
        if values["sk"] == "ACCOUNT":
            account = AccountState.model_validate(values, from_attributes=False, strict=False)
        elif values["sk"] == "KEYSET":
            keyset_version = values.get("version", 0)
        elif values["sk"].startswith("KEY#"):
            keys.append(_record_from(values))
        elif values["sk"].startswith("USAGE#"):
            last_used[values["sk"].removeprefix("USAGE#")] = _parse_time(values.get("last_used_at"))
    keys = [record.model_copy(update={"last_used_at": last_used[record.key_id]}) if last_used.get(record.key_id)
            else record for record in keys]
    return UserSnapshot(account=account, keyset_version=keyset_version, keys=keys)


@tracer.capture_method(capture_response=False)
def get_key(user_id: str, key_id: str) -> ApiKeyRecord | None:
    """The caller's own key record, or None: another user's key is never read."""
    response = _call(
        "GetItem", _dynamodb().get_item,
        TableName=_table(), Key=_key(_user_pk(user_id), f"KEY#{key_id}"), ConsistentRead=True,
    )
    item = response.get("Item")
    return None if item is None else _record_from(_from_item(item))


def put_account_state(user_id: str, state: AccountState) -> None:
    """Written by the exchange's onboarding events (and by tests and local mode)."""
    _call("PutItem", _dynamodb().put_item, TableName=_table(), Item=_to_item({
        "pk": _user_pk(user_id), "sk": "ACCOUNT", "type": "account", **state.model_dump(),
    }))


# ------------------------------------------------------------------- audit
def _audit_put(entry: AuditEntry, changed: ApiKeyRecord) -> dict[str, Any]:
    # Ordered by the version the change commits, not by time: a request that lost
    # a race commits after others with the time it started at.
    sort_key = f"{changed.version:010d}#{_iso(entry.created_at)}#{uuid.uuid4().hex}"
    return {"Put": {"TableName": _table(), "Item": _to_item({
        "pk": f"AUDIT#{entry.api_key}",
        "sk": sort_key,
        "type": "audit",
        "user_id": changed.user_id,
        "event": entry.event.value,
        "api_key": entry.api_key,
        "ip_address": entry.ip_address,
        "created_at": _iso(entry.created_at),
        "details": entry.details,
    })}}


@tracer.capture_method(capture_response=False)
def query_audit(key_id: str, limit: int) -> list[AuditEntry]:
    response = _call(
        "Query", _dynamodb().query,
        TableName=_table(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"AUDIT#{key_id}"}},
        ScanIndexForward=False,
        Limit=limit,
        ConsistentRead=True,
    )
    entries = []
    for item in response.get("Items", []):
        values = _from_item(item)
        entries.append(AuditEntry(
            event=AuditEvent(values["event"]), api_key=values["api_key"], ip_address=values["ip_address"],
            created_at=datetime.fromisoformat(values["created_at"]), details=values.get("details", {}),
        ))
    return entries


# ---------------------------------------------------------- step-up tokens
@dataclass(frozen=True)
class StepUpUse:
    """A verified step-up token's id and when it stops mattering."""

    jti: str
    expires_at_epoch: int


def _step_up_put(use: StepUpUse, now: datetime) -> dict[str, Any]:
    # DynamoDB deletes expired items late, so an expired record must not count.
    return {"Put": {
        "TableName": _table(),
        "Item": _to_item({"pk": f"STEPUP#{use.jti}", "sk": "STEPUP", "type": "step_up",
                          "expires_ttl": use.expires_at_epoch}),
        "ConditionExpression": "attribute_not_exists(pk) OR expires_ttl < :now",
        "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
    }}


def consume_step_up(use: StepUpUse, now: datetime) -> None:
    """Record a step-up token on a path that changes nothing else (a no-op revoke)."""
    _transact("TransactWriteItems", [_step_up_put(use, now)], step_up_index=0)


# ----------------------------------------------------------------- secrets
@tracer.capture_method(capture_response=False)
def create_secret(key_id: str, user_id: str, secret: str) -> None:
    _call(
        "CreateSecret", _secretsmanager().create_secret,
        Name=secret_name(key_id),
        SecretString=secret,
        Description="KeyGate API key HMAC secret",
        Tags=[{"Key": "keygate:key_id", "Value": key_id}, {"Key": "keygate:user_id", "Value": user_id}],
    )


@tracer.capture_method(capture_response=False)
def delete_secret(key_id: str) -> None:
    """Delete at once, without the recovery window; deleting a missing secret is fine."""
    try:
        _secretsmanager().delete_secret(SecretId=secret_name(key_id), ForceDeleteWithoutRecovery=True)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return
        raise _unavailable("DeleteSecret", error) from error
    except BotoCoreError as error:
        raise _unavailable("DeleteSecret", error) from error


@tracer.capture_method(capture_response=False)
def secret_exists(key_id: str) -> bool:
    try:
        _secretsmanager().describe_secret(SecretId=secret_name(key_id))
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return False
        raise _unavailable("DescribeSecret", error) from error
    except BotoCoreError as error:
        raise _unavailable("DescribeSecret", error) from error
    return True


# ------------------------------------------------------ secret cleanup outbox
def cleanup_sort_key(key_id: str, due: datetime) -> str:
    return f"{int(due.timestamp() * 1000):013d}#{key_id}"


def _cleanup_item(key_id: str, due: datetime, reason: str) -> dict[str, Any]:
    return _to_item({"pk": CLEANUP_PARTITION, "sk": cleanup_sort_key(key_id, due), "type": "secret_cleanup",
                     "key_id": key_id, "reason": reason})


def add_cleanup(key_id: str, due: datetime, reason: str) -> None:
    _call("PutItem", _dynamodb().put_item, TableName=_table(), Item=_cleanup_item(key_id, due, reason))


def remove_cleanup(key_id: str, due: datetime) -> None:
    _call("DeleteItem", _dynamodb().delete_item, TableName=_table(),
          Key=_key(CLEANUP_PARTITION, cleanup_sort_key(key_id, due)))


@dataclass(frozen=True)
class PendingCleanup:
    key_id: str
    due: datetime
    reason: str


def due_cleanups(now: datetime, limit: int = 500) -> list[PendingCleanup]:
    """Cleanup entries whose due time has passed, oldest first (a Query, not a Scan)."""
    pending = []
    for item in _query_pages(
        TableName=_table(),
        KeyConditionExpression="pk = :pk AND sk <= :upto",
        ExpressionAttributeValues={":pk": {"S": CLEANUP_PARTITION},
                                   ":upto": {"S": f"{int(now.timestamp() * 1000):013d}~"}},
        ConsistentRead=True,
        Limit=limit,
    ):
        values = _from_item(item)
        due_ms = int(values["sk"].split("#", 1)[0])
        pending.append(PendingCleanup(key_id=values["key_id"], due=datetime.fromtimestamp(due_ms / 1000, UTC),
                                      reason=values.get("reason", "")))
        if len(pending) >= limit:
            break
    return pending


def get_key_by_id(key_id: str) -> ApiKeyRecord | None:
    """Resolve a key id through its immutable pointer (janitor)."""
    owner = get_key_owner(key_id)
    return None if owner is None else get_key(owner, key_id)


# ------------------------------------------------------------ transactions
def _transact(operation: str, items: list[dict[str, Any]], *, step_up_index: int | None) -> None:
    if len(items) > TRANSACTION_MAX_ITEMS:
        raise ValueError("a transaction holds at most 100 items")
    try:
        _dynamodb().transact_write_items(TransactItems=items)
    except ClientError as error:
        if error.response["Error"]["Code"] != "TransactionCanceledException":
            raise _unavailable(operation, error) from error
        reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
        if step_up_index is not None and step_up_index < len(reasons) \
                and reasons[step_up_index] == "ConditionalCheckFailed":
            raise StepUpTokenReused() from error
        if any(code in {"ConditionalCheckFailed", "TransactionConflict"} for code in reasons):
            raise ConditionFailed(",".join(reasons)) from error
        raise _unavailable(operation, error) from error
    except BotoCoreError as error:
        raise _unavailable(operation, error) from error


@tracer.capture_method(capture_response=False)
def commit_create(record: ApiKeyRecord, audit: AuditEntry, step_up: StepUpUse, *,
                  expected_keyset_version: int, cleanup_due: datetime, now: datetime) -> None:
    """Key record, pointer, audit entry, step-up use and the keyset version bump, atomically.

    The version condition makes concurrent creates serialise: each one counted
    the active keys at `expected_keyset_version`, and only one can commit on it.
    The same transaction retires the cleanup entry written before the secret and,
    for a key with an expiry, queues its secret's deletion at that expiry.
    """
    items = [
        _step_up_put(step_up, now),
        {"Update": {
            "TableName": _table(), "Key": _key(_user_pk(record.user_id), "KEYSET"),
            "UpdateExpression": "SET version = :next, #type = :type",
            "ConditionExpression": "attribute_not_exists(version) OR version = :expected",
            "ExpressionAttributeNames": {"#type": "type"},
            "ExpressionAttributeValues": {":next": {"N": str(expected_keyset_version + 1)},
                                          ":expected": {"N": str(expected_keyset_version)},
                                          ":type": {"S": "keyset"}},
        }},
        {"Put": {"TableName": _table(), "Item": _record_item(record),
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"TableName": _table(),
                 "Item": _to_item({"pk": f"KEY#{record.key_id}", "sk": "KEY", "type": "key_pointer",
                                   "user_id": record.user_id}),
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        _audit_put(audit, record),
        {"Delete": {"TableName": _table(),
                    "Key": _key(CLEANUP_PARTITION, cleanup_sort_key(record.key_id, cleanup_due))}},
    ]
    if record.expires_at is not None:
        # An expiring key's secret is deleted by the janitor once the key has expired.
        items.append({"Put": {"TableName": _table(),
                              "Item": _cleanup_item(record.key_id, record.expires_at, "expired")}})
    _transact("TransactWriteItems", items, step_up_index=0)


def _versioned_update(before: ApiKeyRecord, after: ApiKeyRecord) -> dict[str, Any]:
    return {"Put": {
        "TableName": _table(), "Item": _record_item(after),
        "ConditionExpression": "version = :expected AND #status = :active",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":expected": {"N": str(before.version)},
                                      ":active": {"S": KeyStatus.ACTIVE.value}},
    }}


@tracer.capture_method(capture_response=False)
def commit_update(before: ApiKeyRecord, after: ApiKeyRecord, audit: AuditEntry, step_up: StepUpUse,
                  now: datetime) -> None:
    _transact("TransactWriteItems",
              [_step_up_put(step_up, now), _versioned_update(before, after), _audit_put(audit, after)],
              step_up_index=0)


@tracer.capture_method(capture_response=False)
def commit_revocations(changes: Iterable[tuple[ApiKeyRecord, ApiKeyRecord, AuditEntry]],
                       step_up: StepUpUse | None, now: datetime) -> None:
    """Flip keys to revoked with their audit entries and enqueue their secrets' deletion.

    The cleanup entry is written in the same transaction as the revocation, so
    a secret's deletion is never forgotten even if the inline delete fails.
    Callers keep each call within the 100-item transaction limit.
    """
    items = [] if step_up is None else [_step_up_put(step_up, now)]
    for before, after, audit in changes:
        items.append(_versioned_update(before, after))
        items.append(_audit_put(audit, after))
        items.append({"Put": {"TableName": _table(), "Item": _cleanup_item(after.key_id, now, "revoked")}})
    _transact("TransactWriteItems", items, step_up_index=None if step_up is None else 0)


# ------------------------------------------------- signature authorizer path
class NonceReused(Exception):
    """The nonce was already recorded for this key inside its window."""


@tracer.capture_method(capture_response=False)
def get_secret(key_id: str) -> str | None:
    """The key's HMAC secret (the signature authorizer is the only reader); None if deleted."""
    try:
        response = _secretsmanager().get_secret_value(SecretId=secret_name(key_id))
    except ClientError as error:
        if error.response["Error"]["Code"] in {"ResourceNotFoundException", "InvalidRequestException"}:
            return None
        raise _unavailable("GetSecretValue", error) from error
    except BotoCoreError as error:
        raise _unavailable("GetSecretValue", error) from error
    secret: str | None = response.get("SecretString")
    return secret


def get_key_owner(key_id: str) -> str | None:
    """The user a key id belongs to, from its immutable pointer (cacheable for ever)."""
    pointer = _call("GetItem", _dynamodb().get_item, TableName=_table(),
                    Key=_key(f"KEY#{key_id}", "KEY"), ConsistentRead=True).get("Item")
    return None if pointer is None else _from_item(pointer)["user_id"]


def record_nonce(key_id: str, nonce: str, *, now_ms: int, expires_at_ms: int) -> None:
    """Record a nonce once per key; a record past its expiry (not yet deleted by TTL) does not count."""
    try:
        _dynamodb().put_item(
            TableName=_table(),
            Item=_to_item({"pk": f"NONCE#{key_id}#{nonce}", "sk": "NONCE", "type": "nonce",
                           "expires_at_ms": expires_at_ms, "expires_ttl": expires_at_ms // 1000 + 1}),
            ConditionExpression="attribute_not_exists(pk) OR expires_at_ms < :now",
            ExpressionAttributeValues={":now": {"N": str(now_ms)}},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise NonceReused() from error
        raise _unavailable("PutItem", error) from error
    except BotoCoreError as error:
        raise _unavailable("PutItem", error) from error


def touch_last_used(user_id: str, key_id: str, now: datetime, *, at_most_every_seconds: int) -> None:
    """Refresh the key's last use, at most once per interval across all authorizer instances.

    Kept in its own item (USER#<user> / USAGE#<key id>) so it never races the
    versioned key record that updates and revocations replace.
    """
    cutoff = _iso(now - timedelta(seconds=at_most_every_seconds))
    try:
        _dynamodb().update_item(
            TableName=_table(), Key=_key(_user_pk(user_id), f"USAGE#{key_id}"),
            UpdateExpression="SET last_used_at = :now, #type = :type",
            ConditionExpression="attribute_not_exists(last_used_at) OR last_used_at < :cutoff",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues={":now": {"S": _iso(now)}, ":cutoff": {"S": cutoff},
                                       ":type": {"S": "usage"}},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return
        raise _unavailable("UpdateItem", error) from error
    except BotoCoreError as error:
        raise _unavailable("UpdateItem", error) from error
