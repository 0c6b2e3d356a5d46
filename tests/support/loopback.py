"""A throwaway JSON API on 127.0.0.1 for tests of clients (the SDK's clock sync and `keygate-sign --send`).

The server is the dev tooling's (keygate_dev.loopback, which also serves the local JWKS).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from keygate_dev.loopback import Answer, JsonRequest, LoopbackJsonServer

__all__ = ["Answer", "JsonRequest", "serving"]


@contextmanager
def serving(answer: Answer, path: str = "/prod") -> Iterator[str]:
    """Serve `answer` on a free loopback port; yields the base URL (with `path`), stops on exit."""
    with LoopbackJsonServer(answer) as server:
        yield server.base_url + path
