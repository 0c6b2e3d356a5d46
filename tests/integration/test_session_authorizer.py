"""SessionAuthorizerFunction: session JWTs checked against the JWKS over HTTP."""

import time

import jwt
import pytest

from keygate import apigw, tokens, wiring
from keygate_dev.identity import SigningKey
from keygate_dev.lambda_runner import LambdaContext
from keygate_dev.template import load_handler
from tests.support.stack import rsa_private_key

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/test/GET/v1/trade/api-keys"


@pytest.fixture
def authorize(stack_env):
    handler = load_handler("SessionAuthorizerFunction")

    def call(authorization: str | None):
        event = {"type": "TOKEN", "methodArn": METHOD_ARN}
        if authorization is not None:
            event["authorizationToken"] = authorization
        return handler(event, LambdaContext("SessionAuthorizerFunction"))

    return call


def test_valid_session_is_allowed_for_the_whole_stage(authorize, identity):
    # Given a fresh session token for alice
    token = identity.session_token("alice")
    # When the authorizer checks it
    result = authorize(f"Bearer {token}")
    # Then alice is the principal, the context names her, and the cached policy covers every route
    assert result["principalId"] == "alice"
    assert result["context"] == {"user_id": "alice"}
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "arn:aws:execute-api:us-east-1:123456789012:abc123/test/*"


@pytest.mark.parametrize("make_header", [
    pytest.param(lambda idp: None, id="missing"),
    pytest.param(lambda idp: "", id="empty"),
    pytest.param(lambda idp: f"Basic {idp.session_token('alice')}", id="wrong-scheme"),
    pytest.param(lambda idp: "Bearer not-a-jwt", id="garbage"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', now=time.time() - 7200)}", id="expired"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', iss='https://evil.example')}", id="wrong-issuer"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', aud='other-service')}", id="wrong-audience"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', exp=None)}", id="no-expiry"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('', sub='')}", id="empty-subject"),
    pytest.param(lambda idp: "Bearer " + SigningKey(kid=idp.session_key.kid).sign(
        {"iss": idp.session_issuer, "aud": idp.audience, "sub": "alice", "exp": int(time.time()) + 60}),
        id="forged-with-same-kid"),
    pytest.param(lambda idp: f"Bearer {idp.step_up_token('alice', 'api_keys:create')}", id="step-up-token-as-session"),
    pytest.param(lambda idp: "Bearer " + jwt.encode(
        {"iss": idp.session_issuer, "aud": idp.audience, "sub": "alice", "exp": int(time.time()) + 60},
        rsa_private_key(), algorithm="RS256", headers={"kid": idp.session_key.kid}), id="alg-not-the-keys"),
])
def test_invalid_sessions_are_refused_with_unauthorized(authorize, identity, make_header):
    # Given a header that is not a valid session
    header = make_header(identity)
    # When / Then API Gateway gets the 'Unauthorized' error it maps to 401
    with pytest.raises(apigw.AuthorizerDenied, match="^Unauthorized$"):
        authorize(header)


@pytest.mark.parametrize(("expired_seconds_ago", "allowed"), [(20, False), (6, False), (2, True)])
def test_an_expired_session_passes_only_within_the_5_second_clock_skew(authorize, identity, expired_seconds_ago,
                                                                       allowed):
    # Given a session that expired a few seconds ago (issue 13, finding 8: PyJWT's leeway used to be 30 s)
    token = identity.session_token("alice", now=time.time() - 600 - expired_seconds_ago, lifetime_seconds=600)
    # When the authorizer checks it
    # Then it passes only inside the documented skew of at most 5 s
    if allowed:
        assert authorize(f"Bearer {token}")["principalId"] == "alice"
    else:
        with pytest.raises(apigw.AuthorizerDenied, match="^Unauthorized$"):
            authorize(f"Bearer {token}")


def test_unreachable_jwks_fails_the_authorizer_rather_than_denying(authorize, identity, monkeypatch):
    # Given a JWKS URL on a closed loopback port
    monkeypatch.setenv("SESSION_JWKS_URL", "http://127.0.0.1:9/jwks.json")
    wiring.forget()
    tokens.forget_jwks()
    # When a well-formed session arrives
    # Then the authorizer fails (AUTHORIZER_FAILURE -> 503 Gateway Response), it neither allows nor says 401
    with pytest.raises(Exception) as failure:
        authorize(f"Bearer {identity.session_token('alice')}")
    assert not isinstance(failure.value, apigw.AuthorizerDenied)


def test_an_unknown_kid_does_not_make_every_request_download_the_jwks(authorize, identity, monkeypatch):
    # Given a counter of JWKS downloads (PyJWKClient refetches for an unknown kid only after a cooldown)
    fetches = []
    original = jwt.PyJWKClient.fetch_data
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", lambda self: fetches.append(1) or original(self))
    stranger = "Bearer " + SigningKey(kid="not-a-published-kid").sign(
        {"iss": identity.session_issuer, "aud": identity.audience, "sub": "alice", "exp": int(time.time()) + 60})
    # When many requests carry a kid the JWKS does not have
    for _ in range(20):
        with pytest.raises(apigw.AuthorizerDenied, match="^Unauthorized$"):
            authorize(stranger)
    # Then the JWKS was downloaded at most twice (first fetch, one refetch for the unknown kid), not 20 times
    assert 1 <= len(fetches) <= 2
    # And a valid session still passes without another download
    assert authorize(f"Bearer {identity.session_token('alice')}")["principalId"] == "alice"
    assert len(fetches) <= 2


# --------------------------------------------------- token kinds (issue 13, finding 5)
@pytest.fixture
def one_identity_provider(stack_env, identity, jwks, monkeypatch):
    """A stack whose sessions and step-up tokens come from one identity provider: same issuer, JWKS and
    audience (the configuration in which a step-up token used to pass as a session)."""
    for name, value in {"STEP_UP_ISSUER": identity.session_issuer, "STEP_UP_JWKS_URL": jwks.session_jwks_url,
                        "STEP_UP_AUDIENCE": identity.audience}.items():
        monkeypatch.setenv(name, value)
    wiring.forget()


def _session_shaped(identity, *, headers=None, **claims):
    now = int(time.time())
    return identity.session_key.sign({"iss": identity.session_issuer, "aud": identity.audience, "sub": "alice",
                                      "iat": now, "exp": now + 300, **claims}, headers=headers)


def test_a_step_up_token_of_the_same_provider_is_refused_as_a_session(authorize, identity, one_identity_provider):
    # Given a step-up token signed by the provider that also issues sessions, for the session audience:
    # only its kind marker tells it from a session
    token = _session_shaped(identity, jti="b" * 32, amr=["passkey"], action="api_keys:create",
                            token_use="step_up")
    # When it is presented as a session
    # Then the session authorizer refuses it (401)
    with pytest.raises(apigw.AuthorizerDenied, match="^Unauthorized$"):
        authorize(f"Bearer {token}")


def test_a_token_whose_header_says_step_up_is_refused_as_a_session(authorize, identity, one_identity_provider):
    # Given a token of the session provider whose JWT header types it as a step-up token
    token = _session_shaped(identity, headers={"typ": "kg-step-up+jwt"})
    # When / Then it is no session either
    with pytest.raises(apigw.AuthorizerDenied, match="^Unauthorized$"):
        authorize(f"Bearer {token}")


@pytest.mark.parametrize("claims", [{}, {"token_use": "id"}, {"token_use": "access"}, {"amr": ["pwd"]}],
                         ids=["plain", "cognito-id", "cognito-access", "with-amr"])
def test_ordinary_sessions_of_any_provider_keep_working(authorize, identity, claims):
    # Given sessions as identity providers issue them, without KeyGate's step-up marker (Cognito, for
    # one, puts its own token_use in every token)
    token = _session_shaped(identity, **claims)
    # When / Then they are sessions
    assert authorize(f"Bearer {token}")["principalId"] == "alice"
