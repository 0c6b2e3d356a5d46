"""Events in, end to end on moto: the exchange puts events on the stack's bus, the template's rules route them
to the queue, Lambda's event source mapping (played by keygate_dev.exchange_bus, since moto cannot deliver to
a Lambda target) hands them to ExchangeEventsFunction, and the account item unlocks key creation."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from keygate.errors import ServiceUnavailable
from keygate.storage.accounts import DynamoAccountLedger
from keygate_dev import template
from keygate_dev.exchange_bus import ExchangeBus, local_bus_name, max_receive_count
from keygate_dev.lambda_runner import LambdaContext
from tests.support.errors import assert_error
from tests.support.exchange import Wallet, trade
from tests.support.faults import Fault, Mode
from tests.support.stack import REGION, STAGE, table_items

FUNCTION = "ExchangeEventsFunction"


@pytest.fixture
def bus(aws: None) -> ExchangeBus:
    """The stack's bus, rules and queues in moto; a failed message is received again at once."""
    return ExchangeBus(boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION),
                       local_bus_name(STAGE), visibility_timeout_seconds=0).create()


def invoke(event: dict[str, Any]) -> Any:
    return template.load_handler(FUNCTION)(event, LambdaContext(FUNCTION))


def deliver_all(bus: ExchangeBus, *, rounds: int = 20) -> None:
    for _ in range(rounds):
        if not bus.deliver(invoke):
            return


def account(user: str) -> dict[str, Any]:
    [item] = [item for item in table_items() if item["pk"] == f"USER#{user}" and item["sk"] == "ACCOUNT"]
    return item


def account_audit(user: str) -> list[str]:
    return sorted(item["event"] for item in table_items() if item["pk"] == f"AUDIT#ACCOUNT#{user}")


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet.new()


def test_signed_onboarding_and_a_trade_on_the_bus_unlock_trade_keys(client, bus, wallet):
    # Given erin, unknown to KeyGate: she cannot create a key
    assert_error(client.create(user="erin", permissions=["read"]), 403, "ONBOARDING_REQUIRED")
    # When the exchange puts her signed agent authorization and her first trade on the bus
    bus.put("exchange.onboarding", "AgentAuthorizationSigned", wallet.authorization("erin"))
    bus.put("exchange.trading", "TradeExecuted", trade("erin")["detail"])
    deliver_all(bus)
    # Then her account records both, with her wallet, each audited once
    item = account("erin")
    assert item["onboarding_completed"] is True and item["trading_handshake_completed"] is True
    assert item["wallet_address"] == wallet.address.lower()
    assert account_audit("erin") == ["account_onboarded", "trading_handshake_completed"]
    # And she may create a trade key
    assert client.create(user="erin", permissions=["read", "trade"]).status == 200


def test_duplicates_and_late_events_change_nothing(client, bus, wallet):
    newer, older = wallet.authorization("fay", nonce=2_000), Wallet.new().authorization("fay", nonce=1_000)
    # Given the newer authorization, delivered twice, then the older one
    for detail in (newer, newer, older):
        bus.put("exchange.onboarding", "AgentAuthorizationSigned", detail)
    deliver_all(bus)
    # Then one change was recorded (the newer one's wallet), and audited once
    assert account("fay")["wallet_address"] == wallet.address.lower()
    assert account_audit("fay") == ["account_onboarded"]
    # And a later trade event leaves onboarding as it was, while a second trade changes nothing
    first, second = (trade("fay", trade_id=f"t{n}", executed_at=f"2026-11-26T12:00:0{n}Z")["detail"] for n in (2, 3))
    bus.put("exchange.trading", "TradeExecuted", first)
    deliver_all(bus)
    bus.put("exchange.trading", "TradeExecuted", second)
    deliver_all(bus)
    assert account("fay")["onboarding_completed"] is True and account("fay")["first_trade_id"] == "t2"
    assert account_audit("fay") == ["account_onboarded", "trading_handshake_completed"]


def test_a_forged_event_records_nothing_and_is_not_retried(client, bus, wallet):
    # Given an authorization whose event names another wallet than the one that signed it
    forged = {**wallet.authorization("gus"), "wallet_address": Wallet.new().address}
    bus.put("exchange.onboarding", "AgentAuthorizationSigned", forged)
    # When it is delivered
    assert bus.deliver(invoke) == 1
    # Then it is gone (not retried, not dead-lettered), nothing is recorded, and gus still cannot create a key
    assert bus.deliver(invoke) == 0 and bus.dead_letters() == []
    assert not [item for item in table_items() if "gus" in item["pk"]]
    assert_error(client.create(user="gus", permissions=["read"]), 403, "ONBOARDING_REQUIRED")


def test_a_transient_fault_is_retried_and_then_recorded(client, bus, wallet, aws_calls):
    # Given DynamoDB failing the first commit
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation="dynamodb.TransactWriteItems"))
    bus.put("exchange.onboarding", "AgentAuthorizationSigned", wallet.authorization("hal"))
    # When the event is delivered: the function reports it failed, so it stays in the queue
    assert bus.deliver(invoke) == 1
    assert not [item for item in table_items() if item["pk"] == "USER#hal"]
    # Then its redelivery records it
    deliver_all(bus)
    assert account("hal")["onboarding_completed"] is True


def test_an_event_that_keeps_failing_ends_in_the_dead_letter_queue(client, bus, wallet, monkeypatch):
    # Given DynamoDB failing every commit
    def unavailable(*_: Any, **__: Any) -> bool:
        raise ServiceUnavailable()

    monkeypatch.setattr(DynamoAccountLedger, "record_onboarding", unavailable)
    bus.put("exchange.onboarding", "AgentAuthorizationSigned", wallet.authorization("ivy"))
    # When it has been delivered as often as the queue's redrive policy allows
    for _ in range(max_receive_count() + 2):
        bus.deliver(invoke)
    # Then it is in the dead-letter queue (where the alarm sees it), and nothing was recorded
    [dead] = bus.dead_letters()
    assert dead["detail"]["user_id"] == "ivy" and dead["source"] == "exchange.onboarding"
    assert not [item for item in table_items() if item["pk"] == "USER#ivy"]


def test_only_the_two_kinds_of_event_reach_the_queue(client, bus):
    # Given events of another source or detail-type on the bus
    bus.put("exchange.onboarding", "SomethingElse", {"user_id": "jo"})
    bus.put("other.source", "TradeExecuted", trade("jo")["detail"])
    # Then the rules route none of them to the function
    assert bus.deliver(invoke) == 0
