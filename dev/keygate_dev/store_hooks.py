"""botocore event handlers on `keygate.store`'s own clients, for tests and benchmarks.

Hooking the layer's cached clients (rather than patching botocore globally) sees exactly the
calls the layer makes, and nothing that moto or the tooling sends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from keygate import store


class StoreClientHooks:
    """Registers `{event name: handler}` on the DynamoDB and Secrets Manager clients of keygate.store."""

    def __init__(self, handlers: Mapping[str, Callable[..., Any]]) -> None:
        self._handlers = dict(handlers)
        self._clients: list[Any] = []

    def install(self) -> None:
        for client in (store._dynamodb(), store._secretsmanager()):
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
