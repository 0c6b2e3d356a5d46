"""Clocks that move only when a test or a benchmark moves them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

DAY_SECONDS = 86_400.0


@dataclass
class Clocks:
    """The signature authorizer's two clocks, moved together: wall time in ms (docs/signing.md's window
    and key expiry) and monotonic seconds (its caches).

    `defeat_caches` (the benchmark's naive authorizer) moves the monotonic clock a day at every
    advance, so no cache entry survives from one request to the next.
    """

    wall_ms: int
    monotonic: float = 1000.0
    defeat_caches: bool = False

    def advance(self, seconds: float) -> None:
        self.wall_ms += round(seconds * 1000)
        self.monotonic += DAY_SECONDS if self.defeat_caches else seconds

    def wall_clock_ms(self) -> int:
        """The wall clock, for `SignatureAuthorizer(clock_ms=...)` and the SDK's `clock`."""
        return self.wall_ms

    def monotonic_clock(self) -> float:
        """The monotonic clock, for `SignatureAuthorizer(monotonic=...)`."""
        return self.monotonic


@dataclass
class FixedClock:
    """The management functions' clock (a UTC datetime), at `moment` until advanced."""

    moment: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.moment += timedelta(**delta)
