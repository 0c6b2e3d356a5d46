"""Events in on the local server: `keygate dev onboard` plays the exchange (a wallet kept in the state directory
signs a real EIP-712 agent authorization, put on the local bus with a trade), the server delivers the rules'
queue to ExchangeEventsFunction as Lambda would, and key creation follows the recorded state. The server prints
its moto endpoint and bus name, and events put there by hand go the same way."""

from __future__ import annotations

import json
import re
import time

import boto3
import pytest

from keygate_dev.server import EXCHANGE_BUS_LINE
from tests.support.local_server import AppUser, LocalServer
from tests.support.stack import unique_user

CREATE = "/v1/trade/api-keys"
POLL_SECONDS = 30  # how long the bus may take to deliver (an upper bound for a loaded machine, not a speed check)


def _bus(server: LocalServer) -> tuple[str, str]:
    found = re.search(re.escape(EXCHANGE_BUS_LINE) + r" (\S+) at (http://\S+) ", server.log())
    assert found, server.log()
    return found.group(1), found.group(2)


def _events_client(server: LocalServer, endpoint: str):
    aws = server.published()["aws_environment"]
    return boto3.client("events", endpoint_url=endpoint, region_name=aws["AWS_REGION"],
                        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"], aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"])


def _create(app: AppUser, permissions: list[str]):
    return app.call("POST", CREATE, action="api_keys:create", body={"label": "bot", "permissions": permissions})


def test_the_server_prints_its_moto_endpoint_and_bus(local_server: LocalServer):
    bus_name, endpoint = _bus(local_server)
    published = local_server.published()
    assert endpoint == published["aws_endpoint_url"] and bus_name == published["exchange_bus_name"]
    assert bus_name == "keygate-exchange-local"


def test_dev_onboard_signs_a_real_authorization_that_the_bus_delivers(local_server: LocalServer):
    # Given a user KeyGate has never heard of
    user = unique_user()
    app = AppUser(local_server, user, onboard=None)
    assert _create(app, ["read"]).status_code == 403
    # When the exchange (keygate dev onboard) signs and puts her agent authorization, without a trade yet
    local_server.keygate("onboard", "--user", user, "--no-trade")
    # Then her wallet is kept in the state directory, and she may create read keys but not trade keys
    wallets = json.loads((local_server.state_dir / "wallets.json").read_text())
    assert user in wallets
    assert _create(app, ["read"]).status_code == 200
    refused = _create(app, ["read", "trade"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "TRADING_HANDSHAKE_REQUIRED"
    # And once the exchange reports her first trade, she may create trade keys
    local_server.keygate("onboard", "--user", user)
    assert _create(app, ["read", "trade"]).status_code == 200
    # (the same wallet signed both authorizations)
    assert json.loads((local_server.state_dir / "wallets.json").read_text())[user] == wallets[user]


def test_events_put_by_hand_on_the_printed_bus_are_verified(local_server: LocalServer):
    bus_name, endpoint = _bus(local_server)
    events = _events_client(local_server, endpoint)
    user = unique_user()
    app = AppUser(local_server, user, onboard=None)
    # Given a forged authorization (garbage signature) put on the bus, then a trade for the same user
    forged = {"user_id": user, "wallet_address": "0x" + "12" * 20, "signature": "0x" + "ab" * 65,
              "typed_data": {"message": {"account": user, "agent": local_server.published()["parameters"][
                  "ExchangeAgentAddress"], "nonce": 1}}}
    trade = {"user_id": user, "trade_id": "t-1", "executed_at": "2026-11-26T12:00:00Z"}
    for source, detail_type, detail in (("exchange.onboarding", "AgentAuthorizationSigned", forged),
                                        ("exchange.trading", "TradeExecuted", trade)):
        answer = events.put_events(Entries=[{"EventBusName": bus_name, "Source": source, "DetailType": detail_type,
                                             "Detail": json.dumps(detail)}])
        assert answer["FailedEntryCount"] == 0
    # When the server has delivered both (the trade is recorded: the handshake alone)
    _wait_for(local_server, "exchange event handled", user)
    # Then the forged authorization was rejected and logged without its signature: still no onboarding
    assert "exchange event rejected" in local_server.log() and ("ab" * 65) not in local_server.log()
    refused = _create(app, ["read"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ONBOARDING_REQUIRED"


def _wait_for(server: LocalServer, message: str, user: str) -> None:
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        if any(message in line and user in line for line in server.log().splitlines()):
            return
        time.sleep(0.2)
    pytest.fail(f"no {message!r} for {user}:\n{server.log()[-4000:]}")
