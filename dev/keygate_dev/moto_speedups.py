"""One backup copy of a table per TransactWriteItems in moto, not one per item (docs/local-development.md,
"The embedded moto")."""

from __future__ import annotations

import copy
import functools
import inspect
import threading
import warnings
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
        copies: dict[int, tuple[Any, Any]] | None = getattr(self._local, "tables", None)
        if copies is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        original, copied = copies.get(id(value), (None, None))
        if original is not value:  # the original is held, so its id cannot pass to another table meanwhile
            copied = copy.deepcopy(value, memo)
            copies[id(value)] = (value, copied)
        return copied

    def transaction(self, transact_write_items: Any) -> Any:
        @functools.wraps(transact_write_items)
        def copying_each_table_once(*args: Any, **kwargs: Any) -> Any:
            self._local.tables = {}
            try:
                return transact_write_items(*args, **kwargs)
            finally:
                self._local.tables = None

        copying_each_table_once.keygate_copies_once = True  # type: ignore[attr-defined]
        return copying_each_table_once


def _backs_up_as_expected(transact_write_items: Any) -> bool:
    """moto's code as the shim assumes it: the module's `copy`, one table copy (the backup) per transaction."""
    try:
        source = inspect.getsource(transact_write_items)
    except (OSError, TypeError):
        return False
    return getattr(models, "copy", None) is copy and source.count("copy.deepcopy(") == 1


def install() -> None:
    """Idempotent: a second call finds it installed. A moto whose transaction code differs is left as it is."""
    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "keygate_copies_once", False):
        return
    if not _backs_up_as_expected(backend.transact_write_items):
        warnings.warn("moto's TransactWriteItems changed: keygate_dev.moto_speedups is not installed",
                      stacklevel=2)
        return
    shim = _CopyOncePerTransaction()
    models.copy = shim  # type: ignore[assignment]
    backend.transact_write_items = shim.transaction(backend.transact_write_items)  # type: ignore[method-assign]
