"""StepUpRequired=false with the built-in issuer: mutations skip the token, the passkey routes still work."""

from __future__ import annotations

import pytest

from tests.support.client import ApiClient
from tests.support.stack import BUILTIN_STEP_UP


@pytest.mark.parametrize("stack_env", [{**BUILTIN_STEP_UP, "StepUpRequired": "false"}], indirect=True,
                         ids=["no-step-up"])
def test_step_up_required_false_still_skips_the_token(client: ApiClient, alice: str):
    # Given a deployment that needs no step-up, on the built-in issuer
    # When alice creates a key with her session alone
    created = client.call("POST", "/v1/trade/api-keys", body={}, step_up=None)
    # Then it is created, and her passkeys can still be registered
    assert created.status == 200, created.text
    assert client.register_passkey("alice").status == 201
