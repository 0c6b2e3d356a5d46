"""StepUpMode=external (the tests' default stack): the options route tells a foreign issuer what to bind
(`binding`), and KeyGate holds an external token to the `target` and `change` it carries (README,
"Step-up tokens from your own passkey service")."""

from __future__ import annotations

from tests.support.client import ApiClient


def binding_for(client: ApiClient, action: str, **body: object) -> dict:
    options = client.call("POST", "/v1/trade/step-up/options", body={"action": action, **body})
    assert options.status == 200, options.text
    # (no WebAuthn options: the external issuer runs its own ceremony)
    assert options.json()["options"] is None and options.json()["summary"]
    return options.json()["binding"]


def test_an_external_token_bound_to_the_change_it_confirms_passes(client: ApiClient, alice: str):
    key = client.create(label="A").json()["api_key"]
    binding = binding_for(client, "api_keys:update", api_key=key, request={"label": "A2"})
    token = client.step_up("alice", "api_keys:update", target=binding["target"], change=binding["change"])
    assert client.call("PATCH", f"/v1/trade/api-keys/{key}", body={"label": "A2"}, step_up=token).status == 200


def test_an_external_token_bound_to_another_key_or_change_is_refused(client: ApiClient, alice: str):
    # Given an external token bound to renaming key A
    key_a, key_b = (client.create(label=label).json()["api_key"] for label in ("A", "B"))
    binding = binding_for(client, "api_keys:update", api_key=key_a, request={"label": "A2"})
    token = client.step_up("alice", "api_keys:update", target=binding["target"], change=binding["change"])
    # When it is used to lift key B's whitelist and add trade, or to change key A otherwise
    for path, body in ((f"/v1/trade/api-keys/{key_b}", {"ip_whitelist": [], "permissions": ["read", "trade"]}),
                       (f"/v1/trade/api-keys/{key_a}", {"label": "A2", "permissions": ["read", "trade"]})):
        response = client.call("PATCH", path, body=body, step_up=token)
        # Then it is refused
        assert response.status == 403 and response.json()["error"]["code"] == "STEP_UP_REQUIRED", response.text
