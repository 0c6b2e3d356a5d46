"""Invariant 5: the secret appears in exactly one response (the create) and never in a log line,
an audit entry, a table item, an error body or any other response."""

import json
from datetime import timedelta

import pytest

from keygate.records import now_utc
from keygate.service import KeyLifecycle
from tests.support.errors import assert_error
from tests.support.faults import Fault, HandlerCrashed, Mode, empty_aws
from tests.support.invariants import stored_state
from tests.support.stack import layer, onboard, run_janitor, secret_value, table_items

SECRET_WINDOW = 12  # any 12 characters of the secret's random part count as a leak


def _leaks(secret: str, text: str) -> list[str]:
    body = secret.removeprefix("kgs_")
    windows = {body[start:start + SECRET_WINDOW] for start in range(len(body) - SECRET_WINDOW + 1)}
    return sorted(window for window in windows if window in text)


def test_a_full_lifecycle_shows_the_secret_only_in_the_create_response(client, alice, captured_logs):
    # Given a key created through the API (the one response allowed to carry the secret)
    created_response = client.create(label="bot", permissions=["read", "trade"], ip_whitelist=["198.51.100.7"])
    created = created_response.json()
    secret, key_id = created["api_secret"], created["api_key"]
    assert _leaks(secret, created_response.body), "the check must see the secret where it is"
    # When everything else a user can do to it happens, including refusals
    responses = [
        client.list(),
        client.update(key_id, label="renamed", permissions=["read"], ip_whitelist=[]),
        client.update(key_id, label="renamed"),
        client.update(key_id, label="x" * 51),
        client.call("PATCH", f"/v1/trade/api-keys/{key_id}", raw_body="{not json"),
        client.call("PATCH", f"/v1/trade/api-keys/{key_id}", body={"label": "x"}, step_up="forged"),
        client.call("PATCH", f"/v1/trade/api-keys/{key_id}", user="bob", body={"label": "x"}),
        client.create(permissions=["admin"]),
        client.audit(key_id),
        client.audit(key_id, query="limit=0"),
        client.revoke(key_id),
        client.revoke(key_id),
        client.update(key_id, label="after revoke"),
        client.audit(key_id),
        client.revoke_all(),
        client.list(),
    ]
    janitor = run_janitor(lambda: now_utc() + timedelta(hours=1))
    # Then no response, header, log line, table item or janitor report carries any part of the secret
    assert any(response.status >= 400 for response in responses)
    for response in responses:
        assert not _leaks(secret, response.body + json.dumps(response.headers)), response.body
    log_text = "\n".join(captured_logs.lines())
    assert "api key created" in log_text and key_id in log_text, "the logs must have been captured"
    assert not _leaks(secret, log_text)
    assert not _leaks(secret, json.dumps(table_items()))
    assert not _leaks(secret, repr(janitor))


def test_the_secret_lives_in_secrets_manager_only_under_the_keys_name(client, alice):
    # Given a created key
    created = client.create(label="bot").json()
    # Then Secrets Manager holds it under keygate/<stage>/<key id>, and the table does not
    assert secret_value(created["api_key"]) == created["api_secret"]
    assert layer().secrets.name(created["api_key"]) == f"keygate/test/{created['api_key']}"
    assert not _leaks(created["api_secret"], json.dumps(table_items()))


PASTED_INTO = {
    "label": lambda secret: {"label": secret},
    "permissions": lambda secret: {"permissions": [secret]},
    "ip_whitelist": lambda secret: {"ip_whitelist": [secret]},
    "ip_whitelist-cidr": lambda secret: {"ip_whitelist": [f"{secret}/24"]},
    "unknown-field-name": lambda secret: {secret: True},
    "unknown-field-value": lambda secret: {"api_secret": secret},
}


@pytest.mark.parametrize("field", sorted(PASTED_INTO))
@pytest.mark.parametrize("route", ["create", "update"])
def test_a_secret_pasted_into_a_request_is_not_echoed_back(client, alice, captured_logs, route, field):
    # Given a user who pastes her secret into the wrong place of a request
    created = client.create(label="bot").json()
    secret, key_id = created["api_secret"], created["api_key"]
    body = PASTED_INTO[field](secret)
    # When the request is refused
    if route == "create":
        response = client.call("POST", "/v1/trade/api-keys", body=body)
    else:
        response = client.call("PATCH", f"/v1/trade/api-keys/{key_id}", body=body)
    # Then the error does not repeat the secret, nor do the logs
    assert_error(response, 400, "INVALID_REQUEST")
    assert not _leaks(secret, response.body), response.body
    assert not _leaks(secret, "\n".join(captured_logs.lines()))


@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_no_fault_on_the_create_path_puts_the_secret_in_a_log_or_an_answer(client, alice, aws_calls,
                                                                            captured_logs, mode):
    # Given the AWS calls of a clean create
    with aws_calls.recording() as operations:
        assert client.create(label="bot").status == 200
    checked = 0
    for index, operation in enumerate(operations):
        # When that call fails (before reaching AWS, by a crash after it, or with its response lost)
        empty_aws()
        onboard("alice")
        fault = aws_calls.arm(Fault(mode, index=index))
        response = None
        try:
            response = client.create(label="bot")
        except HandlerCrashed:
            pass
        finally:
            aws_calls.disarm()
        assert fault.fired_at == operation
        # Then whatever secret was stored (a key's, or an orphan's awaiting the janitor) appears neither
        # in the answer nor in any log line, nor in what the janitor reports
        secrets = list(stored_state().secrets.values())
        janitor = run_janitor(lambda: now_utc() + timedelta(hours=1))
        shown = "" if response is None else response.body + json.dumps(response.headers)
        logged = "\n".join(captured_logs.lines())
        for secret in secrets:
            # a create that succeeded after all shows its secret once, in its answer, as it must
            if response is None or response.status != 200:
                assert not _leaks(secret, shown), (operation, response.body if response else None)
            assert not _leaks(secret, logged), operation
            assert not _leaks(secret, repr(janitor)), operation
            checked += 1
    # (controls: some faults left a secret behind to look for, and the failed calls were logged)
    assert checked > 0
    if mode is not Mode.CRASH_AFTER:
        assert "aws call failed" in "\n".join(captured_logs.lines())


def test_an_unexpected_bug_is_a_json_500_that_reveals_nothing(client, alice, monkeypatch, captured_logs):
    # Given a bug deep in the service (here: an exception nobody expected)
    def broken(*args, **kwargs):
        raise RuntimeError("internal detail: table keygate-test-keys, partition USER#alice")

    monkeypatch.setattr(KeyLifecycle, "list_api_keys", broken)
    # When the route runs
    response = client.list()
    # Then the caller gets a 500 in the error shape, never a bare 500, without the internals
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert "internal detail" not in response.body and "USER#" not in error["message"]
    # And the bug is logged for the operators
    assert "unhandled error" in "\n".join(captured_logs.lines())
