"""Serve the local identity provider's JWKS documents on 127.0.0.1 (keygate_dev.loopback)."""

from __future__ import annotations

from typing import Any

from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.loopback import JsonRequest, LoopbackJsonServer

SESSION_PATH = "/session/.well-known/jwks.json"
STEP_UP_PATH = "/passkey/.well-known/jwks.json"


class JwksServer(LoopbackJsonServer):
    def __init__(self, provider: LocalIdentityProvider, port: int = 0) -> None:
        documents = {SESSION_PATH: provider.session_jwks(), STEP_UP_PATH: provider.step_up_jwks()}

        def answer(request: JsonRequest) -> tuple[int, Any]:
            document = documents.get(request.target) if request.method == "GET" else None
            return (200, document) if document is not None else (404, {"error": "not found"})

        super().__init__(answer, port)

    @property
    def session_jwks_url(self) -> str:
        return self.base_url + SESSION_PATH

    @property
    def step_up_jwks_url(self) -> str:
        return self.base_url + STEP_UP_PATH
