"""What the exchange's events record on a user's account (keygate.ports.AccountLedger), on DynamoDB.

Each recording is one transaction: the account item's update, on a condition that makes duplicates and
late events change nothing, and its audit entry (docs/architecture.md, "Events in").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from keygate.records import AuditEvent, Onboarding, Trade, iso
from keygate.storage import aws, layout


class DynamoAccountLedger:
    def __init__(self, clients: aws.AwsClients, table_name: str) -> None:
        self._clients = clients
        self._table = table_name

    def _commit(self, update: dict[str, Any], audit: dict[str, Any]) -> bool:
        """True if it committed; False if the account already records this or a later-winning event."""
        items = [{"Update": {"TableName": self._table, **update}},
                 {"Put": {"TableName": self._table, "Item": audit, "ConditionExpression": "attribute_not_exists(pk)"}}]
        try:
            self._clients.dynamodb.transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)
        except ClientError as error:
            if aws.error_code(error) == "TransactionCanceledException":
                reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
            raise aws.unavailable("TransactWriteItems", error) from error
        except BotoCoreError as error:
            raise aws.unavailable("TransactWriteItems", error) from error
        return True

    def record_onboarding(self, onboarding: Onboarding, now: datetime) -> bool:
        audit = layout.account_audit_item(
            onboarding.user_id, AuditEvent.ACCOUNT_ONBOARDED, now,
            {"wallet_address": onboarding.wallet_address.lower(), "nonce": onboarding.nonce,
             "event_id": onboarding.event_id}, uuid.uuid4().hex)
        return self._commit(layout.onboarding_update(onboarding.user_id, onboarding.wallet_address,
                                                     onboarding.nonce, now), audit)

    def record_trade(self, trade: Trade, now: datetime) -> bool:
        audit = layout.account_audit_item(
            trade.user_id, AuditEvent.TRADING_HANDSHAKE_COMPLETED, now,
            {"trade_id": trade.trade_id, "executed_at": iso(trade.executed_at), "event_id": trade.event_id},
            uuid.uuid4().hex)
        return self._commit(layout.trade_update(trade.user_id, trade.trade_id, trade.executed_at, now), audit)
