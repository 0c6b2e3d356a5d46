"""Lambda's event source mapping of the keys table's stream, played locally (moto records stream entries but
cannot trigger a function without Docker).

`StreamEventSource` reads the stream after its checkpoint, passes on the records the template's filter
matches (FilterCriteria of the AWS::Lambda::EventSourceMapping), invokes the function with Lambda's event
shape, and moves its checkpoint as Lambda does: past the whole batch on success, to just before the first
record a `batchItemFailures` answer names, and not at all when the invocation fails (the batch is
delivered again). The local server polls it; the tests drive it step by step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keygate_dev import template

MAPPING_ID = "PublishLifecycleEventsStream"


def mapping(mapping_id: str = MAPPING_ID) -> dict[str, Any]:
    """The event source mapping's properties in template.yaml."""
    return template.resources("AWS::Lambda::EventSourceMapping")[mapping_id]["Properties"]


def filter_patterns(mapping_id: str = MAPPING_ID) -> list[dict[str, Any]]:
    return [json.loads(entry["Pattern"]) for entry in mapping(mapping_id).get("FilterCriteria", {}).get("Filters", [])]


def matches(pattern: Mapping[str, Any], value: Any) -> bool:
    """EventBridge/Lambda filter semantics for the pattern forms the template uses: nested objects, and
    lists of exact values (one of them must equal the field)."""
    if isinstance(pattern, Mapping):
        return isinstance(value, Mapping) and all(name in value and matches(part, value[name])
                                                  for name, part in pattern.items())
    if isinstance(pattern, list):
        return any(value == option for option in pattern)
    return pattern == value


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda delivers it (times as epoch seconds, the stream's ARN)."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**{name: value for name, value in record.items() if name != "dynamodb"}, "dynamodb": dynamodb,
            "eventSourceARN": stream_arn}


@dataclass
class Delivery:
    delivered: int = 0  # records handed to the function
    filtered_out: int = 0
    failed: bool = False  # the invocation raised, or answered a batch item failure


@dataclass
class StreamEventSource:
    streams: Any  # a boto3 dynamodbstreams client
    stream_arn: str
    invoke: Callable[[dict[str, Any]], Any]
    patterns: list[dict[str, Any]] = field(default_factory=filter_patterns)
    batch_size: int = 100
    checkpoint: str | None = None  # the last sequence number done with
    # After this many failed retries of a batch, its position goes to `on_failure` (an SQS client and queue
    # URL: the mapping's OnFailure destination) and the stream moves on; None retries for ever.
    max_retries: int | None = None
    on_failure: tuple[Any, str] | None = None
    _attempts: int = 0
    _listed: bool = False
    _next: str | None = None  # the shard iterator after the last batch read, while the checkpoint follows it
    _pending_next: str | None = None

    def _records(self) -> list[dict[str, Any]]:
        if not self._listed:  # Lambda checks the role can list the table's streams when the mapping starts
            table = self.stream_arn.split(":table/", 1)[1].split("/", 1)[0]
            self.streams.list_streams(TableName=table)
            self._listed = True
        iterator, self._next = self._next, None
        if iterator is None:  # (re)start at the checkpoint
            [shard] = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
            position = {"ShardIteratorType": "TRIM_HORIZON"} if self.checkpoint is None else \
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.checkpoint}
            iterator = self.streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard["ShardId"],
                                                       **position)["ShardIterator"]
        page = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
        self._pending_next = page.get("NextShardIterator")
        return page["Records"]

    def _advance(self, checkpoint: str | None) -> None:
        """Done with the batch up to `checkpoint`; the next read continues after the batch just read."""
        self.checkpoint = checkpoint
        self._next = self._pending_next

    def poll_once(self) -> Delivery:
        """Deliver one batch (the records after the checkpoint that the filter passes)."""
        delivery = Delivery()
        records = self._records()
        if not records:
            self._next = self._pending_next
            return delivery
        passed = [lambda_record(record, self.stream_arn) for record in records
                  if not self.patterns or any(matches(pattern, record) for pattern in self.patterns)]
        delivery.filtered_out = len(records) - len(passed)
        if not passed:
            self._advance(records[-1]["dynamodb"]["SequenceNumber"])
            return delivery
        delivery.delivered = len(passed)
        try:
            answer = self.invoke({"Records": passed})
        except Exception:  # noqa: BLE001 (Lambda retries the batch: no checkpoint)
            delivery.failed = True
            self._retry_or_give_up(passed, passed[0]["dynamodb"]["SequenceNumber"])
            return delivery
        failures = [item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])]
        if failures:
            delivery.failed = True
            first = min(failures, key=int)
            before = [record["dynamodb"]["SequenceNumber"] for record in records
                      if int(record["dynamodb"]["SequenceNumber"]) < int(first)]
            self.checkpoint = before[-1] if before else self.checkpoint
            self._retry_or_give_up([record for record in passed if int(record["dynamodb"]["SequenceNumber"])
                                    >= int(first)], first)
        else:
            self._attempts = 0
            self._advance(records[-1]["dynamodb"]["SequenceNumber"])
        return delivery

    def _retry_or_give_up(self, batch: list[dict[str, Any]], first: str) -> None:
        """Count a failed delivery; past `max_retries`, send the batch's position (never its records: Lambda
        sends the shard and sequence numbers) to the on-failure destination and move past the batch."""
        self._attempts += 1
        if self.max_retries is None or self._attempts <= self.max_retries:
            return
        if self.on_failure is not None:
            sqs, queue_url = self.on_failure
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({
                "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": self._attempts},
                "DDBStreamBatchInfo": {"streamArn": self.stream_arn, "startSequenceNumber": first,
                                       "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                                       "batchSize": len(batch)}}))
        self._attempts = 0
        self.checkpoint = batch[-1]["dynamodb"]["SequenceNumber"]

    def drain(self, *, max_batches: int = 100, stop: Callable[[], bool] = lambda: False) -> int:
        """Deliver until the stream is read to its end, a batch fails or `stop()` says so (the server is
        stopping: what is left is delivered by the next run); the records delivered."""
        delivered = 0
        for _ in range(max_batches):
            if stop():
                return delivered
            delivery = self.poll_once()
            delivered += delivery.delivered
            if delivery.failed or (delivery.delivered == 0 and delivery.filtered_out == 0):
                return delivered
        return delivered
