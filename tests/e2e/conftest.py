"""The end-to-end tests' local server: `keygate dev serve` as a subprocess (tests/support/local_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.local_server import RECORD_CACHE_TTL_SECONDS, LocalServer, start_server


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server per test module, with a short key-record cache so revocation can be observed."""
    server = start_server(tmp_path_factory.mktemp("e2e") / "state",
                          "--parameter-overrides", f"RecordCacheTtlSeconds={RECORD_CACHE_TTL_SECONDS}")
    yield server
    assert server.stop() == 0, server.log()
