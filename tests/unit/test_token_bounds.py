"""The bounds on session and step-up tokens are the documented ones (issue 13, finding 8, first half).

PyJWT's leeway is added to every `exp` and `iat` check: it is part of how long an expired session
passes (on top of API Gateway's authorizer cache) and of how long a used step-up token's record must
be kept. And the keys that sign tokens are fetched over TLS: a JWKS URL is `https://`, or `http://`
on this machine only (the local server's and the tests' JWKS on 127.0.0.1), in the template's
parameters as in the functions' settings. tests/integration/test_session_authorizer.py and
test_step_up.py send tokens just inside and just outside the bound.
"""

import re

import pytest

from keygate import tokens
from keygate.config import ConfigError, SessionConfig, StepUpConfig
from keygate_dev import template

ACCEPTED_URLS = ["https://idp.example/.well-known/jwks.json", "https://idp.example:8443/jwks",
                 "http://127.0.0.1:3099/session/.well-known/jwks.json", "http://127.0.0.1/jwks",
                 "http://localhost:8080/jwks.json", "http://[::1]:9000/jwks.json", "https://[2001:db8::1]/jwks"]
REFUSED_URLS = ["http://idp.example/.well-known/jwks.json", "http://10.0.0.1/jwks", "http://127.0.0.2/jwks",
                "http://host.docker.internal:3099/jwks", "http://localhost.evil.example/jwks",
                "http://127.0.0.1.evil.example/jwks", "http://localhost@evil.example/jwks",
                "http://127.0.0.1:80@evil.example/jwks", "ftp://idp.example/jwks", "https://", "idp.example/jwks",
                "", "https://idp.example/jwks\nhttp://evil.example"]


def test_the_clock_skew_allowed_is_at_most_5_seconds():
    # A session expired this long ago still passes PyJWT's check (docs/architecture.md, "Bounds")
    assert tokens.CLOCK_SKEW_SECONDS <= 5


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_https_anywhere_and_http_on_a_loopback_host_are_accepted(url):
    # Given a JWKS URL that fetches keys over TLS, or from this machine
    # When the functions read their settings / Then both kinds of issuer take it
    assert SessionConfig.from_environ({"SESSION_ISSUER": "i", "SESSION_JWKS_URL": url}).issuer.jwks_url == url
    assert StepUpConfig.from_environ({"STEP_UP_ISSUER": "i", "STEP_UP_JWKS_URL": url}).issuer.jwks_url == url


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_plain_http_to_another_host_is_refused_by_the_functions(url):
    # Given a JWKS URL whose keys anyone on the path could replace (or no URL at all)
    # When the functions read their settings / Then they refuse them, naming the variable
    with pytest.raises(ConfigError, match="SESSION_JWKS_URL"):
        SessionConfig.from_environ({"SESSION_ISSUER": "i", "SESSION_JWKS_URL": url})
    with pytest.raises(ConfigError, match="STEP_UP_JWKS_URL"):
        StepUpConfig.from_environ({"STEP_UP_ISSUER": "i", "STEP_UP_JWKS_URL": url})


def _allowed_by_the_template(parameter, value):
    # CloudFormation matches AllowedPattern (a Java regex) against the whole value
    return re.fullmatch(template.load_template()["Parameters"][parameter]["AllowedPattern"], value) is not None


@pytest.mark.parametrize("parameter", ["SessionJwksUrl", "StepUpJwks"])
def test_the_template_allows_the_same_urls_as_the_functions(parameter):
    # Given the JWKS URL parameters' AllowedPattern
    # Then it accepts and refuses the URLs the functions' settings accept and refuse (a stack cannot be
    # deployed with a plain-http JWKS, and a function would refuse one given to it another way)
    assert [url for url in ACCEPTED_URLS if not _allowed_by_the_template(parameter, url)] == []
    # (StepUpJwks may be empty: only StepUpMode external uses it, and the template's Rules then require it)
    refused = [url for url in REFUSED_URLS if not (parameter == "StepUpJwks" and url == "")]
    assert [url for url in refused if _allowed_by_the_template(parameter, url)] == []


def test_an_external_step_up_issuer_needs_its_jwks_and_the_builtin_one_a_relying_party():
    rules = template.load_template()["Rules"]
    assert rules["ExternalStepUpNeedsAnIssuer"]["RuleCondition"] == {"Fn::Equals": [{"Ref": "StepUpMode"}, "external"]}
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": "StepUpJwks"}, ""]}]} in [
        assertion["Assert"] for assertion in rules["ExternalStepUpNeedsAnIssuer"]["Assertions"]]
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": "PasskeyRpId"}, ""]}]} in [
        assertion["Assert"] for assertion in rules["BuiltinStepUpNeedsARelyingParty"]["Assertions"]]
