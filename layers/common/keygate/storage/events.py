"""Lifecycle events on AWS: the keys table's stream records decoded, and EventBridge's PutEvents
(keygate.lifecycle_events.EventPublisher). Why the stream: docs/architecture.md, "Lifecycle events out"."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from keygate.lifecycle_events import LifecycleEvent, StreamedEntry
from keygate.storage import aws, layout

# The items the publisher reads: audit entries, expiry notices and passkey audit entries (the event source
# mapping's filter, in template.yaml, passes only these, and only as inserted: all are written once, never
# changed).
PUBLISHED_ITEM_TYPES = ("audit", "notice", "passkey_audit")


def _as_entry(values: dict[str, Any]) -> dict[str, Any]:
    """A passkey audit entry (keygate.storage.passkeys) in an audit entry's shape: its passkey's id and label
    are what changed; `label`, a key's label in an audit entry, stays empty."""
    if values.get("type") != "passkey_audit":
        return values
    details = {**(values.get("details") or {}), "passkey_id": values.get("passkey_id"),
               "passkey_label": values.get("label")}
    return {**values, "label": None, "details": details}


def streamed_entries(event: dict[str, Any]) -> list[StreamedEntry]:
    """The inserted audit entries and notices of a DynamoDB stream event (Lambda's shape), in stream order."""
    entries = []
    for record in event.get("Records", []):
        image = record.get("dynamodb", {}).get("NewImage")
        if record.get("eventName") != "INSERT" or not image:
            continue
        values = layout.from_item(image)
        if values.get("type") in PUBLISHED_ITEM_TYPES:
            entries.append(StreamedEntry(sequence_number=record["dynamodb"]["SequenceNumber"],
                                         values=_as_entry(values)))
    return entries


class EventBridgePublisher:
    def __init__(self, clients: aws.AwsClients, bus_name: str) -> None:
        self._clients = clients
        self._bus = bus_name

    def put(self, events: list[LifecycleEvent]) -> list[bool]:
        entries = [{"Source": event.source, "DetailType": event.detail_type, "Detail": json.dumps(event.detail),
                    "EventBusName": self._bus} for event in events]
        try:
            response = self._clients.events.put_events(Entries=entries)
        except (ClientError, BotoCoreError) as error:
            raise aws.unavailable("PutEvents", error) from error
        return ["EventId" in result and "ErrorCode" not in result for result in response.get("Entries", [])]
