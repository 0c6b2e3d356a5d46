"""The composition roots of the management functions and the session authorizer.

Settings are read once, on a function's first request, and the storage
adapters wired to the domain are kept for the warm instance; `forget()` drops
them (tests and local mode change the environment).
The signature authorizer has its own, leaner root (keygate.authorizer.from_environment).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache, cached_property
from typing import Any

from keygate import keys
from keygate.config import EventsConfig, ExchangeEventsConfig, KeyPolicy, SessionConfig, StepUpConfig, StorageConfig
from keygate.exchange import ExchangeEvents
from keygate.lifecycle_events import PublishReport, publish
from keygate.models import validation_context
from keygate.observability import logger
from keygate.records import now_utc
from keygate.routing import Presentation
from keygate.service import KeyLifecycle
from keygate.stepup import Action, StepUpUse, StepUpVerifier
from keygate.storage import aws
from keygate.storage.accounts import DynamoAccountLedger
from keygate.storage.dynamodb import DynamoKeyRepository
from keygate.storage.secrets import SecretsManagerVault


class Management:
    """What a management route's handler gets beside its request."""

    def __init__(self) -> None:
        storage = StorageConfig.from_environ()
        clients = aws.clients(storage.aws_endpoint_url)
        self.keys = DynamoKeyRepository(clients, storage.table_name)
        self.secrets = SecretsManagerVault(clients, storage.secret_name_prefix, storage.secrets_kms_key_id)
        policy = KeyPolicy.from_environ()
        self.lifecycle = KeyLifecycle(policy, self.keys, self.secrets)
        if not policy.step_up_required and "withdraw" in policy.allowed_permissions:
            logger.warning("StepUpRequired=false with withdraw allowed: a session alone can create keys that "
                           "withdraw funds (README, 'Which deployment serves which doc')")

    @cached_property
    def _step_up(self) -> StepUpVerifier:
        # Built on first use: only the mutations' functions need (and validate) the step-up settings.
        return StepUpVerifier(StepUpConfig.from_environ())

    def verify_step_up(self, token: str | None, *, user_id: str, action: Action, now: datetime) -> StepUpUse | None:
        """The verified use of a mutation's step-up token; None where the deployment needs none."""
        if not self.lifecycle.policy.step_up_required:
            return None
        return self._step_up.verify(token, user_id=user_id, action=action, now=now)

    def validation_context(self) -> Mapping[str, Any]:
        return validation_context(self.lifecycle.policy)

    def presentation(self) -> Presentation:
        return Presentation(now=now_utc(), key_id_prefix=self.lifecycle.policy.key_id_prefix)


@cache
def management() -> Management:
    return Management()


class EventPublishing:
    """The lifecycle events publisher's root: the keys table's stream in, EventBridge out."""

    def __init__(self) -> None:
        from keygate.storage.events import EventBridgePublisher

        config = EventsConfig.from_environ()
        self._prefix = config.key_id_prefix
        self.publisher = EventBridgePublisher(aws.clients(StorageConfig.from_environ().aws_endpoint_url),
                                              config.bus_name)

    def publish_stream_batch(self, event: Mapping[str, Any]) -> PublishReport:
        from keygate.storage.events import streamed_entries

        def dropped(event_id: str, names: list[str]) -> None:
            logger.error("event fields left out: they looked like a secret or token",
                         extra={"event_id": event_id, "fields": names})

        return publish(streamed_entries(dict(event)), self.publisher,
                       lambda key_id: keys.visible_prefix(key_id, self._prefix), on_dropped=dropped)


@cache
def event_publishing() -> EventPublishing:
    return EventPublishing()


@cache
def exchange_events() -> ExchangeEvents:
    """ExchangeEventsFunction's root: the agent authorization's domain and the account ledger."""
    storage = StorageConfig.from_environ()
    return ExchangeEvents(ExchangeEventsConfig.from_environ(),
                          DynamoAccountLedger(aws.clients(storage.aws_endpoint_url), storage.table_name))


@cache
def secret_scanning() -> Any:
    """SecretScanningFunction's root: the lifecycle, and GitHub's public keys (cached for the warm instance)."""
    from keygate.config import SecretScanningConfig
    from keygate.secret_scanning import GitHubPublicKeys, SecretScanning

    return SecretScanning(management().lifecycle, GitHubPublicKeys(SecretScanningConfig.from_environ().keys_url))


@cache
def session() -> SessionConfig:
    """The session authorizer's settings."""
    return SessionConfig.from_environ()


def forget() -> None:
    """Drop the composition roots (their settings are read again); AWS clients and JWKS caches stay
    (keygate.storage.aws.forget_clients, keygate.tokens.forget_jwks)."""
    management.cache_clear()
    session.cache_clear()
    event_publishing.cache_clear()
    exchange_events.cache_clear()
    secret_scanning.cache_clear()
