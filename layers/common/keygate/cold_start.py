"""A function's cold start: its imports run without the cyclic garbage collector (docs/architecture.md, "Cold
start"). Standard library only."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_imports() -> Iterator[None]:
    """Run the block (a handler module's imports) with the cyclic garbage collector paused, then freeze what it
    built (`gc.freeze`), so that no later collection traverses it. The collector is left as it was, whatever the
    block raises; what a failed block built is not frozen."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if collecting:
            gc.enable()
