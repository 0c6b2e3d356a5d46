"""A local KeyGate stack for the benchmarks, built the way the tests build theirs.

template.yaml gives the environment and the table (tests/support/stack.py's
parameters and names); moto stands in for DynamoDB and Secrets Manager, either
in this process (`mock_aws`, for counting calls) or as a server on 127.0.0.1
(for cold starts, whose fresh interpreters reach it through AWS_ENDPOINT_URL).
The local identity provider signs session and step-up tokens. Nothing leaves
the machine.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws
from moto.server import ThreadedMotoServer

from keygate import tokens, wiring
from keygate.observability import logger, metrics
from keygate.storage import aws
from keygate_dev import template
from keygate_dev.events import SeededKey, seed_key
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.jwks_server import JwksServer
from keygate_dev.store_hooks import StoreClientHooks
from tests.support.faults import serialised_moto
from tests.support.stack import REGION, RESOURCE_NAMES, onboard, stack_parameters

# Credentials moto accepts; nothing here can reach AWS.
AWS_BASICS = {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
              "AWS_SECRET_ACCESS_KEY": "testing"}  # nosec B105  # moto's fake credentials
# The management routes' environment (Globals only); functions the template does not list yet get it too.
REFERENCE_FUNCTION = "CreateApiKeyFunction"


def function_environment(function_id: str, parameters: dict[str, str]) -> dict[str, str]:
    """What CloudFormation would set for this function (Globals only while the template lacks it)."""
    known = function_id in template.function_ids()
    return template.function_environment(function_id if known else REFERENCE_FUNCTION, parameters,
                                         RESOURCE_NAMES)


def function_property(function_id: str, name: str) -> Any:
    """A function property from template.yaml, falling back to Globals.Function."""
    loaded = template.load_template()
    own = loaded["Resources"].get(function_id, {}).get("Properties", {})
    return own.get(name, loaded["Globals"]["Function"].get(name))


@dataclass
class LocalStack:
    identity: LocalIdentityProvider
    parameters: dict[str, str]
    endpoint_url: str | None  # the moto server's URL, or None in-process
    empty_aws: Callable[[], None] = lambda: None  # the server's state back to fresh tables (server mode)

    def environment(self, function_id: str, **parameters: str) -> dict[str, str]:
        """The function's environment on this stack, with `parameters` overriding the stack's."""
        endpoint = {"AWS_ENDPOINT_URL": self.endpoint_url} if self.endpoint_url else {}
        return {**function_environment(function_id, {**self.parameters, **parameters}), **AWS_BASICS, **endpoint}

    def user_with_keys(self, user_id: str, count: int, **fields: Any) -> list[SeededKey]:
        """An onboarded user holding `count` active keys, created through the service."""
        onboard(user_id)
        created = []
        for number in range(count):
            created.append(seed_key(user_id, label=f"bench {number}", **fields))
            # Powertools prints its buffer once it holds 100 values, disabled or not: seeding emits none.
            metrics.clear_metrics()
        return created


def _forget_layer_state() -> None:
    wiring.forget()
    aws.forget_clients()
    tokens.forget_jwks()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in [*values, "AWS_ENDPOINT_URL", "AWS_PROFILE"]}
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(values)
    _forget_layer_state()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _forget_layer_state()


@contextmanager
def local_stack(*, server: bool = False) -> Iterator[LocalStack]:
    """The stack with this process configured as all its functions at once (quiet logs, no traces)."""
    identity = LocalIdentityProvider()
    with ExitStack() as stack:
        jwks = stack.enter_context(JwksServer(identity))
        endpoint_url = None
        if server:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
            # One request at a time, as DynamoDB applies each atomically (tests/support/faults.py says why).
            stack.enter_context(serialised_moto())
            moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto_server.start()
            stack.callback(moto_server.stop)
            host, port = moto_server.get_host_and_port()
            endpoint_url = f"http://{host}:{port}"
        parameters = {**stack_parameters(identity, jwks), "LogLevel": "WARNING"}
        local = LocalStack(identity, parameters, endpoint_url)
        if endpoint_url:
            local.empty_aws = lambda: _empty_server(endpoint_url)
        stack.enter_context(_environment({**template.shared_environment(parameters, RESOURCE_NAMES),
                                          **AWS_BASICS, **({"AWS_ENDPOINT_URL": endpoint_url} if endpoint_url else {}),
                                          "POWERTOOLS_TRACE_DISABLED": "true",
                                          "POWERTOOLS_METRICS_DISABLED": "true"}))
        # The logger exists since import: quiet it directly (seeding would log every key it creates).
        stack.callback(logger.setLevel, logger.log_level)
        logger.setLevel("WARNING")
        if not server:
            stack.enter_context(mock_aws())
        _create_tables(endpoint_url)
        yield local


def _create_tables(endpoint_url: str | None) -> None:
    template.create_tables(boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint_url),
                           RESOURCE_NAMES)


def _empty_server(endpoint_url: str) -> None:
    """Reset the moto server and create the tables again.

    moto keeps every stream record and copies whole tables (stream included) for each item of a
    TransactWriteItems, so a server that only grows makes later transactions slower, then slower than
    the clients' read timeout (whose retry then races the first attempt inside moto).
    """
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")  # noqa: S310  # nosec B310  # the local moto server's URL
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310  # the local moto server's URL
        response.read()
    _create_tables(endpoint_url)


@dataclass
class CallRecorder:
    """The AWS operations the layer's own clients make, as "service.Operation" counts.

    Hooked on botocore's `provide-client-params` event of the layer's own
    clients (keygate_dev.store_hooks), so it counts the calls the code makes (not HTTP retries)
    and sees their parameters: how many items each transaction holds.
    """

    calls: Counter[str] = field(default_factory=Counter)
    transaction_items: int = 0
    _hooks: StoreClientHooks | None = None

    def __enter__(self) -> CallRecorder:
        self._hooks = StoreClientHooks({"provide-client-params.*.*": self._record})
        self._hooks.install()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._hooks is not None:
            self._hooks.uninstall()

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1
        self.transaction_items += len(params.get("TransactItems", ()))

    def total(self) -> int:
        return sum(self.calls.values())
