"""A function's cold start: its imports run without the cyclic garbage collector (docs/architecture.md, "Cold
start"). Standard library only."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_imports() -> Iterator[None]:
    """Run the block (a handler module's imports) with the cyclic garbage collector paused, then freeze everything
    it tracks (`gc.freeze`: on Lambda, the runtime's objects and what the imports built), so that no later
    collection traverses them. The collector is left enabled or not as it was, whatever the block raises; after
    a failed block nothing is frozen. The collector's state is the process's: not for nested or concurrent use."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if collecting:
            gc.enable()
