"""Creating keys needs a completed onboarding; trade (and withdraw) keys need the trading handshake."""

import pytest

from keygate.records import AccountState
from tests.support.errors import assert_error
from tests.support.stack import layer, onboard, state_snapshot

WITHDRAW_ENABLED = {"AllowedPermissions": "read,trade,withdraw"}


@pytest.mark.parametrize("account", [None, AccountState(), AccountState(trading_handshake_completed=True)],
                         ids=["no-record", "nothing-done", "traded-but-not-onboarded"])
def test_without_onboarding_no_key_can_be_created(client, account):
    # Given a user whose account record is missing or says onboarding is not complete
    if account is not None:
        layer().keys.put_account_state("carol", account)
    before = state_snapshot()
    # When she creates a read-only key
    response = client.create(user="carol", permissions=["read"])
    # Then it is refused with ONBOARDING_REQUIRED and nothing (no secret, no record) is left behind
    error = assert_error(response, 403, "ONBOARDING_REQUIRED")
    assert "onboarding" in error["message"].lower()
    assert state_snapshot() == before


def test_an_onboarded_user_without_a_trade_may_create_read_keys_only(client):
    # Given a user who is onboarded but has not traded yet
    onboard("dave", trade=False)
    before = state_snapshot()
    # When she asks for a trade key
    # Then it is refused with TRADING_HANDSHAKE_REQUIRED and nothing is written
    assert_error(client.create(user="dave", permissions=["read", "trade"]), 403, "TRADING_HANDSHAKE_REQUIRED")
    assert_error(client.create(user="dave", permissions=["trade"]), 403, "TRADING_HANDSHAKE_REQUIRED")
    assert state_snapshot() == before
    # And a read key is fine
    assert client.create(user="dave", permissions=["read"]).status == 200


@pytest.mark.parametrize("stack_env", [WITHDRAW_ENABLED], indirect=True)
def test_withdraw_keys_need_the_trading_handshake_too(client):
    onboard("dave", trade=False)
    response = client.create(user="dave", permissions=["read", "withdraw"], ip_whitelist=["198.51.100.7"])
    assert_error(response, 403, "TRADING_HANDSHAKE_REQUIRED")


def test_after_the_first_trade_trade_keys_are_allowed(client):
    onboard("dave", trade=False)
    assert_error(client.create(user="dave", permissions=["trade"]), 403, "TRADING_HANDSHAKE_REQUIRED")
    onboard("dave", trade=True)
    assert client.create(user="dave", permissions=["trade"]).status == 200


def test_the_step_up_check_comes_before_the_prerequisites(client):
    # A request without the passkey confirmation learns nothing about the account's state.
    response = client.call("POST", "/v1/trade/api-keys", user="carol", body={}, step_up=None)
    assert_error(response, 403, "STEP_UP_REQUIRED")


def test_invalid_input_is_reported_before_the_prerequisites(client):
    assert_error(client.create(user="carol", permissions=["admin"]), 400, "INVALID_REQUEST")
