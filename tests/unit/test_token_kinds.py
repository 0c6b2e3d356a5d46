"""Sessions and step-up tokens cannot stand in for each other (issue 13, finding 5).

Their default audiences differ, and a step-up token carries a kind marker (the claim
`token_use: "step_up"`, and the JWT header `typ: kg-step-up+jwt` from KeyGate's own issuers) that the
session path refuses and step-up verification requires. The integration tests
(tests/integration/test_session_authorizer.py, test_step_up.py) send each kind where the other belongs.
"""

import jwt

from keygate import tokens
from keygate.config import SessionConfig, StepUpConfig
from keygate_dev import template
from keygate_dev.identity import LocalIdentityProvider


def test_the_two_kinds_have_distinct_default_audiences_in_the_template_and_the_config():
    # Given the template's parameters and the settings read from an environment that names no audience
    parameters = template.load_template()["Parameters"]
    session = SessionConfig.from_environ({"SESSION_ISSUER": "i", "SESSION_JWKS_URL": "https://idp.example/jwks"})
    step_up = StepUpConfig.from_environ({"STEP_UP_ISSUER": "i", "STEP_UP_JWKS_URL": "https://idp.example/jwks"})
    # Then sessions default to `keygate` and step-up tokens to an audience of their own, in both places
    assert parameters["SessionAudience"]["Default"] == session.issuer.audience == "keygate"
    assert parameters["StepUpAudience"]["Default"] == step_up.issuer.audience == "keygate-step-up"


def test_the_local_identity_provider_marks_its_step_up_tokens_and_only_those():
    # Given the local identity provider (tests, `keygate dev`)
    identity = LocalIdentityProvider()
    # When it mints one token of each kind
    step_up = identity.step_up_token("alice", "api_keys:create")
    session = identity.session_token("alice")
    # Then the step-up token carries the marker, the typed header and its own audience
    claims = jwt.decode(step_up, options={"verify_signature": False})
    assert claims["token_use"] == tokens.STEP_UP_TOKEN_USE == "step_up"
    assert claims["aud"] == identity.step_up_audience == "keygate-step-up"
    assert jwt.get_unverified_header(step_up)["typ"] == tokens.STEP_UP_TOKEN_TYPE == "kg-step-up+jwt"
    # And the session carries none of it
    assert "token_use" not in jwt.decode(session, options={"verify_signature": False})
    assert jwt.get_unverified_header(session).get("typ", "JWT") == "JWT"
    assert identity.audience == "keygate"
