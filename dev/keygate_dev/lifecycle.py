"""Lifecycle events in the local stage (issue 16), what Lambda and EventBridge do for a deployed stack:

- the keys table's stream is read by `keygate_dev.stream.StreamEventSource` (moto records the stream but
  cannot trigger a function without Docker) and delivered to PublishLifecycleEventsFunction;
- ExpiryNoticesFunction runs on a timer (every EXPIRY_PERIOD_SECONDS here, 15 minutes deployed);
- what the publisher put on the lifecycle bus reaches a queue through a rule (source keygate), as the
  exchange's mailer would subscribe, and is appended to `<state dir>/events.jsonl`, which `keygate dev
  events` prints.

Against real AWS (KEYGATE_AWS=real) the deployed stack publishes its own events: nothing runs here.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

from keygate_dev import state
from keygate_dev.emulation import AwsEmulation
from keygate_dev.lambda_runner import InProcessLambdaRunner
from keygate_dev.stream import StreamEventSource

EVENTS_FILE = "events.jsonl"
LOCAL_SUBSCRIPTION = "keygate-local-lifecycle-events"  # the rule's and the queue's name
PUBLISHER = "PublishLifecycleEventsFunction"
EXPIRY_NOTICES = "ExpiryNoticesFunction"
POLL_SECONDS = 0.5
EXPIRY_PERIOD_SECONDS = 60.0
_log = logging.getLogger("keygate.local")


def events_path() -> Path:
    return state.state_dir() / EVENTS_FILE


def read_events(path: Path | None = None) -> list[dict[str, Any]]:
    """The events KeyGate published on the local bus, oldest first."""
    path = path or events_path()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class InvocationFailed(Exception):
    """The function raised (Lambda would retry the batch)."""


class LocalLifecycleEvents:
    def __init__(self, aws: AwsEmulation, runner: InProcessLambdaRunner, bus_name: str,
                 path: Path | None = None) -> None:
        self._aws = aws
        self._runner = runner
        self._bus = bus_name
        self.path = path or events_path()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._since_expiry = 0.0
        self._sqs: Any = None
        self._queue_url = ""
        self.source: StreamEventSource | None = None

    # ------------------------------------------------------------------ setup
    def _invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        result = self._runner.run(function_id, event)
        if result.error is not None:
            raise InvocationFailed(result.error.get("errorMessage", ""))
        return result.payload

    def start(self) -> LocalLifecycleEvents:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")  # the emulated data lives as long as the server: so do its events
        dynamodb, self._sqs, events = (self._aws._client(name) for name in ("dynamodb", "sqs", "events"))
        arn = dynamodb.describe_table(TableName=self._aws.table_name)["Table"]["LatestStreamArn"]
        self._queue_url = self._sqs.create_queue(QueueName=LOCAL_SUBSCRIPTION)["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        if self._bus != "default":
            with suppress(events.exceptions.ResourceAlreadyExistsException):
                events.create_event_bus(Name=self._bus)
        events.put_rule(Name=LOCAL_SUBSCRIPTION, EventBusName=self._bus,
                        EventPattern=json.dumps({"source": ["keygate"]}))
        events.put_targets(Rule=LOCAL_SUBSCRIPTION, EventBusName=self._bus, Targets=[{"Id": "local", "Arn": queue_arn}])
        self.source = StreamEventSource(self._aws._client("dynamodbstreams"), arn,
                                        lambda event: self._invoke(PUBLISHER, event))
        self._thread = threading.Thread(target=self._loop, name="keygate-lifecycle-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> LocalLifecycleEvents:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -------------------------------------------------------------- the work
    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._since_expiry += POLL_SECONDS
            try:
                if self._since_expiry >= EXPIRY_PERIOD_SECONDS:
                    self._since_expiry = 0.0
                    self._invoke(EXPIRY_NOTICES, {"source": "aws.scheduler", "detail-type": "Scheduled Event"})
                self.step()
            except Exception as error:  # noqa: BLE001 (the next round retries; the server keeps serving)
                _log.warning("lifecycle events: %s: %s", type(error).__name__, error)

    def step(self) -> int:
        """Deliver the stream to the publisher, and what reached the bus to the events file; the events
        written."""
        with self._lock:
            if self.source is None:
                raise RuntimeError("start() first")
            self.source.drain(stop=self._stop.is_set)
            return self._collect()

    def _collect(self) -> int:
        written = 0
        while True:
            messages = self._sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return written
            with self.path.open("a") as out:
                for message in messages:
                    out.write(json.dumps(json.loads(message["Body"])) + "\n")
                    written += 1
            for message in messages:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])


def format_events(events: list[dict[str, Any]], detail_type: str | None = None) -> Iterator[str]:
    for event in events:
        if detail_type is None or event.get("detail-type") == detail_type:
            yield json.dumps(event, sort_keys=True)
