"""Events in: the exchange's onboarding and trade events, verified, then recorded on the user's account.

Two kinds arrive, through the stack's bus, its rules and an SQS queue (docs/architecture.md, "Events in"):

- `exchange.onboarding` / `AgentAuthorizationSigned`: `{"user_id", "wallet_address", "typed_data",
  "signature"}`. Only the message's `account`, `agent` and `nonce` are read from `typed_data`; the typed
  data is rebuilt from the stack's domain (keygate.eip712) and must recover `wallet_address`.
- `exchange.trading` / `TradeExecuted`: `{"user_id", "trade_id", "executed_at"}`, unsigned.

The pairing of a wallet with a user, and trades, are trusted because only the exchange may put events on
the bus (its resource policy). An event that is malformed, forged or mismatched raises `Rejected`: it
records nothing and must not be retried. An AWS fault raises ServiceUnavailable: retry it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keygate import eip712
from keygate.config import ExchangeEventsConfig
from keygate.errors import ServiceUnavailable
from keygate.observability import logger, metrics
from keygate.ports import AccountLedger
from keygate.records import Onboarding, Trade, now_utc

ONBOARDING_SOURCE, AGENT_AUTHORIZATION_SIGNED = "exchange.onboarding", "AgentAuthorizationSigned"
TRADING_SOURCE, TRADE_EXECUTED = "exchange.trading", "TradeExecuted"
MAX_ID_LENGTH = 256
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # user and trade ids: visible ASCII, no spaces or control characters

Recover = Callable[[dict[str, Any], str], str]


class Rejected(Exception):
    """An event that records nothing and must not be retried; `reason` is a short code for logs and metrics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Handled:
    """What an accepted event did: `recorded` False for a duplicate or a late event (nothing changed)."""

    kind: str  # "onboarding" or "trade"
    user_id: str
    recorded: bool


def _identifier(detail: Mapping[str, Any], name: str) -> str:
    value = detail.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH or not _PRINTABLE.fullmatch(value):
        raise Rejected("malformed", f"{name} must be 1-{MAX_ID_LENGTH} visible ASCII characters")
    return value


def _nonce(value: Any) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= eip712.UINT64_MAX:
        raise Rejected("malformed", "typed_data.message.nonce must be a uint64")
    return value


def _time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise Rejected("malformed", "executed_at must be an ISO 8601 time with its offset")
    return moment.astimezone(UTC)


class ExchangeEvents:
    def __init__(self, config: ExchangeEventsConfig, ledger: AccountLedger, *, recover: Recover | None = None,
                 clock: Callable[[], datetime] = now_utc) -> None:
        self._domain = eip712.AgentDomain(name=config.agent_domain_name, chain_id=config.agent_chain_id,
                                          verifying_contract=config.agent_verifying_contract,
                                          agent_address=config.exchange_agent_address)
        self._ledger = ledger
        self._recover = recover or eip712.recover_signer
        self._clock = clock

    def handle(self, envelope: Any) -> Handled:
        """One EventBridge event (the envelope its rule delivered)."""
        if not isinstance(envelope, Mapping) or not isinstance(envelope.get("detail"), Mapping):
            raise Rejected("malformed", "not an EventBridge event with a detail object")
        kind = (envelope.get("source"), envelope.get("detail-type"))
        event_id = str(envelope.get("id") or "")[:128]
        if kind == (ONBOARDING_SOURCE, AGENT_AUTHORIZATION_SIGNED):
            return self.agent_authorization(envelope["detail"], event_id)
        if kind == (TRADING_SOURCE, TRADE_EXECUTED):
            return self.trade_executed(envelope["detail"], event_id)
        raise Rejected("unknown_event", "neither an agent authorization nor a trade")

    def verify_agent_authorization(self, detail: Mapping[str, Any], event_id: str = "") -> Onboarding:
        """The onboarding a verified authorization proves; Rejected for anything else."""
        user_id = _identifier(detail, "user_id")
        wallet = detail.get("wallet_address")
        if not isinstance(wallet, str) or not eip712.ADDRESS.fullmatch(wallet):
            raise Rejected("malformed", "wallet_address must be a 0x-prefixed 20-byte hex address")
        typed = detail.get("typed_data")
        message = typed.get("message") if isinstance(typed, Mapping) else None
        signature = detail.get("signature")
        if not isinstance(message, Mapping) or not isinstance(signature, str):
            raise Rejected("malformed", "typed_data.message and signature are required")
        account, agent, nonce = message.get("account"), message.get("agent"), _nonce(message.get("nonce"))
        if account != user_id:
            raise Rejected("account_mismatch", "the authorization names another account than user_id")
        if not isinstance(agent, str) or agent.lower() != self._domain.agent_address.lower():
            raise Rejected("agent_mismatch", "the authorization names another agent than the exchange's")
        rebuilt = eip712.typed_data(self._domain, account=user_id, agent=self._domain.agent_address, nonce=nonce)
        try:
            signer = self._recover(rebuilt, signature)
        except ValueError:
            raise Rejected("bad_signature", "the signature recovers no address") from None
        if signer.lower() != wallet.lower():
            raise Rejected("signature_mismatch", "the signature over the rebuilt authorization is not the wallet's")
        return Onboarding(user_id=user_id, wallet_address=wallet.lower(), nonce=nonce, event_id=event_id)

    def agent_authorization(self, detail: Mapping[str, Any], event_id: str = "") -> Handled:
        onboarding = self.verify_agent_authorization(detail, event_id)
        recorded = self._ledger.record_onboarding(onboarding, self._clock())
        return Handled("onboarding", onboarding.user_id, recorded)

    def trade_executed(self, detail: Mapping[str, Any], event_id: str = "") -> Handled:
        trade = Trade(user_id=_identifier(detail, "user_id"), trade_id=_identifier(detail, "trade_id"),
                      executed_at=_time(detail.get("executed_at")), event_id=event_id)
        recorded = self._ledger.record_trade(trade, self._clock())
        return Handled("trade", trade.user_id, recorded)


def process_batch(events: ExchangeEvents, sqs_event: Mapping[str, Any]) -> dict[str, Any]:
    """An SQS batch of rule deliveries (the event source mapping reports batch item failures).

    A rejected event is counted (`ExchangeEventRejected`), logged without its signature and deleted: a
    retry could not make it valid. An AWS fault, or a bug, leaves the message for SQS to retry, then for
    the dead-letter queue and its alarm.
    """
    failures = []
    for record in sqs_event.get("Records") or []:
        message_id = str(record.get("messageId", ""))
        try:
            envelope = json.loads(record.get("body") or "")
        except ValueError:
            envelope = None
        where = {"message_id": message_id, "event_id": str((envelope or {}).get("id", ""))[:128]
                 if isinstance(envelope, dict) else "",
                 "source": str(envelope.get("source", ""))[:64] if isinstance(envelope, dict) else "",
                 "detail_type": str(envelope.get("detail-type", ""))[:64] if isinstance(envelope, dict) else ""}
        try:
            handled = events.handle(envelope)
        except Rejected as rejected:
            metrics.add_metric(name="ExchangeEventRejected", unit="Count", value=1)
            logger.warning("exchange event rejected", extra={**where, "reason": rejected.reason,
                                                             "problem": str(rejected)})
        except ServiceUnavailable:
            failures.append({"itemIdentifier": message_id})
        except Exception:  # noqa: BLE001  # a bug: keep the message (retried, then dead-lettered), never lose it
            logger.exception("exchange event failed", extra=where)
            failures.append({"itemIdentifier": message_id})
        else:
            metrics.add_metric(name="ExchangeEventRecorded" if handled.recorded else "ExchangeEventUnchanged",
                               unit="Count", value=1)
            logger.info("exchange event handled", extra={**where, "kind": handled.kind, "user_id": handled.user_id,
                                                         "recorded": handled.recorded})
    return {"batchItemFailures": failures}
