"""keygate-sign: a ready-to-run signed curl command, or the response itself with --send."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shlex
import stat
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

import keygate_client
import kg1 as signing
from keygate import keys
from keygate_client import cli, keygen
from keygate_client._kg1 import ed25519
from tests.support.bots import stage_url
from tests.support.loopback import JsonRequest, serving

KEY_ID = keys.new_key_id("kgk_")
SECRET = keys.new_secret()
STAGE_URL = stage_url("prod")


@pytest.fixture
def key_in_env(monkeypatch):
    monkeypatch.setenv(cli.KEY_ENV, KEY_ID)
    monkeypatch.setenv(cli.SECRET_ENV, SECRET)


def parse_curl(command: str) -> tuple[str, str, dict[str, str], list[str]]:
    words = shlex.split(command)
    # (-g and --path-as-is: curl sends the path as signed, [ ] and /../ included)
    assert words[:4] == ["curl", "-sS", "-g", "--path-as-is"] and words[4] == "-X"
    method, url, rest = words[5], words[6], words[7:]
    headers, data = {}, []
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "-H":
            name, _, content = value.partition(": ")
            headers[name] = content
        else:
            assert flag == "--data-binary"
            data.append(value)
    return method, url, headers, data


def verifies(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> bool:
    signed = signing.parse_signed_headers(headers)
    return signing.verify_signature(signed, SECRET, method, path, parse_qsl(query, keep_blank_values=True)) \
        and signing.body_matches(body, signed.content_sha256)


def test_without_the_key_in_the_environment_it_refuses(monkeypatch, capsys):
    monkeypatch.delenv(cli.KEY_ENV, raising=False)
    monkeypatch.delenv(cli.SECRET_ENV, raising=False)
    assert cli.main([f"{STAGE_URL}/v1/trade/api-keys/self"]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and cli.KEY_ENV in captured.err and cli.SECRET_ENV in captured.err


def test_there_is_no_way_to_pass_the_secret_as_an_argument(key_in_env, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--secret", SECRET, f"{STAGE_URL}/v1/time"])
    assert exited.value.code == 2


def test_prints_a_signed_get_that_verifies_and_never_the_secret(key_in_env, capsys):
    # When the bot author asks for a signed GET with a query
    assert cli.main([f"{STAGE_URL}/v1/trade/api-keys/self?x=1&y=a+b&y=%2F", "--recv-window", "60000"]) == 0
    captured = capsys.readouterr()
    method, url, headers, data = parse_curl(captured.out.strip())
    # Then the command carries the six headers, signed over the path without the stage
    assert (method, url, data) == ("GET", f"{STAGE_URL}/v1/trade/api-keys/self?x=1&y=a+b&y=%2F", [])
    assert headers["X-KG-API-KEY"] == KEY_ID and headers["X-KG-RECV-WINDOW"] == "60000"
    assert verifies("GET", "/v1/trade/api-keys/self", "x=1&y=a+b&y=%2F", headers, b"")
    assert SECRET not in captured.out + captured.err
    assert "60000 ms" in captured.err


def test_prints_a_signed_post_with_the_exact_body(key_in_env, capsys):
    body = '{"symbol":"BTC-USDT","side":"buy","qty":"0.5","note":"it\'s €"}'
    assert cli.main([f"{STAGE_URL}/v1/trade/orders", "-d", body]) == 0
    method, _, headers, data = parse_curl(capsys.readouterr().out.strip())
    assert method == "POST" and data == [body] and headers["Content-Type"] == "application/json"
    assert verifies("POST", "/v1/trade/orders", "", headers, body.encode())


def test_a_body_file_is_referenced_not_inlined(key_in_env, capsys, tmp_path):
    payload = tmp_path / "order.json"
    payload.write_bytes(b'{"qty": "1"}\n')
    assert cli.main([f"{STAGE_URL}/v1/trade/orders", "--data-file", str(payload), "-X", "put",
                     "-H", "Content-Type: application/x-ndjson"]) == 0
    method, _, headers, data = parse_curl(capsys.readouterr().out.strip())
    assert (method, data, headers["Content-Type"]) == ("PUT", [f"@{payload}"], "application/x-ndjson")
    assert verifies("PUT", "/v1/trade/orders", "", headers, payload.read_bytes())


def test_a_binary_body_from_standard_input_cannot_be_printed(key_in_env, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\x00\xff")))
    with pytest.raises(SystemExit) as exited:
        cli.main([f"{STAGE_URL}/v1/trade/orders", "--data-file", "-"])
    assert exited.value.code == 2


def test_a_url_outside_the_api_root_is_a_usage_error(key_in_env):
    with pytest.raises(SystemExit) as exited:
        cli.main(["https://api.example.com/other/v1/time", "--api-root", "https://api.example.com/trading"])
    assert exited.value.code == 2


# ------------------------------------------------------------ --send
def checking_server(request: JsonRequest) -> tuple[int, dict[str, Any]]:
    """Verifies KG1 like the authorizer would (stage /prod) and answers what it found."""
    parts = urlsplit(request.target)
    if parts.path == "/prod/v1/time":
        return 200, {"server_time": time.time_ns() // 1_000_000}
    if verifies(request.method, unquote(parts.path.removeprefix("/prod")), parts.query, dict(request.headers),
                request.body):
        return 200, {"verified": True, "body": request.body.decode()}
    return 401, {"ok": False, "error": {"code": "SIGNATURE_MISMATCH", "message": "The signature does not match."}}


@pytest.fixture
def api_root() -> Iterator[str]:
    with serving(checking_server) as url:
        yield url


def test_send_prints_the_response_of_a_verified_request(key_in_env, api_root, capsys):
    # When the request is sent (clock synced first) to a server that checks KG1
    code = cli.main([f"{api_root}/v1/trade/orders?side=buy", "-d", '{"qty":"1"}', "--api-root", api_root,
                     "--sync-clock", "--send"])
    # Then the server verified it and the response is printed
    output = capsys.readouterr().out.splitlines()
    assert code == 0 and output[0] == "HTTP 200"
    assert json.loads(output[1]) == {"verified": True, "body": '{"qty":"1"}'}


def test_send_exits_non_zero_on_a_refusal(monkeypatch, api_root, capsys):
    monkeypatch.setenv(cli.KEY_ENV, KEY_ID)
    monkeypatch.setenv(cli.SECRET_ENV, keys.new_secret())  # not the secret the server knows
    assert cli.main([f"{api_root}/v1/trade/api-keys/self", "--api-root", api_root, "--send"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "HTTP 401"
    # And it says which check refused the request, and what to fix
    assert "refused with SIGNATURE_MISMATCH: The signature does not match." in captured.err
    assert f"to fix: {keygate_client.FIXES['SIGNATURE_MISMATCH']}" in captured.err


def test_send_to_a_closed_port_is_a_network_error(key_in_env, capsys):
    assert cli.main(["http://127.0.0.1:9/v1/time", "--send", "--timeout", "2"]) == cli.EXIT_NETWORK
    assert "keygate-sign:" in capsys.readouterr().err


# ------------------------------------------------------------- Ed25519 keys
def test_keygen_writes_a_private_key_only_its_owner_can_read_and_prints_both_public_forms(tmp_path, capsys):
    # When a bot author makes a key pair
    path = tmp_path / "bot.pem"
    assert keygen.main(["--out", str(path)]) == 0
    printed = capsys.readouterr()
    # Then the private key file is mode 0600 PKCS#8 PEM, never printed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = path.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n") and "PRIVATE KEY" not in printed.out
    # And the public key is printed in both forms KeyGate takes, which are the private key's
    lines = printed.out.splitlines()
    public_pem, public_base64 = "\n".join(lines[:3]) + "\n", lines[3]
    raw = ed25519.public_key_of(ed25519.load_private_key(pem))
    assert ed25519.parse_public_key(public_pem) == ed25519.parse_public_key(public_base64) == raw
    assert "0600" in printed.err
    # And its fingerprint, the one the app's passkey confirmation of a create or rotation shows for that key,
    # which the README's shell recipe computes from the base64 form
    from keygate.binding import requested_change, summary
    from keygate.service import Rotation
    from keygate.stepup import Action
    [shown] = [line.rsplit(" ", 1)[1] for line in printed.err.splitlines() if "fingerprint" in line]
    assert shown == "SHA256:" + base64.b64encode(hashlib.sha256(public_base64.encode()).digest()).decode().rstrip("=")
    confirmed = summary(requested_change(Action.ROTATE, Rotation(grace_seconds=60, public_key=public_base64)),
                        target_label="bot", target="kgk_x")
    assert f"the new public key {shown};" in confirmed


def test_keygen_never_overwrites_a_file_unless_forced(tmp_path, capsys):
    path = tmp_path / "bot.pem"
    path.write_text("precious")
    path.chmod(0o644)
    assert keygen.main(["--out", str(path)]) == keygen.EXIT_USAGE
    assert path.read_text() == "precious" and "--force" in capsys.readouterr().err
    # With --force the file is replaced by a new one of mode 0600: whoever holds the old file open, or a hard
    # link to it, still reads the old content, never the new key
    backup = tmp_path / "backup.pem"
    backup.hardlink_to(path)
    with path.open() as reader:
        assert keygen.main(["--out", str(path), "--force"]) == 0
        assert reader.read() == "precious"
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----") and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert backup.read_text() == "precious"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["backup.pem", "bot.pem"]  # nothing staged is left


@pytest.mark.parametrize("force", [False, True], ids=["new file", "--force"])
def test_keygen_leaves_no_copy_of_the_key_when_writing_fails(tmp_path, monkeypatch, capsys, force):
    # Given a disk that fails the write (and, with --force, a file to replace)
    path = tmp_path / "bot.pem"
    if force:
        path.write_text("precious")

    def full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keygen.os, "fsync", full)
    # When keygen runs
    assert keygen.main(["--out", str(path), *(["--force"] if force else [])]) == keygen.EXIT_USAGE
    # Then it says so, no file holds part of the new key, and a file it was to replace is intact
    assert "No space left" in capsys.readouterr().err
    assert [entry.name for entry in tmp_path.iterdir()] == (["bot.pem"] if force else [])
    assert not force or path.read_text() == "precious"


def test_keygen_force_refuses_a_symlink(tmp_path, capsys):
    # Given --out naming a symlink (to where the user keeps keys)
    target, link = tmp_path / "vault.pem", tmp_path / "bot.pem"
    target.write_text("precious")
    link.symlink_to(target)
    # Then keygen --force refuses it rather than writing the key beside the link
    assert keygen.main(["--out", str(link), "--force"]) == keygen.EXIT_USAGE
    assert link.is_symlink() and target.read_text() == "precious"


def ed25519_server(public_key: bytes):
    def answer(request: JsonRequest) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(request.target)
        signed = signing.parse_signed_headers(dict(request.headers))
        if signing.verify_ed25519_signature(signed, public_key, request.method,
                                            unquote(parts.path.removeprefix("/prod")),
                                            parse_qsl(parts.query, keep_blank_values=True)):
            return 200, {"verified": True}
        return 401, {"ok": False, "error": {"code": "SIGNATURE_MISMATCH", "message": "no"}}
    return answer


def test_sign_with_a_private_key_file_sends_a_request_an_ed25519_server_verifies(tmp_path, monkeypatch, capsys):
    # Given a key pair from keygate-keygen, the key id in the environment and no secret
    path = tmp_path / "bot.pem"
    assert keygen.main(["--out", str(path)]) == 0
    capsys.readouterr()
    public = ed25519.public_key_of(ed25519.load_private_key(path.read_bytes()))
    monkeypatch.setenv(cli.KEY_ENV, KEY_ID)
    monkeypatch.delenv(cli.SECRET_ENV, raising=False)
    with serving(ed25519_server(public)) as root:
        # When keygate-sign sends a request signed with the private key file
        code = cli.main([f"{root}/v1/trade/orders?x=1", "-d", "{}", "--api-root", root, "--private-key-file",
                         str(path), "--send"])
    # Then the server verified the Ed25519 signature
    output = capsys.readouterr().out.splitlines()
    assert code == 0 and output[0] == "HTTP 200", output


def test_a_private_key_file_that_is_not_an_ed25519_key_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(cli.KEY_ENV, KEY_ID)
    path = tmp_path / "not-a-key.pem"
    path.write_text("hello")
    assert cli.main([f"{STAGE_URL}/v1/time", "--private-key-file", str(path)]) == cli.EXIT_USAGE
    assert "cannot use" in capsys.readouterr().err


# ------------------------------------------------ what curl users and bot authors bring
def test_a_body_given_as_curls_at_file_is_refused_and_data_file_named(key_in_env, capsys):
    # When a curl user passes -d @file, which curl would read as a file but keygate-sign would sign as 11 bytes
    with pytest.raises(SystemExit) as exited:
        cli.main([STAGE_URL + "/v1/trade/orders", "-d", "@order.json"])
    # Then it is a usage error that says how to sign a file's bytes
    assert exited.value.code == cli.EXIT_USAGE
    assert "--data-file" in capsys.readouterr().err


def trading_api(request: JsonRequest) -> tuple[int, dict[str, Any]]:
    """An API KeyGate protects, which serves no /v1/time (only KeyGate's own API does)."""
    if urlsplit(request.target).path.endswith("/v1/time"):
        return 403, {"message": "Missing Authentication Token"}
    return checking_server(request)


def test_sync_clock_reads_keygates_own_api_when_the_request_goes_to_another(key_in_env, api_root, capsys):
    # Given KeyGate's API (with /v1/time) and a trading API without it
    with serving(trading_api) as trading:
        # When a request to the trading API syncs its clock from KeyGate's root
        code = cli.main([f"{trading}/v1/trade/orders/42", "-X", "DELETE", "--api-root", trading, "--sync-clock",
                         "--keygate-root", api_root, "--send"])
        assert code == 0 and capsys.readouterr().out.startswith("HTTP 200")
        # And without it, the sync against the trading API fails with what to do, as a network failure
        code = cli.main([f"{trading}/v1/trade/orders/42", "-X", "DELETE", "--api-root", trading, "--sync-clock",
                         "--send"])
    error = capsys.readouterr().err
    assert code == cli.EXIT_NETWORK and "answered HTTP 403" in error and "KeyGate's own API root" in error


@pytest.mark.parametrize("answer", [(200, {}), (200, {"server_time": "abc"}), (200, ["x"]),
                                    (200, {"server_time": True})], ids=["empty", "text", "list", "bool"])
def test_a_clock_sync_answer_that_is_not_keygates_is_one_clear_error(key_in_env, capsys, answer):
    with serving(lambda request: answer) as root:
        code = cli.main([f"{root}/v1/trade/api-keys/self", "--api-root", root, "--sync-clock"])
    error = capsys.readouterr().err
    assert code == cli.EXIT_NETWORK and "did not answer KeyGate's" in error and "Traceback" not in error


def test_keygate_root_without_sync_clock_is_a_usage_error(key_in_env):
    with pytest.raises(SystemExit) as exited:
        cli.main([STAGE_URL + "/v1/time", "--keygate-root", STAGE_URL])
    assert exited.value.code == cli.EXIT_USAGE


@pytest.mark.parametrize("typed, sent_path, sent_query", [
    ("/v1/misc/caf\u00e9?q=hello world", "/v1/misc/caf%C3%A9", "q=hello%20world"),
    ("/v1/misc/a%2Fb?q=caf\u00e9&r=%41", "/v1/misc/a%2Fb", "q=caf%C3%A9&r=%41"),
], ids=["spaces and non-ASCII", "escapes kept"])
def test_a_url_as_typed_is_sent_and_signed_as_an_http_client_encodes_it(key_in_env, api_root, capsys, typed,
                                                                         sent_path, sent_query):
    # When the URL carries a space or a non-ASCII character, as typed in a shell
    code = cli.main([api_root + typed, "--api-root", api_root, "--send"])
    # Then the request goes out percent-encoded (UTF-8) and the server verifies it
    assert code == 0 and capsys.readouterr().out.startswith("HTTP 200")
    # And the printed curl command carries that same URL
    cli.main([api_root + typed, "--api-root", api_root])
    method, url, headers, _ = parse_curl(capsys.readouterr().out)
    parts = urlsplit(url)
    assert (parts.path, parts.query) == ("/prod" + sent_path, sent_query)
    assert verifies(method, unquote(sent_path), sent_query, headers, b"")


def test_an_answer_that_is_not_http_is_a_network_error(key_in_env, capsys):
    import socket
    import threading

    # Given a port that answers garbage instead of HTTP
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def garbage() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    thread = threading.Thread(target=garbage, daemon=True)
    thread.start()
    try:
        code = cli.main([f"http://127.0.0.1:{port}/v1/time", "--send", "--timeout", "5"])
    finally:
        thread.join(timeout=5)
        listener.close()
    error = capsys.readouterr().err
    assert code == cli.EXIT_NETWORK and "did not answer HTTP" in error and "Traceback" not in error


@pytest.mark.parametrize("form, lines", [("pem", 3), ("base64", 1)])
def test_keygen_prints_one_public_form_when_asked(tmp_path, capsys, form, lines):
    # When keygate-keygen is asked for one form of the public key (to redirect it into a file)
    assert keygen.main(["-o", str(tmp_path / "key.pem"), "--public-format", form]) == 0
    printed = capsys.readouterr().out.splitlines()
    # Then standard output holds that form alone, which KeyGate's parser takes as it is
    assert len(printed) == lines
    private = keygate_client.read_private_key(tmp_path / "key.pem")
    text = "\n".join(printed) + ("\n" if form == "pem" else "")
    assert ed25519.parse_public_key(text) == ed25519.public_key_of(private)


def test_a_stray_percent_is_encoded_as_requests_would_and_still_verifies(key_in_env, api_root, capsys):
    # When the query holds a % that starts no escape
    assert cli.main([api_root + "/v1/trade/api-keys/self?discount=50%", "--api-root", api_root, "--send"]) == 0
    assert capsys.readouterr().out.startswith("HTTP 200")
    cli.main([api_root + "/v1/trade/api-keys/self?discount=50%", "--api-root", api_root])
    # Then it goes out as %25, and the signature covers the value the server decodes
    method, url, headers, _ = parse_curl(capsys.readouterr().out)
    assert urlsplit(url).query == "discount=50%25"
    assert verifies(method, "/v1/trade/api-keys/self", "discount=50%25", headers, b"")


@pytest.mark.parametrize(("root", "typed", "sent_path", "signed_path", "query"), [
    # a URL and its API root both typed with a non-ASCII character: the signed path is relative to the encoded root
    ("https://api.example.com/caf\u00e9", "/v1/time?q=a b", "/caf%C3%A9/v1/time", "/v1/time", "q=a%20b"),
    # requests decides part by part: a fragment's stray % must not re-encode the query's escapes
    ("https://api.example.com/prod", "/v1/orders?symbol=BTC%2FUSDT#note=50%", "/prod/v1/orders", "/v1/orders",
     "symbol=BTC%2FUSDT"),
], ids=["root typed with non-ASCII", "stray % in the fragment only"])
def test_the_printed_command_carries_the_url_and_roots_as_requests_encodes_them(key_in_env, capsys, root, typed,
                                                                                sent_path, signed_path, query):
    assert cli.main([root + typed, "--api-root", root]) == 0
    method, url, headers, _ = parse_curl(capsys.readouterr().out)
    assert (urlsplit(url).path, urlsplit(url).query) == (sent_path, query)
    assert verifies(method, signed_path, query, headers, b"")


def test_requote_leaves_the_host_to_urllib():
    assert cli.requote("https://b\u00fccher.example/v1/a b") == "https://b\u00fccher.example/v1/a%20b"


@pytest.mark.parametrize("typed", ["/v1/a\tb", "/v1/a?n=x\ny", "/v1/\udcff"], ids=["tab", "line break", "not utf-8"])
def test_a_url_no_client_could_send_as_typed_is_a_usage_error(key_in_env, capsys, typed):
    with pytest.raises(SystemExit) as exited:
        cli.main(["https://api.example.com" + typed])
    assert exited.value.code == cli.EXIT_USAGE and "Traceback" not in capsys.readouterr().err
