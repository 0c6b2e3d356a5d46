"""Lifecycle events out: which committed audit entry becomes which EventBridge event, and publishing them.

Events are driven by the committed audit entries (and expiry notices) as the keys table's stream
carries them, never by the handler that made the change: a change that did not commit has no entry,
and an entry that committed is published at least once, under an event id derived from the entry's own
key (docs/architecture.md, "Lifecycle events out"). Standard library only; the stream's decoding and
PutEvents live in keygate.storage.events.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from keygate.errors import ServiceUnavailable
from keygate.records import iso

SOURCE = "keygate"
_EVENT_ID_NAMESPACE = uuid.UUID("6f1c1d2e-5b7a-4c8e-9a3f-6b2d0e4c7a15")

# The one map from an audit action (and, where one action covers two changes, its `reason`) to the
# event's detail-type; README's event catalogue lists the same rows. Actions not listed (onboarding,
# suspected cloned authenticators, ...) are audited but not published.
DETAIL_TYPES: dict[tuple[str, str | None], str] = {
    ("key_created", None): "ApiKeyCreated",
    ("key_updated", None): "ApiKeyUpdated",
    ("key_rotated", None): "ApiKeyRotated",
    ("key_revoked", None): "ApiKeyRevoked",
    ("key_revoked", "revoke_all"): "ApiKeysAllRevoked",
    ("key_expiring", None): "ApiKeyExpiring",
    ("key_expired", None): "ApiKeyExpired",
    ("passkey_registered", None): "PasskeyRegistered",
    ("passkey_removed", None): "PasskeyRemoved",
    ("key_revoked_leaked", None): "ApiKeyLeakRevoked",
    ("key_revoked_operator", None): "ApiKeyOperatorRevoked",
}

# What of an entry's details an event may carry ("what changed"): named fields only, so nothing an audit
# entry gains later reaches the exchange's mailer without a decision here.
DETAIL_FIELDS = ("label", "permissions", "ip_whitelist", "expires_at", "updated_fields", "changes", "reason",
                 "expires_in_days", "grace_seconds", "previous_valid_until", "earlier_grace_ended", "key_type", "url",
                 "operator", "passkey_id", "passkey_label")

# Shapes no event may carry, whatever a field holds: a KeyGate secret, a JWT (session or step-up token),
# a PEM private key. A value that has one is dropped from the event (and logged by name).
_FORBIDDEN = re.compile(r"kgs_[0-9A-Za-z]{20,}|eyJ[\w-]{8,}\.[\w-]{8,}\.|-----BEGIN [A-Z ]*PRIVATE KEY-----")


def detail_type(action: str, details: Mapping[str, Any]) -> str | None:
    """The detail-type of an audit action, or None for an action that is not published."""
    reason = details.get("reason")
    return DETAIL_TYPES.get((action, reason if isinstance(reason, str) else None)) or DETAIL_TYPES.get((action, None))


def event_id(partition_key: str, sort_key: str) -> str:
    """The stable id of the event of the entry at (pk, sk): the same for every delivery of that entry."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{partition_key}\n{sort_key}"))


def carries_secret(value: Any) -> bool:
    if isinstance(value, str):
        return _FORBIDDEN.search(value) is not None
    if isinstance(value, Mapping):
        return any(carries_secret(key) or carries_secret(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(carries_secret(item) for item in value)
    return False


@dataclass(frozen=True)
class LifecycleEvent:
    event_id: str
    detail_type: str
    detail: dict[str, Any]
    occurred_at: str  # ISO 8601, the entry's time

    @property
    def source(self) -> str:
        return SOURCE


@dataclass(frozen=True)
class StreamedEntry:
    """An audit entry or expiry notice as the stream delivered it: its position and its item's values."""

    sequence_number: str
    values: dict[str, Any]


def event_of(values: Mapping[str, Any],
             visible_prefix: Callable[[str], str]) -> tuple[LifecycleEvent | None, list[str]]:
    """The event of a committed entry (None if its action is not published), and the names of detail
    fields left out because they looked like a secret or token."""
    details = values.get("details") or {}
    kind = detail_type(str(values.get("event", "")), details)
    if kind is None:
        return None, []
    dropped = [name for name in DETAIL_FIELDS if name in details and carries_secret(details[name])]
    changes = {name: details[name] for name in DETAIL_FIELDS if name in details and name not in dropped}
    key_id = values.get("api_key") or None
    label = values.get("label", details.get("label"))
    occurred_at = iso(datetime.fromisoformat(values["created_at"])) if values.get("created_at") else None
    detail = {
        "event_id": event_id(str(values["pk"]), str(values["sk"])),
        "action": values["event"],
        "user_id": values.get("user_id"),
        "api_key": key_id,
        "key_prefix": visible_prefix(key_id) if key_id else None,
        "label": None if carries_secret(label) else label,
        "changes": changes,
        "occurred_at": occurred_at,
        "source_ip": values.get("ip_address") or None,
    }
    return LifecycleEvent(detail["event_id"], kind, detail, occurred_at or ""), dropped


class EventPublisher(Protocol):
    """Where lifecycle events go (EventBridge; keygate.storage.events)."""

    def put(self, events: list[LifecycleEvent]) -> list[bool]:
        """Publish up to 10 events in one request; per event, whether it was accepted. Raises
        ServiceUnavailable when the request failed as a whole."""


PUT_EVENTS_MAX_ENTRIES = 10  # EventBridge's PutEvents limit


@dataclass
class PublishReport:
    published: list[str] = field(default_factory=list)  # event ids
    skipped: int = 0  # entries whose action is not published
    failed_sequence_number: str | None = None  # where the stream must resume (a batch item failure)


def publish(entries: Iterable[StreamedEntry], publisher: EventPublisher, visible_prefix: Callable[[str], str],
            *, on_dropped: Callable[[str, list[str]], None] = lambda event_id, names: None) -> PublishReport:
    """Publish the events of a stream batch in stream order, at most 10 per request. At the first entry that
    is not accepted (or a request that fails) publishing stops and the report names that entry: the stream
    resumes there, so nothing after it is published out of order, and nothing before it twice."""
    report = PublishReport()
    pending: list[tuple[str, LifecycleEvent]] = []
    for entry in entries:
        event, dropped = event_of(entry.values, visible_prefix)
        if event is None:
            report.skipped += 1
            continue
        if dropped:
            on_dropped(event.event_id, dropped)
        pending.append((entry.sequence_number, event))
    for start in range(0, len(pending), PUT_EVENTS_MAX_ENTRIES):
        chunk = pending[start:start + PUT_EVENTS_MAX_ENTRIES]
        try:
            accepted = publisher.put([event for _, event in chunk])
        except ServiceUnavailable:
            accepted = [False] * len(chunk)
        for (sequence_number, event), ok in zip(chunk, accepted, strict=True):
            if not ok:
                report.failed_sequence_number = sequence_number
                return report
            report.published.append(event.event_id)
    return report
