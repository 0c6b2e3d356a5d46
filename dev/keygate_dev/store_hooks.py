"""botocore event handlers on the layer's own AWS clients, for tests and benchmarks.

Hooking the clients the layer's adapters use (keygate.storage.aws, for the
endpoint of the current environment) rather than patching botocore globally
sees exactly the calls the layer makes, and nothing that moto or the tooling sends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from keygate.config import StorageConfig
from keygate.storage import aws


def layer_clients() -> list[Any]:
    """The DynamoDB, Secrets Manager, EventBridge and KMS clients the layer uses in this environment (created if
    need be)."""
    clients = aws.clients(StorageConfig.from_environ().aws_endpoint_url)
    return [clients.dynamodb, clients.secretsmanager, clients.events, clients.kms]


class StoreClientHooks:
    """Registers `{event name: handler}` on the layer's AWS clients."""

    def __init__(self, handlers: Mapping[str, Callable[..., Any]]) -> None:
        self._handlers = dict(handlers)
        self._clients: list[Any] = []

    def install(self) -> None:
        for client in layer_clients():
            for event, handler in self._handlers.items():
                client.meta.events.register(event, handler)
            self._clients.append(client)

    def uninstall(self) -> None:
        for client in self._clients:
            for event, handler in self._handlers.items():
                client.meta.events.unregister(event, handler)
        self._clients.clear()

    def __enter__(self) -> StoreClientHooks:
        self.install()
        return self

    def __exit__(self, *_: object) -> None:
        self.uninstall()
