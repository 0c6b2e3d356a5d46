"""The composition roots of the management functions and the session authorizer.

Settings are read once, on a function's first request, and the storage
adapters wired to the domain are kept for the warm instance; `forget()` drops
them (tests and local mode change the environment).
The signature authorizer has its own, leaner root (keygate.authorizer.from_environment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache, cached_property
from typing import Any

from keygate import keys
from keygate.binding import RequestedChange
from keygate.config import EventsConfig, ExchangeEventsConfig, KeyPolicy, SessionConfig, StepUpConfig, StorageConfig
from keygate.exchange import ExchangeEvents
from keygate.lifecycle_events import PublishReport, publish
from keygate.models import validation_context
from keygate.observability import logger
from keygate.records import now_utc
from keygate.routing import Presentation, Target
from keygate.service import KeyLifecycle
from keygate.stepup import Action, Binding, BuiltinStepUpVerifier, StepUpUse, StepUpVerifier
from keygate.storage import aws
from keygate.storage.accounts import DynamoAccountLedger
from keygate.storage.dynamodb import DynamoKeyRepository
from keygate.storage.secrets import SecretsManagerVault


class Management:
    """What a management route's handler gets beside its request."""

    def __init__(self) -> None:
        storage = StorageConfig.from_environ()
        clients = aws.clients(storage.aws_endpoint_url)
        self._clients = clients
        self.storage = storage
        self.keys = DynamoKeyRepository(clients, storage.table_name)
        self.secrets = SecretsManagerVault(clients, storage.secret_name_prefix, storage.secrets_kms_key_id)
        policy = KeyPolicy.from_environ()
        self.lifecycle = KeyLifecycle(policy, self.keys, self.secrets)
        if not policy.step_up_required and "withdraw" in policy.allowed_permissions:
            logger.warning("StepUpRequired=false with withdraw allowed: a session alone can create keys that "
                           "withdraw funds (README, 'Which deployment serves which doc')")

    @cached_property
    def _step_up(self) -> StepUpVerifier | BuiltinStepUpVerifier:
        # Built on first use: only the mutations' functions need (and validate) the step-up settings.
        if self.lifecycle.policy.step_up_mode == "external":
            return StepUpVerifier(StepUpConfig.from_environ())
        from keygate.stepup_issuer import StepUpIssuer, StepUpIssuerConfig
        from keygate.storage.kms import KmsSigner

        return BuiltinStepUpVerifier(StepUpIssuer(StepUpIssuerConfig.from_environ(), KmsSigner(self._clients)))

    def step_up_target(self, user_id: str, target: tuple[Target, str] | None) -> str | None:
        """What a step-up token names as the target of a request: a key's id (a ZDEX handle resolved to
        its key, so either name of one key is one target), a passkey's id; None for no target."""
        if target is None:
            return None
        kind, value = target
        if kind is Target.HANDLE:
            record = self.keys.get_key_by_handle(user_id, value) if value else None
            return record.key_id if record is not None else f"unknown:{value}"
        return value

    def verify_step_up(self, token: str | None, *, user_id: str, action: Action, now: datetime,
                       change: RequestedChange | None = None,
                       target: tuple[Target, str] | None = None) -> StepUpUse | None:
        """The verified use of a mutation's step-up token, bound to this request's target and change; None
        where the deployment needs none (StepUpRequired=false)."""
        if not self.lifecycle.policy.step_up_required:
            return None
        binding = Binding(action, self.step_up_target(user_id, target),
                          (change or RequestedChange(action, {})).digest)
        return self._step_up.verify(token, user_id=user_id, action=action, now=now, binding=binding)

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


_FORGET: list[Callable[[], None]] = []


def on_forget(clear: Callable[[], None]) -> None:
    """Another composition root (keygate.stepup_service's) to drop with these."""
    _FORGET.append(clear)


def forget() -> None:
    """Drop the composition roots (their settings are read again); AWS clients and JWKS caches stay
    (keygate.storage.aws.forget_clients, keygate.tokens.forget_jwks)."""
    management.cache_clear()
    session.cache_clear()
    event_publishing.cache_clear()
    exchange_events.cache_clear()
    secret_scanning.cache_clear()
    for clear in _FORGET:
        clear()
