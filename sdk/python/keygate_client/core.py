"""Signing a request as it is sent: URL in, the six X-KG-* headers out.

KG1 signs the decoded path *relative to the API root* (no stage, no base-path
mapping) and the decoded query pairs. A deployed URL such as
`https://abc123.execute-api.eu-west-1.amazonaws.com/prod/v1/time` carries the
stage `/prod` in front, which is not signed: pass `api_root` (the URL up to
and including the stage or base path) or rely on the default, which strips
the stage of `*.execute-api.*.amazonaws.com` hosts and nothing elsewhere.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from keygate_client import _kg1

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

Clock = Callable[[], int]
# A regional or edge API's host, and a private API's (<api id>-<VPC endpoint id>.execute-api...)
_EXECUTE_API_HOST = re.compile(r"[a-z0-9]+(-vpce-[a-z0-9]+)?\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")


def local_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def require_http_url(url: str) -> str:
    """The URL unchanged if it is http(s); urllib would also open file: and ftp: URLs."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


def sign(key_id: str, secret: str | None, method: str, path: str, query_pairs: Iterable[tuple[str, str]] = (),
         body: bytes | None = b"", *, timestamp_ms: int | None = None,
         recv_window_ms: int | None = _kg1.DEFAULT_RECV_WINDOW_MS, nonce: str | None = None,
         private_key: Ed25519PrivateKey | str | bytes | None = None) -> dict[str, str]:
    """The six X-KG-* headers; `recv_window_ms=None` leaves X-KG-RECV-WINDOW out (the server then uses 5000).

    The window is sent explicitly by default so a request states its own validity instead of relying
    on the server's default.

    `path` is the decoded path relative to the API root, `query_pairs` the
    decoded (name, value) pairs in any order, repeats included; the nonce
    comes from `secrets` unless given. An Ed25519 key signs with
    `private_key` (PKCS#8 PEM, the 32-byte seed or an Ed25519PrivateKey) and
    `secret=None`: `sign(key_id, None, "GET", path, private_key=key)`; it
    needs the `ed25519` extra (cryptography).
    """
    return _kg1.sign_request(key_id, secret, method, path, query_pairs, body, timestamp_ms=timestamp_ms,
                             recv_window_ms=recv_window_ms, nonce=nonce, private_key=private_key)


def read_private_key(path: str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (what keygate-keygen or `openssl genpkey -algorithm ed25519` write)."""
    from keygate_client._kg1 import ed25519

    return ed25519.load_private_key(Path(path).read_bytes())


def api_root_path(url: str, api_root: str | None = None) -> str:
    """The path prefix of the API root that a URL's signed path leaves out ("" for none)."""
    if api_root is not None:
        return urlsplit(api_root).path.rstrip("/")
    parts = urlsplit(url)
    if _EXECUTE_API_HOST.fullmatch(parts.hostname or ""):
        stage = parts.path.lstrip("/").split("/", 1)[0]
        return f"/{stage}" if stage else ""
    return ""


def signed_path(url: str, api_root: str | None = None) -> str:
    """The decoded path relative to the API root, from a URL as sent (percent-encoded)."""
    path = urlsplit(url).path or "/"
    root = api_root_path(url, api_root)
    if root:
        if path != root and not path.startswith(root + "/"):
            raise ValueError(f"the URL path {path!r} is not under the API root {root!r}")
        path = path[len(root):] or "/"
    return unquote(path)


def query_pairs(url: str) -> list[tuple[str, str]]:
    """The decoded query pairs as API Gateway hands them on (`+` is a space, `a` is `a=`)."""
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


class Signer:
    """Signs whole requests with one key; what HttpxAuth, RequestsAuth and the CLI share.

    An HMAC-SHA256 key gives its `secret`; an Ed25519 key its `private_key` instead (loaded once).
    """

    def __init__(self, key_id: str, secret: str | None = None, *, private_key: Ed25519PrivateKey | str | bytes |
                 None = None, api_root: str | None = None, clock: Clock | None = None,
                 recv_window_ms: int | None = _kg1.DEFAULT_RECV_WINDOW_MS) -> None:
        if (secret is None) == (private_key is None):
            raise ValueError("give either the key's secret (HMAC-SHA256) or its private key (Ed25519)")
        self.key_id = key_id
        self._secret = secret
        self._private_key = None
        if private_key is not None:
            from keygate_client._kg1 import ed25519

            self._private_key = ed25519.load_private_key(private_key)
        _kg1.check_recv_window(recv_window_ms)  # now, not at the first request
        self.api_root = api_root
        self.clock = clock or local_clock_ms
        self.recv_window_ms = recv_window_ms

    @property
    def key_type(self) -> str:
        return "hmac-sha256" if self._private_key is None else "ed25519"

    def headers_for(self, method: str, url: str, body: bytes | None) -> dict[str, str]:
        return sign(self.key_id, self._secret, method, signed_path(url, self.api_root), query_pairs(url), body,
                    timestamp_ms=self.clock(), recv_window_ms=self.recv_window_ms, private_key=self._private_key)

    def __repr__(self) -> str:  # never the secret nor the private key
        return f"{type(self).__name__}(key_id={self.key_id!r}, key_type={self.key_type!r}, api_root={self.api_root!r})"


class ClockSyncError(OSError):
    """KeyGate's clock could not be read: GET <root>/v1/time failed or did not answer as KeyGate's does."""


def _server_time(body: object, time_url: str) -> int:
    server_time = body.get("server_time") if isinstance(body, dict) else None
    if isinstance(server_time, bool) or not isinstance(server_time, int):
        raise ClockSyncError(f"GET {time_url} did not answer KeyGate's {{\"server_time\": <epoch ms>}}: "
                             "sync the clock from KeyGate's own API root")
    return server_time


class ServerClock:
    """The local clock corrected by its offset to KeyGate's clock; call it for milliseconds.

    KeyGate refuses timestamps more than 1 s ahead of its clock or older than
    the receive window, so a bot whose clock drifts should sync at start-up
    (and now and then): `clock = ServerClock.sync(api_root)`.
    """

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def __call__(self) -> int:
        return local_clock_ms() + self.offset_ms

    @classmethod
    def sync(cls, api_root: str, *, samples: int = 3, timeout: float = 5.0) -> ServerClock:
        """Measure the offset with GET <api_root>/v1/time, keeping the sample with the shortest round trip.

        `api_root` is KeyGate's own API (the one serving /v1/time), which may not be the API the bot trades on.
        Raises ClockSyncError (an OSError) when that fails or answers something else.
        """
        best: tuple[int, int] | None = None
        time_url = require_http_url(api_root.rstrip("/") + "/v1/time")
        for _ in range(max(1, samples)):
            sent = local_clock_ms()
            try:
                with urllib.request.urlopen(time_url, timeout=timeout) as response:  # noqa: S310  # nosec B310  # http(s) only
                    body = json.load(response)
            except urllib.error.HTTPError as error:
                raise ClockSyncError(f"GET {time_url} answered HTTP {error.code}: sync the clock from KeyGate's "
                                     "own API root, which serves /v1/time") from error
            except (OSError, http.client.HTTPException) as error:
                raise ClockSyncError(f"GET {time_url} failed: {error}") from error
            except ValueError as error:  # not JSON
                raise ClockSyncError(f"GET {time_url} did not answer JSON: sync the clock from KeyGate's own "
                                     "API root") from error
            server_ms = _server_time(body, time_url)
            received = local_clock_ms()
            round_trip, offset = received - sent, server_ms - (sent + received) // 2
            if best is None or round_trip < best[0]:
                best = (round_trip, offset)
        return cls(best[1])

    def __repr__(self) -> str:
        return f"ServerClock(offset_ms={self.offset_ms})"
