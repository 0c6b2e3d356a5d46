"""Shared fixtures: the stack's environment and tables come from template.yaml.

`aws` gives an in-process moto account with the template's tables; `client`
calls the API through the local gateway the way the app would. The helpers
these fixtures and the tests use live in tests/support/.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from keygate import tokens, wiring
from keygate.storage import aws as layer_aws
from keygate.storage.kms import forget_public_keys
from keygate_dev import moto_speedups, template
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.jwks_server import JwksServer
from tests.support.client import ApiClient, local_gateway
from tests.support.faults import AwsCalls, serialised_moto
from tests.support.logs import CapturedLogs, capture_logs
from tests.support.stack import REGION, RESOURCE_NAMES, create_step_up_key, onboard, stack_parameters

moto_speedups.install()  # faster transactions, same outcomes (docs/local-development.md, "The embedded moto")


@pytest.fixture(scope="session")
def identity() -> LocalIdentityProvider:
    return LocalIdentityProvider()


@pytest.fixture(scope="session")
def jwks(identity: LocalIdentityProvider) -> Iterator[JwksServer]:
    with JwksServer(identity) as server:
        yield server


@pytest.fixture
def stack_env(monkeypatch: pytest.MonkeyPatch, identity: LocalIdentityProvider, jwks: JwksServer,
              request: pytest.FixtureRequest) -> dict[str, str]:
    """The stack's functions' environment from template.yaml: Globals, and what each function adds (the
    signature authorizer's nonces table, the create path's KMS key, ...), as one process plays them all."""
    overrides = getattr(request, "param", {}) or {}
    environment = template.shared_environment({**stack_parameters(identity, jwks), **overrides}, RESOURCE_NAMES)
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
        template.create_tables(boto3.client("dynamodb", region_name=REGION), RESOURCE_NAMES)
        create_step_up_key()
        forget_public_keys()
        yield
        forget_public_keys()


@pytest.fixture(autouse=True)
def _fresh_jwks_cache() -> None:
    tokens.forget_jwks()


@pytest.fixture
def fresh_signature_authorizer() -> Iterator[None]:
    """The signature authorizer function as a fresh warm instance, dropped afterwards: its caches must not
    outlive this test's moto account."""
    function = template.module_for("SignatureAuthorizerFunction")
    function.use(None)
    yield
    function.use(None)


@pytest.fixture
def client(aws: None, identity: LocalIdentityProvider, jwks: JwksServer, request: pytest.FixtureRequest,
           fresh_signature_authorizer: None) -> ApiClient:
    """The API through the local gateway, on the stack `stack_env` configured (its parameters too)."""
    overrides = request.node.callspec.params.get("stack_env", {}) if hasattr(request.node, "callspec") else {}
    parameters = {**stack_parameters(identity, jwks), **(overrides or {})}
    return ApiClient(identity, local_gateway(parameters), step_up_mode=parameters["StepUpMode"])


@pytest.fixture
def alice(client: ApiClient) -> str:
    onboard("alice")
    return "alice"


@pytest.fixture
def aws_calls(aws: None) -> Iterator[AwsCalls]:
    """Records the layer's AWS calls and injects one fault on demand (tests/support/faults.py)."""
    calls = AwsCalls()
    calls.install()
    yield calls
    calls.uninstall()


@pytest.fixture
def atomic_aws(aws: None) -> Iterator[None]:
    """moto with each request applied atomically, as DynamoDB does, for tests with real threads."""
    with serialised_moto():
        yield


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    """What the code logs while the test runs (tests/support/logs.py)."""
    with capture_logs() as logs:
        yield logs
