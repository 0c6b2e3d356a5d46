"""keygate_client: what the SDK signs is what the authorizer verifies, for requests as really sent."""

from __future__ import annotations

import subprocess  # nosec B404  # runs only this project's own commands, no shell
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httpx
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keygate_client
import kg1
import kg1.ed25519
from keygate import apigw, keys
from keygate.authorizer import SignatureAuthorizer
from keygate.config import AuthorizerConfig
from keygate_client import core
from tests.support.bots import CATCH_ALL, request_event, stage_url
from tests.support.clocks import Clocks
from tests.support.loopback import JsonRequest, serving
from tests.support.memory import MemoryStorage

NOW_MS = 1_795_000_000_000
STAGE_URL = stage_url("prod")

segment = st.text(min_size=1, max_size=10).filter(lambda text: text not in {".", ".."})
# Names and values full of what URLs reserve, plus unicode, with repeats likely.
reserved = st.text(alphabet=st.sampled_from(list("&=+?#/%;, @:$!'()*[]") + ["é", "€", "🙂", "a", "Z", "~", " "]),
                   max_size=6)
name = st.one_of(st.sampled_from(["a", "a b", "q", "é"]), reserved.filter(bool))
pairs_strategy = st.lists(st.tuples(name, st.one_of(reserved, st.text(max_size=6))), max_size=6)


def authorizer_and_key() -> tuple[SignatureAuthorizer, str, str, Clocks]:
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    key_id, secret = storage.add_key(permissions=["read", "trade"])
    # The bots' requests reach the authorizer through a downstream API's catch-all, declared safe here
    authorizer = SignatureAuthorizer(AuthorizerConfig.from_environ({"SAFE_PROXY_RESOURCES": CATCH_ALL}),
                                     storage.keys, storage.vault,
                                     clock_ms=lambda: clocks.wall_ms)
    return authorizer, key_id, secret, clocks


def event_from_wire(method: str, target: str, sent_pairs: list[tuple[str, str]], headers: dict[str, str]) -> dict:
    """API Gateway's view of the bytes on the wire: the path as sent, the query decoded (ground truth)."""
    path = urlsplit(target).path
    assert path.startswith("/prod/")
    raw = request_event(method, path.removeprefix("/prod"), "", headers)
    multi: dict[str, list[str]] = {}
    for key, value in sent_pairs:
        multi.setdefault(key, []).append(value)
    raw["multiValueQueryStringParameters"] = multi or None
    raw["queryStringParameters"] = {key: values[-1] for key, values in multi.items()} or None
    return raw


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(method=st.sampled_from(["GET", "POST", "DELETE"]), segments=st.lists(segment, min_size=1, max_size=4),
       pairs=pairs_strategy, body=st.binary(max_size=40))
def test_httpx_auth_and_the_authorizer_agree(method, segments, pairs, body):
    # Given an httpx client signing with HttpxAuth against a deployed stage
    authorizer, key_id, secret, clocks = authorizer_and_key()
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    auth = keygate_client.HttpxAuth(key_id, secret, clock=lambda: clocks.wall_ms)
    url = STAGE_URL + "/" + "/".join(quote(part, safe="") for part in segments)
    # When it sends a request with an arbitrary path, query and body
    with httpx.Client(transport=transport, auth=auth) as client:
        client.request(method, url, params=pairs, content=body)
    request = sent[0]
    # Then the query on the wire decodes to the pairs given (httpx groups repeats), and the authorizer allows it
    assert sorted(keygate_client.query_pairs(str(request.url))) == sorted(pairs)
    decision = authorizer.authorize(apigw.signed_request(
        event_from_wire(method, request.url.raw_path.decode("ascii"), pairs, dict(request.headers))))
    assert decision.allowed, decision
    assert request.headers["X-KG-CONTENT-SHA256"] == kg1.content_sha256(body)


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(method=st.sampled_from(["GET", "PUT"]), segments=st.lists(segment, min_size=1, max_size=4),
       pairs=pairs_strategy, text=st.text(max_size=20))
def test_requests_auth_and_the_authorizer_agree(method, segments, pairs, text):
    # Given a requests request with an arbitrary path, query and a text body
    authorizer, key_id, secret, clocks = authorizer_and_key()
    url = STAGE_URL + "/" + "/".join(quote(part, safe="") for part in segments)
    prepared = requests.Request(method, url, params=pairs, data=text.encode("utf-8") if text else None).prepare()
    # When RequestsAuth signs it
    signed = keygate_client.RequestsAuth(key_id, secret, clock=lambda: clocks.wall_ms)(prepared)
    # Then the authorizer allows what would go on the wire
    assert keygate_client.query_pairs(signed.url) == pairs
    decision = authorizer.authorize(apigw.signed_request(
        event_from_wire(method, urlsplit(signed.url).path, pairs, dict(signed.headers))))
    assert decision.allowed, decision


def test_requests_auth_sends_a_str_body_as_the_utf8_it_signed():
    prepared = requests.Request("POST", STAGE_URL + "/v1/trade/orders", data="qty=½").prepare()
    signed = keygate_client.RequestsAuth("kgk_x", "secret")(prepared)
    assert signed.body == "qty=½".encode()
    assert signed.headers["Content-Length"] == str(len("qty=½".encode()))
    assert signed.headers["X-KG-CONTENT-SHA256"] == kg1.content_sha256("qty=½".encode())


def test_requests_auth_refuses_a_stream_it_cannot_sign():
    prepared = requests.Request("POST", STAGE_URL + "/v1/trade/orders").prepare()
    prepared.body = iter([b"chunk"])
    with pytest.raises(TypeError):
        keygate_client.RequestsAuth("kgk_x", "secret")(prepared)


def test_httpx_auth_signs_a_streamed_body():
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    with httpx.Client(transport=transport, auth=keygate_client.HttpxAuth("kgk_x", "secret")) as client:
        client.post(STAGE_URL + "/v1/trade/orders", content=iter([b'{"qty":', b'"1"}']))
    assert sent[0].headers["X-KG-CONTENT-SHA256"] == kg1.content_sha256(b'{"qty":"1"}')


@pytest.mark.parametrize("make", [
    lambda: keygate_client.HttpxAuth("kgk_x", "kgs_super_secret"),
    lambda: keygate_client.RequestsAuth("kgk_x", "kgs_super_secret"),
    lambda: keygate_client.Signer("kgk_x", "kgs_super_secret"),
])
def test_reprs_never_show_the_secret(make):
    assert "kgs_super_secret" not in repr(make())


def test_the_default_api_root_strips_only_an_execute_api_stage():
    assert keygate_client.signed_path(STAGE_URL + "/v1/time") == "/v1/time"
    assert keygate_client.signed_path("https://k3yg4t3abc.execute-api.cn-north-1.amazonaws.com.cn/dev/v1/x") == "/v1/x"
    assert keygate_client.signed_path("http://127.0.0.1:3000/v1/time") == "/v1/time"
    assert keygate_client.signed_path("https://api.example.com/prod/v1/time") == "/prod/v1/time"
    assert keygate_client.signed_path("https://api.example.com/prod/v1/time", "https://api.example.com/prod/") \
        == "/v1/time"


def test_importing_the_sdk_needs_no_server_side_package():
    # Given a fresh interpreter, when the SDK is imported and used, then boto3, Powertools and pydantic stay unloaded
    code = ("import sys, keygate_client; keygate_client.sign('k', 's', 'GET', '/v1/time'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'boto3', 'botocore', 'aws_lambda_powertools', 'pydantic', 'keygate', 'httpx', 'requests'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------ clock
@dataclass
class TimeServer:
    """GET /prod/v1/time answering the next of `server_times`."""

    url: str
    server_times: list[int] = field(default_factory=list)


@pytest.fixture
def time_server() -> Iterator[TimeServer]:
    times: list[int] = []

    def answer(request: JsonRequest) -> tuple[int, dict[str, int]]:
        assert (request.method, request.path) == ("GET", "/prod/v1/time")
        return 200, {"server_time": times.pop(0)}

    with serving(answer) as url:
        yield TimeServer(url, times)


def test_server_clock_keeps_the_offset_of_the_shortest_round_trip(time_server, monkeypatch):
    # Given a server 1 hour ahead, and local clock readings around three requests (round trips 30, 10, 20 ms)
    local = iter([1000, 1030, 2000, 2010, 3000, 3020])
    monkeypatch.setattr(core, "local_clock_ms", lambda: next(local))
    time_server.server_times[:] = [3_601_015, 3_602_005, 3_603_010]
    # When the clock syncs
    clock = keygate_client.ServerClock.sync(time_server.url, samples=3)
    # Then the offset is the one measured on the shortest round trip (server time minus the midpoint)
    assert clock.offset_ms == 3_602_005 - 2005
    monkeypatch.setattr(core, "local_clock_ms", lambda: 10_000)
    assert clock() == 10_000 + 3_600_000


def test_a_server_clock_makes_a_skewed_bot_acceptable():
    # Given a bot whose clock runs 10 s behind the server's
    authorizer, key_id, secret, clocks = authorizer_and_key()
    skewed = lambda: clocks.wall_ms - 10_000  # noqa: E731  # a named clock reads as one
    late = keygate_client.Signer(key_id, secret, clock=skewed).headers_for("GET", STAGE_URL + "/v1/x", b"")
    refused = authorizer.authorize(apigw.signed_request(request_event("GET", "/v1/x", "", late)))
    assert refused.code == "TIMESTAMP_OUT_OF_WINDOW"
    # When it corrects its clock by the measured offset
    corrected = keygate_client.ServerClock(offset_ms=10_000)
    corrected_now = lambda: skewed() + corrected.offset_ms  # noqa: E731  # a named clock reads as one
    fixed = keygate_client.Signer(key_id, secret, clock=corrected_now).headers_for("GET", STAGE_URL + "/v1/x", b"")
    # Then its requests are inside the window
    assert authorizer.authorize(apigw.signed_request(request_event("GET", "/v1/x", "", fixed))).allowed


def test_sign_accepts_only_what_signing_md_allows():
    with pytest.raises(ValueError):
        keygate_client.sign(keys.new_key_id("kgk_"), "s", "GET", "/v1/time", recv_window_ms=0)


# ------------------------------------------------------------------ refusals
REFUSAL_BODY = {"ok": False, "error": {"code": "TIMESTAMP_OUT_OF_WINDOW", "message": "X-KG-TIMESTAMP is 9000 ms "
                "behind the server's clock (server time 1795000000000 ms since the epoch)"}}


def refusing_server(request: JsonRequest) -> tuple[int, dict]:
    return (200, {"fine": True}) if request.target.endswith("/ok") else (401, REFUSAL_BODY)


def test_raise_for_refusal_gives_the_code_and_what_to_fix():
    # Given KeyGate's answer to a request stamped too long ago, as any HTTP library returns it
    response = httpx.Response(401, json=REFUSAL_BODY)
    # When the bot checks it
    with pytest.raises(keygate_client.KeyGateAuthError) as refused:
        keygate_client.raise_for_refusal(response)
    # Then the error names the check that refused it, the server's message, and what to change
    assert refused.value.code == "TIMESTAMP_OUT_OF_WINDOW" and refused.value.status == 401
    assert "server time" in refused.value.message and "GET /v1/time" in refused.value.fix
    # And anything that is not a refusal passes quietly
    for other in (httpx.Response(200, json={}), httpx.Response(503, json={"error": {"code": "SERVICE_UNAVAILABLE"}}),
                  httpx.Response(401, text="not json")):
        keygate_client.raise_for_refusal(other)


def test_every_code_a_bot_can_receive_has_a_fix():
    from keygate.authorizer import REFUSAL_CODES
    assert set(keygate_client.FIXES) == {code.value for code in REFUSAL_CODES} | {"BODY_DIGEST_MISMATCH"}


@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_the_auth_classes_raise_on_a_refusal_when_asked(library):
    with serving(refusing_server) as root:
        if library == "httpx":
            auth = keygate_client.HttpxAuth("kgk_x", "kgs_y", api_root=root, raise_on_refusal=True)
            with httpx.Client(auth=auth) as client:
                assert client.get(root + "/v1/ok").json() == {"fine": True}
                with pytest.raises(keygate_client.KeyGateAuthError) as refused:
                    client.get(root + "/v1/trade/api-keys/self")
        else:
            session = requests.Session()
            session.auth = keygate_client.RequestsAuth("kgk_x", "kgs_y", api_root=root, raise_on_refusal=True)
            assert session.get(root + "/v1/ok", timeout=10).json() == {"fine": True}
            with pytest.raises(keygate_client.KeyGateAuthError) as refused:
                session.get(root + "/v1/trade/api-keys/self", timeout=10)
    assert refused.value.code == "TIMESTAMP_OUT_OF_WINDOW"


def test_by_default_the_auth_classes_return_the_refusal():
    with serving(refusing_server) as root:
        auth = keygate_client.HttpxAuth("kgk_x", "kgs_y", api_root=root)
        with httpx.Client(auth=auth) as client:
            assert client.get(root + "/v1/trade/api-keys/self").status_code == 401


# ---------------------------------------------------------------- Ed25519
def ed25519_authorizer() -> tuple[SignatureAuthorizer, str, object, Clocks]:
    storage, clocks = MemoryStorage(), Clocks(NOW_MS)
    key_id, private_key = storage.add_ed25519_key(permissions=["read", "trade"])
    authorizer = SignatureAuthorizer(AuthorizerConfig.from_environ({"SAFE_PROXY_RESOURCES": CATCH_ALL}),
                                     storage.keys, storage.vault, clock_ms=lambda: clocks.wall_ms)
    return authorizer, key_id, private_key, clocks


def test_sign_with_a_private_key_gives_a_request_the_authorizer_accepts():
    authorizer, key_id, private_key, clocks = ed25519_authorizer()
    pem = kg1.ed25519.private_key_pem(private_key)
    for form in (private_key, pem, pem.encode()):
        headers = keygate_client.sign(key_id, None, "POST", "/v1/trade/orders", [("a", "1")], b"{}",
                                      timestamp_ms=clocks.wall_ms, private_key=form)
        assert len(headers["X-KG-SIGNATURE"]) == 128
        event = request_event("POST", "/v1/trade/orders", "a=1", headers)
        assert authorizer.authorize(apigw.signed_request(event)).allowed


@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_the_auth_classes_sign_with_a_private_key(library, tmp_path):
    authorizer, key_id, private_key, clocks = ed25519_authorizer()
    key_file = tmp_path / "bot.pem"
    key_file.write_text(kg1.ed25519.private_key_pem(private_key))
    seen: list[dict] = []

    def recording(request: JsonRequest) -> tuple[int, dict]:
        seen.append(dict(request.headers))
        return 200, {}

    with serving(recording) as root:
        loaded = keygate_client.read_private_key(key_file)
        if library == "httpx":
            auth = keygate_client.HttpxAuth(key_id, private_key=loaded, api_root=root, clock=lambda: clocks.wall_ms)
            with httpx.Client(auth=auth) as client:
                client.post(root + "/v1/trade/orders?a=1", content=b"{}")
        else:
            session = requests.Session()
            session.auth = keygate_client.RequestsAuth(key_id, private_key=loaded, api_root=root,
                                                       clock=lambda: clocks.wall_ms)
            session.post(root + "/v1/trade/orders?a=1", data=b"{}", timeout=10)
    [headers] = seen
    decision = authorizer.authorize(apigw.signed_request(request_event("POST", "/v1/trade/orders", "a=1", headers)))
    assert decision.allowed, decision
    assert "PRIVATE KEY" not in repr(auth if library == "httpx" else session.auth)


def test_a_signer_takes_a_secret_or_a_private_key():
    with pytest.raises(ValueError, match="either"):
        keygate_client.Signer("kgk_x")
    with pytest.raises(ValueError, match="either"):
        keygate_client.Signer("kgk_x", "kgs_y", private_key=kg1.ed25519.generate_private_key())
    with pytest.raises(ValueError, match="not an unencrypted PEM"):  # the SDK's copy of kg1's KeyFormatError
        keygate_client.Signer("kgk_x", private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


# ------------------------------------------------------------------ bot authors' edge cases
def test_a_private_apis_stage_is_stripped_too():
    host = "abc123def4-vpce-0123456789abcdef0.execute-api.eu-west-1.amazonaws.com"
    assert keygate_client.signed_path(f"https://{host}/prod/v1/time") == "/v1/time"


def test_a_refusal_survives_pickling_and_copying():
    import copy
    import pickle  # nosec B403  # round-trips its own exception, no outside data

    refused = keygate_client.KeyGateAuthError("NONCE_REUSED", "This nonce was already used.", 401)
    for rebuilt in (pickle.loads(pickle.dumps(refused)), copy.copy(refused)):  # noqa: S301  # nosec B301  # its own bytes
        assert (rebuilt.code, rebuilt.message, rebuilt.status, str(rebuilt)) == \
            ("NONCE_REUSED", "This nonce was already used.", 401, "NONCE_REUSED: This nonce was already used.")


@pytest.mark.parametrize("body", [b'{"ok": false, "error": {"code": "", "message": ""}}', b'{"message": null}'])
def test_a_401_without_a_code_is_not_taken_for_a_keygate_refusal(body):
    assert keygate_client.refusals.refusal(401, body) is None


@pytest.mark.parametrize("window", [0, 60_001, 10e3, True, "5000"])
def test_a_signer_refuses_a_receive_window_when_it_is_made(window):
    with pytest.raises(ValueError, match="recv_window_ms"):
        keygate_client.Signer("kgk_x", "kgs_y", recv_window_ms=window)


@pytest.mark.parametrize("clock", [lambda: time.time() * 1000, lambda: True], ids=["float", "bool"])
def test_a_clock_that_is_not_whole_milliseconds_is_refused_not_sent(clock):
    signer = keygate_client.Signer("kgk_x", "kgs_y", clock=clock)
    with pytest.raises(ValueError, match="timestamp_ms"):
        signer.headers_for("GET", "https://api.example.com/v1/time", b"")
