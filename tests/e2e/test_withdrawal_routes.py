"""Issue 13, finding 1: no spelling of a path reaches a withdrawal route with a `trade` key.

Against the local server (`keygate dev serve`, as `make dev` runs it), whose stage declares the example
API's withdrawal routes in `WithdrawalRoutes` (keygate_dev.server.LOCAL_WITHDRAWAL_ROUTES) and does not
list its catch-all `ANY /v1/misc/{proxy+}` in `SafeProxyResources`. The authorizer decides from the route
API Gateway matched (the event's resource and method), never from the path as spelled (docs/signing.md,
check 6). Requests go out byte for byte as written (http.client: no client normalises `..` or `//`).
An attacker holds a valid trade key and can sign whatever path the authorizer will rebuild from the route
API Gateway matched, so each spelling is sent signed over each candidate: the path the SDK signs for that
URL, and that path with repeated slashes merged (API Gateway routes `//` as `/`).
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest
import requests

import keygate_client
from tests.support.local_server import LocalServer, serve

USER = "e2e-withdrawer"
BODY = json.dumps({"asset": "BTC", "amount": "0.5", "address": "bc1qexampleaddress0001"}).encode()
TIMEOUT = 30

# Spellings of the two withdrawal routes and of the catch-all, each a way common routers reach the same handler.
SPELLINGS = {
    "case": "/V1/Wallet/Withdrawals",
    "case, one segment": "/v1/wallet/WITHDRAWALS",
    "double slash": "/v1//wallet/withdrawals",
    "leading double slash": "//v1/wallet/withdrawals",
    "dot segment": "/v1/./wallet/withdrawals",
    "dot-dot segment": "/v1/misc/../wallet/withdrawals",
    "dot-dot through the catch-all": "/v1/misc/../../v1/wallet/withdrawals",
    "trailing dot": "/v1/wallet/withdrawals/.",
    "dotless i (U+0131)": "/v1/wallet/w%C4%B1thdrawals",
    "matrix parameter": "/v1/wallet/withdrawals;jsessionid=1",
    "matrix parameter mid-path": "/v1/wallet;v=2/withdrawals",
    ".json suffix": "/v1/wallet/withdrawals.json",
    "backslash": "/v1/wallet%5Cwithdrawals",
    "raw backslash": "/v1\\wallet\\withdrawals",
    "trailing %20": "/v1/wallet/withdrawals%20",
    "double encoding": "/v1/wallet/%2577ithdrawals",
    "double-encoded slash": "/v1%252Fwallet%252Fwithdrawals",
    "templated route, case": "/v1/accounts/acc-1/Withdrawals",
    "templated route, .json": "/v1/accounts/acc-1/withdrawals.json",
    "templated route, encoded slash in the id": "/v1/accounts/acc-1%2Fx/withdrawals",
    "catch-all to a withdrawal path": "/v1/misc/wallet/withdrawals",
    "catch-all, anything": "/v1/misc/anything",
}


def app_call(server: LocalServer, method: str, path: str, action: str | None = None,
             body: dict | None = None) -> requests.Response:
    session = server.keygate("token", "--user", USER).stdout.strip()
    headers = {"Authorization": f"Bearer {session}"}
    if action:
        headers["X-PASSKEY-TOKEN"] = server.step_up(USER, method, path, body)
    return requests.request(method, server.base_url + path, headers=headers, json=body, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local stage with withdrawal keys allowed (the defaults, GaiaEx's deployment, allow none)."""
    yield from serve(tmp_path_factory, {"AllowedPermissions": "read,trade,withdraw"})


@pytest.fixture(scope="module")
def keys(local_server: LocalServer) -> dict[str, tuple[str, str]]:
    """A trading key and a withdrawal key (the latter needs a narrow whitelist: this machine)."""
    local_server.keygate("onboard", "--user", USER)
    made = {}
    for name, permissions in (("trade", ["read", "trade"]), ("withdraw", ["read", "trade", "withdraw"])):
        created = app_call(local_server, "POST", "/v1/trade/api-keys", "api_keys:create",
                           {"label": f"{name} bot", "permissions": permissions, "ip_whitelist": ["127.0.0.1"]})
        assert created.status_code == 200, created.text
        made[name] = (created.json()["api_key"], created.json()["api_secret"])
    return made


def send(server: LocalServer, key: tuple[str, str], method: str, target: str,
         signed_path: str | None = None) -> tuple[int, dict]:
    """`target` sent exactly as written, signed over `signed_path` (default: the path the SDK signs for it)."""
    url = server.base_url + target
    if signed_path is None:  # (a URL: the base URL's authority comes first, so `//v1` stays a path)
        headers = keygate_client.Signer(*key).headers_for(method, url, BODY)
    else:
        headers = keygate_client.sign(*key, method, signed_path, keygate_client.query_pairs(url), BODY)
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.request(method, target, body=BODY, headers={**headers, "Content-Type": "application/json"})
        response = connection.getresponse()
        status, text = response.status, response.read().decode()
    finally:
        connection.close()
    return status, (json.loads(text) if text else {})


@pytest.mark.parametrize(("method", "target"), [("POST", "/v1/wallet/withdrawals"),
                                                ("POST", "/v1/accounts/acc-1/withdrawals"),
                                                ("GET", "/v1/misc/prices"), ("POST", "/v1/misc/anything")])
def test_a_trade_key_is_refused_on_every_withdrawal_route_and_the_catch_all(local_server, keys, method, target):
    # When a bot holding only read and trade calls a declared withdrawal route, or the undeclared catch-all
    status, body = send(local_server, keys["trade"], method, target)
    # Then the authorizer refuses it: 401, the permission named
    assert status == 401, body
    assert body["error"]["code"] == "PERMISSION_DENIED" and "withdraw" in body["error"]["message"], body


@pytest.mark.parametrize(("method", "target"), [("POST", "/v1/wallet/withdrawals"),
                                                ("POST", "/v1/accounts/acc-1/withdrawals"),
                                                ("POST", "/v1/misc/anything")])
def test_a_withdrawal_key_reaches_them(local_server, keys, method, target):
    status, body = send(local_server, keys["withdraw"], method, target)
    assert status in (200, 202), body
    assert body["caller"]["api_key"] == keys["withdraw"][0]


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_no_spelling_reaches_a_withdrawal_route_with_a_trade_key(local_server, keys, spelling):
    target = SPELLINGS[spelling]
    as_sent = unquote(target.partition("?")[0])  # not urlsplit: it reads `//v1` as a host
    codes = set()
    for signed_path in dict.fromkeys((as_sent, re.sub("/{2,}", "/", as_sent))):
        # When a trade key sends a withdrawal under another spelling of its path, signed as an attacker would
        status, body = send(local_server, keys["trade"], "POST", target, signed_path)
        # Then no handler runs: no route matches (404), or the route API Gateway matched needs withdraw (a
        # withdrawal route, or the catch-all, which is not declared safe), or the signature is not over the
        # path the authorizer rebuilds from that route
        assert status in (401, 404), body
        assert "caller" not in body
        codes.add(body["error"]["code"])
    assert codes <= {"ROUTE_NOT_FOUND", "PERMISSION_DENIED", "SIGNATURE_MISMATCH"}, codes
    # And signed over the right path, the refusal is the route's own: not routed, or the permission
    assert codes - {"SIGNATURE_MISMATCH"}, codes
