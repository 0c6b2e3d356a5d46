"""An Ed25519 bot end to end over real HTTP against the local server (`keygate dev serve`, issue 15).

The bot makes its own key pair with `keygate-keygen`, the app creates the API key from the public key
(no secret exists anywhere), the bot signs with the SDK and with `keygate-sign --private-key-file`,
and the app rotates the key to a new public key while the bot keeps working.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess  # nosec B404  # runs only this project's own commands, no shell
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from keygate_client import RequestsAuth, ServerClock, read_private_key
from tests.e2e.test_journey import ORDER, TIMEOUT, App, error_code
from tests.support.local_server import LocalServer
from tests.unit.test_bot_authors_doc import block_after

USER = "e2e-ed25519"
BIN = Path(sys.executable).parent


def keygen(path: Path) -> tuple[str, str]:
    """`keygate-keygen -o path`: the private key file, and the public key printed (PEM, then base64)."""
    made = subprocess.run([str(BIN / "keygate-keygen"), "-o", str(path)], capture_output=True, text=True,  # noqa: S603  # nosec B603
                          check=True, timeout=60)
    lines = made.stdout.splitlines()
    return "\n".join(lines[:3]) + "\n", lines[3]


def test_an_ed25519_bot_from_keygen_to_rotation(local_server: LocalServer, tmp_path: Path):
    base = local_server.base_url
    local_server.keygate("onboard", "--user", USER)
    app = App(local_server, USER)
    # Given a key pair the bot made itself (the private key in a file only its owner can read)
    first_key = tmp_path / "first.pem"
    public_pem, public_base64 = keygen(first_key)
    assert first_key.stat().st_mode & 0o777 == 0o600

    # When the app creates an Ed25519 key with the public key (PEM)
    created = app.call("POST", "/v1/trade/api-keys", action="api_keys:create",
                       body={"label": "ed25519 bot", "permissions": ["read", "trade"], "key_type": "ed25519",
                             "public_key": public_pem})
    # Then the answer carries no secret
    assert created.status_code == 200, created.text
    key = created.json()
    assert "api_secret" not in key and key["key_type"] == "ed25519"

    # When the bot signs with its private key through the SDK
    clock = ServerClock.sync(base)
    bot = requests.Session()
    bot.auth = RequestsAuth(key["api_key"], private_key=read_private_key(first_key), clock=clock)
    # Then KeyGate and the protected example API let it in
    me = bot.get(base + "/v1/trade/api-keys/self", timeout=TIMEOUT)
    assert me.status_code == 200, me.text
    assert me.json()["api_key"] == key["api_key"]
    order = bot.post(base + "/v1/trade/orders", json=ORDER, timeout=TIMEOUT)
    assert order.status_code == 200, order.text
    # And keygate-sign signs with the private key file too (the key id from the environment)
    sent = subprocess.run([str(BIN / "keygate-sign"), "--private-key-file", str(first_key), "--sync-clock",  # noqa: S603  # nosec B603
                           "--send", base + "/v1/trade/api-keys/self"], capture_output=True, text=True, timeout=60,
                          env={"KEYGATE_API_KEY": key["api_key"], "PATH": str(BIN)}, check=False)
    assert sent.returncode == 0 and sent.stdout.startswith("HTTP 200"), (sent.stdout, sent.stderr)
    # And a request signed by another private key is refused with its code
    keygen(tmp_path / "impostor.pem")
    impostor = requests.get(base + "/v1/trade/api-keys/self", timeout=TIMEOUT, auth=RequestsAuth(
        key["api_key"], private_key=read_private_key(tmp_path / "impostor.pem"), clock=clock))
    assert impostor.status_code == 401 and error_code(impostor) == "SIGNATURE_MISMATCH", impostor.text

    # When the app rotates the key to a new public key (base64 form) with a minute's grace
    second_key = tmp_path / "second.pem"
    _, second_public = keygen(second_key)
    rotated = app.call("POST", f"/v1/trade/api-keys/{key['api_key']}/rotate", action="api_keys:rotate",
                       body={"public_key": second_public, "grace_seconds": 60})
    assert rotated.status_code == 200, rotated.text
    usable_from = datetime.fromisoformat(rotated.json()["usable_from"])
    # Then the bot keeps working with the old key until usable_from (RecordCacheTtlSeconds away) ...
    assert bot.get(base + "/v1/trade/api-keys/self", timeout=TIMEOUT).status_code == 200
    # (the server runs on the real clock, RecordCacheTtlSeconds = 1 s: wait until usable_from)
    time.sleep(max(0.0, usable_from.timestamp() - time.time()) + 0.1)
    # ... and from then on with the new one, the old one still verifying during the grace
    bot.auth = RequestsAuth(key["api_key"], private_key=read_private_key(second_key), clock=clock)
    assert bot.post(base + "/v1/trade/orders", json=ORDER, timeout=TIMEOUT).status_code == 200
    old = requests.get(base + "/v1/trade/api-keys/self", timeout=TIMEOUT,
                       auth=RequestsAuth(key["api_key"], private_key=read_private_key(first_key), clock=clock))
    assert old.status_code == 200, old.text
    # And the audit log shows the creation and the rotation
    audit = app.call("GET", f"/v1/trade/api-keys/{key['api_key']}/audit").json()["audit"]
    assert [entry["action"] for entry in audit] == ["key_rotated", "key_created"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs OpenSSL")
def test_the_readmes_openssl_create_makes_an_ed25519_key_of_that_public_key(local_server: LocalServer, tmp_path: Path):
    # Given a key pair made as the README's OpenSSL recipe makes it, and the walkthrough's session
    private_key = tmp_path / "keygate-ed25519.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private_key)], check=True,  # noqa: S603, S607  # nosec B603 B607
                   capture_output=True, timeout=60)
    session = local_server.keygate("token", "--user", "demo").stdout.strip()
    # When the README's create snippet runs in that directory
    script = block_after("openssl ed25519 create")
    created = subprocess.run(["/bin/bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,  # noqa: S603  # nosec B603
                             text=True, timeout=120, check=False,
                             env={**local_server.environment, "KG": local_server.base_url, "BIN": str(BIN),
                                  "SESSION": session})
    # Then the step-up approves that body and KeyGate creates an Ed25519 key without a secret
    assert created.returncode == 0, (created.stdout, created.stderr)
    key = json.loads(created.stdout)
    assert key["key_type"] == "ed25519" and "api_secret" not in key, key
    # And the confirmation showed the fingerprint the README's openssl pipeline computes, to compare before approving
    fingerprint = subprocess.run(  # nosec B603
        ["/bin/bash", "-euo", "pipefail", "-c", 'printf %s "$(openssl pkey -in keygate-ed25519.pem -pubout -outform DER'
         ' | tail -c 32 | base64)" | openssl dgst -sha256 -binary | base64 | tr -d ='], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert re.search(r"^Confirming: Create Ed25519 API key for the public key SHA256:" + re.escape(fingerprint) + " ",
                     created.stderr, re.MULTILINE), created.stderr
    # And it is the file's key: a request signed with its private key gets in
    signed = requests.get(local_server.base_url + "/v1/trade/api-keys/self", timeout=TIMEOUT, auth=RequestsAuth(
        key["api_key"], private_key=read_private_key(private_key), clock=ServerClock.sync(local_server.base_url)))
    assert signed.status_code == 200 and signed.json()["api_key"] == key["api_key"], signed.text
