"""requests integration (the `requests` extra: `pip install "./sdk/python[requests]"`)."""

from __future__ import annotations

from typing import Any

try:
    from requests import PreparedRequest
    from requests.auth import AuthBase
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("RequestsAuth needs requests: pip install requests (keygate-client's requests extra)") from error

from keygate_client import _kg1
from keygate_client.core import Clock, Signer
from keygate_client.refusals import raise_for_refusal


class RequestsAuth(AuthBase):
    """Signs each prepared request: method, URL path and query, body bytes.

    A `str` body is sent as UTF-8 (requests alone would send it as Latin-1);
    a streamed body cannot be signed before it is read, so it is refused. An
    Ed25519 key gives `private_key` instead of a secret. With
    `raise_on_refusal`, a refusal (401 with its code) raises KeyGateAuthError.
    """

    def __init__(self, key_id: str, secret: str | None = None, *, private_key: Any = None,
                 api_root: str | None = None, clock: Clock | None = None,
                 recv_window_ms: int | None = _kg1.DEFAULT_RECV_WINDOW_MS, raise_on_refusal: bool = False) -> None:
        self.signer = Signer(key_id, secret, private_key=private_key, api_root=api_root, clock=clock,
                             recv_window_ms=recv_window_ms)
        self.raise_on_refusal = raise_on_refusal

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
            request.body = body
            request.headers["Content-Length"] = str(len(body))
        elif body is not None and not isinstance(body, bytes):
            raise TypeError("RequestsAuth signs bytes or str bodies; read a file or stream into bytes first")
        request.headers.update(self.signer.headers_for(request.method or "GET", request.url or "", body))
        if self.raise_on_refusal:
            request.register_hook("response", _raise_for_refusal)
        return request

    def __repr__(self) -> str:
        return f"RequestsAuth({self.signer!r})"


def _raise_for_refusal(response: object, *args: object, **kwargs: object) -> None:
    raise_for_refusal(response)
