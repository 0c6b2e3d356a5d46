"""The composition roots of the management functions and the session authorizer.

Settings are read once, on a function's first request, and the storage
adapters wired to the domain are kept for the warm instance; `forget()` drops
them (tests and local mode change the environment).
The signature authorizer has its own, leaner root (keygate.authorizer.from_environment).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, cached_property
from typing import Any

from keygate.config import KeyPolicy, SessionConfig, StepUpConfig, StorageConfig
from keygate.models import validation_context
from keygate.service import KeyLifecycle
from keygate.stepup import StepUpVerifier
from keygate.storage import aws
from keygate.storage.dynamodb import DynamoKeyRepository
from keygate.storage.secrets import SecretsManagerVault


class Management:
    """What a management route's handler gets beside its request."""

    def __init__(self) -> None:
        storage = StorageConfig.from_environ()
        clients = aws.clients(storage.aws_endpoint_url)
        self.keys = DynamoKeyRepository(clients, storage.table_name)
        self.secrets = SecretsManagerVault(clients, storage.secret_name_prefix, storage.secrets_kms_key_id)
        self.lifecycle = KeyLifecycle(KeyPolicy.from_environ(), self.keys, self.secrets)

    @cached_property
    def step_up(self) -> StepUpVerifier:
        # Built on first use: only the mutations' functions need (and validate) the step-up settings.
        return StepUpVerifier(StepUpConfig.from_environ())

    def validation_context(self) -> Mapping[str, Any]:
        return validation_context(self.lifecycle.policy)


@cache
def management() -> Management:
    return Management()


@cache
def session() -> SessionConfig:
    """The session authorizer's settings."""
    return SessionConfig.from_environ()


def forget() -> None:
    """Drop the composition roots (their settings are read again); AWS clients and JWKS caches stay
    (keygate.storage.aws.forget_clients, keygate.tokens.forget_jwks)."""
    management.cache_clear()
    session.cache_clear()
