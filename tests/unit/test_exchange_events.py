"""Events in: EIP-712 agent authorizations verified against typed data KeyGate rebuilds, trades, and how a
batch answers SQS (keygate.exchange, keygate.eip712), with a real wallet (eth-account) and the ledger in memory."""

from __future__ import annotations

import copy
import json
import subprocess  # nosec B404  # runs this project's own modules in a fresh interpreter
import sys
from dataclasses import replace
from itertools import permutations

import pytest

from keygate import eip712
from keygate.exchange import ExchangeEvents, Rejected, process_batch
from keygate_dev import template
from tests.support.exchange import CONFIG, DOMAIN, MemoryLedger, Wallet, envelope, sqs_batch, trade
from tests.support.logs import capture_logs


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet.new()


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


@pytest.fixture
def events(ledger: MemoryLedger) -> ExchangeEvents:
    return ExchangeEvents(CONFIG, ledger)


def test_a_signed_authorization_records_onboarding_with_the_wallet(events, ledger, wallet):
    # Given alice's wallet signing the agent authorization for her account and the exchange's agent
    detail = wallet.authorization("alice")
    # When the event arrives
    handled = events.handle(envelope(detail))
    # Then onboarding is recorded, with her wallet, and audited
    assert handled.recorded and handled.user_id == "alice"
    assert ledger.accounts["alice"]["onboarding_completed"] is True
    assert ledger.accounts["alice"]["wallet_address"] == wallet.address.lower()
    assert ledger.audit == [("alice", "account_onboarded")]


MISMATCHES = {
    # another wallet signed it than the one the event names
    "another wallet": lambda wallet: {**wallet.authorization("alice"), "wallet_address": Wallet.new().address},
    # the signed message names bob's account, the event alice
    "another account": lambda wallet: wallet.authorization("alice", account="bob"),
    # the event's message says alice, but the wallet signed bob's authorization
    "signed for another account": lambda wallet: {
        **wallet.authorization("alice"), "signature": wallet.authorization("bob")["signature"]},
    # signed for another agent than the stack's ExchangeAgentAddress
    "another agent": lambda wallet: wallet.authorization("alice", agent="0x" + "11" * 20),
    # the event names the right agent, the signature covers another one
    "signed for another agent": lambda wallet: {
        **wallet.authorization("alice"),
        "signature": wallet.authorization("alice", agent="0x" + "11" * 20)["signature"]},
    "another chain": lambda wallet: wallet.authorization("alice", domain=replace(DOMAIN, chain_id=5)),
    "another domain name": lambda wallet: wallet.authorization("alice", domain=replace(DOMAIN, name="Other")),
    "another verifying contract": lambda wallet: wallet.authorization(
        "alice", domain=replace(DOMAIN, verifying_contract="0x" + "22" * 20)),
    "tampered nonce": lambda wallet: _tampered_nonce(wallet.authorization("alice")),
    # the wallet signed an extended type (an extra field), and the event carries that type: recomputed
    # from the event's own types it would verify; rebuilt from the stack's, it does not
    "extended type": lambda wallet: wallet.authorization("alice", signed_message=_extended()),
}


def _tampered_nonce(detail):
    tampered = copy.deepcopy(detail)
    tampered["typed_data"]["message"]["nonce"] += 1
    return tampered


def _extended():
    message = eip712.typed_data(DOMAIN, account="alice", agent=DOMAIN.agent_address, nonce=1_700_000_000_000)
    message["types"] = {**message["types"], "AgentAuthorization": [
        *message["types"]["AgentAuthorization"], {"name": "scope", "type": "string"}]}
    message["message"] = {**message["message"], "scope": "withdraw"}
    return message


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_a_mismatched_authorization_records_nothing(events, ledger, wallet, case):
    # Given an authorization that does not prove alice's wallet authorized the exchange's agent
    detail = MISMATCHES[case](wallet)
    # When it arrives, then it is rejected and nothing is recorded
    with pytest.raises(Rejected) as rejected:
        events.handle(envelope(detail))
    assert rejected.value.reason in {"account_mismatch", "agent_mismatch", "signature_mismatch", "bad_signature"}
    assert ledger.accounts == {} and ledger.audit == []


def test_the_extended_type_verifies_when_the_events_own_types_are_trusted(wallet):
    # A control for "extended type": recovered from the event's own typed data, the signature is the wallet's
    detail = wallet.authorization("alice", signed_message=_extended())
    assert eip712.recover_signer(detail["typed_data"], detail["signature"]) == wallet.address.lower()


MALFORMED = {
    "no detail": {"source": "exchange.onboarding", "detail-type": "AgentAuthorizationSigned"},
    "unknown kind": envelope({"user_id": "alice"}, source="exchange.onboarding", detail_type="Other"),
    "no user": envelope({"wallet_address": "0x" + "00" * 20}),
    "user with a space": envelope({"user_id": "al ice"}),
    "bad wallet": envelope({"user_id": "alice", "wallet_address": "0x12", "typed_data": {}, "signature": "0x"}),
    "no typed data": envelope({"user_id": "alice", "wallet_address": "0x" + "00" * 20, "signature": "0x"}),
    "nonce too large": envelope({"user_id": "alice", "wallet_address": "0x" + "00" * 20, "signature": "0x",
                                 "typed_data": {"message": {"account": "alice", "nonce": 2**64}}}),
    "nonce a boolean": envelope({"user_id": "alice", "wallet_address": "0x" + "00" * 20, "signature": "0x",
                                 "typed_data": {"message": {"account": "alice", "nonce": True}}}),
    "short signature": envelope({"user_id": "alice", "wallet_address": "0x" + "00" * 20, "signature": "0x1234",
                                 "typed_data": {"message": {"account": "alice", "agent": DOMAIN.agent_address,
                                                            "nonce": 1}}}),
    "trade without time": trade("alice") | {"detail": {"user_id": "alice", "trade_id": "t1"}},
    "trade with a naive time": trade("alice", executed_at="2026-11-26T12:00:00"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_event_is_rejected(events, ledger, case):
    with pytest.raises(Rejected):
        events.handle(MALFORMED[case])
    assert ledger.accounts == {}


def test_duplicates_and_any_delivery_order_give_the_same_account(wallet):
    # Given two authorizations (an older and a newer nonce, another wallet each) and two trades, each delivered twice
    other = Wallet.new()
    arrivals = [envelope(wallet.authorization("alice", nonce=1_000)),
                envelope(other.authorization("alice", nonce=2_000)),
                trade("alice", trade_id="t-late", executed_at="2026-11-26T12:00:05+00:00"),
                trade("alice", trade_id="t-first", executed_at="2026-11-26T12:00:00+00:00")]
    outcomes = set()
    # When they arrive in every order (each twice in a row)
    for order in permutations(arrivals):
        ledger = MemoryLedger()
        events = ExchangeEvents(CONFIG, ledger)
        for event in order:
            events.handle(event)
            assert events.handle(event).recorded is False  # the duplicate changes nothing
        outcomes.add(json.dumps(ledger.accounts, sort_keys=True))
    # Then the account is the same: the newest authorization's wallet, the earliest trade, both flags set
    [outcome] = outcomes
    account = json.loads(outcome)["alice"]
    assert account["wallet_address"] == other.address.lower() and account["first_trade_id"] == "t-first"
    assert account["onboarding_completed"] is True and account["trading_handshake_completed"] is True


def test_a_flag_never_goes_back_to_false(events, ledger, wallet):
    # Given alice onboarded
    events.handle(envelope(wallet.authorization("alice", nonce=5_000)))
    # When a forged, then a late (older) authorization arrive
    with pytest.raises(Rejected):
        events.handle(envelope({**wallet.authorization("alice", nonce=9_000), "wallet_address": Wallet.new().address}))
    assert events.handle(envelope(wallet.authorization("alice", nonce=1_000))).recorded is False
    # Then she is still onboarded, with the wallet of the one that verified
    assert ledger.accounts["alice"]["onboarding_completed"] is True
    assert ledger.accounts["alice"]["wallet_address"] == wallet.address.lower()


def test_a_batch_retries_faults_only_and_counts_and_logs_rejections_without_signatures(wallet):
    # Given a batch: a valid authorization, a forged one, a body that is not JSON, and a trade hit by a fault
    ledger = MemoryLedger()
    events = ExchangeEvents(CONFIG, ledger)
    forged = {**wallet.authorization("bob"), "wallet_address": Wallet.new().address}
    batch = sqs_batch(envelope(wallet.authorization("alice")), envelope(forged), "{not json", trade("carol"))
    original = ledger.record_trade

    def failing_trade(*args, **kwargs):
        ledger.failing = True
        try:
            return original(*args, **kwargs)
        finally:
            ledger.failing = False

    ledger.record_trade = failing_trade  # type: ignore[method-assign]
    # When the function handles it
    with capture_logs() as logs:
        answer = process_batch(events, batch)
    # Then only the fault is reported for SQS to retry; the rejections are dropped, each logged with its reason
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    records = [json.loads(line) for line in logs.lines() if line.startswith("{")]
    rejected = [line for line in records if line.get("message") == "exchange event rejected"]
    assert sorted(line["reason"] for line in rejected) == ["malformed", "signature_mismatch"]
    text = logs.stream.getvalue()
    assert forged["signature"][2:] not in text and forged["signature"][2:].lower() not in text.lower()
    assert ledger.accounts.keys() == {"alice"}


def test_the_typed_data_keygate_rebuilds_is_the_documented_one():
    message = eip712.typed_data(DOMAIN, account="alice", agent=DOMAIN.agent_address, nonce=7)
    assert message["primaryType"] == "AgentAuthorization"
    assert message["domain"] == {"name": "GaiaEx", "version": "1", "chainId": 1,
                                 "verifyingContract": "0x0000000000000000000000000000000000000000"}
    assert message["types"]["AgentAuthorization"] == [
        {"name": "account", "type": "string"}, {"name": "agent", "type": "address"},
        {"name": "nonce", "type": "uint64"}]


# ---------------------------------------------------------------- lean imports
@pytest.mark.parametrize("function_id", [function_id for function_id in template.function_ids()
                                         if function_id != "ExchangeEventsFunction"])
def test_no_other_function_imports_eth_account(function_id):
    # Given a fresh interpreter, when a function's handler module is imported as Lambda imports it
    code = ("import sys; from keygate_dev import template; "
            f"template.load_handler({function_id!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'eth_account', 'eth_keys', 'eth_utils'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603  # nosec B603  # argv of this project's own interpreter, no shell
    # Then eth-account is not loaded (it is deployed with ExchangeEventsFunction alone)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_layer_imports_eth_account_only_on_the_first_verification():
    code = ("import sys, keygate.exchange, keygate.wiring; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'eth_account'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603  # nosec B603  # argv of this project's own interpreter, no shell
    assert result.stdout.strip() == "[]"
    # and eth-account is pinned for the one function that deploys it, at the version the tests use
    from importlib.metadata import version
    pinned = [line for line in (template.ROOT / "functions/exchange_events/requirements.txt").read_text().split()
              if "==" in line]
    assert f"eth-account=={version('eth-account')}" in pinned
    # (and so is everything it needs, at the versions installed here)
    assert all(version(name) == wanted for name, wanted in (line.split("==") for line in pinned))
