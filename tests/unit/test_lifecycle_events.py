"""Lifecycle events out (issue 16): the one map from audit actions to detail-types, the event's detail (no
secret, no token), publishing a stream batch in order, the local event source mapping's filter, and the
template's publisher: its event source mapping, its dead-letter path and its least-privilege IAM."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from keygate import keys
from keygate.errors import ServiceUnavailable
from keygate.lifecycle_events import (
    DETAIL_TYPES,
    LifecycleEvent,
    StreamedEntry,
    carries_secret,
    detail_type,
    event_id,
    event_of,
    publish,
)
from keygate.records import AuditEvent, NoticeEvent
from keygate.storage.events import PUBLISHED_ITEM_TYPES, streamed_entries
from keygate.storage.layout import to_item
from keygate_dev import stream, template
from tests.unit.test_template import _deployed

ISSUE_DETAIL_TYPES = {"ApiKeyCreated", "ApiKeyUpdated", "ApiKeyRotated", "ApiKeyRevoked", "ApiKeysAllRevoked",
                      "ApiKeyExpiring", "ApiKeyExpired", "PasskeyRegistered", "PasskeyRemoved", "ApiKeyLeakRevoked",
                      "ApiKeyOperatorRevoked"}
RESOURCES = template.load_template()["Resources"]


def _values(action: str, sk: str = "0000000002#t#u", **details) -> dict:
    return {"pk": "AUDIT#kgk_abcdefABCDEF", "sk": sk, "type": "audit", "event": action, "user_id": "alice",
            "api_key": "kgk_abcdefABCDEF", "label": "bot", "ip_address": "198.51.100.7",
            "created_at": "2026-11-26T12:00:00.000+00:00", "details": details}


def _prefix(key_id: str) -> str:
    return keys.visible_prefix(key_id, "kgk_")


# --------------------------------------------------------------------- the map
def test_the_map_names_exactly_the_issues_detail_types():
    assert set(DETAIL_TYPES.values()) == ISSUE_DETAIL_TYPES
    assert len(set(DETAIL_TYPES.values())) == len(DETAIL_TYPES)  # one action (and reason) per detail-type


# An account's prerequisites, recorded from the exchange's own events (README, "Events in"): the exchange
# already knows them, and they change no key: audited, not published.
ACCOUNT_ACTIONS = {AuditEvent.ACCOUNT_ONBOARDED, AuditEvent.TRADING_HANDSHAKE_COMPLETED}


@pytest.mark.parametrize("action", [*sorted(set(AuditEvent) - ACCOUNT_ACTIONS), *NoticeEvent])
def test_every_key_or_passkey_action_keygate_writes_is_published(action):
    assert detail_type(action.value, {}) is not None


@pytest.mark.parametrize("action", sorted(ACCOUNT_ACTIONS))
def test_the_accounts_prerequisites_are_audited_not_published(action):
    assert detail_type(action.value, {}) is None


def test_revoke_all_is_told_apart_by_its_reason():
    assert detail_type("key_revoked", {"reason": "user_request"}) == "ApiKeyRevoked"
    assert detail_type("key_revoked", {"reason": "revoke_all"}) == "ApiKeysAllRevoked"
    assert detail_type("onboarding_recorded", {}) is None  # audited, not published


def test_event_ids_are_stable_per_entry_and_distinct_between_entries():
    assert event_id("AUDIT#k", "1#t#a") == event_id("AUDIT#k", "1#t#a")
    assert event_id("AUDIT#k", "1#t#a") != event_id("AUDIT#k", "1#t#b") != event_id("NOTICE#k", "1#t#a")


# ------------------------------------------------------------------ the detail
def test_the_detail_names_user_key_prefix_label_changes_time_and_ip():
    event, dropped = event_of(_values("key_updated", updated_fields=["label"],
                                      changes={"label": {"from": "a", "to": "bot"}}), _prefix)
    assert dropped == [] and event is not None and event.detail_type == "ApiKeyUpdated"
    assert event.detail == {
        "event_id": event_id("AUDIT#kgk_abcdefABCDEF", "0000000002#t#u"), "action": "key_updated",
        "user_id": "alice", "api_key": "kgk_abcdefABCDEF", "key_prefix": "kgk_abcdef", "label": "bot",
        "changes": {"updated_fields": ["label"], "changes": {"label": {"from": "a", "to": "bot"}}},
        "occurred_at": "2026-11-26T12:00:00.000Z", "source_ip": "198.51.100.7"}


# Fixed values (the same on every xdist worker); a freshly generated secret is checked below.
PLANTED = {"secret": "kgs_7Hq2LmZx9PwR4tKc1VbN8yDf3GsJ6uEa0oXiQzTnY5rW", "jwt":
           "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.sig",
           "private-key": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----"}


def test_a_generated_secret_is_recognised():
    assert carries_secret(keys.new_secret()) and carries_secret({"x": [f"leak {keys.new_secret()}"]})
    assert not carries_secret(["read", "trade", "203.0.113.50", "kgk_3xWq9ZfLr2TnV8bYc1HdPe7Kj0a4Mu"])


@pytest.mark.parametrize("planted", list(PLANTED.values()), ids=list(PLANTED))
@pytest.mark.parametrize("action", sorted({action for action, _ in DETAIL_TYPES}))
def test_no_detail_type_carries_a_secret_token_or_private_key(action, planted):
    # Given an entry of any published action whose fields (named or not) carry a secret, a token or a key
    values = _values(action, url=f"https://example.com/?leak={planted}", changes={"x": [planted]},
                     operator=planted, note=planted, api_secret=planted)
    values["label"] = planted
    # When its event is built
    event, dropped = event_of(values, _prefix)
    # Then none of it is in the event, and what was left out is named
    assert event is not None and planted not in json.dumps(event.detail)
    assert set(dropped) == {"url", "changes", "operator"}
    assert carries_secret(planted)


def test_an_unlisted_detail_field_never_reaches_the_event():
    event, _ = event_of(_values("key_created", label="bot", internal="kept in the audit log only"), _prefix)
    assert event is not None and "internal" not in json.dumps(event.detail)


# -------------------------------------------------------------------- publishing
class RecordingPublisher:
    def __init__(self, refuse: set[int] | None = None, fail_call: int | None = None) -> None:
        self.calls: list[list[LifecycleEvent]] = []
        self._refuse, self._fail_call = refuse or set(), fail_call
        self._seen = 0

    def put(self, events):
        self.calls.append(list(events))
        if len(self.calls) - 1 == self._fail_call:
            raise ServiceUnavailable()
        accepted = [self._seen + index not in self._refuse for index in range(len(events))]
        self._seen += len(events)
        return accepted


def _entries(count: int) -> list[StreamedEntry]:
    return [StreamedEntry(str(100 + index), _values("key_created", sk=f"{index:010d}#t#u")) for index in range(count)]


def test_a_batch_is_published_in_stream_order_ten_at_a_time():
    publisher = RecordingPublisher()
    report = publish(_entries(23), publisher, _prefix)
    assert [len(call) for call in publisher.calls] == [10, 10, 3]
    assert report.failed_sequence_number is None and len(report.published) == 23
    assert report.published == [event.event_id for call in publisher.calls for event in call]


def test_publishing_stops_at_the_first_entry_not_accepted_and_names_it():
    publisher = RecordingPublisher(refuse={12})
    report = publish(_entries(23), publisher, _prefix)
    assert report.failed_sequence_number == "112" and len(report.published) == 12
    assert len(publisher.calls) == 2  # nothing after it is sent out of order


def test_a_failed_request_fails_its_first_entry():
    report = publish(_entries(15), RecordingPublisher(fail_call=1), _prefix)
    assert report.failed_sequence_number == "110" and len(report.published) == 10


def test_unpublished_actions_are_skipped():
    entries = [StreamedEntry("1", _values("onboarding_recorded")), *_entries(1)]
    report = publish(entries, RecordingPublisher(), _prefix)
    assert report.skipped == 1 and len(report.published) == 1


def test_the_stream_decoder_keeps_inserted_audit_entries_and_notices_only():
    def record(name, values, sequence):
        return {"eventName": name, "dynamodb": {"SequenceNumber": sequence, "NewImage": to_item(values)}}

    event = {"Records": [record("INSERT", _values("key_created"), "1"),
                         record("MODIFY", _values("key_created"), "2"),
                         record("INSERT", {**_values("key_created"), "type": "key"}, "3"),
                         record("INSERT", {**_values("key_expiring"), "type": "notice"}, "4")]}
    assert [entry.sequence_number for entry in streamed_entries(event)] == ["1", "4"]


# ------------------------------------------------------- the event source mapping
MAPPING = RESOURCES["PublishLifecycleEventsStream"]["Properties"]


def test_the_filter_passes_inserted_audit_entries_and_notices_only():
    [pattern] = stream.filter_patterns()
    assert pattern["dynamodb"]["NewImage"]["type"]["S"] == list(PUBLISHED_ITEM_TYPES)

    def record(name, kind):
        return {"eventName": name, "dynamodb": {"NewImage": {"type": {"S": kind}}}}

    assert stream.matches(pattern, record("INSERT", "audit")) and stream.matches(pattern, record("INSERT", "notice"))
    for name, kind in [("MODIFY", "audit"), ("INSERT", "key"), ("REMOVE", "audit"), ("INSERT", "expiry_notice_due")]:
        assert not stream.matches(pattern, record(name, kind)), (name, kind)


def test_the_mapping_retries_failed_items_then_sends_them_to_an_alarmed_dead_letter_queue():
    assert MAPPING["EventSourceArn"] == {"Fn::GetAtt": ["KeysTable", "StreamArn"]}
    assert MAPPING["FunctionName"] == {"Ref": "PublishLifecycleEventsFunction"}
    assert MAPPING["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert MAPPING["BisectBatchOnFunctionError"] is True and MAPPING["MaximumRetryAttempts"] > 0
    queue = {"Fn::GetAtt": ["LifecycleEventsDeadLetterQueue", "Arn"]}
    assert MAPPING["DestinationConfig"] == {"OnFailure": {"Destination": queue}}
    alarm = RESOURCES["LifecycleEventsDeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName",
                                    "Value": {"Fn::GetAtt": ["LifecycleEventsDeadLetterQueue", "QueueName"]}}]
    table = RESOURCES["KeysTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    expiry = RESOURCES["ExpiryNoticesFunction"]["Properties"]
    assert expiry["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": queue}
    assert expiry["Events"]["EveryFifteenMinutes"]["Properties"]["DeadLetterConfig"] == {"Arn": queue}


def _statements(function_id):
    return [statement for policy in RESOURCES[function_id]["Properties"]["Policies"]
            for statement in policy["Statement"] if statement["Effect"] == "Allow"]


def test_the_publisher_may_put_keygate_events_on_the_one_bus_read_the_stream_and_send_dead_letters():
    granted = {tuple(statement["Action"]): statement for statement in _statements("PublishLifecycleEventsFunction")}
    assert set(granted) == {("events:PutEvents",), ("sqs:SendMessage",), (
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams")}
    put = granted[("events:PutEvents",)]
    assert put["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:"
                                          "event-bus/${LifecycleEventBusName}"}
    assert put["Condition"] == {"StringEquals": {"events:source": ["keygate"]}}
    assert granted[("sqs:SendMessage",)]["Resource"] == {"Fn::GetAtt": ["LifecycleEventsDeadLetterQueue", "Arn"]}
    assert granted[("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams")]["Resource"] == {"Fn::GetAtt": ["KeysTable", "StreamArn"]}


def test_no_role_gets_a_managed_policy_that_reads_every_stream():
    # SAM's DynamoDB event would attach AWSLambdaDynamoDBExecutionRole (every stream of the account): the
    # template declares the mapping itself instead
    deployed = _deployed(template.load_template())["Resources"]
    assert deployed["PublishLifecycleEventsStream"]["Type"] == "AWS::Lambda::EventSourceMapping"
    for name, resource in deployed.items():
        if resource["Type"] == "AWS::IAM::Role":
            managed = json.dumps(resource["Properties"].get("ManagedPolicyArns", []))
            assert "DynamoDB" not in managed and "EventBridge" not in managed, name


def test_the_bus_is_a_parameter_defaulting_to_the_accounts_default_bus():
    parameter = template.load_template()["Parameters"]["LifecycleEventBusName"]
    assert parameter["Default"] == "default"
    environment = RESOURCES["PublishLifecycleEventsFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["LIFECYCLE_EVENT_BUS_NAME"] == {"Ref": "LifecycleEventBusName"}


def test_notices_are_due_7_days_1_day_and_at_the_expiry():
    from keygate.records import EXPIRY_NOTICES, DueNotice

    assert {name: delta.days for name, delta in EXPIRY_NOTICES.items()} == {"expiring_7d": 7, "expiring_1d": 1,
                                                                           "expired": 0}
    at = datetime(2026, 12, 1, tzinfo=UTC)
    expiring = DueNotice("k", "u", "expiring_1d", at, at)
    assert expiring.event is NoticeEvent.KEY_EXPIRING and expiring.details()["expires_in_days"] == 1
    assert DueNotice("k", "u", "expired", at, at).event is NoticeEvent.KEY_EXPIRED


def test_the_readme_catalogue_shows_every_detail_type_with_an_example_of_the_detail_keygate_builds():
    import re

    readme = (template.ROOT / "README.md").read_text()
    section = readme.split("## Lifecycle events (for the exchange's mailer)", 1)[1].split("\n## ", 1)[0]
    examples = dict(re.findall(r"`(\w+)`:\n\n```json\n(.+?)\n```", section))
    assert set(examples) == ISSUE_DETAIL_TYPES
    built, _ = event_of(_values("key_created"), _prefix)
    assert built is not None
    for name, text in examples.items():
        detail = json.loads(text)
        assert set(detail) == set(built.detail), name
        assert f"| `{name}` |" in section
        row = re.search(rf"\| `{name}` \| `(\w+)`", section)
        assert row and detail_type(row.group(1), detail["changes"]) == name == detail_type(detail["action"],
                                                                                             detail["changes"])
