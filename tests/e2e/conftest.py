"""The end-to-end tests' local server: `keygate dev serve` as a subprocess (tests/support/local_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.local_server import RECORD_CACHE_TTL_SECONDS, LocalServer, serve
from tests.support.stack import ZDEX_STYLE_STACK


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server per test module, with a short key-record cache so revocation can be observed."""
    yield from serve(tmp_path_factory, {"RecordCacheTtlSeconds": str(RECORD_CACHE_TTL_SECONDS)})


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server per test module on the stack's defaults (no parameter overridden): GaiaEx's deployment."""
    yield from serve(tmp_path_factory, {})


@pytest.fixture(scope="module")
def zdex_style_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server per test module on the ZDEX-style deployment (tests/support/stack.py, ZDEX_STYLE_STACK)."""
    yield from serve(tmp_path_factory, ZDEX_STYLE_STACK)
