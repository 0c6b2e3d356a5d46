"""kg1 (sdk/kg1): docs/signing.md's canonical form, header rules and clock window, byte for byte."""

import ast
import os
import shutil
import subprocess  # nosec B404  # runs a Python 3.10 interpreter on kg1, no shell
import sys
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import keygate_client
import kg1 as signing

ROOT = Path(__file__).resolve().parents[2]
SECRET = "kgs_example_secret_do_not_use"
KEY_ID = "kg_live_example_key_id"
GET_STRING_TO_SIGN = (
    "KG1-HMAC-SHA256\n1767225600000\n5000\nn0nce-3f9c2a7e1b4d4c8a\nkg_live_example_key_id\nGET\n"
    "/v1/trade/api-keys/self\n\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
GET_SIGNATURE = "458772e593bd5f81e4cb9b146b16e1e8a75a42580340dd6f32473997dbd907b8"
POST_BODY = b'{"symbol":"BTC-USDT","side":"buy","qty":"0.5"}'
POST_QUERY = "symbol=BTC-USDT&client%20id=a%20b%2Fc&a=2&a=10"
POST_STRING_TO_SIGN = (
    "KG1-HMAC-SHA256\n1767225601234\n\nZx9_-abcdefghijklmnop\nkg_live_example_key_id\nPOST\n/v1/trade/orders\n"
    "a=10&a=2&client%20id=a%20b%2Fc&symbol=BTC-USDT\n"
    "91231eec0d583c2a980fcd99db802310853c1bb38f22b57952d06f63b7d5a911")
POST_SIGNATURE = "23f9060393b44bb2a737180972e288379a142a69cc142a08f262a973f7a04ff2"
EXECUTE_API = "https://k3yg4t3abc.execute-api.us-east-1.amazonaws.com/prod"


def valid_headers(**changes):
    headers = {"X-KG-API-KEY": KEY_ID, "X-KG-TIMESTAMP": "1767225600000", "X-KG-RECV-WINDOW": "5000",
               "X-KG-NONCE": "n0nce-3f9c2a7e1b4d4c8a", "X-KG-CONTENT-SHA256": signing.EMPTY_BODY_SHA256,
               "X-KG-SIGNATURE": GET_SIGNATURE}
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    return headers


# ------------------------------------------------------------- worked examples
def test_worked_example_get_string_to_sign_and_signature():
    # Given docs/signing.md's GET example
    text = signing.string_to_sign(timestamp="1767225600000", recv_window="5000", nonce="n0nce-3f9c2a7e1b4d4c8a",
                                  key_id=KEY_ID, method="GET", path="/v1/trade/api-keys/self", query_pairs=[],
                                  content_sha256=signing.content_sha256(b""))
    # Then the string to sign and its HMAC are the page's, byte for byte
    assert text == GET_STRING_TO_SIGN
    assert signing.signature(SECRET, text) == GET_SIGNATURE


def test_worked_example_post_string_to_sign_and_signature():
    # Given docs/signing.md's POST example with its decoded query (repeats kept, a space and a slash in values)
    pairs = keygate_client.query_pairs(f"https://h/v1/trade/orders?{POST_QUERY}")
    assert pairs == [("symbol", "BTC-USDT"), ("client id", "a b/c"), ("a", "2"), ("a", "10")]
    text = signing.string_to_sign(timestamp="1767225601234", recv_window="", nonce="Zx9_-abcdefghijklmnop",
                                  key_id=KEY_ID, method="POST", path="/v1/trade/orders", query_pairs=pairs,
                                  content_sha256=signing.content_sha256(POST_BODY))
    # Then it matches the page byte for byte, and so does the signature
    assert text == POST_STRING_TO_SIGN
    assert signing.signature(SECRET, text) == POST_SIGNATURE


def test_sdk_sign_reproduces_both_worked_examples():
    # When the SDK signs the examples (the POST without a recv window header)
    get = keygate_client.sign(KEY_ID, SECRET, "GET", "/v1/trade/api-keys/self", timestamp_ms=1767225600000,
                              recv_window_ms=5000, nonce="n0nce-3f9c2a7e1b4d4c8a")
    post = keygate_client.sign(KEY_ID, SECRET, "post", "/v1/trade/orders",
                               keygate_client.query_pairs("?" + POST_QUERY), POST_BODY,
                               timestamp_ms=1767225601234, recv_window_ms=None, nonce="Zx9_-abcdefghijklmnop")
    # Then it sends the page's headers and signatures
    assert get == valid_headers()
    assert post == {"X-KG-API-KEY": KEY_ID, "X-KG-TIMESTAMP": "1767225601234", "X-KG-NONCE": "Zx9_-abcdefghijklmnop",
                    "X-KG-CONTENT-SHA256": "91231eec0d583c2a980fcd99db802310853c1bb38f22b57952d06f63b7d5a911",
                    "X-KG-SIGNATURE": POST_SIGNATURE}


def test_sdk_sends_all_six_headers_by_default():
    # When the SDK signs without naming a receive window
    headers = keygate_client.sign(KEY_ID, SECRET, "GET", "/v1/time")
    # Then the request states its own window (the server's default, 5000 ms) among the six headers
    assert headers["X-KG-RECV-WINDOW"] == "5000"
    assert sorted(headers) == sorted(["X-KG-API-KEY", "X-KG-TIMESTAMP", "X-KG-RECV-WINDOW", "X-KG-NONCE",
                                      "X-KG-CONTENT-SHA256", "X-KG-SIGNATURE"])


def test_sdk_signer_strips_the_stage_or_base_path_of_a_deployed_url():
    pairs = [("symbol", "BTC-USDT"), ("client id", "a b/c"), ("a", "2"), ("a", "10")]
    for url, root, prefix in ((f"{EXECUTE_API}/v1/trade/orders?{POST_QUERY}", None, "/prod"),
                              (f"https://api.example.com/trading/v1/trade/orders?{POST_QUERY}",
                               "https://api.example.com/trading", "/trading")):
        # Given a signer for a deployed stage, or for a custom domain's base path
        signer = keygate_client.Signer(KEY_ID, SECRET, api_root=root, clock=lambda: 1767225601234)
        # When it signs the URL as sent
        signed = signing.parse_signed_headers(signer.headers_for("POST", url, POST_BODY))
        # Then the signature covers the path relative to the API root, not the stage or base path
        assert signed.timestamp == "1767225601234" and signed.content_sha256 == signing.content_sha256(POST_BODY)
        assert signing.verify_signature(signed, SECRET, "POST", "/v1/trade/orders", pairs)
        assert not signing.verify_signature(signed, SECRET, "POST", prefix + "/v1/trade/orders", pairs)


def test_a_url_outside_the_api_root_is_refused_before_signing():
    with pytest.raises(ValueError):
        keygate_client.signed_path("https://api.example.com/other/v1/time", "https://api.example.com/trading")


# ---------------------------------------------------------- one implementation
KG1_DIR = Path(signing.__file__).parent
# What the layer's modules used from keygate.signing: kg1 must keep exporting all of it at top level.
LAYER_API = (
    "HEADER_API_KEY", "HEADER_TIMESTAMP", "HEADER_RECV_WINDOW", "HEADER_NONCE", "HEADER_CONTENT_SHA256",
    "HEADER_SIGNATURE", "SIGNED_HEADER_NAMES", "DEFAULT_RECV_WINDOW_MS", "MAX_RECV_WINDOW_MS", "MAX_CLOCK_AHEAD_MS",
    "EMPTY_BODY_SHA256", "SigningError", "SignedHeaders", "enc", "canonical_path", "canonical_query",
    "string_to_sign", "signature", "content_sha256", "parse_signed_headers", "check_timestamp",
    "expected_signature", "verify_signature", "body_matches", "new_nonce", "sign_request", "SCHEME",
)


def test_kg1_is_the_source_tree_package_and_exports_the_layers_names():
    # Given the kg1 the development install imports
    assert KG1_DIR == ROOT / "sdk" / "kg1" / "kg1"
    # Then it exports at top level every name the layer used from keygate.signing, and each exported name exists
    assert set(LAYER_API) <= set(signing.__all__)
    assert all(getattr(signing, name, None) is not None for name in signing.__all__)


def test_both_sides_take_the_default_receive_window_from_one_constant(monkeypatch):
    # Given kg1's verifying side with another value for the constant
    monkeypatch.setattr(signing.verify, "DEFAULT_RECV_WINDOW_MS", 1234)
    # When it parses a request without X-KG-RECV-WINDOW
    parsed = signing.parse_signed_headers(valid_headers(X_KG_RECV_WINDOW=None))
    # Then it reads the absent window as the constant, not as a literal of its own
    assert parsed.recv_window_ms == 1234
    # And the SDK's defaults are the very constant of the copy it ships (`is`: an equal literal would fail),
    # while sign_request sends no window unless asked
    from keygate_client import _kg1, cli, core, httpx_auth, requests_auth
    assert core.sign.__kwdefaults__["recv_window_ms"] is _kg1.DEFAULT_RECV_WINDOW_MS == signing.DEFAULT_RECV_WINDOW_MS
    for init in (core.Signer.__init__, httpx_auth.HttpxAuth.__init__, requests_auth.RequestsAuth.__init__):
        assert init.__kwdefaults__["recv_window_ms"] == _kg1.DEFAULT_RECV_WINDOW_MS
    assert cli._parser().get_default("recv_window") == _kg1.DEFAULT_RECV_WINDOW_MS
    assert signing.sign_request.__kwdefaults__["recv_window_ms"] is None


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The imports a module runs when imported: not those inside functions or `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            pending.extend([*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
    return found


@pytest.mark.parametrize("module", sorted(path.name for path in KG1_DIR.glob("*.py")))
def test_kg1_imports_nothing_but_the_standard_library_and_itself(module):
    # The SDK ships kg1 as keygate_client._kg1: only relative imports of its own modules, and the standard
    # library. Ed25519 signing and verification import `cryptography` (an optional extra) inside functions only.
    tree = ast.parse((KG1_DIR / module).read_text())
    every = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    loaded = _module_level_imports(tree)
    absolute = {alias.name.split(".")[0] for node in loaded if isinstance(node, ast.Import) for alias in node.names}
    absolute |= {node.module.split(".")[0] for node in loaded
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert absolute <= set(sys.stdlib_module_names) | {"__future__"}, absolute
    deferred = {node.module.split(".")[0] for node in every if isinstance(node, ast.ImportFrom) and node.level == 0
                and node not in loaded} | {alias.name.split(".")[0] for node in every if isinstance(node, ast.Import)
                                           and node not in loaded for alias in node.names}
    assert deferred <= set(sys.stdlib_module_names) | {"cryptography"}, deferred
    relative = [node for node in every if isinstance(node, ast.ImportFrom) and node.level]
    modules = [node.module or alias.name for node in relative for alias in node.names]
    assert all(node.level == 1 for node in relative) and all((KG1_DIR / f"{name}.py").is_file() for name in modules)


def test_importing_kg1_and_signing_with_an_hmac_key_loads_no_cryptography():
    # Given a fresh interpreter with kg1 on its path
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kg1; "
            "kg1.sign_request('k', 's', 'GET', '/v1/time', timestamp_ms=1); "
            "print(any(name.split('.')[0] == 'cryptography' for name in sys.modules), 'kg1.ed25519' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(KG1_DIR.parent)],  # noqa: S603
                            capture_output=True, text=True, check=True)  # nosec B603
    # Then neither cryptography nor the Ed25519 module was imported
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("module", sorted(path.name for path in KG1_DIR.glob("*.py")))
def test_kg1_is_python_3_10_syntax(module):
    # The SDK (and so kg1) supports Python 3.10+
    ast.parse((KG1_DIR / module).read_text(), feature_version=(3, 10))


def python_3_10() -> str | None:
    """A Python 3.10 interpreter that runs ($PYTHON310, python3.10, or one of pyenv's), else None."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [os.environ.get("PYTHON310"), shutil.which("python3.10"),
                  *map(str, sorted(pyenv.glob("3.10*/bin/python3.10")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 10))"],  # noqa: S603
                               capture_output=True, check=False)  # nosec B603
        if probe.returncode == 0:
            return candidate
    return None


def test_kg1_signs_and_verifies_the_get_example_on_python_3_10():
    interpreter = python_3_10()
    if interpreter is None:
        pytest.skip("no Python 3.10 interpreter found (set PYTHON310)")
    # When kg1 alone runs on Python 3.10 (-I -S: nothing but the standard library and kg1)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kg1; "
            "h = kg1.sign_request('kg_live_example_key_id', 'kgs_example_secret_do_not_use', 'GET', "
            "'/v1/trade/api-keys/self', timestamp_ms=1767225600000, recv_window_ms=kg1.DEFAULT_RECV_WINDOW_MS, "
            "nonce='n0nce-3f9c2a7e1b4d4c8a'); "
            "s = kg1.parse_signed_headers(h); kg1.check_timestamp(s, 1767225600000); "
            "print(h['X-KG-SIGNATURE'], kg1.verify_signature(s, 'kgs_example_secret_do_not_use', 'GET', "
            "'/v1/trade/api-keys/self', []))")
    result = subprocess.run([interpreter, "-I", "-S", "-c", code, str(KG1_DIR.parent)],  # noqa: S603
                            capture_output=True, text=True, check=True)  # nosec B603
    # Then it signs the worked example and verifies it
    assert result.stdout.split() == [GET_SIGNATURE, "True"]


# --------------------------------------------------------------- canonical form
@given(st.text())
def test_enc_leaves_only_unreserved_characters_and_upper_case_escapes(text):
    encoded = signing.enc(text)
    assert unquote(encoded) == text
    plain = encoded.replace("%", "")
    assert all(char.isascii() and (char.isalnum() or char in "-._~") for char in plain)
    escapes = [encoded[index + 1:index + 3] for index, char in enumerate(encoded) if char == "%"]
    assert all(len(escape) == 2 and escape == escape.upper() for escape in escapes)


@pytest.mark.parametrize(("text", "encoded"), [
    ("AZaz09-._~", "AZaz09-._~"), (" ", "%20"), ("/", "%2F"), ("+", "%2B"), ("=", "%3D"), ("&", "%26"),
    ("é", "%C3%A9"), ("€", "%E2%82%AC"), ("🙂", "%F0%9F%99%82"), ("*", "%2A"), ("%", "%25"),
])
def test_enc_examples(text, encoded):
    assert signing.enc(text) == encoded


def test_canonical_path_encodes_each_segment():
    assert signing.canonical_path("/v1/trade/api-keys/self") == "/v1/trade/api-keys/self"
    assert signing.canonical_path("/v1/orders/a b/ü~") == "/v1/orders/a%20b/%C3%BC~"


@pytest.mark.parametrize("path", ["", "/", "//", "/v1/", "/v1/trade/api-keys/self", "/a.b_c~d-e/0",
                                  *(f"/v1/x{character}y/z" for character in map(chr, range(0x80))),
                                  "/v1/a\n", "/v1/\u00e9", "/v1/\u0661", "/\u212a", "/v1/\u017f", "/v1/\ud800"])
def test_canonical_path_is_each_segment_encoded_whatever_the_path(path):
    # The shortcut for paths with nothing to escape must give exactly the segment-by-segment encoding
    # (docs/signing.md: UTF-8, then %XX for every byte outside A-Z a-z 0-9 - . _ ~)
    expected = "/".join(quote(segment.encode("utf-8", "surrogatepass"), safe="-._~") for segment in path.split("/"))
    assert signing.canonical_path(path) == expected


def test_canonical_query_sorts_encoded_pairs_in_byte_order_and_keeps_repeats():
    pairs = [("b", "2"), ("a", "10"), ("a", "2"), ("flag", ""), ("Z", "x"), ("a b", "/"), ("é", "1")]
    # Upper case sorts before lower case, "%" (0x25) before letters, and "10" before "2".
    assert signing.canonical_query(pairs) == "%C3%A9=1&Z=x&a=10&a=2&a%20b=%2F&b=2&flag="
    assert signing.canonical_query([]) == ""


# ------------------------------------------------------------------ check 1
def test_valid_headers_parse_with_names_in_any_case():
    headers = {name.lower() if index % 2 else name: value
               for index, (name, value) in enumerate(valid_headers().items())}
    parsed = signing.parse_signed_headers(headers)
    assert (parsed.key_id, parsed.timestamp_ms, parsed.recv_window_ms) == (KEY_ID, 1767225600000, 5000)


def test_absent_recv_window_is_5000_and_signed_as_empty():
    parsed = signing.parse_signed_headers(valid_headers(X_KG_RECV_WINDOW=None))
    assert (parsed.recv_window, parsed.recv_window_ms) == ("", 5000)


@pytest.mark.parametrize("name", sorted(signing.SIGNED_HEADER_NAMES - {"x-kg-recv-window"}))
def test_each_missing_required_header_is_named(name):
    headers = {key: value for key, value in valid_headers().items() if key.lower() != name}
    with pytest.raises(signing.SigningError) as refused:
        signing.parse_signed_headers(headers)
    assert refused.value.code == "MISSING_HEADER" and name.upper() in refused.value.message


BAD_VALUES = {
    "empty": "", "huge": "7" * 100_000, "non-ascii": "ñ" * 20, "trailing newline": "{good}\n",
    "inner space": "{good} ", "control": "\x00" * 20,
}


@pytest.mark.parametrize("name", sorted(signing.SIGNED_HEADER_NAMES))
@pytest.mark.parametrize("kind", sorted(BAD_VALUES))
def test_malformed_values_of_every_header_are_refused(name, kind):
    good = {key.lower(): value for key, value in valid_headers().items()}[name]
    headers = {**{key.lower(): value for key, value in valid_headers().items()},
               name: BAD_VALUES[kind].format(good=good)}
    with pytest.raises(signing.SigningError) as refused:
        signing.parse_signed_headers(headers)
    assert refused.value.code == "MALFORMED_HEADER"


@pytest.mark.parametrize(("name", "value"), [
    ("X-KG-TIMESTAMP", "-1767225600000"), ("X-KG-TIMESTAMP", "1767225600000.5"), ("X-KG-TIMESTAMP", "1e12"),
    ("X-KG-TIMESTAMP", "١٧٦٧٢٢٥٦٠٠٠٠٠"),  # Arabic-Indic digits are digits to str.isdigit, not to KG1
    ("X-KG-RECV-WINDOW", "0"), ("X-KG-RECV-WINDOW", "60001"), ("X-KG-RECV-WINDOW", "five"),
    ("X-KG-RECV-WINDOW", "-5"), ("X-KG-RECV-WINDOW", "5000.0"),
    ("X-KG-NONCE", "a" * 15), ("X-KG-NONCE", "a" * 65), ("X-KG-NONCE", "abcdefghijklmnop!"),
    ("X-KG-CONTENT-SHA256", signing.EMPTY_BODY_SHA256.upper()), ("X-KG-CONTENT-SHA256", "ab" * 31),
    ("X-KG-SIGNATURE", GET_SIGNATURE.upper()), ("X-KG-SIGNATURE", GET_SIGNATURE + "0"),
    ("X-KG-API-KEY", "kg key"),
    # Bounded before int() converts them (int() refuses more than 4,300 digits: issue 13, finding 4)
    ("X-KG-TIMESTAMP", "1" * 65), ("X-KG-TIMESTAMP", "1" * 4301), ("X-KG-RECV-WINDOW", "1" * 65),
    ("X-KG-RECV-WINDOW", "1" * 4301),
])
def test_values_outside_the_grammar_are_malformed(name, value):
    with pytest.raises(signing.SigningError) as refused:
        signing.parse_signed_headers(valid_headers(**{name.replace("-", "_"): value}))
    assert refused.value.code == "MALFORMED_HEADER"


@pytest.mark.parametrize("stamp", ["1767225600000000", "1767225600000000000", "9" * 64],
                         ids=["microseconds", "nanoseconds", "64 digits"])
def test_a_timestamp_of_many_digits_is_out_of_the_window_with_the_servers_time(stamp):
    # Given a timestamp in the grammar (digits only) but not in milliseconds, e.g. a clock read in nanoseconds
    signed = signing.parse_signed_headers(valid_headers(X_KG_TIMESTAMP=stamp))
    # When check 2 runs
    with pytest.raises(signing.SigningError) as refused:
        signing.check_timestamp(signed, 1767225600000)
    # Then it is TIMESTAMP_OUT_OF_WINDOW, naming the server's time, as SIGNING.md's check 2 says
    assert refused.value.code == "TIMESTAMP_OUT_OF_WINDOW"
    assert "ahead of the server's clock (server time 1767225600000 ms" in refused.value.message


@pytest.mark.parametrize("window", ["1", "60000", "00500", "000000001"])
def test_recv_window_bounds_are_inclusive(window):
    assert signing.parse_signed_headers(valid_headers(X_KG_RECV_WINDOW=window)).recv_window == window


def test_nonce_lengths_16_and_64_are_accepted():
    for nonce in ("a" * 16, "Zz09_-" * 10 + "abcd"):
        assert signing.parse_signed_headers(valid_headers(X_KG_NONCE=nonce)).nonce == nonce


def test_a_header_sent_twice_in_different_case_is_refused():
    headers = {**valid_headers(), "x-kg-nonce": "another-nonce-0123456789"}
    with pytest.raises(signing.SigningError) as refused:
        signing.parse_signed_headers(headers)
    assert refused.value.code == "MALFORMED_HEADER"


# ------------------------------------------------------------------ check 2
NOW = 1_767_225_600_000


@pytest.mark.parametrize(("timestamp", "window", "allowed"), [
    (NOW + 1000, None, True), (NOW + 1001, None, False),
    (NOW - 5000, None, True), (NOW - 5001, None, False),
    (NOW - 1, "1", True), (NOW - 2, "1", False),
    (NOW - 60000, "60000", True), (NOW - 60001, "60000", False),
    (NOW + 1000, "1", True), (NOW, None, True),
])
def test_timestamp_window_edges(timestamp, window, allowed):
    parsed = signing.parse_signed_headers(valid_headers(X_KG_TIMESTAMP=str(timestamp), X_KG_RECV_WINDOW=window))
    if allowed:
        signing.check_timestamp(parsed, NOW)
    else:
        with pytest.raises(signing.SigningError) as refused:
            signing.check_timestamp(parsed, NOW)
        assert refused.value.code == "TIMESTAMP_OUT_OF_WINDOW"


@pytest.mark.parametrize(("timestamp", "skew", "direction"), [(NOW + 1001, 1001, "ahead"), (NOW - 5001, 5001, "behind"),
                                                              (NOW - 86_400_000, 86_400_000, "behind")])
def test_a_timestamp_refusal_gives_the_servers_time_and_the_skew(timestamp, skew, direction):
    # Given a request stamped outside the window
    parsed = signing.parse_signed_headers(valid_headers(X_KG_TIMESTAMP=str(timestamp), X_KG_RECV_WINDOW=None))
    # When it is checked
    with pytest.raises(signing.SigningError) as refused:
        signing.check_timestamp(parsed, NOW)
    # Then the message says what to fix: the server's time in epoch ms and how far the timestamp is from it
    message = refused.value.message
    assert f"server time {NOW} ms" in message and f"{skew} ms {direction}" in message, message
    assert "GET /v1/time" in message


def test_the_signature_header_takes_64_or_128_lower_case_hex_characters():
    # An HMAC-SHA256 signature is 64 hex characters, an Ed25519 one 128: both are well formed (check 1),
    # and check 4 decides whether the length fits the key's type
    assert signing.parse_signed_headers(valid_headers(X_KG_SIGNATURE="ab" * 64)).signature == "ab" * 64
    for wrong in ("ab" * 48, "ab" * 65, "AB" * 64, "ab" * 63 + "a"):
        with pytest.raises(signing.SigningError) as refused:
            signing.parse_signed_headers(valid_headers(X_KG_SIGNATURE=wrong))
        assert refused.value.code == "MALFORMED_HEADER"


# ---------------------------------------------------------- verify and bodies
def test_verify_signature_accepts_the_example_and_refuses_any_other_signature():
    parsed = signing.parse_signed_headers(valid_headers())
    assert signing.verify_signature(parsed, SECRET, "GET", "/v1/trade/api-keys/self", [])
    assert not signing.verify_signature(parsed, SECRET + "x", "GET", "/v1/trade/api-keys/self", [])
    forged = signing.parse_signed_headers(valid_headers(X_KG_SIGNATURE="0" * 64))
    assert not signing.verify_signature(forged, SECRET, "GET", "/v1/trade/api-keys/self", [])


@pytest.mark.parametrize(("body", "digest", "matches"), [
    (POST_BODY, "91231eec0d583c2a980fcd99db802310853c1bb38f22b57952d06f63b7d5a911", True),
    (None, signing.EMPTY_BODY_SHA256, True), (b"", signing.EMPTY_BODY_SHA256, True),
    (POST_BODY + b" ", "91231eec0d583c2a980fcd99db802310853c1bb38f22b57952d06f63b7d5a911", False),
    (POST_BODY, "91231EEC0D583C2A980FCD99DB802310853C1BB38F22B57952D06F63B7D5A911", False),
    (POST_BODY, None, False), (POST_BODY, "", False),
])
def test_body_matches(body, digest, matches):
    assert signing.body_matches(body, digest) is matches


def test_sign_request_refuses_what_it_could_not_send():
    with pytest.raises(ValueError):
        signing.sign_request(KEY_ID, SECRET, "GET", "v1/no-leading-slash")
    with pytest.raises(ValueError):
        signing.sign_request(KEY_ID, SECRET, "GET", "/v1/time", recv_window_ms=60001)
    with pytest.raises(ValueError):
        signing.sign_request(KEY_ID, SECRET, "GET", "/v1/time", nonce="short")


def test_generated_nonces_follow_the_grammar_and_differ():
    nonces = {signing.new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    for nonce in nonces:
        assert signing.parse_signed_headers(valid_headers(X_KG_NONCE=nonce)).nonce == nonce


@given(st.lists(st.text(min_size=1).filter(lambda s: s not in {".", ".."}), min_size=1, max_size=4))
def test_sdk_signed_path_decodes_what_the_url_encodes(segments):
    # Given a path whose segments are percent-encoded into a deployed URL
    url = f"{EXECUTE_API}/" + "/".join(quote(segment, safe="") for segment in segments)
    # Then the signed path is the decoded path relative to the API root
    assert keygate_client.signed_path(url) == "/" + "/".join(segments)


# ------------------------------------------------ messages a template can carry
UNSAFE_IN_TEMPLATE = set('"\\') | {chr(code) for code in range(0x20)} | {chr(code) for code in range(0x7f, 0xa0)}


def every_signing_error(timestamp_offset_ms: int, window: str | None) -> list[signing.SigningError]:
    """Each refusal kg1's checks 1 and 2 can raise: a missing and a malformed value of every header,
    a header sent twice, an invalid window, a timestamp ahead and one behind."""
    attempts = []
    for name in sorted(signing.SIGNED_HEADER_NAMES):
        present = {key.lower(): value for key, value in valid_headers().items()}
        attempts.append({key: value for key, value in present.items() if key != name})
        attempts.append({**present, name: "\u00e9"})
    attempts.append({**valid_headers(), "x-kg-nonce": "another-nonce-0123456789"})
    errors = []
    for headers in attempts:
        try:
            signing.parse_signed_headers(headers)
        except signing.SigningError as error:
            errors.append(error)
    for timestamp in (NOW + timestamp_offset_ms, NOW - timestamp_offset_ms):
        parsed = signing.parse_signed_headers(valid_headers(X_KG_TIMESTAMP=str(timestamp), X_KG_RECV_WINDOW=window))
        try:
            signing.check_timestamp(parsed, NOW)
        except signing.SigningError as error:
            errors.append(error)
    return errors


@given(offset=st.integers(min_value=60_001, max_value=NOW), window=st.one_of(st.none(), st.integers(1, 60000).map(str)))
def test_every_kg1_refusal_message_fits_a_gateway_response_template(offset, window):
    # Given every refusal kg1 raises (API Gateway's templates paste the message between JSON quotes, as it is)
    errors = every_signing_error(offset, window)
    # Then each of kg1's refusal sites was reached, and no message carries a quote, backslash or control character
    assert {error.code for error in errors} == {"MISSING_HEADER", "MALFORMED_HEADER", "TIMESTAMP_OUT_OF_WINDOW"}
    assert len(errors) == 5 * 2 + 1 + 1 + 2  # required headers missing and malformed, the window, twice, the clock
    for error in errors:
        assert not set(error.message) & UNSAFE_IN_TEMPLATE, error.message
    # And there is no other refusal site than the ones reached above
    source = (KG1_DIR / "verify.py").read_text()
    assert source.count("raise SigningError(") == 6  # twice, missing, malformed, window, ahead, behind
