"""What the code under test logs, as CloudWatch would receive it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class CapturedLogs:
    stream: io.StringIO

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@contextmanager
def capture_logs() -> Iterator[CapturedLogs]:
    """What KeyGate's Logger writes at DEBUG (formatted as CloudWatch receives it) and what any
    other client-side logger writes at INFO and above; moto's own loggers stand for AWS and are left out."""
    from keygate.observability import logger as keygate_logger

    stream = io.StringIO()
    structured = logging.StreamHandler(stream)
    structured.setFormatter(keygate_logger.registered_formatter)
    others = logging.StreamHandler(stream)
    others.addFilter(lambda record: not record.name.startswith((keygate_logger.name, "moto", "werkzeug")))
    keygate_logging, root = logging.getLogger(keygate_logger.name), logging.getLogger()
    levels = keygate_logging.level, root.level
    keygate_logging.addHandler(structured)
    keygate_logging.setLevel(logging.DEBUG)
    root.addHandler(others)
    root.setLevel(logging.INFO)
    try:
        yield CapturedLogs(stream)
    finally:
        keygate_logging.removeHandler(structured)
        root.removeHandler(others)
        keygate_logging.setLevel(levels[0])
        root.setLevel(levels[1])
