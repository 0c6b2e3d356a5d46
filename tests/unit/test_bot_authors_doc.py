"""The README's bot-author section says what the code does: its shell recipe signs docs/signing.md's example
byte for byte, its keygate-sign usage is the command's own, and its attach snippet is what KeyGate exports.

Each checked block is found by the HTML comment right above it, so rewording the prose never breaks a test
but changing a checked block without changing the code does.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess  # nosec B404  # runs bash and openssl on the doc's own snippets, no shell string from outside
from pathlib import Path

import pytest
from samcli.yamlhelper import yaml_parse

import keygate_client
import kg1 as signing
from keygate_client import cli
from keygate_dev import template

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "README.md").read_text()
SDK_README = (ROOT / "sdk" / "python" / "README.md").read_text()
EXAMPLE_KEY_ID = "kg_live_example_key_id"
EXAMPLE_SECRET = "kgs_example_secret_do_not_use"
POST_SIGNATURE = "23f9060393b44bb2a737180972e288379a142a69cc142a08f262a973f7a04ff2"
GET_SIGNATURE = "458772e593bd5f81e4cb9b146b16e1e8a75a42580340dd6f32473997dbd907b8"
POST_QUERY_PAIRS = [("symbol", "BTC-USDT"), ("client id", "a b/c"), ("a", "2"), ("a", "10")]
POST_BODY = b'{"symbol":"BTC-USDT","side":"buy","qty":"0.5"}'

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("bash") is None,
                                   reason="the shell recipe needs bash and openssl")


def block_after(marker: str, document: str = DOC) -> str:
    """The fenced code block right after `<!-- marker... -->`."""
    found = re.search(r"<!-- " + re.escape(marker) + r"[^>]*-->\n```[a-z]*\n(.*?)\n```", document, re.DOTALL)
    assert found, f"no code block after the '{marker}' comment"
    return found.group(1)


def fenced_blocks(language: str) -> list[str]:
    return re.findall(r"```" + language + r"\n(.*?)\n```", DOC, re.DOTALL)


def run_shell_recipe(**environment: str) -> subprocess.CompletedProcess[str]:
    """Run the doc's signing script with `curl` replaced by a function that prints its arguments, one per line."""
    script = "curl() { printf '%s\\n' \"$@\"; }\n" + block_after("shell signing example")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,  # noqa: S603, S607  # nosec B603 B607
                          env={"PATH": os.environ["PATH"], "KEYGATE_API_KEY": EXAMPLE_KEY_ID,
                               "KEYGATE_API_SECRET": EXAMPLE_SECRET, **environment})


def curl_headers(arguments: list[str]) -> dict[str, str]:
    return dict(arguments[index + 1].split(": ", 1) for index, word in enumerate(arguments) if word == "-H")


# ------------------------------------------------------------------ shell recipe
@needs_openssl
def test_the_shell_recipe_produces_the_worked_example_signature():
    # Given docs/signing.md's POST example's timestamp, nonce, key id and secret
    # When the doc's bash + openssl recipe signs it
    ran = run_shell_recipe(TIMESTAMP="1767225601234", NONCE="Zx9_-abcdefghijklmnop")
    arguments = ran.stdout.splitlines()
    headers = curl_headers(arguments)
    # Then curl would send docs/signing.md's signature and digest, the body as signed, and no recv window header
    assert headers["X-KG-SIGNATURE"] == POST_SIGNATURE
    assert headers["X-KG-CONTENT-SHA256"] == signing.content_sha256(POST_BODY)
    assert arguments[arguments.index("--data-binary") + 1].encode() == POST_BODY
    assert "X-KG-RECV-WINDOW" not in headers
    # And the URL it calls decodes to the path and query pairs that were signed
    url = arguments[arguments.index("-X") + 2]
    assert keygate_client.signed_path(url) == "/v1/trade/orders"
    assert sorted(keygate_client.query_pairs(url)) == sorted(POST_QUERY_PAIRS)
    # And it shows the signature it sends (the README's comment), nothing else
    assert ran.stderr == f"X-KG-SIGNATURE: {POST_SIGNATURE}\n"


@needs_openssl
def test_the_shell_recipe_sends_to_the_api_root_from_the_environment():
    arguments = run_shell_recipe(API_ROOT="http://127.0.0.1:3000").stdout.splitlines()
    assert arguments[arguments.index("-X") + 2].startswith("http://127.0.0.1:3000/v1/trade/orders?")


@needs_openssl
def test_the_shell_recipe_with_a_fresh_clock_and_nonce_signs_a_request_keygate_accepts():
    # When the recipe runs as a bot would run it (its own timestamp and nonce)
    before = keygate_client.local_clock_ms()
    headers = curl_headers(run_shell_recipe().stdout.splitlines())
    after = keygate_client.local_clock_ms()
    # Then the headers are well formed, stamped in ms while it ran, and verify over the request it sends
    signed = signing.parse_signed_headers(headers)
    assert before <= signed.timestamp_ms <= after
    assert signing.verify_signature(signed, EXAMPLE_SECRET, "POST", "/v1/trade/orders", POST_QUERY_PAIRS)
    assert signed.nonce != "Zx9_-abcdefghijklmnop"


@needs_openssl
def test_the_openssl_one_liner_prints_the_get_example_signature():
    result = subprocess.run(["bash", "-c", block_after("openssl check")], capture_output=True, text=True,  # noqa: S603, S607
                            check=True, env={"PATH": os.environ["PATH"]})  # nosec B603 B607
    assert result.stdout == GET_SIGNATURE + "\n"  # the signature alone, as the README says it prints


# ------------------------------------------------------------------ keygate-sign
@pytest.mark.parametrize("document", [DOC, SDK_README], ids=["README", "sdk README"])
def test_the_documented_usage_is_the_commands_own(document):
    documented = " ".join(block_after("keygate-sign usage", document).split())
    actual = " ".join(cli._parser().format_usage().removeprefix("usage:").split())
    assert documented == actual


def test_every_option_of_the_command_is_documented_and_no_other():
    options = {option for action in cli._parser()._actions for option in action.option_strings
               if option.startswith("--") or len(option) == 2}
    table = DOC[DOC.index("| option | meaning |"):DOC.index("keygate-sign examples")]
    documented = set(re.findall(r"`(-{1,2}[A-Za-z][a-z-]*)", table))
    assert documented, "the option table is missing"
    assert documented <= options
    # Every option is documented under one of its names (-h/--help excepted: argparse's own)
    undocumented = [action.option_strings for action in cli._parser()._actions if action.option_strings
                    and not set(action.option_strings) & documented and "--help" not in action.option_strings]
    assert undocumented == []


def test_every_documented_example_command_parses():
    lines = [line.split("  #")[0] for line in block_after("keygate-sign examples").splitlines()
             if line.startswith("keygate-sign ")]
    assert len(lines) >= 2
    for line in lines:
        arguments = cli._parser().parse_args(shlex.split(line)[1:])
        assert arguments.url.startswith("https://")


# ---------------------------------------------------------------------- python
def test_the_python_examples_compile_and_import_only_what_the_sdk_exports():
    blocks = [block for block in fenced_blocks("python") if "keygate_client" in block]
    assert blocks
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "keygate_client":
                for alias in node.names:
                    assert getattr(keygate_client, alias.name, None) is not None, alias.name


# ------------------------------------------------------------------ integrators
def test_the_attach_snippet_imports_what_keygate_exports_and_matches_its_own_authorizer():
    snippet = yaml_parse(block_after("attach snippet"))["Resources"]
    api = next(resource for resource in snippet.values() if resource["Type"] == "AWS::Serverless::Api")
    attached = api["Properties"]["Auth"]["Authorizers"][api["Properties"]["Auth"]["DefaultAuthorizer"]]
    # The import names KeyGate's export (for a stack called keygate-prod) ...
    export = template.load_template()["Outputs"]["SignatureAuthorizerArn"]["Export"]["Name"]["Fn::Sub"]
    assert attached["FunctionArn"] == {"Fn::ImportValue": export.replace("${AWS::StackName}", "keygate-prod")}
    # ... with the payload, the absence of identity sources and the disabled cache of KeyGate's own API
    own = template.resources("AWS::Serverless::Api")["KeyGateApi"]["Properties"]["Auth"]["Authorizers"][
        "SignatureAuthorizer"]
    assert (attached["FunctionPayloadType"], attached["Identity"]) == (own["FunctionPayloadType"], own["Identity"])
    assert attached["Identity"] == {"ReauthorizeEvery": 0}
    # And its ACCESS_DENIED (every refusal: 401 with the Deny's code and message) and AUTHORIZER_CONFIGURATION_ERROR
    # and AUTHORIZER_FAILURE (an authorizer that raises: 503 with Retry-After, never a bare 500) responses are
    # KeyGate's and the example's (declared on the Api, so that a change to one redeploys the stage)
    for response_type in ("ACCESS_DENIED", "AUTHORIZER_CONFIGURATION_ERROR", "AUTHORIZER_FAILURE"):
        assert api["Properties"]["GatewayResponses"][response_type] == \
            template.gateway_responses()[response_type] == \
            template.gateway_responses(template.EXAMPLE_TEMPLATE_PATH)[response_type], response_type
    # And it keeps the example's access log, the record of every request a key got through (the authorizer
    # logs refusals only)
    [example_api] = [resource["Properties"] for resource in template.load_template(template.EXAMPLE_TEMPLATE_PATH)[
        "Resources"].values() if resource["Type"] == "AWS::Serverless::Api"]
    assert api["Properties"]["AccessLogSetting"]["Format"] == example_api["AccessLogSetting"]["Format"]
    assert snippet[api["Properties"]["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]]["Type"] == \
        "AWS::Logs::LogGroup"
    # And it puts KeyGate's exported web ACL in front of its stage, as the example does
    [association] = [resource["Properties"] for resource in snippet.values()
                     if resource["Type"] == "AWS::WAFv2::WebACLAssociation"]
    web_acl_export = template.load_template()["Outputs"]["WebAclArn"]["Export"]["Name"]["Fn::Sub"]
    assert association["WebACLArn"] == {"Fn::ImportValue": web_acl_export.replace("${AWS::StackName}", "keygate-prod")}
    [example] = [resource["Properties"] for resource in template.load_template(template.EXAMPLE_TEMPLATE_PATH)[
        "Resources"].values() if resource["Type"] == "AWS::WAFv2::WebACLAssociation"]
    assert association["ResourceArn"] == example["ResourceArn"]


# ------------------------------------------------------------------ refusals
def test_the_refusal_table_lists_every_code_a_bot_can_receive_each_401_with_a_fix():
    from keygate.authorizer import REFUSAL_CODES
    table = DOC[DOC.index("<!-- refusal codes"):DOC.index("Other answers:")]
    rows = re.findall(r"^\| (\d{3}) \| `([A-Z_]+)` \| (.+) \|$", table, re.MULTILINE)
    # Every code the authorizer refuses with, in the order of its checks, then the backend's body check
    assert [code for _, code, _ in rows] == [code.value for code in REFUSAL_CODES] + ["BODY_DIGEST_MISMATCH"]
    # Each one 401, with what to fix, and the SDK offers a fix for each (KeyGateAuthError.fix)
    assert {status for status, _, _ in rows} == {"401"}
    assert all(len(fix) > 20 for _, _, fix in rows)
    assert set(keygate_client.FIXES) == {code for _, code, _ in rows}


# ------------------------------------------------------------------ Ed25519
def test_the_documented_keygen_usage_is_the_commands_own():
    from keygate_client import keygen
    documented = " ".join(block_after("keygate-keygen usage").split())
    assert documented == " ".join(keygen._parser().format_usage().removeprefix("usage:").split())


def openssl_supports_rawin() -> bool:
    if shutil.which("openssl") is None or shutil.which("bash") is None:
        return False
    usage = subprocess.run(["openssl", "pkeyutl", "-help"], capture_output=True, text=True, check=False)  # noqa: S607  # nosec B603 B607
    return "-rawin" in usage.stdout + usage.stderr


@pytest.mark.skipif(not openssl_supports_rawin(), reason="needs bash and OpenSSL 3 (pkeyutl -rawin)")
def test_the_openssl_only_ed25519_recipe_signs_what_the_authorizer_verifies(tmp_path):
    from kg1 import ed25519
    # Given the README's OpenSSL-only recipe, and a string to sign as sign.sh builds it (first line KG1-ED25519)
    string_to_sign = signing.string_to_sign(
        timestamp="1767225600000", recv_window="5000", nonce="n0nce-3f9c2a7e1b4d4c8a", key_id=EXAMPLE_KEY_ID,
        method="GET", path="/v1/trade/api-keys/self", query_pairs=[], content_sha256=signing.EMPTY_BODY_SHA256,
        scheme=ed25519.SCHEME)
    script = block_after("openssl ed25519 recipe") + '\nprintf "%s\\n" "$SIGNATURE"\n'
    # When it runs in a fresh directory
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=True,  # noqa: S603, S607
                            cwd=tmp_path, env={"PATH": os.environ["PATH"], "STRING_TO_SIGN": string_to_sign,  # nosec B603 B607
                                               "TMPDIR": str(temporary)})
    lines = result.stdout.splitlines()
    public_pem, public_base64, signature = "\n".join(lines[:3]) + "\n", lines[3], lines[4]
    # Then the private key file is its owner's alone, the two public forms are one key KeyGate accepts,
    # and the 128-hex-character signature verifies under it
    assert (tmp_path / "keygate-ed25519.pem").stat().st_mode & 0o077 == 0
    raw = ed25519.parse_public_key(public_pem)
    assert ed25519.parse_public_key(public_base64) == raw
    assert len(signature) == 128 and ed25519.verify(raw, string_to_sign, signature)
    assert not list(temporary.iterdir())  # the temporary string-to-sign file is gone
