"""Who may call: a session on every route (401 without one) and a passkey step-up token, valid for
this user and this action, used once, on every mutation (403 STEP_UP_REQUIRED otherwise)."""

import time
import uuid

import jwt
import pytest

from keygate import wiring
from keygate_dev.identity import SigningKey
from tests.support.errors import assert_error
from tests.support.stack import onboard, rsa_private_key, state_snapshot, table_items

MUTATIONS = {
    "create": ("POST", "/v1/trade/api-keys", "api_keys:create", {"label": "bot"}),
    "update": ("PATCH", "/v1/trade/api-keys/{key}", "api_keys:update", {"label": "renamed"}),
    "revoke": ("DELETE", "/v1/trade/api-keys/{key}", "api_keys:revoke", None),
    "revoke_all": ("DELETE", "/v1/trade/api-keys/all", "api_keys:revoke_all", None),
}
OTHER_ACTION = {"api_keys:create": "api_keys:update", "api_keys:update": "api_keys:revoke",
                "api_keys:revoke": "api_keys:revoke_all", "api_keys:revoke_all": "api_keys:revoke"}


@pytest.fixture
def existing_key(client, alice):
    created = client.create(label="bot")
    assert created.status == 200
    return created.json()["api_key"]


def _send(client, mutation, key_id, *, token, user="alice"):
    method, path, _action, body = MUTATIONS[mutation]
    return client.call(method, path.format(key=key_id), user=user, body=body, step_up=token)


def _valid_claims(idp, action):
    now = int(time.time())
    return {"iss": idp.step_up_issuer, "aud": idp.step_up_audience, "sub": "alice", "iat": now, "exp": now + 300,
            "jti": "a" * 32, "amr": ["passkey"], "action": action, "token_use": "step_up"}


BAD_TOKENS = {
    "empty": lambda idp, action: "",
    "garbage": lambda idp, action: "not-a-jwt",
    "too-old": lambda idp, action: idp.step_up_token("alice", action, now=time.time() - 301, lifetime_seconds=3600),
    "expired": lambda idp, action: idp.step_up_token("alice", action, now=time.time() - 200, lifetime_seconds=100),
    "expired-20-s-ago": lambda idp, action: idp.step_up_token("alice", action, now=time.time() - 80,
                                                               lifetime_seconds=60),
    "issued-20-s-ahead": lambda idp, action: idp.step_up_token("alice", action, now=time.time() + 20),
    "issued-in-the-future": lambda idp, action: idp.step_up_token("alice", action, now=time.time() + 120),
    "other-user": lambda idp, action: idp.step_up_token("bob", action),
    "other-action": lambda idp, action: idp.step_up_token("alice", OTHER_ACTION[action]),
    "no-action": lambda idp, action: idp.step_up_key.sign(
        {key: value for key, value in _valid_claims(idp, action).items() if key != "action"}),
    "wrong-issuer": lambda idp, action: idp.step_up_token("alice", action, iss="https://evil.example/passkey"),
    "wrong-audience": lambda idp, action: idp.step_up_token("alice", action, aud="another-service"),
    "no-audience": lambda idp, action: idp.step_up_token("alice", action, aud=None),
    "password-amr": lambda idp, action: idp.step_up_token("alice", action, amr=["pwd"]),
    "no-amr": lambda idp, action: idp.step_up_token("alice", action, amr=None),
    "amr-as-string": lambda idp, action: idp.step_up_token("alice", action, amr="passkey"),
    "no-jti": lambda idp, action: idp.step_up_token("alice", action, jti=None),
    "short-jti": lambda idp, action: idp.step_up_token("alice", action, jti="abc"),
    "no-expiry": lambda idp, action: idp.step_up_token("alice", action, exp=None),
    "forged-same-kid": lambda idp, action: idp.step_up_token(
        "alice", action, signing_key=SigningKey(kid=idp.step_up_key.kid)),
    "session-token": lambda idp, action: idp.session_token("alice"),
    # The kind marker (issue 13, finding 5): an external issuer's token without it is no step-up token
    "no-token-use": lambda idp, action: idp.step_up_token("alice", action, token_use=None),
    "token-use-id": lambda idp, action: idp.step_up_token("alice", action, token_use="id"),
    "session-audience": lambda idp, action: idp.step_up_token("alice", action, aud=idp.audience),
    # Signed time claims that JSON writes as Infinity or NaN: refused, not an unhandled overflow (a 500)
    "iat-infinite": lambda idp, action: idp.step_up_key.sign({**_valid_claims(idp, action), "iat": float("inf")}),
    "iat-minus-infinite": lambda idp, action: idp.step_up_key.sign(
        {**_valid_claims(idp, action), "iat": float("-inf")}),
    "exp-infinite": lambda idp, action: idp.step_up_key.sign({**_valid_claims(idp, action), "exp": float("inf")}),
    "iat-huge-negative": lambda idp, action: idp.step_up_key.sign({**_valid_claims(idp, action), "iat": -10 ** 400}),
    "iat-nan": lambda idp, action: idp.step_up_key.sign({**_valid_claims(idp, action), "iat": float("nan")}),
    "alg-none": lambda idp, action: jwt.encode(_valid_claims(idp, action), key=None, algorithm="none"),
    # An algorithm the JWKS key is not for (RS256 naming the EC key's kid): refused, not a crash
    "alg-mismatch": lambda idp, action: jwt.encode(_valid_claims(idp, action), rsa_private_key(), algorithm="RS256",
                                                   headers={"kid": idp.step_up_key.kid}),
}


def test_the_claims_the_bad_tokens_start_from_are_accepted(client, identity, alice):
    # A control for the cases below: each of them differs from this token in one way only.
    token = identity.step_up_key.sign(_valid_claims(identity, "api_keys:create"))
    assert client.call("POST", "/v1/trade/api-keys", body={}, step_up=token).status == 200


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_mutation_without_a_step_up_token_is_refused(client, existing_key, mutation):
    before = state_snapshot()
    error = assert_error(_send(client, mutation, existing_key, token=None), 403, "STEP_UP_REQUIRED")
    assert "X-PASSKEY-TOKEN" in error["message"]
    assert state_snapshot() == before


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_mutation_with_an_invalid_step_up_token_is_refused_and_changes_nothing(
        client, identity, existing_key, mutation, kind):
    # Given a step-up token that is wrong in one way
    token = BAD_TOKENS[kind](identity, MUTATIONS[mutation][2])
    before = state_snapshot()
    # When the mutation is sent with it
    response = _send(client, mutation, existing_key, token=token)
    # Then it is refused with 403 STEP_UP_REQUIRED and nothing is written
    assert_error(response, 403, "STEP_UP_REQUIRED")
    assert state_snapshot() == before


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_step_up_token_works_once(client, identity, existing_key, mutation):
    # Given a valid token for the action, used once successfully
    token = identity.step_up_token("alice", MUTATIONS[mutation][2])
    assert _send(client, mutation, existing_key, token=token).status == 200
    before = state_snapshot()
    # When it is sent again
    error = assert_error(_send(client, mutation, existing_key, token=token), 403, "STEP_UP_REQUIRED")
    # Then it is refused as used, and nothing is written
    assert "already been used" in error["message"]
    assert state_snapshot() == before


def test_the_header_name_is_case_insensitive(client, identity, alice):
    token = identity.step_up_token("alice", "api_keys:create")
    response = client.call("POST", "/v1/trade/api-keys", body={}, step_up=None, headers={"x-passkey-token": token})
    assert response.status == 200, response.body


def test_a_refused_mutation_does_not_use_up_the_token(client, identity):
    # Given a user who has not finished onboarding, and a valid create token
    token = identity.step_up_token("carol", "api_keys:create")
    assert_error(client.call("POST", "/v1/trade/api-keys", user="carol", body={}, step_up=token),
                 403, "ONBOARDING_REQUIRED")
    # When she finishes onboarding and tries again with the same token
    onboard("carol")
    # Then the token still works: the refused request did not record it
    assert client.call("POST", "/v1/trade/api-keys", user="carol", body={}, step_up=token).status == 200


@pytest.mark.parametrize("stack_env", [{"StepUpMaxAgeSeconds": "60"}], indirect=True)
def test_the_maximum_age_is_the_stack_parameter(client, identity, alice):
    # Given StepUpMaxAgeSeconds=60
    fresh = identity.step_up_token("alice", "api_keys:create", now=time.time() - 45)
    stale = identity.step_up_token("alice", "api_keys:create", now=time.time() - 75)
    # Then a 45 s old token passes and a 75 s old one does not
    assert client.call("POST", "/v1/trade/api-keys", body={}, step_up=fresh).status == 200
    assert_error(client.call("POST", "/v1/trade/api-keys", body={}, step_up=stale), 403, "STEP_UP_REQUIRED")


ALL_ROUTES = [("POST", "/v1/trade/api-keys"), ("GET", "/v1/trade/api-keys"),
              ("PATCH", "/v1/trade/api-keys/{key}"), ("DELETE", "/v1/trade/api-keys/{key}"),
              ("DELETE", "/v1/trade/api-keys/all"), ("GET", "/v1/trade/api-keys/{key}/audit")]


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES)
@pytest.mark.parametrize("authorizer", [None, {}, {"principalId": ""}], ids=["absent", "empty", "blank-principal"])
def test_no_route_runs_without_the_session_authorizers_context(client, identity, existing_key, method, path,
                                                                authorizer):
    # Given a request that reached the handler without a session (API Gateway misconfigured, say)
    token = identity.step_up_token("alice", "api_keys:create")
    before = state_snapshot()
    # When the handler runs
    response = client.call_handler(method, path.format(key=existing_key), authorizer, body='{"label": "x"}',
                                   headers={"X-PASSKEY-TOKEN": token, "Content-Type": "application/json"})
    # Then it answers 401 and changes nothing
    assert_error(response, 401, "UNAUTHORIZED")
    assert state_snapshot() == before


def test_the_principal_id_alone_identifies_the_user(client, existing_key):
    response = client.call_handler("GET", "/v1/trade/api-keys", {"principalId": "alice"})
    assert [view["api_key"] for view in response.json()["keys"]] == [existing_key]


def test_a_used_token_is_recorded_with_a_ttl_that_outlives_its_acceptance(client, identity, alice):
    # Given a valid create token issued now
    issued = int(time.time())
    token = identity.step_up_token("alice", "api_keys:create", now=issued)
    # When it is used
    assert client.call("POST", "/v1/trade/api-keys", body={}, step_up=token).status == 200
    # Then its jti is recorded with a TTL no earlier than the last moment the token could pass the age check
    # (iat + StepUpMaxAgeSeconds + the clock skew allowed), and no later than needed
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    [record] = [item for item in table_items() if item["pk"] == f"STEPUP#{jti}"]
    assert record["expires_ttl"] == issued + 300 + 5


@pytest.fixture
def one_identity_provider(client, identity, jwks, monkeypatch):
    """Step-up tokens from the provider that issues sessions: same issuer, JWKS and audience."""
    for name, value in {"STEP_UP_ISSUER": identity.session_issuer, "STEP_UP_JWKS_URL": jwks.session_jwks_url,
                        "STEP_UP_AUDIENCE": identity.audience}.items():
        monkeypatch.setenv(name, value)
    wiring.forget()


def _from_the_session_provider(idp, action, **claims):
    now = int(time.time())
    return idp.session_key.sign({"iss": idp.session_issuer, "aud": idp.audience, "sub": "alice", "iat": now,
                                 "exp": now + 300, "jti": uuid.uuid4().hex, "amr": ["passkey"], "action": action,
                                 **claims})


def test_a_session_of_the_same_provider_is_refused_as_a_step_up_token(client, alice, one_identity_provider,
                                                                      identity):
    # Given a session of the provider that also issues step-up tokens, made just after a passkey login
    # (amr, action and jti included): all it lacks is the step-up marker
    session = _from_the_session_provider(identity, "api_keys:create")
    before = state_snapshot()
    # When it is sent as the passkey confirmation of a create
    response = client.call("POST", "/v1/trade/api-keys", body={}, step_up=session)
    # Then it is refused and nothing is written
    assert_error(response, 403, "STEP_UP_REQUIRED")
    assert state_snapshot() == before
    # While the same provider's step-up token, marked as one, is accepted
    marked = _from_the_session_provider(identity, "api_keys:create", token_use="step_up")
    assert client.call("POST", "/v1/trade/api-keys", body={}, step_up=marked).status == 200
