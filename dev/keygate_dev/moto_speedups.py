"""One backup copy of a table per TransactWriteItems in moto, not one per item.

moto backs up each table a transaction writes before applying it, so that a cancelled transaction
leaves nothing behind. It makes the copy once per *item* naming the table, keeping the last: the
same deep copy of the whole table (its stream records included) up to 100 times over, which made a
revoke-all of a few dozen keys take seconds and grew with the session. The copies are made before
any item is applied, so the first is the same as the last: keeping it changes nothing a request
sees. Used by the local server's embedded moto and by the tests' in-process moto.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from moto.dynamodb import models
from moto.dynamodb.models.table import Table


class _CopyOncePerTransaction:
    """Stands for the `copy` module inside moto.dynamodb.models: inside a transaction (on this thread), a
    table is deep-copied once; everything else is copied as `copy` copies it."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        copies: dict[int, Any] | None = getattr(self._local, "tables", None)
        if copies is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) not in copies:
            copies[id(value)] = copy.deepcopy(value, memo)
        return copies[id(value)]

    def transaction(self, transact_write_items: Any) -> Any:
        def copying_each_table_once(backend: Any, transact_items: list[dict[str, Any]]) -> None:
            self._local.tables = {}
            try:
                return transact_write_items(backend, transact_items)
            finally:
                self._local.tables = None

        copying_each_table_once.keygate_copies_once = True  # type: ignore[attr-defined]
        return copying_each_table_once


def install() -> None:
    """Idempotent: a second call finds it installed."""
    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "keygate_copies_once", False):
        return
    shim = _CopyOncePerTransaction()
    models.copy = shim  # type: ignore[assignment]
    backend.transact_write_items = shim.transaction(backend.transact_write_items)  # type: ignore[method-assign]
