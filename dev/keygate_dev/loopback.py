"""A small HTTP server on 127.0.0.1 that answers every request with JSON from a function.

The local identity provider's JWKS (keygate_dev.jwks_server) is served with
it, and tests use it as a stand-in API (tests/support/loopback.py). It binds
when built (port 0: a free one), so a port already in use fails before
anything starts; it serves on a daemon thread between entering and leaving
its `with` block. Stopping needs no signal, so it stops whatever SIGINT and
SIGTERM dispositions the process has inherited or set (`keygate dev serve`
ignores both while it cleans up).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

HOST = "127.0.0.1"


@dataclass(frozen=True)
class JsonRequest:
    method: str
    target: str  # the path as sent, query included
    headers: Mapping[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


# The status and the JSON document to answer with.
Answer = Callable[[JsonRequest], tuple[int, Any]]


class LoopbackJsonServer:
    """Serves `answer` on 127.0.0.1:`port` as JSON; a context manager that starts and stops it."""

    def __init__(self, answer: Answer, port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    status, document = answer(JsonRequest(self.command, self.path, dict(self.headers.items()), body))
                except Exception as error:  # noqa: BLE001 - the client gets the failure, not a closed socket
                    status, document = 500, {"error": {"code": "INTERNAL_ERROR", "message": repr(error)}}
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815  # http.server's names

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((HOST, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
