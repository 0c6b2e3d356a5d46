"""Passkeys and WebAuthn challenges on DynamoDB (keygate.passkeys.PasskeyStore), in the single table.

Items (docs/architecture.md, "Data model", should list them once the passkey routes exist):

- `USER#<user>` / `PASSKEY#<credential id>`: a passkey (COSE public key as binary, sign count, backup
  flags, label, created and last-used times, transports, user handle, AAGUID);
- `PASSKEY_CHALLENGE#<challenge>` / `CHALLENGE`: a ceremony's challenge (user, purpose, and for a
  step-up the action, target and change digest; `expires_at_ms`, `used_at`, and the TTL `expires_ttl`);
- `AUDIT#USER#<user>` / `<time>#<uuid>`: the user's passkey audit (registered, removed, suspected clone),
  append-only like the keys' (`attribute_not_exists`, and IAM denies updating or deleting `AUDIT#*`).

A registration or removal that a step-up token confirmed commits the passkey, its audit entry and the
token's use (`STEPUP#<jti>`) in one transaction, as a key mutation does.

A challenge is consumed by one conditional UpdateItem that sets `used_at` only if the item exists, is
the user's, is for this ceremony, was never used and has not expired by the clock (DynamoDB deletes
expired items late): of two concurrent consumptions at most one succeeds, and a refusal returns the
item as it was, so the domain can say why. Used challenges stay until their TTL. Passkeys sit in the
user's partition, so a user's Query never reads another user's passkeys; the key lifecycle's
`layout.item_kind` calls them "other" and skips them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from keygate.passkeys import (
    Challenge,
    ChallengeNotConsumed,
    Passkey,
    PasskeyAlreadyRegistered,
    PasskeyEvent,
    PasskeyEventKind,
    Purpose,
)
from keygate.stepup import StepUpTokenReused, StepUpUse
from keygate.storage import aws, layout

PASSKEY_PREFIX = "PASSKEY#"
AUDIT_PREFIX = "AUDIT#USER#"
CHALLENGE_PREFIX = "PASSKEY_CHALLENGE#"
CHALLENGE_SK = "CHALLENGE"
CONDITION_FAILED = "ConditionalCheckFailedException"


# ------------------------------------------------------------------ the keys
def passkey_key(user_id: str, credential_id: str) -> dict[str, Any]:
    return layout.key(layout.user_pk(user_id), f"{PASSKEY_PREFIX}{credential_id}")


def challenge_key(value: str) -> dict[str, Any]:
    return layout.key(f"{CHALLENGE_PREFIX}{value}", CHALLENGE_SK)


def audit_pk(user_id: str) -> str:
    return f"{AUDIT_PREFIX}{user_id}"


# ---------------------------------------------------------------- the items
def event_item(event: PasskeyEvent, unique: str) -> dict[str, Any]:
    return {**layout.key(audit_pk(event.user_id), f"{layout.stored_time(event.created_at)}#{unique}"),
            **layout.to_item({"type": "passkey_audit", "user_id": event.user_id, "event": event.event.value,
                              "passkey_id": event.passkey_id, "label": event.label, "ip_address": event.ip_address,
                              "created_at": layout.stored_time(event.created_at),
                              "details": dict(event.details or {})})}


def event_from(item: dict[str, Any]) -> PasskeyEvent:
    values = layout.from_item(item)
    return PasskeyEvent(user_id=values["user_id"], event=PasskeyEventKind(values["event"]),
                        passkey_id=values["passkey_id"], label=values.get("label", ""),
                        ip_address=values.get("ip_address", ""),
                        created_at=datetime.fromisoformat(values["created_at"]),
                        details=values.get("details") or {})


def _time(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def passkey_item(passkey: Passkey) -> dict[str, Any]:
    return {**passkey_key(passkey.user_id, passkey.credential_id), **layout.to_item({
        "type": "passkey",
        "credential_id": passkey.credential_id,
        "user_id": passkey.user_id,
        "public_key": passkey.public_key,
        "sign_count": passkey.sign_count,
        "backed_up": passkey.backed_up,
        "backup_eligible": passkey.backup_eligible,
        "label": passkey.label,
        "created_at": layout.stored_time(passkey.created_at),
        "last_used_at": layout.optional_time(passkey.last_used_at),
        "transports": list(passkey.transports),
        "user_handle": passkey.user_handle,
        "aaguid": passkey.aaguid,
    })}


def passkey_from(item: dict[str, Any]) -> Passkey:
    values = layout.from_item(item)
    return Passkey(
        credential_id=values["credential_id"],
        user_id=values["user_id"],
        public_key=bytes(values["public_key"]),
        sign_count=int(values.get("sign_count", 0)),
        backed_up=bool(values.get("backed_up", False)),
        backup_eligible=bool(values.get("backup_eligible", False)),
        label=values.get("label", ""),
        created_at=datetime.fromisoformat(values["created_at"]),
        last_used_at=layout.parse_time(values.get("last_used_at")),
        transports=tuple(values.get("transports", ())),
        user_handle=values.get("user_handle", ""),
        aaguid=values.get("aaguid", ""),
    )


def challenge_item(challenge: Challenge) -> dict[str, Any]:
    expires_at_ms = layout.epoch_ms(challenge.expires_at)
    return {**challenge_key(challenge.value), **layout.to_item({
        "type": "passkey_challenge",
        "user_id": challenge.user_id,
        "purpose": challenge.purpose.value,
        "created_at": layout.stored_time(challenge.created_at),
        "expires_at_ms": expires_at_ms,
        "expires_ttl": expires_at_ms // 1000 + 1,
        "action": challenge.action,
        "target": challenge.target,
        "change": challenge.change,
        "user_handle": challenge.user_handle,
        "used_at": layout.optional_time(challenge.used_at),
    })}


def challenge_from(item: dict[str, Any]) -> Challenge:
    values = layout.from_item(item)
    return Challenge(
        value=str(values["pk"]).removeprefix(CHALLENGE_PREFIX),
        user_id=values["user_id"],
        purpose=Purpose(values["purpose"]),
        created_at=datetime.fromisoformat(values["created_at"]),
        expires_at=_time(int(values["expires_at_ms"])),
        action=values.get("action"),
        target=values.get("target"),
        change=values.get("change"),
        user_handle=values.get("user_handle"),
        used_at=layout.parse_time(values.get("used_at")),
    )


# ------------------------------------------------------------------ adapter
class DynamoPasskeyStore:
    """keygate.passkeys.PasskeyStore on the KeyGate table."""

    def __init__(self, clients: aws.AwsClients, table_name: str) -> None:
        self._clients = clients
        self._table = table_name

    # -------------------------------------------------------- challenges
    def save_challenge(self, challenge: Challenge) -> None:
        aws.call("PutItem", self._clients.dynamodb.put_item, TableName=self._table, Item=challenge_item(challenge))

    def consume_challenge(self, value: str, *, user_id: str, purpose: Purpose, now: datetime) -> Challenge:
        try:
            response = aws.call(
                "UpdateItem", self._clients.dynamodb.update_item, expected=frozenset({CONDITION_FAILED}),
                TableName=self._table, Key=challenge_key(value),
                UpdateExpression="SET used_at = :now",
                ConditionExpression=("attribute_exists(pk) AND user_id = :user AND purpose = :purpose"
                                     " AND attribute_not_exists(used_at) AND expires_at_ms > :now_ms"),
                ExpressionAttributeValues={":now": {"S": layout.stored_time(now)}, ":user": {"S": user_id},
                                           ":purpose": {"S": purpose.value},
                                           ":now_ms": {"N": str(layout.epoch_ms(now))}},
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except aws.Expected as refused:
            cause = refused.__cause__
            # ReturnValuesOnConditionCheckFailure: the item as it was, if there was one.
            old = cause.response.get("Item") if isinstance(cause, ClientError) else None
            raise ChallengeNotConsumed(challenge_from(old) if isinstance(old, dict) and old else None) from None
        return challenge_from(response["Attributes"])

    # ---------------------------------------------------------- passkeys
    def _query_passkeys(self, user_id: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": layout.user_pk(user_id)}, ":prefix": {"S": PASSKEY_PREFIX}},
        }
        while True:
            page = aws.call("Query", self._clients.dynamodb.query, **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list_passkeys(self, user_id: str) -> list[Passkey]:
        passkeys = [passkey_from(item) for item in self._query_passkeys(user_id)]
        return sorted(passkeys, key=lambda passkey: (passkey.created_at, passkey.credential_id))

    def get_passkey(self, user_id: str, credential_id: str) -> Passkey | None:
        item = aws.call("GetItem", self._clients.dynamodb.get_item, TableName=self._table,
                        Key=passkey_key(user_id, credential_id), ConsistentRead=True).get("Item")
        return None if item is None else passkey_from(item)

    def save_passkey(self, passkey: Passkey) -> None:
        try:
            aws.call("PutItem", self._clients.dynamodb.put_item, expected=frozenset({CONDITION_FAILED}),
                     TableName=self._table, Item=passkey_item(passkey),
                     ConditionExpression="attribute_not_exists(pk)")
        except aws.Expected:
            raise PasskeyAlreadyRegistered() from None

    def delete_passkey(self, user_id: str, credential_id: str) -> Passkey | None:
        response = aws.call("DeleteItem", self._clients.dynamodb.delete_item, TableName=self._table,
                            Key=passkey_key(user_id, credential_id), ReturnValues="ALL_OLD")
        old = response.get("Attributes")
        return passkey_from(old) if old else None

    def record_use(self, user_id: str, credential_id: str, *, sign_count: int, backed_up: bool,
                   used_at: datetime) -> bool:
        values = {":at": {"S": layout.stored_time(used_at)}, ":backed_up": {"BOOL": backed_up}}
        update = self._clients.dynamodb.update_item
        if sign_count > 0:
            try:
                # The counter only goes up: a concurrent use that stored a higher one keeps it.
                aws.call("UpdateItem", update, expected=frozenset({CONDITION_FAILED}), TableName=self._table,
                         Key=passkey_key(user_id, credential_id),
                         UpdateExpression="SET sign_count = :count, last_used_at = :at, backed_up = :backed_up",
                         ConditionExpression="attribute_exists(pk) AND sign_count < :count",
                         ExpressionAttributeValues={**values, ":count": {"N": str(sign_count)}})
                return True
            except aws.Expected:
                pass  # a higher counter is stored, or the passkey is gone: record the use alone
        try:
            aws.call("UpdateItem", update, expected=frozenset({CONDITION_FAILED}), TableName=self._table,
                     Key=passkey_key(user_id, credential_id),
                     UpdateExpression="SET last_used_at = :at, backed_up = :backed_up",
                     ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues=values)
        except aws.Expected:
            return False
        return True

    # ------------------------------------------------------- audited changes
    def _event_put(self, event: PasskeyEvent) -> dict[str, Any]:
        # Append-only: a Put never replaces an entry (and IAM denies updating or deleting any).
        return {"Put": {"TableName": self._table, "Item": event_item(event, uuid.uuid4().hex),
                        "ConditionExpression": "attribute_not_exists(pk)"}}

    def _step_up_put(self, use: StepUpUse, now: datetime, change_id: str) -> dict[str, Any]:
        return layout.step_up_put(self._table, use.jti, use.expires_at_epoch, change_id, now)

    def _transact(self, items: list[dict[str, Any]], *, step_up: bool, refused: type[Exception]) -> None:
        """One transaction; the step-up use, if any, is its first item. A failed condition on it is
        StepUpTokenReused, on another item `refused`."""
        try:
            aws.transact(self._clients.dynamodb, items)
        except aws.Cancelled as cancelled:
            reasons = cancelled.reasons
            if step_up and reasons and reasons[0] == "ConditionalCheckFailed":
                raise StepUpTokenReused() from cancelled
            if "ConditionalCheckFailed" in reasons:
                raise refused() from cancelled
            raise aws.unavailable("TransactWriteItems", cancelled.error) from cancelled

    def commit_registration(self, passkey: Passkey, event: PasskeyEvent, step_up: StepUpUse | None,
                            now: datetime) -> None:
        """The new passkey, its audit entry and the step-up use, at once; PasskeyAlreadyRegistered if the
        user has one with this credential id."""
        items = [] if step_up is None else [self._step_up_put(step_up, now, f"passkey:{passkey.credential_id}")]
        items += [{"Put": {"TableName": self._table, "Item": passkey_item(passkey),
                           "ConditionExpression": "attribute_not_exists(pk)"}}, self._event_put(event)]
        self._transact(items, step_up=step_up is not None, refused=PasskeyAlreadyRegistered)

    def commit_removal(self, passkey: Passkey, event: PasskeyEvent, step_up: StepUpUse | None,
                       now: datetime) -> bool:
        """Deletes the passkey with its audit entry and the step-up use, at once; False if it is gone."""
        items = [] if step_up is None else [self._step_up_put(step_up, now, f"passkey:{passkey.credential_id}")]
        items += [{"Delete": {"TableName": self._table, "Key": passkey_key(passkey.user_id, passkey.credential_id),
                              "ConditionExpression": "attribute_exists(pk)"}}, self._event_put(event)]
        try:
            self._transact(items, step_up=step_up is not None, refused=_Gone)
        except _Gone:
            return False
        return True

    def record_event(self, event: PasskeyEvent) -> None:
        """One audit entry on its own (a suspected cloned authenticator)."""
        put = self._event_put(event)["Put"]
        aws.call("PutItem", self._clients.dynamodb.put_item, **put)

    def list_events(self, user_id: str, limit: int = 20) -> list[PasskeyEvent]:
        """The user's passkey audit, newest first."""
        page = aws.call("Query", self._clients.dynamodb.query, TableName=self._table, ConsistentRead=True,
                        KeyConditionExpression="pk = :pk",
                        ExpressionAttributeValues={":pk": {"S": audit_pk(user_id)}},
                        ScanIndexForward=False, Limit=limit)
        return [event_from(item) for item in page.get("Items", [])]


class _Gone(Exception):
    """The passkey to remove was no longer there."""
