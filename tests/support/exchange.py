"""The exchange's side of events in, for tests: wallets that sign agent authorizations, the events it puts
on the bus, and an in-memory AccountLedger with the DynamoDB adapter's conditions (keygate.storage.accounts)."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keygate import eip712
from keygate.config import ExchangeEventsConfig
from keygate.errors import ServiceUnavailable
from keygate.records import Onboarding, Trade
from keygate.storage import layout
from tests.support.stack import AGENT_ADDRESS

# The stack's defaults (template.yaml) and the tests' agent address.
CONFIG = ExchangeEventsConfig(agent_domain_name="GaiaEx", agent_chain_id=1,
                              agent_verifying_contract="0x0000000000000000000000000000000000000000",
                              exchange_agent_address=AGENT_ADDRESS)
DOMAIN = eip712.AgentDomain(name=CONFIG.agent_domain_name, chain_id=CONFIG.agent_chain_id,
                            verifying_contract=CONFIG.agent_verifying_contract, agent_address=AGENT_ADDRESS)


@dataclass
class Wallet:
    private_key: str
    address: str

    @classmethod
    def new(cls) -> Wallet:
        return cls(*eip712.new_wallet())

    def authorization(self, user_id: str, *, nonce: int = 1_700_000_000_000, account: str | None = None,
                      agent: str = AGENT_ADDRESS, domain: eip712.AgentDomain = DOMAIN,
                      signed_message: dict[str, Any] | None = None) -> dict[str, Any]:
        """An AgentAuthorizationSigned detail; `account`/`agent` change what is signed, `signed_message`
        replaces the whole typed data the wallet signs (and the event carries)."""
        message = signed_message or eip712.typed_data(domain, account=user_id if account is None else account,
                                                      agent=agent, nonce=nonce)
        return {"user_id": user_id, "wallet_address": self.address, "typed_data": copy.deepcopy(message),
                "signature": eip712.sign(message, self.private_key)}


def envelope(detail: dict[str, Any], *, source: str = "exchange.onboarding",
             detail_type: str = "AgentAuthorizationSigned") -> dict[str, Any]:
    """An event as EventBridge delivers it to a rule's target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
            "account": "123456789012", "time": "2026-11-26T12:00:00Z", "region": "us-east-1", "resources": [],
            "detail": detail}


def trade(user_id: str, *, trade_id: str | None = None, executed_at: str = "2026-11-26T12:00:00.000+00:00"
          ) -> dict[str, Any]:
    return envelope({"user_id": user_id, "trade_id": trade_id or uuid.uuid4().hex, "executed_at": executed_at},
                    source="exchange.trading", detail_type="TradeExecuted")


def sqs_batch(*envelopes: dict[str, Any] | str) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping hands it to the function."""
    return {"Records": [{"messageId": f"m{index}", "receiptHandle": f"r{index}",
                         "body": item if isinstance(item, str) else json.dumps(item), "attributes": {},
                         "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:exchange-events"}
                        for index, item in enumerate(envelopes)]}


@dataclass
class MemoryLedger:
    """AccountLedger in memory, with storage.accounts' conditions (the newest authorization, the earliest trade)."""

    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: list[tuple[str, str]] = field(default_factory=list)
    failing: bool = False

    def record_onboarding(self, onboarding: Onboarding, now: datetime) -> bool:
        if self.failing:
            raise ServiceUnavailable()
        account = self.accounts.setdefault(onboarding.user_id, {})
        order = layout.onboarding_order(onboarding.nonce, onboarding.wallet_address)
        if account.get("onboarding_order", "") >= order:
            return False
        account.update(onboarding_completed=True, wallet_address=onboarding.wallet_address, onboarding_order=order)
        self.audit.append((onboarding.user_id, "account_onboarded"))
        return True

    def record_trade(self, trade: Trade, now: datetime) -> bool:
        if self.failing:
            raise ServiceUnavailable()
        account = self.accounts.setdefault(trade.user_id, {})
        order = layout.first_trade_order(trade.executed_at.astimezone(UTC), trade.trade_id)
        if "first_trade_order" in account and account["first_trade_order"] <= order:
            return False
        account.update(trading_handshake_completed=True, first_trade_id=trade.trade_id, first_trade_order=order)
        self.audit.append((trade.user_id, "trading_handshake_completed"))
        return True
