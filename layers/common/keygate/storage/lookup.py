"""The signature authorizer's storage (keygate.ports.KeyLookup): the key pointer and record, nonces, last use.

Nonces go to a table of their own (docs/architecture.md, "Data model"). No tracer and no pydantic on
this path (docs/architecture.md, "Cold start").
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from keygate.config import ConfigError
from keygate.ports import NonceReused
from keygate.records import ApiKeyRecord
from keygate.storage import aws, layout

_CONDITION_FAILED = frozenset({"ConditionalCheckFailedException"})


class DynamoKeyLookup:
    def __init__(self, clients: aws.AwsClients, table_name: str, nonces_table_name: str | None) -> None:
        if not nonces_table_name:
            raise ConfigError("storage settings: NONCES_TABLE_NAME is required (the signature authorizer "
                              "records every request's nonce there)")
        self._clients = clients
        self._table = table_name
        self._nonces_table = nonces_table_name

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item = aws.call("GetItem", self._clients.dynamodb.get_item, TableName=self._table, Key=key,
                        ConsistentRead=True).get("Item")
        return None if item is None else layout.from_item(item)

    def get_key_owner(self, key_id: str) -> str | None:
        """The user a key id belongs to, from its immutable pointer (cacheable for ever)."""
        pointer = self._get(layout.pointer_key(key_id))
        return None if pointer is None else str(pointer["user_id"])

    def get_key(self, user_id: str, key_id: str) -> ApiKeyRecord | None:
        values = self._get(layout.key(layout.user_pk(user_id), layout.key_sk(key_id)))
        return None if values is None else layout.record_from(values)

    def record_nonce(self, key_id: str, nonce: str, *, now_ms: int, expires_at_ms: int) -> None:
        """A record past its expiry (not yet deleted by TTL) does not count; nor does one this call wrote
        (docs/architecture.md, "Data model": botocore's retry of a write whose answer was lost)."""
        writer = os.urandom(8).hex()
        try:
            aws.call("PutItem", self._clients.dynamodb.put_item, expected=_CONDITION_FAILED,
                     TableName=self._nonces_table,
                     Item=layout.nonce_item(key_id, nonce, expires_at_ms, writer),
                     ConditionExpression="attribute_not_exists(pk) OR expires_at_ms < :now",
                     ExpressionAttributeValues={":now": {"N": str(now_ms)}},
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except aws.Expected as reused:
            if layout.nonce_writer(reused.item) != writer:
                raise NonceReused() from reused

    def touch_last_used(self, user_id: str, key_id: str, now: datetime, *, at_most_every_seconds: int) -> None:
        """Refresh the key's last use at most once per interval across all authorizer instances.

        Its own item, so it never races the versioned key record, in the user's usage partition
        (USAGE#<user>), the only one IAM lets this function update.
        """
        cutoff = layout.stored_time(now - timedelta(seconds=at_most_every_seconds))
        try:
            aws.call("UpdateItem", self._clients.dynamodb.update_item, expected=_CONDITION_FAILED,
                     TableName=self._table, Key=layout.usage_key(user_id, key_id),
                     UpdateExpression="SET last_used_at = :now, #type = :type",
                     ConditionExpression="attribute_not_exists(last_used_at) OR last_used_at < :cutoff",
                     ExpressionAttributeNames={"#type": "type"},
                     ExpressionAttributeValues={":now": {"S": layout.stored_time(now)}, ":cutoff": {"S": cutoff},
                                                ":type": {"S": "usage"}})
        except aws.Expected:
            return  # used within the interval already
