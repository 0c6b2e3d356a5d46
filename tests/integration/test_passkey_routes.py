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


# ----------------------------------------------------------------- helpers
def token_for(client: ApiClient, user: str, action: str, **options: object) -> str:
    return client.ceremony(user, action, **options)  # type: ignore[arg-type]


def create_key(client: ApiClient, user: str = "alice", **body: object) -> str:
    created = client.create(user, **body)
    assert created.status == 200, created.text
    return str(created.json()["api_key"])


def refused(response, *words: str) -> None:
    assert response.status == 403, response.text
    body = response.json()
    assert body["error"]["code"] == "STEP_UP_REQUIRED", body
    for word in words:
        assert word in body["error"]["message"], body["error"]["message"]


def step_up_with(client: ApiClient, credential: dict, user: str = "alice"):
    return client.call("POST", "/v1/trade/step-up", user=user, body={"credential": credential})


def fresh_options(client: ApiClient, user: str = "alice") -> dict:
    """Step-up options for a plain create, for a user who already has a passkey."""
    if not client.authenticator(user).credentials:
        assert client.register_passkey(user).status == 201
    options = client.step_up_options(user, "api_keys:create")
    assert options.status == 200, options.text
    return options.json()


# ------------------------------------------------------ binding: the change
def test_the_review_reproduction_a_rename_token_cannot_lift_another_keys_whitelist_and_add_trade(
        client: ApiClient, alice: str):
    # Given two keys of alice, B restricted to one IP and read-only
    key_a = create_key(client, label="A")
    key_b = create_key(client, label="B", ip_whitelist=["203.0.113.50"])
    before = {key["api_key"]: key for key in client.list().json()["keys"]}[key_b]
    # And a token alice approved for renaming key A
    rename_a = token_for(client, "alice", "api_keys:update", api_key=key_a, request={"label": "A2"})
    # When it is sent to lift B's whitelist and add trade
    response = client.call("PATCH", f"/v1/trade/api-keys/{key_b}",
                           body={"ip_whitelist": [], "permissions": ["read", "trade"]}, step_up=rename_a)
    # Then it is refused, saying what did not match, and B is unchanged
    refused(response, "another target")
    after = {key["api_key"]: key for key in client.list().json()["keys"]}[key_b]
    assert after == before


def test_a_token_for_one_change_cannot_make_another_change_to_the_same_key(client: ApiClient, alice: str):
    key = create_key(client, label="A")
    rename = token_for(client, "alice", "api_keys:update", api_key=key, request={"label": "A2"})
    response = client.call("PATCH", f"/v1/trade/api-keys/{key}", body={"label": "A2", "permissions": ["read", "trade"]},
                           step_up=rename)
    refused(response, "different change")
    # (and the token was not spent by the refusal: the approved change still goes through)
    assert client.call("PATCH", f"/v1/trade/api-keys/{key}", body={"label": "A2"}, step_up=rename).status == 200


def _ed25519_public_key() -> str:
    from kg1 import ed25519

    return ed25519.public_key_base64(ed25519.public_key_of(ed25519.generate_private_key()))


@pytest.mark.parametrize("approved_type", ["hmac-sha256", "ed25519"])
def test_a_create_token_is_bound_to_the_key_type_and_the_public_key(client: ApiClient, alice: str, approved_type):
    # Given a token alice approved for creating 'grid-bot' (an HMAC key, or an Ed25519 key for her public key)
    body = {"label": "grid-bot", "permissions": ["read", "trade"]}
    if approved_type == "ed25519":
        body |= {"key_type": "ed25519", "public_key": _ed25519_public_key()}
    token = token_for(client, "alice", "api_keys:create", request=body)
    # When the same token is sent with an attacker's Ed25519 public key instead
    swapped = {**body, "key_type": "ed25519", "public_key": _ed25519_public_key()}
    response = client.call("POST", "/v1/trade/api-keys", body=swapped, step_up=token)
    # Then it is refused and no key is made
    refused(response, "different change")
    assert client.list().json()["keys"] == []
    if approved_type == "ed25519":
        # And an HMAC key (whose secret would be answered to the sender) cannot be made with it either
        hmac = {key: value for key, value in body.items() if key not in ("key_type", "public_key")}
        refused(client.call("POST", "/v1/trade/api-keys", body=hmac, step_up=token), "different change")
    # While the change alice approved still goes through with it
    assert client.call("POST", "/v1/trade/api-keys", body=body, step_up=token).status == 200


def test_the_summary_names_an_ed25519_keys_public_key(client: ApiClient, alice: str):
    assert client.register_passkey("alice").status == 201
    options = client.step_up_options("alice", "api_keys:create", request={
        "label": "grid-bot", "key_type": "ed25519", "public_key": _ed25519_public_key()})
    assert options.status == 200, options.text
    assert options.json()["summary"].startswith("Create Ed25519 API key 'grid-bot' for the public key SHA256:")


def test_the_options_for_a_rotation_read_the_key_no_more_than_those_for_an_update(client: ApiClient, alice: str,
                                                                                   aws_calls):
    assert client.register_passkey("alice").status == 201
    key = create_key(client)
    # When the app asks to confirm an update, then a rotation, of the same key
    with aws_calls.recording() as for_update:
        assert client.step_up_options("alice", "api_keys:update", api_key=key, request={"label": "x"}).status == 200
    with aws_calls.recording() as for_rotation:
        assert client.step_up_options("alice", "api_keys:rotate", api_key=key, request={}).status == 200
    # Then checking the rotation reads nothing more than finding the key did (the record is read once)
    reads = {"dynamodb.GetItem", "dynamodb.Query", "dynamodb.BatchGetItem"}
    assert [call for call in for_rotation if call in reads] == [call for call in for_update if call in reads]


def test_the_options_for_a_rotation_that_cannot_be_are_refused_before_any_passkey_prompt(client: ApiClient,
                                                                                          alice: str):
    # Given alice's HMAC key, her Ed25519 key and a revoked key, and her passkey
    assert client.register_passkey("alice").status == 201
    hmac_key = create_key(client)
    ed25519_key = create_key(client, key_type="ed25519", public_key=_ed25519_public_key())
    revoked_key = create_key(client)
    assert client.revoke(revoked_key).status == 200

    def options(key: str, request: dict):
        return client.step_up_options("alice", "api_keys:rotate", api_key=key, request=request)

    # When the app asks to confirm rotations the rotate route would refuse
    cases = [(options(hmac_key, {"public_key": _ed25519_public_key()}), "INVALID_REQUEST", "send no public key"),
             (options(ed25519_key, {}), "INVALID_REQUEST", "send its new public key"),
             (options(revoked_key, {}), "KEY_REVOKED", "cannot be rotated")]
    # Then each is refused as the rotation would be, before a challenge or a summary exists
    for response, code, says in cases:
        assert response.status == 400, response.text
        error = response.json()["error"]
        assert error["code"] == code and says in error["message"], error
        assert "options" not in response.json()
    # While rotations that can be get their options, and a summary that says what happens
    hmac = options(hmac_key, {"grace_seconds": 60})
    assert hmac.status == 200 and "a new secret, shown once" in hmac.json()["summary"], hmac.text
    ed = options(ed25519_key, {"public_key": _ed25519_public_key()})
    assert ed.status == 200 and "the new public key SHA256:" in ed.json()["summary"], ed.text


def test_a_token_for_another_action_is_refused(client: ApiClient, alice: str):
    key = create_key(client)
    revoke = token_for(client, "alice", "api_keys:revoke", api_key=key)
    refused(client.call("POST", "/v1/trade/api-keys", body={}, step_up=revoke), "api_keys:revoke", "api_keys:create")


def test_a_token_for_another_target_is_refused(client: ApiClient, alice: str):
    key_a, key_b = create_key(client, label="A"), create_key(client, label="B")
    revoke_a = token_for(client, "alice", "api_keys:revoke", api_key=key_a)
    refused(client.call("DELETE", f"/v1/trade/api-keys/{key_b}", step_up=revoke_a), "another target")
    assert {key["api_key"]: key["is_active"] for key in client.list().json()["keys"]}[key_b] is True


def test_the_same_change_written_differently_is_one_change(client: ApiClient, alice: str):
    # Given a token approved for a whitelist written as a /32
    token = token_for(client, "alice", "api_keys:create", request={"label": "bot", "ip_whitelist": ["10.0.0.1/32"]})
    # When the create sends the same address without the prefix
    created = client.call("POST", "/v1/trade/api-keys", body={"label": "bot", "ip_whitelist": ["10.0.0.1"]},
                          step_up=token)
    # Then it is the change alice approved
    assert created.status == 200, created.text


def test_a_zdex_body_and_a_gaiaex_body_for_one_change_have_one_digest(client: ApiClient, alice: str):
    assert client.register_passkey("alice").status == 201
    gaiaex_body = client.step_up_options("alice", "api_keys:update", api_key="kgk_x", request={}).status
    assert gaiaex_body == 404  # (a key that is not alice's is answered as an unknown one)
    key = create_key(client, label="A")
    handle = [k for k in client.call("GET", "/v1/api-keys").json()["keys"]][0]["id"]
    by_gaiaex = client.step_up_options("alice", "api_keys:update", api_key=key,
                                       request={"permissions": ["read", "trade"], "ip_whitelist": ["10.0.0.1/32"]})
    by_zdex = client.step_up_options("alice", "api_keys:update", profile="zdex", id=handle,
                                     request={"permissions": ["READ_ONLY", "TRADE"], "ipWhitelist": ["10.0.0.1"]})
    assert by_gaiaex.status == by_zdex.status == 200, (by_gaiaex.text, by_zdex.text)
    assert by_gaiaex.json()["binding"] == by_zdex.json()["binding"]
    assert by_gaiaex.json()["binding"]["target"] == key
    # And a token from the ZDEX options changes the key through the GaiaEx route
    token = client.call("POST", "/v1/trade/step-up",
                        body={"credential": client.authenticator("alice").get(by_zdex.json())}).json()["step_up_token"]
    changed = client.call("PATCH", f"/v1/trade/api-keys/{key}",
                          body={"permissions": ["read", "trade"], "ip_whitelist": ["10.0.0.1"]}, step_up=token)
    assert changed.status == 200, changed.text


def test_a_target_that_is_not_the_callers_is_answered_as_an_unknown_one(client: ApiClient, alice: str):
    from tests.support.stack import onboard

    onboard("bob")
    bobs = create_key(client, "bob")
    assert client.register_passkey("alice").status == 201
    of_bob = client.step_up_options("alice", "api_keys:revoke", api_key=bobs)
    unknown = client.step_up_options("alice", "api_keys:revoke", api_key=bobs[:-4] + "AAAA")
    assert of_bob.status == unknown.status == 404
    assert of_bob.json() == unknown.json()


def test_a_token_is_spent_by_the_change_it_confirmed(client: ApiClient, alice: str):
    token = token_for(client, "alice", "api_keys:create")
    assert client.call("POST", "/v1/trade/api-keys", body={}, step_up=token).status == 200
    refused(client.call("POST", "/v1/trade/api-keys", body={}, step_up=token), "already been used")


def test_the_token_names_what_it_confirms(client: ApiClient, alice: str):
    import base64
    import json

    key = create_key(client)
    token = token_for(client, "alice", "api_keys:revoke", api_key=key)
    header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
                      for part in token.split(".")[:2])
    assert header == {"alg": "ES256", "typ": "kg-step-up+jwt"}
    assert claims["sub"] == "alice" and claims["action"] == "api_keys:revoke" and claims["target"] == key
    assert claims["change"].startswith("sha256:") and claims["amr"] == ["passkey"]
    assert claims["token_use"] == "step_up" and claims["exp"] - claims["iat"] == 120 and len(claims["jti"]) >= 8


# ------------------------------------------------- refusals of the ceremony
def test_an_assertion_without_user_verification_is_refused(client: ApiClient, alice: str):
    options = fresh_options(client)
    refused(step_up_with(client, client.authenticator("alice").get(options, user_verified=False)), "verif")


def test_an_assertion_for_another_relying_party_is_refused(client: ApiClient, alice: str):
    options = fresh_options(client)
    refused(step_up_with(client, client.authenticator("alice").get(options, rp_id="evil.example")), "RP ID")


def test_an_assertion_from_another_origin_is_refused(client: ApiClient, alice: str):
    options = fresh_options(client)
    refused(step_up_with(client, client.authenticator("alice").get(options, origin="https://evil.example")),
            "origin")


def test_a_challenge_is_used_once(client: ApiClient, alice: str):
    options = fresh_options(client)
    assertion = client.authenticator("alice").get(options)
    assert step_up_with(client, assertion).status == 200
    refused(step_up_with(client, assertion), "already been used")


def test_an_expired_challenge_is_refused(client: ApiClient, alice: str, monkeypatch: pytest.MonkeyPatch):
    from datetime import UTC, datetime, timedelta

    from keygate.stepup_service import passkey_functions

    options = fresh_options(client)
    # When the assertion arrives after StepUpTtlSeconds (120 s)
    monkeypatch.setattr(passkey_functions(), "clock", lambda: datetime.now(UTC) + timedelta(seconds=121))
    refused(step_up_with(client, client.authenticator("alice").get(options)), "expired")


def test_a_challenge_issued_to_another_user_is_refused(client: ApiClient, alice: str):
    from tests.support.stack import onboard

    onboard("bob")
    fresh_options(client)  # alice has a passkey
    bobs_options = fresh_options(client, "bob")
    alices = next(iter(client.authenticator("alice").credentials))
    # alice answers bob's challenge with her own passkey
    assertion = client.authenticator("alice").get(bobs_options, credential_id=alices)
    refused(step_up_with(client, assertion, "alice"), "another user")


def test_a_signature_counter_that_goes_backwards_is_refused_and_audited(client: ApiClient, alice: str):
    device = client.authenticator("alice")
    for _ in range(2):  # the stored counter reaches 2
        assert step_up_with(client, device.get(fresh_options(client))).status == 200
    refused(step_up_with(client, device.get(fresh_options(client), sign_count=1)), "cloned")
    audit = client.call("GET", "/v1/trade/passkeys").json()["audit"]
    assert audit[0]["action"] == "passkey_clone_suspected"


def test_counters_that_stay_zero_as_synced_passkeys_report_them_are_accepted(client: ApiClient, alice: str):
    assert client.register_passkey("alice", counter="zero").status == 201
    for _ in range(3):
        assert step_up_with(client, client.authenticator("alice").get(fresh_options(client))).status == 200


def test_a_forged_assertion_is_refused_without_the_clone_alarm(client: ApiClient, alice: str):
    device = client.authenticator("alice")
    assert step_up_with(client, device.get(fresh_options(client))).status == 200
    refused(step_up_with(client, device.get(fresh_options(client), sign_count=0, forged=True)), "signature")
    assert [entry["action"] for entry in client.call("GET", "/v1/trade/passkeys").json()["audit"]] == [
        "passkey_registered"]


# ------------------------------------------------------------- enrolment
def test_a_first_passkey_needs_a_recent_sign_in(client: ApiClient, alice: str):
    import time

    client._sessions["alice"] = client.identity.session_token("alice", auth_time=int(time.time()) - 301)
    refused(client.register_passkey("alice"), "sign-in")
    assert client.call("GET", "/v1/trade/passkeys").json()["passkeys"] == []


def test_a_first_passkey_needs_a_session_that_says_when_the_user_signed_in(client: ApiClient, alice: str):
    client._sessions["alice"] = client.identity.session_token("alice", auth_time=None)
    refused(client.register_passkey("alice"), "sign-in")


def test_a_second_passkey_needs_a_step_up_with_the_first(client: ApiClient, alice: str):
    assert client.register_passkey("alice").status == 201
    laptop = client.authenticators["laptop"] = type(client.authenticator("alice"))(origin=client.authenticator(
        "alice").origin)
    # Without a step-up: refused
    refused(client.register_passkey("alice", device=laptop, label="laptop"), "passkey confirmation")
    # With one confirmed on the phone: registered
    token = token_for(client, "alice", "passkeys:register")
    assert client.register_passkey("alice", device=laptop, label="laptop", step_up=token).status == 201
    assert [passkey["label"] for passkey in client.call("GET", "/v1/trade/passkeys").json()["passkeys"]] == [
        "phone", "laptop"]


def test_removing_a_passkey_needs_a_step_up_for_that_passkey_and_is_audited(client: ApiClient, alice: str):
    assert client.register_passkey("alice").status == 201
    [passkey] = client.call("GET", "/v1/trade/passkeys").json()["passkeys"]
    path = f"/v1/trade/passkeys/{passkey['passkey_id']}"
    refused(client.call("DELETE", path, step_up=None), "passkey confirmation")
    token = token_for(client, "alice", "passkeys:delete", passkey_id=passkey["passkey_id"])
    removed = client.call("DELETE", path, step_up=token)
    assert removed.status == 200 and removed.json()["passkey_id"] == passkey["passkey_id"]
    listed = client.call("GET", "/v1/trade/passkeys").json()
    assert listed["passkeys"] == []
    assert [entry["action"] for entry in listed["audit"]] == ["passkey_removed", "passkey_registered"]


def test_a_step_up_without_a_passkey_says_to_register_one(client: ApiClient, alice: str):
    refused(client.step_up_options("alice", "api_keys:create"), "register one")


def test_a_step_up_token_never_passes_as_a_session(client: ApiClient, alice: str):
    # Given a token KeyGate issued after a passkey ceremony
    token = token_for(client, "alice", "api_keys:create")
    # When it is sent as the session
    response = client.call("GET", "/v1/trade/api-keys", user=None, headers={"Authorization": f"Bearer {token}"})
    # Then the session authorizer refuses it
    assert response.status == 401, response.text


def test_another_users_passkey_is_answered_as_an_unknown_one(client: ApiClient, alice: str):
    from tests.support.stack import onboard

    onboard("bob")
    assert client.register_passkey("bob").status == 201
    [bobs] = client.call("GET", "/v1/trade/passkeys", user="bob").json()["passkeys"]
    assert client.register_passkey("alice").status == 201
    of_bob = client.step_up_options("alice", "passkeys:delete", passkey_id=bobs["passkey_id"])
    unknown = client.step_up_options("alice", "passkeys:delete", passkey_id="AAAAAAAA")
    assert of_bob.status == unknown.status == 404 and of_bob.json() == unknown.json()
