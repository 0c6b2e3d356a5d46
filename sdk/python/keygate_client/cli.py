"""keygate-sign: a signed curl command for one request, or the response itself with --send.

The key comes from the environment (KEYGATE_API_KEY, KEYGATE_API_SECRET), never
from arguments, which end up in shell history and process lists; an Ed25519 key
signs with its private key file instead (--private-key-file, KEYGATE_API_KEY
still naming the key). The printed command carries the signature, not the secret,
and is valid for the receive window only (5 s unless --recv-window says
otherwise): run it at once.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import quote, urlsplit, urlunsplit

from keygate_client import _kg1
from keygate_client.core import ServerClock, Signer, api_root_path, read_private_key, require_http_url
from keygate_client.refusals import refusal

KEY_ENV = "KEYGATE_API_KEY"
SECRET_ENV = "KEYGATE_API_SECRET"  # noqa: S105  # nosec B105  # the variable's name, not a secret
EXIT_USAGE = 2
EXIT_NETWORK = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keygate-sign",
        description=f"Sign one request for a KeyGate-protected API. The key id and secret are read from "
                    f"{KEY_ENV} and {SECRET_ENV} (an Ed25519 key: {KEY_ENV} and --private-key-file).")
    parser.add_argument("url", metavar="URL",
                        help="the full URL, query included, e.g. https://host/prod/v1/trade/api-keys/self")
    parser.add_argument("-X", "--request", dest="method", metavar="METHOD",
                        help="HTTP method (default GET, or POST with a body)")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", metavar="BODY",
                      help="request body (sent as UTF-8, exactly as given; a file's bytes: --data-file)")
    body.add_argument("--data-file", metavar="PATH", help="read the body from this file ('-' for standard input)")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="an extra header (repeatable); Content-Type defaults to application/json with a body")
    parser.add_argument("--api-root", metavar="URL",
                        help="URL of the API root (stage or base path included); the signed path is relative "
                             "to it (default: the stage of execute-api URLs)")
    parser.add_argument("--private-key-file", metavar="PATH",
                        help="sign with this Ed25519 private key (PEM, e.g. from keygate-keygen) instead of "
                             f"{SECRET_ENV}")
    parser.add_argument("--recv-window", type=int, metavar="MS", default=_kg1.DEFAULT_RECV_WINDOW_MS,
                        help=f"receive window, 1..{_kg1.MAX_RECV_WINDOW_MS} ms (default {_kg1.DEFAULT_RECV_WINDOW_MS})")
    parser.add_argument("--sync-clock", action="store_true",
                        help="correct the clock with GET <KeyGate's API root>/v1/time first")
    parser.add_argument("--keygate-root", metavar="URL",
                        help="KeyGate's own API root, for --sync-clock, when the request goes to another API "
                             "(default: the request's API root)")
    parser.add_argument("--send", action="store_true",
                        help="send the request and print the response (and, for a refusal, its code and the fix)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="seconds for --send and --sync-clock")
    return parser


def _headers(values: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    headers = {}
    for value in values:
        name, separator, content = value.partition(":")
        if not separator or not name.strip():
            parser.error(f"header {value!r} is not 'NAME: VALUE'")
        headers[name.strip()] = content.strip()
    return headers


def _body(arguments: argparse.Namespace) -> bytes:
    if arguments.data is not None:
        return arguments.data.encode("utf-8")
    if arguments.data_file == "-":
        return sys.stdin.buffer.read()
    if arguments.data_file is not None:
        with open(arguments.data_file, "rb") as file:
            return file.read()
    return b""


def _api_root(url: str, api_root: str | None) -> str:
    if api_root is not None:
        return api_root
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{api_root_path(url)}"


# What requests leaves as it is when it percent-encodes a URL: the reserved characters, and `%` (an escape
# already made; a `%` that starts no escape is encoded too, as requests does).
_KEPT_IN_URL = "!#$%&'()*+,/:;=?@[]~"
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def requote(url: str) -> str:
    """The URL as requests sends it: in its path, query and fragment, spaces and non-ASCII characters
    percent-encoded (UTF-8) and existing escapes kept, each part on its own; the host as given (urllib sends
    an IDN's ASCII form). ValueError for what no URL holds as typed: a tab or line break (which urlsplit
    would drop), or bytes that are not UTF-8."""
    if any(char in url for char in "\t\r\n"):
        raise ValueError("the URL holds a tab or line break: percent-encode it (%09, %0D, %0A)")
    parts = urlsplit(url)
    try:
        encoded = [quote(part, safe=_KEPT_IN_URL.replace("%", "") if _BROKEN_ESCAPE.search(part) else _KEPT_IN_URL)
                   for part in parts[2:]]
    except UnicodeEncodeError:
        raise ValueError("the URL holds bytes that are not UTF-8") from None
    return urlunsplit((parts.scheme, parts.netloc, *encoded))


def curl_command(method: str, url: str, headers: dict[str, str], body: bytes, data_file: str | None) -> str:
    # -g: [ and ] are part of the path, not a curl range; --path-as-is: send /./ and /../ as signed
    words = ["curl", "-sS", "-g", "--path-as-is", "-X", method, url]
    for name, value in headers.items():
        words += ["-H", f"{name}: {value}"]
    if data_file not in (None, "-"):
        words += ["--data-binary", f"@{data_file}"]
    elif body:
        words += ["--data-binary", body.decode("utf-8")]
    return " ".join(shlex.quote(word) for word in words)


def _send(method: str, url: str, headers: dict[str, str], body: bytes, timeout: float) -> int:
    request = urllib.request.Request(require_http_url(url), data=body or None, method=method,  # noqa: S310  # http(s) only
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310  # http(s) only
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    except http.client.HTTPException as error:  # an answer that is not HTTP
        raise OSError(f"{url} did not answer HTTP: {type(error).__name__}") from error
    print(f"HTTP {status}")
    sys.stdout.write(text.decode("utf-8", "replace"))
    if text and not text.endswith(b"\n"):
        sys.stdout.write("\n")
    refused = refusal(status, text)
    if refused is not None:  # which check refused it, and what to change
        print(f"keygate-sign: refused with {refused.code}: {refused.message}", file=sys.stderr)
        print(f"keygate-sign: to fix: {refused.fix}", file=sys.stderr)
    return 0 if status < 400 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    key_id, secret = os.environ.get(KEY_ENV), os.environ.get(SECRET_ENV)
    private_key = None
    if arguments.private_key_file is not None:
        try:
            private_key = read_private_key(arguments.private_key_file)
        except (OSError, ValueError, ImportError) as error:
            print(f"keygate-sign: cannot use {arguments.private_key_file}: {error}", file=sys.stderr)
            return EXIT_USAGE
        secret = None
    if not key_id or (not secret and private_key is None):
        print(f"keygate-sign: set {KEY_ENV} and {SECRET_ENV}, or {KEY_ENV} and --private-key-file for an Ed25519 "
              "key (never pass a secret as an argument)", file=sys.stderr)
        return EXIT_USAGE
    headers = _headers(arguments.header, parser)
    if arguments.data is not None and arguments.data.startswith("@"):
        parser.error("-d takes the body itself, not @FILE as curl's -d does: sign and send a file's bytes with "
                     "--data-file PATH")
    try:
        url = requote(arguments.url)
        api_root, keygate_root = (None if root is None else requote(root) for root in (arguments.api_root,
                                                                                       arguments.keygate_root))
    except ValueError as error:
        parser.error(str(error))
    try:
        body = _body(arguments)
    except OSError as error:
        parser.error(f"cannot read the body: {error}")
    if arguments.data_file in (None, "-") and body and (b"\0" in body or not _is_utf8(body)):
        parser.error("a binary body can only be printed as a curl command from --data-file PATH (or use --send)")
    method = (arguments.method or ("POST" if body else "GET")).upper()
    if body and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    if arguments.keygate_root is not None and not arguments.sync_clock:
        parser.error("--keygate-root names where --sync-clock reads KeyGate's clock: add --sync-clock")
    try:
        clock = ServerClock.sync(keygate_root or _api_root(url, api_root),
                                 timeout=arguments.timeout) if arguments.sync_clock else None
        signer = Signer(key_id, secret, private_key=private_key, api_root=api_root, clock=clock,
                        recv_window_ms=arguments.recv_window)
        headers.update(signer.headers_for(method, url, body))
        if arguments.send:
            return _send(method, url, headers, body, arguments.timeout)
    except ValueError as error:
        parser.error(str(error))
    except OSError as error:  # URLError, timeouts, refused connections, a failed clock sync
        print(f"keygate-sign: {error}", file=sys.stderr)
        return EXIT_NETWORK
    print(curl_command(method, url, headers, body, arguments.data_file))
    window = arguments.recv_window
    print(f"# valid for {window} ms from now (X-KG-RECV-WINDOW); run it at once", file=sys.stderr)
    return 0


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
