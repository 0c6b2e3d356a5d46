"""One user and one bot, over real HTTP, against the local server (`keygate dev serve`).

The app's side uses the `keygate dev` tokens and plain HTTP; the bot's side is
the client SDK (keygate_client), exactly as a bot author would use it.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess  # nosec B404  # runs only this project's own commands, no shell
import time
from urllib.parse import urlsplit

import pytest
import requests

import keygate_client
from keygate_client import KeyGateAuthError, RequestsAuth, ServerClock
from keygate_dev import template
from keygate_dev.local_api import gateway_responses
from keygate_dev.server import walkthrough_commands
from tests.support.errors import error_of
from tests.support.local_server import RECORD_CACHE_TTL_SECONDS, LocalServer

USER = "e2e-trader"
ORDER = {"symbol": "BTC-USD", "side": "buy", "qty": "0.25"}
TIMEOUT = 30


class App:
    """The exchange's app: a session token from the local identity provider, and for each change a passkey
    step-up through KeyGate's own issuer (`keygate dev step-up`: options, the authenticator, the token)."""

    def __init__(self, server: LocalServer, user: str) -> None:
        self.server = server
        self.user = user
        self.session = server.keygate("token", "--user", user).stdout.strip()

    def call(self, method: str, path: str, *, action: str | None = None, body: dict | None = None
             ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.session}"}
        if action:  # a real passkey ceremony for this very request (`keygate dev step-up`)
            headers["X-PASSKEY-TOKEN"] = self.server.step_up(self.user, method, path, body)
        return requests.request(method, self.server.base_url + path, headers=headers, json=body, timeout=TIMEOUT)


def error_code(response: requests.Response) -> str:
    return error_of(response.json())["code"]


def test_a_key_from_creation_to_revocation(local_server: LocalServer):
    base = local_server.base_url
    # Given a user who completed onboarding and the trading handshake, signed in to the app
    local_server.keygate("onboard", "--user", USER)
    app = App(local_server, USER)

    # When they confirm with a passkey and create a read+trade key restricted to this machine
    created = app.call("POST", "/v1/trade/api-keys", action="api_keys:create",
                       body={"label": "e2e bot", "permissions": ["read", "trade"], "ip_whitelist": ["127.0.0.1"]})
    # Then the key and its secret are returned once
    assert created.status_code == 200, created.text
    key = created.json()
    assert key["permissions"] == ["read", "trade"] and key["ip_whitelist"] == ["127.0.0.1"]

    # Given a bot configured with that key, its clock synced to the server's
    clock = ServerClock.sync(base)
    bot = requests.Session()
    bot.auth = RequestsAuth(key["api_key"], key["api_secret"], clock=clock)

    # When it asks which key it is using, Then the signature authorizer lets it in
    me = bot.get(base + "/v1/trade/api-keys/self", timeout=TIMEOUT)
    assert me.status_code == 200, me.text
    assert me.json()["api_key"] == key["api_key"]
    assert me.json()["permissions"] == ["read", "trade"]

    # When it places a signed order on the protected example API
    order = bot.post(base + "/v1/trade/orders", json=ORDER, timeout=TIMEOUT)
    # Then the backend acted on the verified body, for this key's owner
    assert order.status_code == 200, order.text
    assert order.json()["order"] == ORDER
    assert order.json()["caller"]["user_id"] == USER and order.json()["caller"]["api_key"] == key["api_key"]

    # When an eavesdropper replays exactly that request
    replayed = requests.Session().send(order.request, timeout=TIMEOUT)
    # Then it is refused, and the bot is told why: the nonce was used
    assert replayed.status_code == 401, replayed.text
    assert error_code(replayed) == "NONCE_REUSED"

    # When a freshly signed request carries another body than the one signed
    signed_body = json.dumps(ORDER).encode()
    headers = keygate_client.sign(key["api_key"], key["api_secret"], "POST", "/v1/trade/orders", (), signed_body,
                                  timestamp_ms=clock())
    tampered = requests.post(base + "/v1/trade/orders", data=json.dumps({**ORDER, "qty": "250"}).encode(),
                             headers={**headers, "Content-Type": "application/json"}, timeout=TIMEOUT)
    # Then the backend refuses it: the signature passed, the body digest did not
    assert tampered.status_code == 401, tampered.text
    assert error_code(tampered) == "BODY_DIGEST_MISMATCH"

    # Given a second key that may only read
    read_only = app.call("POST", "/v1/trade/api-keys", action="api_keys:create",
                         body={"label": "e2e reader", "permissions": ["read"]}).json()
    reader = RequestsAuth(read_only["api_key"], read_only["api_secret"], clock=clock)
    # When it tries to place an order, Then the authorizer denies it with the reason and the permission needed
    denied = requests.post(base + "/v1/trade/orders", json=ORDER, auth=reader, timeout=TIMEOUT)
    assert denied.status_code == 401, denied.text
    assert error_code(denied) == "PERMISSION_DENIED" and "trade permission" in denied.json()["error"]["message"]
    # And a bot that asks the SDK to raise on refusals gets the code and what to fix
    strict = requests.Session()
    strict.auth = RequestsAuth(read_only["api_key"], read_only["api_secret"], clock=clock, raise_on_refusal=True)
    with pytest.raises(KeyGateAuthError) as refused:
        strict.post(base + "/v1/trade/orders", json=ORDER, timeout=TIMEOUT)
    assert refused.value.code == "PERMISSION_DENIED" and "permission" in refused.value.fix

    # When the user lists their keys, Then the bot's key shows when it was last used
    listed = {entry["api_key"]: entry for entry in app.call("GET", "/v1/trade/api-keys").json()["keys"]}
    assert listed[key["api_key"]]["last_used_at"] is not None
    assert listed[key["api_key"]]["is_active"] is True

    # When the user renames the key, then revokes it
    renamed = app.call("PATCH", f"/v1/trade/api-keys/{key['api_key']}", action="api_keys:update",
                       body={"label": "e2e bot (retired)"})
    assert renamed.status_code == 200 and renamed.json()["updated_fields"] == ["label"], renamed.text
    revoked = app.call("DELETE", f"/v1/trade/api-keys/{key['api_key']}", action="api_keys:revoke")
    assert revoked.status_code == 200 and revoked.json()["is_active"] is False, revoked.text
    # Then once the stated bound (the authorizer's key-record cache TTL) has passed, the bot is refused
    time.sleep(RECORD_CACHE_TTL_SECONDS + 0.2)
    refused = bot.get(base + "/v1/trade/api-keys/self", timeout=TIMEOUT)
    assert refused.status_code == 401, refused.text
    assert error_code(refused) == "KEY_REVOKED"

    # And the audit log tells the key's story, newest first
    audit = app.call("GET", f"/v1/trade/api-keys/{key['api_key']}/audit")
    assert audit.status_code == 200, audit.text
    assert [entry["action"] for entry in audit.json()["audit"]] == ["key_revoked", "key_updated", "key_created"]

    # When the user revokes everything in an emergency
    emergency = app.call("DELETE", "/v1/trade/api-keys/all", action="api_keys:revoke_all")
    # Then the remaining active key is revoked and none is left active
    assert emergency.status_code == 200, emergency.text
    assert emergency.json()["revoked_api_keys"] == [read_only["api_key"]]
    assert emergency.json()["revoked_count"] == 1
    assert not any(entry["is_active"] for entry in app.call("GET", "/v1/trade/api-keys").json()["keys"])


def test_the_printed_walkthrough_works_when_pasted(local_server: LocalServer):
    # Given the walkthrough the server printed when it started, for its seeded demo user
    script = walkthrough_commands(local_server.log())
    # When its commands are pasted into a shell in a second terminal
    completed = subprocess.run(["/bin/bash", "-euo", "pipefail", "-c", script], env=local_server.environment,  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                               capture_output=True, text=True, timeout=120)
    # Then every step succeeds: the key is created, both signed requests get 200, the key is revoked
    assert completed.returncode == 0, (completed.stdout, completed.stderr)
    created, self_status, self_body, order_status, order_body, revoked = completed.stdout.splitlines()
    key_id = json.loads(created)["api_key"]
    assert self_status == "HTTP 200" and json.loads(self_body)["api_key"] == key_id
    assert order_status == "HTTP 200" and json.loads(order_body)["caller"]["api_key"] == key_id
    revoked_key = json.loads(revoked)
    assert revoked_key["api_key"] == key_id and revoked_key["is_active"] is False, revoked_key


def test_the_gateway_answers_like_api_gateway(local_server: LocalServer):
    base = local_server.base_url
    # When a client calls an app route without a session, an unknown route, and the public clock
    anonymous = requests.get(base + "/v1/trade/api-keys", timeout=TIMEOUT)
    unknown = requests.get(base + "/v1/trade/nothing-here", timeout=TIMEOUT)
    wrong_method = requests.put(base + "/v1/time", timeout=TIMEOUT)
    head = requests.head(base + "/v1/time", timeout=TIMEOUT)
    options = requests.options(base + "/v1/trade/api-keys", timeout=TIMEOUT)
    clock = requests.get(base + "/v1/time", timeout=TIMEOUT)
    unsigned = requests.post(base + "/v1/trade/orders", json=ORDER, timeout=TIMEOUT)
    # Then the template's Gateway Responses answer what API Gateway answers by itself
    assert anonymous.status_code == 401 and error_code(anonymous) == "UNAUTHORIZED"
    # (a bot route always reaches the signature authorizer, which names what is missing)
    assert unsigned.status_code == 401 and error_code(unsigned) == "MISSING_HEADER"
    # And an unknown route or method gets template.yaml's MISSING_AUTHENTICATION_TOKEN response (else
    # DEFAULT_4XX's body with API Gateway's own 403), as deployed
    responses = gateway_responses(template.TEMPLATE_PATH)
    configured = responses.get("MISSING_AUTHENTICATION_TOKEN") or responses["DEFAULT_4XX"]
    expected_status = configured.status or 403
    expected_code = re.search(r'"code": *"([A-Z_]+)"', configured.templates["application/json"]).group(1)
    for answer in (unknown, wrong_method, options):
        assert answer.status_code == expected_status and error_code(answer) == expected_code, answer.text
    # (HEAD, which no route declares, too: the same status, without a body)
    assert head.status_code == expected_status and head.text == ""
    # And the time route needs no authorizer
    assert clock.status_code == 200 and abs(clock.json()["server_time"] - time.time() * 1000) < 60_000


@pytest.mark.parametrize("header", ["X-KG-API-KEY", "X-KG-NONCE", "X-KG-SIGNATURE"])
def test_a_signing_header_sent_twice_is_refused_by_its_name(local_server: LocalServer, header: str):
    # Given a bot's key
    user = f"e2e-twice-{header.lower()}"
    local_server.keygate("onboard", "--user", user)
    key = App(local_server, user).call("POST", "/v1/trade/api-keys", action="api_keys:create",
                                       body={"label": "twice"}).json()
    signed = keygate_client.sign(key["api_key"], key["api_secret"], "GET", "/v1/trade/api-keys/self")
    # When a correctly signed request carries one X-KG-* header line twice (as a proxy might repeat it)
    address = urlsplit(local_server.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=TIMEOUT)
    try:
        connection.putrequest("GET", "/v1/trade/api-keys/self")
        for name, value in [*signed.items(), (header, signed[header])]:
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        status, body = answer.status, json.loads(answer.read())
    finally:
        connection.close()
    # Then, as API Gateway passes both lines to the authorizer, the refusal names the header
    assert status == 401, body
    assert error_of(body) == {"code": "MALFORMED_HEADER", "message": f"{header} must be sent exactly once."}, body
