"""httpx integration (the `httpx` extra: `pip install "./sdk/python[httpx]"`)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

try:
    import httpx
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("HttpxAuth needs httpx: pip install httpx (the httpx extra of keygate-client)") from error

from keygate_client import _kg1
from keygate_client.core import Clock, Signer
from keygate_client.refusals import raise_for_refusal


class HttpxAuth(httpx.Auth):
    """Signs each request as it is sent: method, URL path and query, body bytes.

    `api_root` is the URL up to the stage or base path (see keygate_client.core);
    `clock` returns milliseconds (a ServerClock, say). An Ed25519 key gives
    `private_key` (PEM, the 32-byte seed, an Ed25519PrivateKey: see
    keygate_client.read_private_key) instead of a secret. With `raise_on_refusal`, a
    refusal (401 with its code) raises KeyGateAuthError instead of being returned.
    """

    requires_request_body = True  # httpx reads a streamed body before auth_flow sees it

    def __init__(self, key_id: str, secret: str | None = None, *, private_key: Any = None,
                 api_root: str | None = None, clock: Clock | None = None,
                 recv_window_ms: int | None = _kg1.DEFAULT_RECV_WINDOW_MS, raise_on_refusal: bool = False) -> None:
        self.signer = Signer(key_id, secret, private_key=private_key, api_root=api_root, clock=clock,
                             recv_window_ms=recv_window_ms)
        self.raise_on_refusal = raise_on_refusal
        self.requires_response_body = raise_on_refusal  # the refusal's code is in the body

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.signer.headers_for(request.method, str(request.url), request.content))
        response = yield request
        if self.raise_on_refusal:
            raise_for_refusal(response)

    def __repr__(self) -> str:
        return f"HttpxAuth({self.signer!r})"
