"""The end-to-end tests' local server: `keygate dev serve` as a subprocess (tests/support/local_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.local_server import RECORD_CACHE_TTL_SECONDS, LocalServer, start_server
from tests.support.stack import ZDEX_STYLE_STACK


def _serve(tmp_path_factory: pytest.TempPathFactory, parameters: dict[str, str]) -> Iterator[LocalServer]:
    overrides = [f"{name}={value}" for name, value in parameters.items()]
    server = start_server(tmp_path_factory.mktemp("e2e") / "state",
                          *(["--parameter-overrides", *overrides] if overrides else []))
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server per test module, with a short key-record cache so revocation can be observed."""
    yield from _serve(tmp_path_factory, {"RecordCacheTtlSeconds": str(RECORD_CACHE_TTL_SECONDS)})


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server per test module on the stack's defaults: GaiaEx's deployment. The local stage enables
    `withdraw` for the example API's withdrawal routes (keygate_dev.server.local_parameters); GaiaEx's doc has
    no such scope, so this server sets AllowedPermissions back to the template's default."""
    yield from _serve(tmp_path_factory, {"AllowedPermissions": "read,trade"})


@pytest.fixture(scope="module")
def zdex_style_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server per test module on the ZDEX-style deployment (tests/support/stack.py, ZDEX_STYLE_STACK)."""
    yield from _serve(tmp_path_factory, ZDEX_STYLE_STACK)
