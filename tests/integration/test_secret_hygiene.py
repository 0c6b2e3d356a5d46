"""Invariant 5: the secret appears in exactly one response (the create) and never in a log line,
an audit entry, a table item, an error body or any other response."""

import json
from datetime import timedelta

import pytest

from keygate import service, store
from keygate.models import now_utc
from tests.conftest import assert_error, table_items

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
    janitor = service.run_secret_janitor(clock=lambda: now_utc() + timedelta(hours=1))
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
    assert store.get_secret(created["api_key"]) == created["api_secret"]
    assert store.secret_name(created["api_key"]) == f"keygate/test/{created['api_key']}"
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
