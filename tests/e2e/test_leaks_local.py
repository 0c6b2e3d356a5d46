"""Leaked keys on the local server, over HTTP: GitHub (a local key and keys document, served on 127.0.0.1 and
named by SecretScanningKeysUrl) reports a bot's secret, and `keygate admin revoke` (SigV4 with the local
operator's credentials) revokes another key; the signature authorizer then refuses both, after its stated bound
(RecordCacheTtlSeconds)."""

from __future__ import annotations

import json
import subprocess  # nosec B404  # runs this project's own command, no shell
import time
from collections.abc import Iterator

import pytest
import requests

from keygate_client import RequestsAuth
from keygate_dev.loopback import JsonRequest, LoopbackJsonServer
from tests.support.github import ENDPOINT, GitHubScanner, report
from tests.support.local_server import (
    HTTP_TIMEOUT_SECONDS,
    KEYGATE,
    RECORD_CACHE_TTL_SECONDS,
    AppUser,
    LocalServer,
    start_server,
)
from tests.support.stack import unique_user

KEYS_PATH = "/meta/public_keys/secret_scanning"
SELF = "/v1/trade/api-keys/self"


@pytest.fixture(scope="module")
def github() -> Iterator[tuple[GitHubScanner, str]]:
    scanner = GitHubScanner()
    document = json.loads(scanner.keys_document())

    def answer(request: JsonRequest) -> tuple[int, object]:
        return (200, document) if request.target == KEYS_PATH else (404, {"error": "not found"})

    with LoopbackJsonServer(answer) as server:
        yield scanner, server.base_url + KEYS_PATH


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, github) -> Iterator[LocalServer]:
    _, keys_url = github
    started = start_server(tmp_path_factory.mktemp("leaks") / "state", "--parameter-overrides",
                           f"RecordCacheTtlSeconds={RECORD_CACHE_TTL_SECONDS}", f"SecretScanningKeysUrl={keys_url}")
    yield started
    assert started.stop() == 0, started.log()


def _bot_key(server: LocalServer) -> tuple[AppUser, dict]:
    app = AppUser(server, unique_user())
    created = app.call("POST", "/v1/trade/api-keys", action="api_keys:create",
                       body={"label": "bot", "permissions": ["read"]})
    assert created.status_code == 200, created.text
    return app, created.json()


def _refused_after_the_bound(server: LocalServer, key: dict) -> requests.Response:
    time.sleep(RECORD_CACHE_TTL_SECONDS + 0.2)  # the stated bound, waited out (not a speed check)
    return requests.get(server.base_url + SELF, auth=RequestsAuth(key["api_key"], key["api_secret"]),
                        timeout=HTTP_TIMEOUT_SECONDS)


def test_a_secret_github_reports_is_revoked_and_refused(server: LocalServer, github):
    scanner, _ = github
    app, key = _bot_key(server)
    bot = RequestsAuth(key["api_key"], key["api_secret"])
    assert requests.get(server.base_url + SELF, auth=bot, timeout=HTTP_TIMEOUT_SECONDS).status_code == 200
    # When GitHub reports the secret (with an unknown one beside it)
    body = report(key["api_secret"], "kgs_not-even-well-formed")
    answer = requests.post(server.base_url + ENDPOINT, data=body, headers=scanner.headers(body),
                           timeout=HTTP_TIMEOUT_SECONDS)
    # Then the answer labels it a true positive by its hash only, and the key is revoked and refused
    assert answer.status_code == 200, answer.text
    assert [entry["label"] for entry in answer.json()] == ["true_positive", "false_positive"]
    assert key["api_secret"] not in answer.text
    refused = _refused_after_the_bound(server, key)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "KEY_REVOKED"
    audit = app.call("GET", f"/v1/trade/api-keys/{key['api_key']}/audit").json()["audit"]
    assert audit[0]["action"] == "key_revoked_leaked"


def test_a_report_with_a_bad_signature_is_refused(server: LocalServer, github):
    scanner, _ = github
    _, key = _bot_key(server)
    body = report(key["api_secret"])
    answer = requests.post(server.base_url + ENDPOINT, data=body, headers=GitHubScanner(
        key_identifier=scanner.key_identifier).headers(body), timeout=HTTP_TIMEOUT_SECONDS)
    assert answer.status_code == 401
    assert requests.get(server.base_url + SELF, auth=RequestsAuth(key["api_key"], key["api_secret"]),
                        timeout=HTTP_TIMEOUT_SECONDS).status_code == 200


def test_keygate_admin_revoke_revokes_through_the_iam_route(server: LocalServer):
    app, key = _bot_key(server)
    # When the security team runs `keygate admin revoke` against the local server
    completed = subprocess.run([str(KEYGATE), "admin", "revoke", "--user", app.user, "--api-key", key["api_key"],  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                                "--reason", "posted in a forum"], env=server.environment, capture_output=True,
                               text=True, timeout=120)
    # Then it is revoked, audited with the local operator, and refused
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["revoked"] == [key["api_key"]]
    refused = _refused_after_the_bound(server, key)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "KEY_REVOKED"
    audit = app.call("GET", f"/v1/trade/api-keys/{key['api_key']}/audit").json()["audit"]
    assert audit[0]["action"] == "key_revoked_operator"
    # And an unsigned request to the route changes nothing
    unsigned = requests.post(server.base_url + "/v1/admin/revocations", timeout=HTTP_TIMEOUT_SECONDS,
                             json={"user_id": app.user, "reason": "not signed"})
    assert unsigned.status_code in (403, 404)
