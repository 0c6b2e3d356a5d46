"""Lifecycle events in tests: the keys table's stream delivered to the publisher as Lambda's event source
mapping would (keygate_dev.stream; moto records stream entries but triggers nothing), and what reached the
lifecycle bus, read from an SQS queue a rule on that bus delivers to (moto delivers EventBridge -> SQS), as
the exchange's mailer would subscribe."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3

from keygate.storage.events import PUBLISHED_ITEM_TYPES
from keygate_dev import template
from keygate_dev.lambda_runner import LambdaContext
from keygate_dev.stream import StreamEventSource
from tests.support.stack import REGION, TABLE_NAME

BUS = "default"  # LifecycleEventBusName's default
PUBLISHER = "PublishLifecycleEventsFunction"


def invoke_publisher(event: dict[str, Any]) -> Any:
    return template.load_handler(PUBLISHER)(event, LambdaContext(PUBLISHER))


def stream_source(invoke: Any = invoke_publisher) -> StreamEventSource:
    """The publisher's event source mapping on the keys table's stream, from its start."""
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    arn = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=TABLE_NAME)["Table"][
        "LatestStreamArn"]
    return StreamEventSource(streams, arn, invoke)


class Mailer:
    """A subscriber of the lifecycle bus: a rule matching source keygate, delivering to a queue."""

    def __init__(self, name: str = "mailer") -> None:
        self._sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        self._queue = self._sqs.create_queue(QueueName=f"keygate-test-{name}")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        events.put_rule(Name=f"keygate-test-{name}", EventBusName=BUS, EventPattern=json.dumps({"source": ["keygate"]}))
        events.put_targets(Rule=f"keygate-test-{name}", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])
        self.events: list[dict[str, Any]] = []

    def received(self) -> list[dict[str, Any]]:
        """Every event delivered so far (duplicates included), in delivery order."""
        while True:
            messages = self._sqs.receive_message(QueueUrl=self._queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return self.events
            for message in messages:
                self.events.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [event for event in self.received() if event["detail-type"] == detail_type]


def published_entry_ids() -> Counter:
    """The event id of every committed entry the publisher must publish (audit entries and notices whose
    action is mapped), from a Scan of the table (tests only)."""
    from keygate import lifecycle_events
    from tests.support.stack import table_items

    return Counter(lifecycle_events.event_id(item["pk"], item["sk"]) for item in table_items()
                   if item.get("type") in PUBLISHED_ITEM_TYPES
                   and lifecycle_events.detail_type(item["event"], item.get("details") or {}) is not None)


def assert_every_committed_entry_published_once(mailer: Mailer) -> None:
    """Deliver the whole stream to the publisher, then: the mailer received exactly one event per committed
    entry (every committed change published, nothing that did not commit)."""
    mailer.events.clear()
    stream_source().drain()
    received = Counter(event["detail"]["event_id"] for event in mailer.received())
    assert received == published_entry_ids(), (received, published_entry_ids())
