"""The key lifecycle's repository on DynamoDB (keygate.ports.KeyRepository).

Every access is a GetItem, Query or transaction on a known key: no Scan. The
write order and the conditions each commit carries are explained in
docs/architecture.md ("Write order", "The key limit under concurrency").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from keygate.observability import tracer
from keygate.ports import ConditionFailed, Revocation
from keygate.records import (
    EXPIRY_NOTICES,
    HMAC_SHA256,
    AccountState,
    ApiKeyRecord,
    AuditEntry,
    DueNotice,
    KeyStatus,
    PendingCleanup,
    UserSnapshot,
)
from keygate.stepup import StepUpTokenReused, StepUpUse
from keygate.storage import aws, layout

TRANSACTION_MAX_ITEMS = 100


def _latest(last_used: dict[str, datetime], key_id: str, usage: dict[str, Any]) -> None:
    used = layout.parse_time(usage.get("last_used_at"))
    if used is not None and (key_id not in last_used or used > last_used[key_id]):
        last_used[key_id] = used


class DynamoKeyRepository:
    def __init__(self, clients: aws.AwsClients, table_name: str) -> None:
        self._clients = clients
        self._table = table_name

    # ------------------------------------------------------------------ reads
    def _query_pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        client = self._clients.dynamodb
        while True:
            page = aws.call("Query", client.query, TableName=self._table, **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @tracer.capture_method(capture_response=False)
    def load_user(self, user_id: str) -> UserSnapshot:
        """Everything in the user's partition, in one strongly consistent Query; then, if the user has
        keys, their last uses from the user's usage partition (a second, eventually consistent Query)."""
        account, keyset_version = AccountState(), 0
        keys: list[ApiKeyRecord] = []
        last_used: dict[str, datetime] = {}
        for item in self._query_pages(KeyConditionExpression="pk = :pk",
                                      ExpressionAttributeValues={":pk": {"S": layout.user_pk(user_id)}},
                                      ConsistentRead=True):
            values = layout.from_item(item)
            kind = layout.item_kind(values)
            if kind == "account":
                account = layout.account_from(values)
            elif kind == "keyset":
                keyset_version = values.get("version", 0)
            elif kind == "key":
                keys.append(layout.record_from(values))
            elif kind == "usage":  # where an earlier version kept it
                _latest(last_used, layout.usage_key_id(values), values)
        if keys:
            for item in self._query_pages(KeyConditionExpression="pk = :pk",
                                          ExpressionAttributeValues={":pk": {"S": layout.usage_pk(user_id)}}):
                _latest(last_used, layout.usage_key_id(values := layout.from_item(item)), values)
        keys = [record.changed(last_used_at=last_used[record.key_id]) if record.key_id in last_used else record
                for record in keys]
        return UserSnapshot(account=account, keyset_version=keyset_version, keys=keys)

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item = aws.call("GetItem", self._clients.dynamodb.get_item, TableName=self._table, Key=key,
                        ConsistentRead=True).get("Item")
        return None if item is None else layout.from_item(item)

    @tracer.capture_method(capture_response=False)
    def get_key(self, user_id: str, key_id: str) -> ApiKeyRecord | None:
        values = self._get(layout.key(layout.user_pk(user_id), layout.key_sk(key_id)))
        return None if values is None else layout.record_from(values)

    def get_key_by_handle(self, user_id: str, handle: str) -> ApiKeyRecord | None:
        pointer = self._get(layout.key(layout.user_pk(user_id), layout.handle_sk(handle)))
        return None if pointer is None else self.get_key(user_id, pointer["key_id"])

    def get_key_by_id(self, key_id: str) -> ApiKeyRecord | None:
        """Through the key's immutable pointer (the janitor knows key ids only)."""
        pointer = self._get(layout.pointer_key(key_id))
        return None if pointer is None else self.get_key(pointer["user_id"], key_id)

    @tracer.capture_method(capture_response=False)
    def query_audit(self, key_id: str, limit: int) -> list[AuditEntry]:
        response = aws.call("Query", self._clients.dynamodb.query, TableName=self._table,
                            KeyConditionExpression="pk = :pk",
                            ExpressionAttributeValues={":pk": {"S": layout.audit_pk(key_id)}},
                            ScanIndexForward=False, Limit=limit, ConsistentRead=True)
        return [layout.audit_from(layout.from_item(item)) for item in response.get("Items", [])]

    def put_account_state(self, user_id: str, state: AccountState) -> None:
        aws.call("PutItem", self._clients.dynamodb.put_item, TableName=self._table,
                 Item=layout.account_item(user_id, state))

    # ------------------------------------------------------- cleanup outbox
    def add_cleanup(self, key_id: str, due: datetime, reason: str, secret_version: str | None = None) -> None:
        aws.call("PutItem", self._clients.dynamodb.put_item, TableName=self._table,
                 Item=layout.cleanup_item(key_id, due, reason, secret_version))

    def remove_cleanup(self, key_id: str, due: datetime, secret_version: str | None = None) -> None:
        aws.call("DeleteItem", self._clients.dynamodb.delete_item, TableName=self._table,
                 Key=layout.key(layout.CLEANUP_PARTITION, layout.cleanup_sk(key_id, due, secret_version)))

    def due_cleanups(self, now: datetime, limit: int = 500) -> list[PendingCleanup]:
        pending = []
        for item in self._query_pages(KeyConditionExpression="pk = :pk AND sk <= :upto",
                                      ExpressionAttributeValues={":pk": {"S": layout.CLEANUP_PARTITION},
                                                                 ":upto": {"S": layout.cleanup_due_upto(now)}},
                                      ConsistentRead=True, Limit=limit):
            values = layout.from_item(item)
            pending.append(PendingCleanup(key_id=values["key_id"], due=layout.cleanup_due(values["sk"]),
                                          reason=values.get("reason", ""),
                                          secret_version=values.get("secret_version")))
            if len(pending) >= limit:
                break
        return pending

    # ------------------------------------------------------- expiry notices
    def due_expiry_notices(self, now: datetime, limit: int = 500) -> list[DueNotice]:
        due = []
        for item in self._query_pages(KeyConditionExpression="pk = :pk AND sk <= :upto",
                                      ExpressionAttributeValues={":pk": {"S": layout.EXPIRY_PARTITION},
                                                                 ":upto": {"S": layout.expiry_due_upto(now)}},
                                      ConsistentRead=True, Limit=limit):
            due.append(layout.expiry_from(layout.from_item(item)))
            if len(due) >= limit:
                break
        return due

    def _expiry_key(self, notice: DueNotice) -> dict[str, Any]:
        return layout.key(layout.EXPIRY_PARTITION, layout.expiry_sk(notice.key_id, notice.notice, notice.due))

    def drop_expiry_notice(self, notice: DueNotice) -> None:
        aws.call("DeleteItem", self._clients.dynamodb.delete_item, TableName=self._table, Key=self._expiry_key(notice))

    def commit_notice(self, record: ApiKeyRecord, notice: DueNotice, now: datetime) -> bool:
        """Record the notice as sent (its item, which the stream publishes) and retire it from the index, in
        one transaction; False if it had been sent already (the index entry is retired all the same)."""
        try:
            self._transact([self._put(layout.notice_item(record, notice, now),
                                      ConditionExpression="attribute_not_exists(pk)"),
                            {"Delete": {"TableName": self._table, "Key": self._expiry_key(notice)}}],
                           step_up_index=None)
        except ConditionFailed:
            self.drop_expiry_notice(notice)
            return False
        return True

    # ----------------------------------------------------------- transactions
    def _put(self, item: dict[str, Any], **condition: Any) -> dict[str, Any]:
        return {"Put": {"TableName": self._table, "Item": item, **condition}}

    def _step_up_puts(self, use: StepUpUse | None, now: datetime, change_id: str) -> list[dict[str, Any]]:
        """The step-up use as a transaction's first item (none where the deployment needs no step-up)."""
        if use is None:
            return []
        return [layout.step_up_put(self._table, use.jti, use.expires_at_epoch, change_id, now)]

    def _audit_put(self, entry: AuditEntry, changed: ApiKeyRecord) -> dict[str, Any]:
        # Append-only: a Put never replaces an entry (and IAM denies updating or deleting any).
        return self._put(layout.audit_item(entry, changed), ConditionExpression="attribute_not_exists(pk)")

    def audit_entry_written(self, entry: AuditEntry, changed: ApiKeyRecord) -> bool:
        return self._get(layout.audit_key(entry, changed)) is not None

    def _expiry_puts(self, before: ApiKeyRecord | None, after: ApiKeyRecord, now: datetime) -> list[dict[str, Any]]:
        """The expiry notices of a record whose expiry is new (a create, or a change of it), each due in the
        future; a notice of an earlier expiry is dropped when it falls due (docs/architecture.md, "Expiry
        notices"). Each commit that writes a key record with a new expiry adds these."""
        if after.expires_at is None or (before is not None and before.expires_at == after.expires_at):
            return []
        dues = ((notice, after.expires_at - ahead) for notice, ahead in EXPIRY_NOTICES.items())
        return [self._put(layout.expiry_item(after, notice, due)) for notice, due in dues if due > now]

    def _versioned_update(self, before: ApiKeyRecord, after: ApiKeyRecord) -> dict[str, Any]:
        # A writer that may change the expiry adds _expiry_puts(before, after, now) beside this; the notices
        # are keyed by key id and expiry alone, so any other change (a revocation, a rotation) needs none.
        return self._put(layout.record_item(after),
                         ConditionExpression="version = :expected AND #status = :active",
                         ExpressionAttributeNames={"#status": "status"},
                         ExpressionAttributeValues={":expected": {"N": str(before.version)},
                                                    ":active": {"S": KeyStatus.ACTIVE.value}})

    def _transact(self, items: list[dict[str, Any]], *, step_up_index: int | None) -> None:
        if len(items) > TRANSACTION_MAX_ITEMS:
            raise ValueError("a transaction holds at most 100 items")
        try:
            aws.transact(self._clients.dynamodb, items)
        except aws.Cancelled as cancelled:
            reasons = cancelled.reasons
            if step_up_index is not None and step_up_index < len(reasons) \
                    and reasons[step_up_index] == "ConditionalCheckFailed":
                raise StepUpTokenReused() from cancelled
            if any(code in {"ConditionalCheckFailed", "TransactionConflict"} for code in reasons):
                raise ConditionFailed(",".join(reasons)) from cancelled
            raise aws.unavailable("TransactWriteItems", cancelled.error) from cancelled

    @tracer.capture_method(capture_response=False)
    def commit_create(self, record: ApiKeyRecord, audit: AuditEntry, step_up: StepUpUse | None, *,
                      expected_keyset_version: int, cleanup_due: datetime, now: datetime,
                      secret_fingerprint: str | None = None) -> None:
        """Step-up use, keyset version, key record, pointers, audit entry, and the create's cleanup entry retired
        (an Ed25519 key has no secret, hence no cleanup entries and no fingerprint)."""
        has_secret = record.key_type == HMAC_SHA256
        items = [
            *self._step_up_puts(step_up, now, record.change_id),
            {"Update": {
                "TableName": self._table, "Key": layout.key(layout.user_pk(record.user_id), layout.KEYSET),
                "UpdateExpression": "SET version = :next, #type = :type",
                "ConditionExpression": "attribute_not_exists(version) OR version = :expected",
                "ExpressionAttributeNames": {"#type": "type"},
                "ExpressionAttributeValues": {":next": {"N": str(expected_keyset_version + 1)},
                                              ":expected": {"N": str(expected_keyset_version)},
                                              ":type": {"S": "keyset"}},
            }},
            self._put(layout.record_item(record), ConditionExpression="attribute_not_exists(pk)"),
            *self._expiry_puts(None, record, now),
            self._put(layout.pointer_item(record), ConditionExpression="attribute_not_exists(pk)"),
            self._put(layout.handle_item(record), ConditionExpression="attribute_not_exists(pk)"),
            self._audit_put(audit, record),
        ]
        if has_secret:
            items.append({"Delete": {"TableName": self._table, "Key": layout.key(
                layout.CLEANUP_PARTITION, layout.cleanup_sk(record.key_id, cleanup_due))}})
        if secret_fingerprint is not None:
            # Finds the key of a leaked secret without reading any secret (docs/architecture.md, "Leaked keys").
            items.append(self._put(layout.fingerprint_item(secret_fingerprint, record),
                                   ConditionExpression="attribute_not_exists(pk)"))
        if has_secret and record.expires_at is not None:
            # An expiring key's secret is deleted by the janitor once the key has expired.
            items.append(self._put(layout.cleanup_item(record.key_id, record.expires_at, "expired")))
        self._transact(items, step_up_index=None if step_up is None else 0)

    @tracer.capture_method(capture_response=False)
    def commit_update(self, before: ApiKeyRecord, after: ApiKeyRecord, audit: AuditEntry,
                      step_up: StepUpUse | None, now: datetime) -> None:
        self._transact([*self._step_up_puts(step_up, now, after.change_id),
                        self._versioned_update(before, after), *self._expiry_puts(before, after, now),
                        self._audit_put(audit, after)],
                       step_up_index=None if step_up is None else 0)

    @tracer.capture_method(capture_response=False)
    def commit_revocations(self, revocations: Iterable[Revocation], step_up: StepUpUse | None,
                           now: datetime) -> None:
        """Keys flipped to revoked, their audit entries, and their secrets' deletion queued, atomically.

        Callers keep each call within the 100-item transaction limit.
        """
        revocations = list(revocations)
        items = self._step_up_puts(step_up, now, revocations[0][1].change_id if revocations else "")
        for before, after, audit in revocations:
            items += [self._versioned_update(before, after), self._audit_put(audit, after),
                      self._put(layout.cleanup_item(after.key_id, now, "revoked"))]
        self._transact(items, step_up_index=None if step_up is None else 0)

    @tracer.capture_method(capture_response=False)
    def commit_rotation(self, before: ApiKeyRecord, after: ApiKeyRecord, audit: AuditEntry,
                        step_up: StepUpUse | None, now: datetime, *, cleanups: Iterable[PendingCleanup],
                        retired: PendingCleanup | None, secret_fingerprint: str | None = None) -> None:
        """Step-up use, the record with its new credential (on the version it was read at), the audit entry,
        the deletions of rotated-away secrets queued (`cleanups`), the new secret's own cleanup entry
        retired (`retired`) and its fingerprint (docs/architecture.md, "Leaked keys")."""
        items = [*self._step_up_puts(step_up, now, after.change_id), self._versioned_update(before, after),
                 self._audit_put(audit, after)]
        items += [self._put(layout.cleanup_item(entry.key_id, entry.due, entry.reason, entry.secret_version))
                  for entry in cleanups]
        if retired is not None:
            items.append({"Delete": {"TableName": self._table, "Key": layout.key(
                layout.CLEANUP_PARTITION, layout.cleanup_sk(retired.key_id, retired.due, retired.secret_version))}})
        if secret_fingerprint is not None:
            items.append(self._put(layout.fingerprint_item(secret_fingerprint, after),
                                   ConditionExpression="attribute_not_exists(pk)"))
        self._transact(items, step_up_index=None if step_up is None else 0)

    def consume_step_up(self, step_up: StepUpUse, now: datetime, change_id: str) -> None:
        self._transact(self._step_up_puts(step_up, now, change_id), step_up_index=0)

    def key_of_fingerprint(self, fingerprint: str) -> ApiKeyRecord | None:
        """The key whose secret has this fingerprint (keygate.keys.secret_fingerprint), or None."""
        pointer = self._get(layout.fingerprint_key(fingerprint))
        return None if pointer is None else self.get_key(pointer["user_id"], pointer["key_id"])

    def step_up_spent_by(self, step_up: StepUpUse, now: datetime) -> str | None:
        values = self._get(layout.step_up_key(step_up.jti))
        if values is None or values.get("expires_ttl", 0) < int(now.timestamp()):
            return None  # never spent, or its record expired (and awaits DynamoDB's late deletion)
        return str(values.get("change_id", ""))
