"""docs/signing.md's worked examples, recomputed with kg1 byte for byte, and its openssl one-liner, run.

Each example is the table after a `<!-- worked example -->` comment (the request and its headers), the
```text block that follows (the string to sign) and its `X-KG-SIGNATURE:` line; the Ed25519 example is the
one after `<!-- worked example: ed25519 -->` (its key instead of a secret). The one-liners are the blocks
after `<!-- openssl check -->` and `<!-- openssl ed25519 check -->`. Rewording the prose never breaks a
test; changing an example without the code (or the code without the example) does.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shlex
import shutil
import subprocess  # nosec B404  # runs bash and openssl on the page's own one-liner
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote

import pytest

import kg1

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "signing.md").read_text()
MARKER = "<!-- worked example -->"
WORKED_EXAMPLES = DOC[DOC.index("## Worked examples"):]
WORKED_EXAMPLES = WORKED_EXAMPLES[:WORKED_EXAMPLES.index("\n## ", 1)]


@dataclass(frozen=True)
class Example:
    method: str
    path: str
    query_pairs: list[tuple[str, str]]
    body: bytes
    timestamp: str
    recv_window: str  # "" when the header is absent
    nonce: str
    key_id: str
    secret: str
    string_to_sign: str
    signature: str


def code(cell: str) -> str:
    found = re.fullmatch(r"`([^`]*)`", cell.strip())
    assert found, f"expected one `code` value, got {cell!r}"
    return found.group(1)


def parse_example(section: str) -> Example:
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", section.split("\n\n")[0], re.MULTILINE))
    method, target = code(rows["request"]).split(" ", 1)
    path, _, query = target.partition("?")
    [string_to_sign] = re.findall(r"```text\n(.*?)\n```", section, re.DOTALL)[:1]
    [signature] = re.findall(r"^X-KG-SIGNATURE: `([0-9a-f]+)`$", section, re.MULTILINE)
    return Example(
        method=method, path=unquote(path), query_pairs=parse_qsl(query, keep_blank_values=True),
        body=b"" if rows["body"] == "none" else code(rows["body"]).encode("utf-8"),
        timestamp=code(rows["X-KG-TIMESTAMP"]),
        recv_window="" if rows["X-KG-RECV-WINDOW"] == "absent" else code(rows["X-KG-RECV-WINDOW"]),
        nonce=code(rows["X-KG-NONCE"]), key_id=code(rows["X-KG-API-KEY"]), secret=code(rows["secret"]),
        string_to_sign=string_to_sign, signature=signature)


ED25519_MARKER = "<!-- worked example: ed25519 -->"
EXAMPLES = [parse_example(section.split(ED25519_MARKER)[0]) for section in WORKED_EXAMPLES.split(MARKER)[1:]]
IDS = [f"{example.method} {example.path}" for example in EXAMPLES]


def test_every_example_on_the_page_is_checked():
    # Given the worked examples section
    # Then each string to sign and signature in it belongs to a marked example (none escapes the tests)
    assert len(EXAMPLES) >= 2 and {"GET", "POST"} <= {example.method for example in EXAMPLES}
    assert WORKED_EXAMPLES.count("```text\n") == len(EXAMPLES) + WORKED_EXAMPLES.count(ED25519_MARKER) == 3
    assert WORKED_EXAMPLES.count("X-KG-SIGNATURE: `") == len(EXAMPLES) + 1
    # And between them they cover a query, a body and both forms of the receive window
    assert any(example.query_pairs for example in EXAMPLES) and any(example.body for example in EXAMPLES)
    assert {bool(example.recv_window) for example in EXAMPLES} == {True, False}


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_kg1_computes_the_examples_string_to_sign_and_signature(example):
    # When kg1 canonicalises the example's request
    text = kg1.string_to_sign(timestamp=example.timestamp, recv_window=example.recv_window, nonce=example.nonce,
                              key_id=example.key_id, method=example.method, path=example.path,
                              query_pairs=example.query_pairs, content_sha256=kg1.content_sha256(example.body))
    # Then the string to sign and its HMAC are the page's, byte for byte
    assert text == example.string_to_sign
    assert kg1.signature(example.secret, text) == example.signature


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_a_client_signing_the_example_sends_the_pages_headers_and_the_server_accepts_them(example):
    # When the client side signs the example's request
    headers = kg1.sign_request(example.key_id, example.secret, example.method, example.path, example.query_pairs,
                               example.body, timestamp_ms=int(example.timestamp),
                               recv_window_ms=int(example.recv_window) if example.recv_window else None,
                               nonce=example.nonce)
    # Then it sends the page's signature, and the window header only when the example has one
    assert headers[kg1.HEADER_SIGNATURE] == example.signature
    assert headers.get(kg1.HEADER_RECV_WINDOW, "") == example.recv_window
    # And the verifying side accepts the request at the example's time
    signed = kg1.parse_signed_headers(headers)
    kg1.check_timestamp(signed, int(example.timestamp))
    assert kg1.verify_signature(signed, example.secret, example.method, example.path, example.query_pairs)
    assert kg1.body_matches(example.body, signed.content_sha256)


def openssl_line() -> list[str]:
    found = re.search(r"<!-- openssl check -->\n```sh\n(.*?)\n```", DOC, re.DOTALL)
    assert found, "no one-liner after the '<!-- openssl check -->' comment"
    return shlex.split(found.group(1))


def test_the_openssl_one_liner_hashes_a_worked_example_with_its_secret():
    # Given the one-liner's printf argument and openssl's key
    words = openssl_line()
    assert words[0] == "printf" and words[2] == "|" and words[3:7] == ["openssl", "dgst", "-sha256", "-hmac"]
    printed = words[1].replace("\\n", "\n")
    # Then it prints exactly one example's string to sign (no trailing newline) under that example's secret
    [example] = [example for example in EXAMPLES if example.string_to_sign == printed]
    assert words[7:] == [example.secret, "-r", "|", "cut", "-d ", "-f1"]  # (-r and cut: the hex alone)
    # And what openssl computes from them, done here without kg1, is that example's signature
    assert hmac.new(example.secret.encode(), printed.encode(), hashlib.sha256).hexdigest() == example.signature


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("bash") is None,
                    reason="the one-liner needs bash and openssl, which this machine lacks")
def test_the_openssl_one_liner_prints_the_examples_signature():
    printed = openssl_line()[1].replace("\\n", "\n")
    [example] = [example for example in EXAMPLES if example.string_to_sign == printed]
    line = re.search(r"<!-- openssl check -->\n```sh\n(.*?)\n```", DOC, re.DOTALL).group(1)
    # When the page's line runs in bash
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True,  # noqa: S603, S607
                            env={"PATH": os.environ["PATH"]})  # nosec B603 B607
    # Then it prints the example's signature and nothing else (OpenSSL 1.1 and 3 label their output otherwise)
    assert result.stdout == example.signature + "\n"


# ------------------------------------------------------------------ Ed25519
@dataclass(frozen=True)
class Ed25519Example:
    request: Example  # its `secret` is unused
    seed: bytes
    private_pkcs8: str
    public_base64: str
    public_pem_body: str


def parse_ed25519_example() -> Ed25519Example:
    section = WORKED_EXAMPLES.split(ED25519_MARKER)[1]
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", section.split("\n\n")[0], re.MULTILINE))
    request = parse_example(section.replace("| X-KG-API-KEY |", "| secret | `unused` |\n| X-KG-API-KEY |"))
    return Ed25519Example(request=request, seed=bytes.fromhex(code(rows["private key (the 32-byte seed, hex)"])),
                          private_pkcs8=code(rows["private key (PKCS#8, between the PRIVATE KEY lines)"]),
                          public_base64=code(rows["public key (base64 of the 32 raw bytes)"]),
                          public_pem_body=code(rows["public key (PEM, between the PUBLIC KEY lines)"]))


ED25519_EXAMPLE = parse_ed25519_example()


def test_the_ed25519_example_byte_for_byte():
    example, request = ED25519_EXAMPLE, ED25519_EXAMPLE.request
    # When kg1 signs the example's request with its private key (the seed, or the PKCS#8 PEM)
    pem = f"-----BEGIN PRIVATE KEY-----\n{example.private_pkcs8}\n-----END PRIVATE KEY-----\n"
    for private_key in (example.seed, pem):
        headers = kg1.sign_request(request.key_id, None, request.method, request.path, request.query_pairs,
                                   request.body, timestamp_ms=int(request.timestamp),
                                   recv_window_ms=int(request.recv_window), nonce=request.nonce,
                                   private_key=private_key)
        # Then it signs the page's string to sign (first line KG1-ED25519) and sends the page's signature
        assert headers[kg1.HEADER_SIGNATURE] == request.signature
    assert request.string_to_sign.startswith("KG1-ED25519\n")
    assert kg1.string_to_sign(timestamp=request.timestamp, recv_window=request.recv_window, nonce=request.nonce,
                              key_id=request.key_id, method=request.method, path=request.path,
                              query_pairs=request.query_pairs, content_sha256=kg1.content_sha256(request.body),
                              scheme="KG1-ED25519") == request.string_to_sign
    # And the page's public key, in both forms, is the private key's and verifies the request
    from kg1 import ed25519
    raw = ed25519.public_key_of(ed25519.load_private_key(example.seed))
    public_pem = f"-----BEGIN PUBLIC KEY-----\n{example.public_pem_body}\n-----END PUBLIC KEY-----\n"
    assert ed25519.parse_public_key(example.public_base64) == ed25519.parse_public_key(public_pem) == raw
    signed = kg1.parse_signed_headers(headers)
    kg1.check_timestamp(signed, int(request.timestamp))
    assert kg1.verify_ed25519_signature(signed, raw, request.method, request.path, request.query_pairs)


def openssl_supports_rawin() -> bool:
    """OpenSSL 3's `pkeyutl -rawin` (Ed25519 signs the message itself, not a digest of it)."""
    if shutil.which("openssl") is None or shutil.which("bash") is None:
        return False
    usage = subprocess.run(["openssl", "pkeyutl", "-help"], capture_output=True, text=True, check=False)  # noqa: S607  # nosec B603 B607
    return "-rawin" in usage.stdout + usage.stderr


@pytest.mark.skipif(not openssl_supports_rawin(), reason="needs bash and OpenSSL 3 (pkeyutl -rawin)")
def test_the_openssl_ed25519_one_liner_prints_the_examples_signature(tmp_path):
    line = re.search(r"<!-- openssl ed25519 check -->\n```sh\n(.*?)\n```", DOC, re.DOTALL).group(1)
    # When the page's line runs in bash (it writes key.pem and sts in the current directory)
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True, cwd=tmp_path,  # noqa: S603, S607
                            env={"PATH": os.environ["PATH"]})  # nosec B603 B607
    # Then OpenSSL prints the example's signature, over exactly the example's string to sign
    assert result.stdout.strip() == ED25519_EXAMPLE.request.signature
    assert (tmp_path / "sts").read_text() == ED25519_EXAMPLE.request.string_to_sign
