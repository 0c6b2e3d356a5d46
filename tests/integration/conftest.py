"""Fixtures shared by the integration tests of more than one module."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from keygate import authorizer, wiring
from keygate_dev import template
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.jwks_server import JwksServer
from tests.support.bots import AUTHORIZER_FUNCTION, Gate
from tests.support.client import ApiClient
from tests.support.clocks import Clocks
from tests.support.stack import RESOURCE_NAMES, stack_parameters


@pytest.fixture
def gate(client: ApiClient, identity: LocalIdentityProvider, jwks: JwksServer, monkeypatch: pytest.MonkeyPatch,
         request: pytest.FixtureRequest) -> Iterator[Gate]:
    """The signature authorizer as deployed (template environment), with clocks the test moves."""
    overrides = request.node.callspec.params.get("stack_env", {}) if hasattr(request.node, "callspec") else {}
    environment = template.function_environment(
        AUTHORIZER_FUNCTION, {**stack_parameters(identity, jwks), **overrides}, RESOURCE_NAMES)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    wiring.forget()
    clocks = Clocks(wall_ms=time.time_ns() // 1_000_000)
    function = template.module_for(AUTHORIZER_FUNCTION)
    # A fresh warm instance per test: its caches must not outlive this test's moto account.
    function.use(authorizer.from_environment(clock_ms=clocks.wall_clock_ms, monotonic=clocks.monotonic_clock))
    yield Gate(client, clocks, template.load_handler(AUTHORIZER_FUNCTION))
    function.use(None)
