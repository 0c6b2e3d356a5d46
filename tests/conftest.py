"""Shared fixtures: the stack's environment and tables come from template.yaml.

`aws` gives an in-process moto account with the template's tables; `client`
calls the management routes through their real handlers the way API Gateway
would after the session authorizer let the user in.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws

from keygate import tokens, wiring
from keygate.config import StorageConfig
from keygate.records import AccountState
from keygate.storage import aws as layer_aws
from keygate.storage import layout
from keygate.storage.lookup import DynamoKeyLookup
from keygate_dev import template
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.jwks_server import JwksServer
from tests.support.client import TABLE_NAME, ApiClient, Response, assert_error, local_gateway  # noqa: F401  # until tests import tests.support

REGION = "us-east-1"


@pytest.fixture(scope="session")
def identity() -> LocalIdentityProvider:
    return LocalIdentityProvider()


@pytest.fixture(scope="session")
def jwks(identity: LocalIdentityProvider) -> Iterator[JwksServer]:
    with JwksServer(identity) as server:
        yield server


def stack_parameters(identity: LocalIdentityProvider, jwks: JwksServer) -> dict[str, str]:
    return {
        "Stage": "test",
        "SessionIssuer": identity.session_issuer,
        "SessionJwksUrl": jwks.session_jwks_url,
        "StepUpIssuer": identity.step_up_issuer,
        "StepUpJwks": jwks.step_up_jwks_url,
    }


@pytest.fixture
def stack_env(monkeypatch: pytest.MonkeyPatch, identity: LocalIdentityProvider, jwks: JwksServer,
              request: pytest.FixtureRequest) -> dict[str, str]:
    """The CreateApiKeyFunction environment from template.yaml (Globals are shared by all)."""
    overrides = getattr(request, "param", {}) or {}
    environment = template.function_environment(
        "CreateApiKeyFunction", {**stack_parameters(identity, jwks), **overrides}, {"KeysTable": TABLE_NAME})
    for name, value in {**environment, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "POWERTOOLS_TRACE_DISABLED": "true",
                        "POWERTOOLS_METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    wiring.forget()
    layer_aws.forget_clients()
    yield environment
    wiring.forget()
    layer_aws.forget_clients()


@pytest.fixture
def aws(stack_env: dict[str, str]) -> Iterator[None]:
    with mock_aws():
        template.create_tables(boto3.client("dynamodb", region_name=REGION), {"KeysTable": TABLE_NAME})
        yield


@pytest.fixture(autouse=True)
def _fresh_jwks_cache() -> None:
    tokens.forget_jwks()


def layer() -> wiring.Management:
    """The management functions' composition root for the current environment (the stack's tables)."""
    return wiring.management()


def run_janitor(clock: Any = None) -> Any:
    """One run of the secret janitor, on `clock` (default: the wall clock)."""
    lifecycle = layer().lifecycle
    return (lifecycle if clock is None else lifecycle.at(clock)).run_secret_janitor()


def key_lookup() -> DynamoKeyLookup:
    """The signature authorizer's storage, on the stack's table."""
    storage = StorageConfig.from_environ()
    return DynamoKeyLookup(layer_aws.clients(storage.aws_endpoint_url), storage.table_name)


def secret_value(key_id: str) -> str | None:
    return layer().secrets.read(key_id)


def secret_exists(key_id: str) -> bool:
    return layer().secrets.name(key_id) in secret_names()


def onboard(user_id: str, *, trade: bool = True) -> None:
    wiring.management().keys.put_account_state(
        user_id, AccountState(onboarding_completed=True, trading_handshake_completed=trade))


@pytest.fixture
def client(aws: None, identity: LocalIdentityProvider, jwks: JwksServer, request: pytest.FixtureRequest,
           monkeypatch: pytest.MonkeyPatch) -> ApiClient:
    """The API through the local gateway, on the stack `stack_env` configured (its parameters too)."""
    overrides = request.node.callspec.params.get("stack_env", {}) if hasattr(request.node, "callspec") else {}
    # A fresh signature authorizer instance: its caches must not outlive this test's moto account.
    monkeypatch.setattr(template.module_for("SignatureAuthorizerFunction"), "_authorizer", None)
    return ApiClient(identity, local_gateway({**stack_parameters(identity, jwks), **(overrides or {})}))


@pytest.fixture
def alice(client: ApiClient) -> str:
    onboard("alice")
    return "alice"


def table_items() -> list[dict[str, Any]]:
    """Every item of the table, for invariant checks in tests (moto only; production never scans)."""
    client = boto3.client("dynamodb", region_name=REGION)
    items, kwargs = [], {"TableName": TABLE_NAME}
    while True:
        page = client.scan(**kwargs)
        items.extend(layout.from_item(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def secret_names() -> set[str]:
    client = boto3.client("secretsmanager", region_name=REGION)
    names, kwargs = set(), {}
    while True:
        page = client.list_secrets(**kwargs)
        names.update(secret["Name"] for secret in page["SecretList"])
        if "NextToken" not in page:
            return names
        kwargs["NextToken"] = page["NextToken"]


@dataclass
class Clocks:
    """The authorizer's two clocks, moved together: wall time (ms) for docs/signing.md's window and expiry,
    monotonic seconds for its caches."""

    wall_ms: int
    monotonic: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall_ms += round(seconds * 1000)
        self.monotonic += seconds


class FixedClock:
    def __init__(self, moment: datetime | None = None) -> None:
        self.moment = moment or datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        from datetime import timedelta
        with self._lock:
            self.moment += timedelta(**delta)


def unique_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def aws_calls(aws: None) -> Iterator[Any]:
    """Records the layer's AWS calls and injects one fault on demand (tests/integration/faults.py)."""
    from tests.integration.faults import AwsCalls

    calls = AwsCalls()
    calls.install()
    yield calls
    calls.uninstall()


@pytest.fixture
def atomic_aws(aws: None) -> Iterator[None]:
    """moto with each request applied atomically, as DynamoDB does, for tests with real threads."""
    from tests.integration.faults import serialised_moto

    with serialised_moto():
        yield


# ------------------------------------------------- shared checks (issue 2 tests)
def iso_time(text: str) -> datetime:
    """A timestamp as the API writes it: ISO 8601 in UTC with milliseconds and a 'Z'."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.fromisoformat(text)


def state_snapshot() -> tuple[list[str], set[str]]:
    """The whole table and the secret names, comparable before and after a refused request."""
    return sorted(json.dumps(item, sort_keys=True) for item in table_items()), secret_names()


@dataclass
class CapturedLogs:
    stream: io.StringIO

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    """What KeyGate's Logger writes at DEBUG (formatted as CloudWatch receives it) and what any
    other client-side logger writes at INFO and above; moto's own loggers stand for AWS and are left out."""
    from keygate.observability import logger as keygate_logger

    stream = io.StringIO()
    structured = logging.StreamHandler(stream)
    structured.setFormatter(keygate_logger.registered_formatter)
    others = logging.StreamHandler(stream)
    others.addFilter(lambda record: not record.name.startswith((keygate_logger.name, "moto", "werkzeug")))
    keygate_logging, root = logging.getLogger(keygate_logger.name), logging.getLogger()
    levels = keygate_logging.level, root.level
    keygate_logging.addHandler(structured)
    keygate_logging.setLevel(logging.DEBUG)
    root.addHandler(others)
    root.setLevel(logging.INFO)
    try:
        yield CapturedLogs(stream)
    finally:
        keygate_logging.removeHandler(structured)
        root.removeHandler(others)
        keygate_logging.setLevel(levels[0])
        root.setLevel(levels[1])


@functools.cache
def rsa_private_key() -> rsa.RSAPrivateKey:
    """An RSA key the local identity provider never published (for tokens whose `alg` is not the JWKS key's)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
