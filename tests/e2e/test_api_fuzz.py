"""Schemathesis against the local server: the server does what docs/openapi.json says.

Every operation of the description is fuzzed with generated requests, valid
and invalid, carrying real credentials: the account's session JWT, a fresh
passkey step-up token for the operation's documented action on every request,
and a KG1 signature for the bot route. Half of the generated key ids are
swapped for the account's real ones, so updates, revokes and audits reach real
keys and not only 404. No response may be a 5xx, and every response must be a
documented status whose body matches its schema.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import kg1 as signing
from keygate_dev import openapi
from keygate_dev.identity import LocalIdentityProvider
from tests.support.local_server import serve

if TYPE_CHECKING:
    from tests.support.local_server import LocalServer

SCHEMA = schemathesis.openapi.from_path(openapi.OPENAPI_PATH)
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
EXAMPLES_PER_OPERATION = 25
# Operations whose credentials cover the exact body bytes, signed by a party the fuzzer cannot play over a
# generated body: they are fuzzed unsigned (every answer documented, none a 5xx), and their signed success is
# tested where the signer is played: tests/e2e/test_leaks_local.py (GitHub's ECDSA, the operators' SigV4).
SIGNED_BY_ANOTHER_PARTY = {"POST /v1/secret-scanning/github", "POST /v1/admin/revocations"}
# Their successes: tests/integration/test_passkey_routes.py and tests/e2e/test_passkey_page.py.
NEEDS_AN_AUTHENTICATOR = {"POST /v1/trade/passkeys", "POST /v1/trade/step-up", "DELETE /v1/trade/passkeys/{passkey_id}"}
SEEDED_KEYS = ({"label": "reader", "permissions": ["read"]},
               {"label": "trader", "permissions": ["read", "trade"], "ip_whitelist": ["198.51.100.0/24"]})


@dataclass
class FuzzAccount:
    user_id: str
    session_token: str
    key_ids: list[str]
    handles: list[str]  # the same keys' ZDEX ids
    signing_key: tuple[str, str]  # (key id, secret) of a read key without a whitelist, for the bot route


# ----------------------------------------------------------------- the server
@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """This module fuzzes the wire contracts with step-up tokens the local identity provider mints, as an
    external issuer's (StepUpMode external); the built-in issuer's ceremony has its own tests."""
    yield from serve(tmp_path_factory, {"StepUpMode": "external"})


@pytest.fixture(scope="module")
def identity(local_server: LocalServer) -> LocalIdentityProvider:
    """The server's identity provider (its state directory holds the keys), to mint tokens in-process."""
    return local_server.identity


# ----------------------------------------------------------------- credentials
def _schemes(operation: schemathesis.APIOperation) -> set[str]:
    return {name for requirement in operation.definition.raw.get("security", []) for name in requirement}


def credentials(case: schemathesis.Case, account: FuzzAccount,
                identity: LocalIdentityProvider) -> dict[str, str]:
    """Valid credentials for exactly this request, as the description's security says."""
    schemes = _schemes(case.operation)
    headers: dict[str, str] = {}
    if openapi.SESSION_SCHEME in schemes:
        headers["Authorization"] = f"Bearer {account.session_token}"
    if openapi.STEP_UP_SCHEME in schemes:
        action = case.operation.definition.raw[openapi.STEP_UP_EXTENSION]
        headers[openapi.STEP_UP_HEADER] = identity.step_up_token(account.user_id, action)
    if schemes & set(openapi.KG1_SCHEMES):
        # A generated receive window is signed as sent when it is valid; an invalid one must be refused.
        sent_window = CaseInsensitiveDict(case.headers or {}).get(signing.HEADER_RECV_WINDOW)
        window = int(sent_window) if isinstance(sent_window, str) and sent_window.isdigit() \
            and 1 <= int(sent_window) <= signing.MAX_RECV_WINDOW_MS else None
        key_id, secret = account.signing_key
        headers.update(signing.sign_request(key_id, secret, case.method, case.formatted_path,
                                            sorted((case.query or {}).items()), b"", recv_window_ms=window))
    return headers


@pytest.fixture
def account(local_server: LocalServer, identity: LocalIdentityProvider) -> FuzzAccount:
    """A fresh onboarded user with real keys, so that each operation starts from the same state. Onboarded
    directly (`LocalServer.onboard`): the exchange's events that onboard a user have their own tests."""
    user_id = f"fuzz-{uuid.uuid4().hex[:10]}"
    local_server.onboard(user_id)
    fuzz_account = FuzzAccount(user_id, identity.session_token(user_id), [], [], ("", ""))
    for body in SEEDED_KEYS:
        created = requests.post(f"{local_server.base_url}/v1/trade/api-keys", json=body, timeout=30, headers={
            "Authorization": f"Bearer {fuzz_account.session_token}",
            openapi.STEP_UP_HEADER: identity.step_up_token(user_id, "api_keys:create")})
        assert created.status_code == 200, created.text
        fuzz_account.key_ids.append(created.json()["api_key"])
        if not body.get("ip_whitelist"):
            fuzz_account.signing_key = (created.json()["api_key"], created.json()["api_secret"])
    listed = requests.get(f"{local_server.base_url}/v1/api-keys", timeout=30,
                          headers={"Authorization": f"Bearer {fuzz_account.session_token}"})
    fuzz_account.handles = [view["id"] for view in listed.json()["keys"]]
    return fuzz_account


# ----------------------------------------------------------------------- tests
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_answer_is_documented_and_none_is_a_server_error(label: str, local_server: LocalServer,
                                                               identity: LocalIdentityProvider,
                                                               account: FuzzAccount) -> None:
    # Given an operation of the description and an onboarded account with real keys
    operation = OPERATIONS[label]
    statuses: Counter[int] = Counter()

    # Generation speed and size are not under test; the examples are fixed (derandomize) for CI.
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])
    @given(case=st.one_of(*operation.get_strategies_from_examples(fill_missing=True),
                          operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                          operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)),
           use_real_key=st.booleans(), data=st.data())
    def exchange(case: schemathesis.Case, use_real_key: bool, data: st.DataObject) -> None:
        if "api_key" in (case.path_parameters or {}) and use_real_key:
            case.path_parameters["api_key"] = data.draw(st.sampled_from(account.key_ids))
        if "id" in (case.path_parameters or {}) and use_real_key:
            case.path_parameters["id"] = data.draw(st.sampled_from(account.handles))
        headers = CaseInsensitiveDict(case.headers or {})
        headers.update(credentials(case, account, identity))
        case.headers = headers
        # When the generated request is sent with valid credentials
        response = case.call(base_url=local_server.base_url)
        statuses[response.status_code] += 1
        # Then the answer is documented, matches its schema and is not a 5xx
        case.validate_response(response, checks=CHECKS)

    exchange()
    # Then the credentials were good enough for the operation to succeed at least once (except where success
    # needs an authenticator's signature or a registered passkey, which no generated request holds)
    if label in SIGNED_BY_ANOTHER_PARTY:
        assert not any(200 <= status < 300 for status in statuses), dict(statuses)  # never without a signature
    elif label not in NEEDS_AN_AUTHENTICATOR:
        assert any(200 <= status < 300 for status in statuses), dict(statuses)


def test_a_body_that_is_not_utf8_is_refused_like_malformed_json(local_server: LocalServer,
                                                                identity: LocalIdentityProvider,
                                                                account: FuzzAccount) -> None:
    # Given a create request whose JSON body is not UTF-8 (a case the fuzzer found); the stack has no
    # binary media types, so this is malformed JSON for the handler to refuse, never a gateway failure
    operation = OPERATIONS["POST /v1/trade/api-keys"]
    case = operation.Case(body=b"\xff\xfe{", media_type="application/json")
    case.headers = CaseInsensitiveDict(credentials(case, account, identity))
    # When it is sent
    response = case.call(base_url=local_server.base_url)
    # Then the answer is a documented 400 in the error shape, not a gateway failure
    case.validate_response(response, checks=CHECKS)
    assert response.status_code == 400, response.text
