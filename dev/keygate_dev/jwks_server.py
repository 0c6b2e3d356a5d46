"""Serve the local identity provider's JWKS documents on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from keygate_dev.identity import LocalIdentityProvider

SESSION_PATH = "/session/.well-known/jwks.json"
STEP_UP_PATH = "/passkey/.well-known/jwks.json"


class JwksServer:
    def __init__(self, provider: LocalIdentityProvider, port: int = 0) -> None:
        documents = {SESSION_PATH: provider.session_jwks(), STEP_UP_PATH: provider.step_up_jwks()}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                document = documents.get(self.path)
                body = json.dumps(document if document is not None else {"error": "not found"}).encode()
                self.send_response(200 if document is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def session_jwks_url(self) -> str:
        return self.base_url + SESSION_PATH

    @property
    def step_up_jwks_url(self) -> str:
        return self.base_url + STEP_UP_PATH

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
