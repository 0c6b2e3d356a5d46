"""The passkey routes and KeyGate's own step-up, through the local gateway on moto (StepUpMode builtin):
register passkeys, confirm a change with one, and the token authorises exactly that change, once.

Each refusal the issue lists is its own test; the authenticator is tests/support/authenticator.py.
"""

from __future__ import annotations

import pytest

from tests.support.client import ApiClient
from tests.support.stack import BUILTIN_STEP_UP

pytestmark = pytest.mark.parametrize("stack_env", [BUILTIN_STEP_UP], indirect=True, ids=["builtin"])

GRID_BOT = {"label": "grid-bot", "permissions": ["read", "trade"], "ip_whitelist": ["203.0.113.50"],
            "expires_days": 90}


def test_a_key_is_created_after_a_real_passkey_ceremony(client: ApiClient, alice: str):
    # Given alice registers a passkey after signing in
    registered = client.register_passkey("alice")
    assert registered.status == 201, registered.text
    # When she asks to confirm a key creation
    options = client.step_up_options("alice", "api_keys:create", request=GRID_BOT)
    # Then she is shown the change in one sentence before she touches the authenticator
    assert options.status == 200, options.text
    assert options.json()["summary"] == ("Create API key 'grid-bot' with read, trade; IPs 203.0.113.50; "
                                         "expires in 90 days")
    # And the token her passkey earns creates exactly that key
    device = client.authenticator("alice")
    token = client.call("POST", "/v1/trade/step-up", body={"credential": device.get(options.json())})
    assert token.status == 200, token.text
    created = client.call("POST", "/v1/trade/api-keys", body=GRID_BOT,
                          step_up=token.json()["step_up_token"])
    assert created.status == 200, created.text
