"""SessionAuthorizerFunction: session JWTs checked against the JWKS over HTTP.

A REQUEST authorizer (its identity source is the Authorization header): every refusal is a Deny whose
context carries its code, which the ACCESS_DENIED Gateway Response answers 401; only an unreachable
JWKS makes it fail (AUTHORIZER_CONFIGURATION_ERROR, 503).
"""

import json
import time
import uuid

import jwt
import pytest

from keygate import tokens, wiring
from keygate_dev.identity import SigningKey
from keygate_dev.lambda_runner import LambdaContext
from keygate_dev.template import load_handler
from tests.support.loopback import serving
from tests.support.stack import rsa_private_key

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/test/GET/v1/trade/api-keys"


def request_event(authorization: str | None, request_id: str = "req-0") -> dict:
    """API Gateway's REQUEST authorizer event for GET /v1/trade/api-keys (headers as the client sent them)."""
    headers = {} if authorization is None else {"authorization": authorization}
    return {"type": "REQUEST", "methodArn": METHOD_ARN, "resource": "/v1/trade/api-keys",
            "path": "/v1/trade/api-keys", "httpMethod": "GET", "headers": headers,
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "queryStringParameters": None, "pathParameters": None,
            "requestContext": {"requestId": request_id, "resourcePath": "/v1/trade/api-keys", "httpMethod": "GET",
                               "stage": "test", "identity": {"sourceIp": "203.0.113.10"}}}


@pytest.fixture
def authorize(stack_env):
    handler = load_handler("SessionAuthorizerFunction")

    def call(authorization: str | None, request_id: str = "req-0"):
        return handler(request_event(authorization, request_id), LambdaContext("SessionAuthorizerFunction"))

    return call


def denied_code(result: dict) -> str:
    """The code a refusal carries: a Deny for every route of the stage (API Gateway caches it per header)."""
    [statement] = result["policyDocument"]["Statement"]
    assert statement == {"Action": "execute-api:Invoke", "Effect": "Deny",
                         "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/test/*"}, result
    assert result["context"]["error_message"]
    return result["context"]["error_code"]


def test_valid_session_is_allowed_for_the_whole_stage(authorize, identity):
    # Given a fresh session token for alice
    signed_in = int(time.time())
    token = identity.session_token("alice", now=signed_in)
    # When the authorizer checks it
    result = authorize(f"Bearer {token}")
    # Then alice is the principal, the context names her and when she signed in (a first passkey needs a
    # recent sign-in), and the cached policy covers every route
    assert result["principalId"] == "alice"
    assert result["context"] == {"user_id": "alice", "auth_time": str(signed_in)}
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "arn:aws:execute-api:us-east-1:123456789012:abc123/test/*"


@pytest.mark.parametrize(("make_header", "code"), [
    pytest.param(lambda idp: None, "SESSION_INVALID", id="missing"),  # API Gateway answers it first (identity source)
    pytest.param(lambda idp: "", "SESSION_INVALID", id="empty"),
    pytest.param(lambda idp: f"Basic {idp.session_token('alice')}", "SESSION_INVALID", id="wrong-scheme"),
    pytest.param(lambda idp: "Bearer not-a-jwt", "SESSION_INVALID", id="garbage"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', now=time.time() - 7200)}", "SESSION_EXPIRED",
                 id="expired"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', iss='https://evil.example')}", "SESSION_INVALID",
                 id="wrong-issuer"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', aud='other-service')}", "SESSION_WRONG_AUDIENCE",
                 id="wrong-audience"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', exp=None)}", "SESSION_INVALID", id="no-expiry"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('', sub='')}", "SESSION_INVALID", id="empty-subject"),
    pytest.param(lambda idp: "Bearer " + SigningKey(kid=idp.session_key.kid).sign(
        {"iss": idp.session_issuer, "aud": idp.audience, "sub": "alice", "exp": int(time.time()) + 60}),
        "SESSION_INVALID", id="forged-with-same-kid"),
    pytest.param(lambda idp: f"Bearer {idp.step_up_token('alice', 'api_keys:create')}", None,
                 id="step-up-token-as-session"),
    pytest.param(lambda idp: "Bearer " + jwt.encode(
        {"iss": idp.session_issuer, "aud": idp.audience, "sub": "alice", "exp": int(time.time()) + 60},
        rsa_private_key(), algorithm="RS256", headers={"kid": idp.session_key.kid}), "SESSION_INVALID",
        id="alg-not-the-keys"),
])
def test_invalid_sessions_are_denied_with_their_own_code(authorize, identity, make_header, code):
    # Given a header that is not a valid session
    header = make_header(identity)
    # When the authorizer checks it
    result = authorize(header)
    # Then it answers a Deny (never raises) whose code tells expired, wrong audience and invalid apart
    refused = denied_code(result)
    assert refused == code if code else refused.startswith("SESSION_")


def test_a_refusal_is_logged_with_api_gateways_request_id(authorize, identity, captured_logs):
    # Given API Gateway's id of a request with an expired session
    request_id = str(uuid.uuid4())
    # When the authorizer refuses it
    denied_code(authorize(f"Bearer {identity.session_token('alice', now=time.time() - 7200)}", request_id))
    # Then its log line carries that id (as the correlation id and by name) and the code, never the token
    [line] = [json.loads(line) for line in captured_logs.lines()
              if line.startswith("{") and json.loads(line).get("message") == "session refused"]
    assert line["correlation_id"] == request_id and line["apigw_request_id"] == request_id
    assert line["error_code"] == "SESSION_EXPIRED"
    # And it is a WARNING, so production's LogLevel (WARNING, samconfig.toml) writes it too
    assert line["level"] == "WARNING"
    assert "eyJ" not in json.dumps(line)


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
        assert denied_code(authorize(f"Bearer {token}")) == "SESSION_EXPIRED"


def test_unreachable_jwks_fails_the_authorizer_rather_than_denying(authorize, identity, monkeypatch, captured_logs):
    # Given a JWKS URL on a closed loopback port
    monkeypatch.setenv("SESSION_JWKS_URL", "http://127.0.0.1:9/jwks.json")
    wiring.forget()
    tokens.forget_jwks()
    # When a well-formed session arrives
    # Then the authorizer fails (AUTHORIZER_CONFIGURATION_ERROR -> 503 Gateway Response): it neither allows nor denies
    with pytest.raises(Exception, match="cannot be fetched"):
        authorize(f"Bearer {identity.session_token('alice')}")
    # And its log line names the JWKS and what its fetch raised, for the operator
    [line] = [json.loads(line) for line in captured_logs.lines()
              if line.startswith("{") and json.loads(line).get("message") == "jwks unreachable"]
    assert line["jwks_url"] == "http://127.0.0.1:9/jwks.json" and line["error_type"] == "PyJWKClientConnectionError"


@pytest.mark.parametrize("document", [[{"kty": "EC"}], "<html>maintenance</html>", {"keys": []},
                                      {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}],
                         ids=["a JSON array", "a JSON string", "no keys", "no signing key"])
def test_a_jwks_that_answers_but_holds_no_usable_key_fails_the_authorizer_rather_than_denying(
        authorize, identity, monkeypatch, document):
    # Given a JWKS URL that answers 200 with a document holding no key that could sign a session
    with serving(lambda request: (200, document), path="/jwks.json") as url:
        monkeypatch.setenv("SESSION_JWKS_URL", url)
        wiring.forget()
        tokens.forget_jwks()
        # When a well-formed session arrives
        # Then the authorizer fails (503), as for a JWKS it cannot reach: the identity provider's fault is not
        # the user's, and a Deny would be cached by API Gateway for the token
        with pytest.raises(Exception, match="cannot be fetched"):
            authorize(f"Bearer {identity.session_token('alice')}")


def _not_utf8(self):
    raise UnicodeDecodeError("utf-8", b"\xe4", 0, 1, "invalid continuation byte")  # what json.load raises


@pytest.mark.parametrize("second", [
    {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, [], "maintenance", _not_utf8,
], ids=["no signing key", "a JSON array", "a JSON string", "not UTF-8"])
def test_a_refetch_for_a_new_kid_that_finds_no_usable_key_fails_the_authorizer_rather_than_denying(
        authorize, identity, monkeypatch, second):
    # Given a JWKS this instance has fetched and cached, whose endpoint then answers without a usable key set
    documents = [identity.session_jwks(), second]
    with serving(lambda request: (200, documents[0]), path="/jwks.json") as url:
        monkeypatch.setenv("SESSION_JWKS_URL", url)
        monkeypatch.setattr(tokens, "JWKS_REFETCH_COOLDOWN_SECONDS", 0)
        wiring.forget()
        tokens.forget_jwks()
        assert authorize(f"Bearer {identity.session_token('alice')}")["principalId"] == "alice"
        documents.pop(0)
        if callable(second):
            monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", second)
        # When a session signed with a key the cache does not have arrives (the identity provider rotated), so
        # PyJWT fetches the JWKS again
        rotated = "Bearer " + SigningKey(kid="rotated-in").sign(
            {"iss": identity.session_issuer, "aud": identity.audience, "sub": "alice", "exp": int(time.time()) + 60})
        # Then the authorizer fails (503), as for a JWKS it cannot reach, rather than refusing the session (a
        # refusal API Gateway would cache for the token)
        with pytest.raises(Exception, match="cannot be fetched"):
            authorize(rotated)


def test_a_jwks_that_is_not_json_fails_the_authorizer_rather_than_denying(authorize, identity, monkeypatch):
    # Given a JWKS URL whose answer is not JSON (a proxy's error page)
    def html(self):
        raise json.JSONDecodeError("Expecting value", "<html>", 0)  # what PyJWKClient's json.load raises

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", html)
    tokens.forget_jwks()
    # When a well-formed session arrives, then the authorizer fails (503) rather than denying
    with pytest.raises(Exception, match="cannot be fetched"):
        authorize(f"Bearer {identity.session_token('alice')}")


def test_an_unknown_kid_does_not_make_every_request_download_the_jwks(authorize, identity, monkeypatch):
    # Given a counter of JWKS downloads (PyJWKClient refetches for an unknown kid only after a cooldown)
    fetches = []
    original = jwt.PyJWKClient.fetch_data
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", lambda self: fetches.append(1) or original(self))
    stranger = "Bearer " + SigningKey(kid="not-a-published-kid").sign(
        {"iss": identity.session_issuer, "aud": identity.audience, "sub": "alice", "exp": int(time.time()) + 60})
    # When many requests carry a kid the JWKS does not have
    for _ in range(20):
        assert denied_code(authorize(stranger)) == "SESSION_INVALID"
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
    assert denied_code(authorize(f"Bearer {token}")) == "SESSION_INVALID"


def test_a_token_whose_header_says_step_up_is_refused_as_a_session(authorize, identity, one_identity_provider):
    # Given a token of the session provider whose JWT header types it as a step-up token
    token = _session_shaped(identity, headers={"typ": "kg-step-up+jwt"})
    # When / Then it is no session either
    assert denied_code(authorize(f"Bearer {token}")) == "SESSION_INVALID"


@pytest.mark.parametrize("claims", [{}, {"token_use": "id"}, {"token_use": "access"}, {"amr": ["pwd"]}],
                         ids=["plain", "cognito-id", "cognito-access", "with-amr"])
def test_ordinary_sessions_of_any_provider_keep_working(authorize, identity, claims):
    # Given sessions as identity providers issue them, without KeyGate's step-up marker (Cognito, for
    # one, puts its own token_use in every token)
    token = _session_shaped(identity, **claims)
    # When / Then they are sessions
    assert authorize(f"Bearer {token}")["principalId"] == "alice"


@pytest.mark.parametrize(("make_header", "code", "hint"), [
    pytest.param(lambda idp: None, "UNAUTHORIZED", "Authorization: Bearer", id="missing"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', now=time.time() - 7200)}", "SESSION_EXPIRED",
                 "sign in again", id="expired"),
    pytest.param(lambda idp: f"Bearer {idp.session_token('alice', aud='other-service')}", "SESSION_WRONG_AUDIENCE",
                 "audience", id="wrong-audience"),
    pytest.param(lambda idp: "Bearer not-a-jwt", "SESSION_INVALID", "invalid", id="invalid"),
    pytest.param(lambda idp: "Token abc", "SESSION_INVALID", "Authorization: Bearer", id="wrong-scheme"),
])
def test_every_session_refusal_reaches_the_app_through_the_gateway_with_its_code(client, identity, make_header, code,
                                                                                  hint):
    # When the app calls a management route with this Authorization header (or none), through API Gateway
    header = make_header(identity)
    response = client.call("GET", "/v1/trade/api-keys", user=None,
                           headers={} if header is None else {"Authorization": header})
    # Then it receives 401 with the code (a missing header is API Gateway's own UNAUTHORIZED: the identity
    # source is absent, the authorizer is not invoked) and what to do
    assert response.status == 401, response.body
    body = response.json()
    assert body["ok"] is False and body["error"]["code"] == code and hint in body["error"]["message"], body


@pytest.mark.parametrize("claims", [{"iat": float("inf")}, {"iat": float("-inf")}, {"exp": float("inf")},
                                    {"nbf": float("inf")}, {"iat": float("nan")},
                                    {"iat": -10 ** 400}, {"exp": 10 ** 400}],
                         ids=["iat-inf", "iat-minus-inf", "exp-inf", "nbf-inf", "iat-nan", "iat-huge", "exp-huge"])
def test_a_signed_session_with_a_time_claim_out_of_range_is_refused_not_a_failure(authorize, identity, claims):
    # Given a session signed by the trusted provider whose time claim JSON writes as Infinity or NaN
    token = _session_shaped(identity, **claims)
    # When it is presented / Then it is refused as invalid (a 401 with its code), never an authorizer error
    assert denied_code(authorize(f"Bearer {token}")) == "SESSION_INVALID"


def test_a_session_that_does_not_say_when_the_user_signed_in_passes_without_auth_time(authorize, identity):
    # Given a session without auth_time (the IdP's choice)
    result = authorize(f"Bearer {identity.session_token('alice', auth_time=None)}")
    # Then it is allowed, and the functions learn no sign-in time (a first passkey is then refused)
    assert result["context"] == {"user_id": "alice"}
