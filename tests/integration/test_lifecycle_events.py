"""Lifecycle events out (issue 16): every committed change is published to EventBridge at least once under
a stable event id, driven by the keys table's stream; nothing is published for a change that did not
commit; no event carries a secret or token. The stream's event source mapping is played by
keygate_dev.stream (moto records the stream but triggers nothing), and what reached the bus is read from an
SQS queue a rule delivers to (tests/support/lifecycle.py)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta

import pytest

from keygate import lifecycle_events
from keygate.records import now_utc
from keygate.storage import layout
from keygate.storage.events import PUBLISHED_ITEM_TYPES
from tests.support.clocks import FixedClock
from tests.support.faults import Fault, HandlerCrashed, Mode
from tests.support.lifecycle import Mailer, invoke_publisher, stream_source
from tests.support.stack import BUILTIN_STEP_UP, gaiaex_time, layer, table_items

EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def published_entries() -> list[dict]:
    """The committed items the publisher must publish: audit entries and notices whose action is mapped."""
    return [item for item in table_items() if item.get("type") in PUBLISHED_ITEM_TYPES
            and lifecycle_events.detail_type(item["event"], item.get("details") or {}) is not None]


def expected_ids() -> Counter:
    return Counter(lifecycle_events.event_id(item["pk"], item["sk"]) for item in published_entries())


def received_ids(mailer: Mailer) -> Counter:
    return Counter(event["detail"]["event_id"] for event in mailer.received())


# ------------------------------------------------------------------ mutations
def _create(client, key_id):
    assert client.create(label="second", permissions=["read"]).status == 200


def _update(client, key_id):
    assert client.update(key_id, label="renamed", ip_whitelist=["203.0.113.7"]).status == 200


def _revoke(client, key_id):
    assert client.revoke(key_id).status == 200


def _revoke_all(client, key_id):
    assert client.create(label="another").status == 200
    assert client.revoke_all().status == 200


MUTATIONS = {"create": (_create, "ApiKeyCreated"), "update": (_update, "ApiKeyUpdated"),
             "revoke": (_revoke, "ApiKeyRevoked"), "revoke_all": (_revoke_all, "ApiKeysAllRevoked")}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_every_committed_change_is_published_once_under_its_audit_entrys_id(client, alice, mutation):
    # Given a mailer subscribed to the lifecycle bus, and alice's key (its creation published)
    mailer = Mailer()
    key_id = client.create(label="bot", permissions=["read", "trade"]).json()["api_key"]
    source = stream_source()
    source.drain()
    # When the mutation commits and the stream is delivered to the publisher
    change, detail_type = MUTATIONS[mutation]
    change(client, key_id)
    source.drain()
    # Then every committed audit entry was published exactly once, under the id derived from its key ...
    assert received_ids(mailer) == expected_ids() and len(expected_ids()) >= 2
    # ... as an event of source keygate with the mutation's detail-type, naming user, key, prefix, label, IP
    [event, *_] = mailer.of_type(detail_type)
    detail = event["detail"]
    assert event["source"] == "keygate" and EVENT_ID.fullmatch(detail["event_id"])
    assert detail["user_id"] == "alice" and detail["api_key"].startswith("kgk_")
    assert detail["key_prefix"] == detail["api_key"][:10]
    assert detail["source_ip"] and detail["occurred_at"] and isinstance(detail["changes"], dict)
    assert detail["label"] in {"second", "renamed", "bot", "another"}


def test_an_update_event_says_what_changed(client, alice):
    mailer = Mailer()
    key_id = client.create(label="bot", permissions=["read"]).json()["api_key"]
    assert client.update(key_id, label="grid-bot").status == 200
    stream_source().drain()
    [updated] = mailer.of_type("ApiKeyUpdated")
    assert updated["detail"]["label"] == "grid-bot"
    assert updated["detail"]["changes"]["updated_fields"] == ["label"]
    assert updated["detail"]["changes"]["changes"] == {"label": {"from": "bot", "to": "grid-bot"}}


def test_a_rotation_event_says_how_long_the_previous_secret_lasts(client, alice):
    # Given a key rotated with a 10-minute grace
    mailer = Mailer()
    key_id = client.create(label="bot").json()["api_key"]
    rotated = client.rotate(key_id, grace_seconds=600).json()
    stream_source().drain()
    # Then its event carries what README's catalogue shows: the key type, the grace and when it ends (the
    # answer's previous_valid_until, to the second), whether it cut an earlier grace short; never the secret
    [event] = mailer.of_type("ApiKeyRotated")
    changes = event["detail"]["changes"]
    assert set(changes) == {"key_type", "grace_seconds", "previous_valid_until", "earlier_grace_ended"}
    assert (changes["key_type"], changes["grace_seconds"], changes["earlier_grace_ended"]) == ("hmac-sha256", 600,
                                                                                               False)
    ends = datetime.fromisoformat(changes["previous_valid_until"])
    assert abs(ends - gaiaex_time(rotated["previous_valid_until"])) < timedelta(seconds=1)
    assert rotated["api_secret"] not in json.dumps(event)


@pytest.mark.parametrize("operation", ["dynamodb.TransactWriteItems", "secretsmanager.CreateSecret"])
def test_a_change_that_failed_publishes_nothing(client, alice, aws_calls, operation):
    # Given a mailer, and a create whose commit (or whose secret) fails
    mailer = Mailer()
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation=operation))
    assert client.create(label="doomed").status == 503
    aws_calls.disarm()
    # When the stream is delivered
    stream_source().drain()
    # Then nothing was published: there is no committed entry to publish
    assert published_entries() == [] and mailer.received() == []


def test_a_refused_change_publishes_nothing(client, alice):
    mailer = Mailer()
    key_id = client.create(label="bot").json()["api_key"]
    assert client.revoke(key_id).status == 200
    assert client.update(key_id, label="too late").status == 400  # a revoked key cannot change
    stream_source().drain()
    assert sorted(event["detail-type"] for event in mailer.received()) == ["ApiKeyCreated", "ApiKeyRevoked"]


def test_a_publisher_crash_before_put_events_still_publishes(client, alice, aws_calls):
    # Given a committed create, and a publisher that dies before PutEvents reaches EventBridge
    mailer = Mailer()
    client.create(label="bot")
    source = stream_source()
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation="events.PutEvents",
                        error=HandlerCrashed("the Lambda died before PutEvents")))
    with pytest.raises(HandlerCrashed):
        source.poll_once()
    assert mailer.received() == []
    aws_calls.disarm()
    # When Lambda delivers the batch again (the checkpoint did not move)
    source.drain()
    # Then the event is published, once
    assert received_ids(mailer) == expected_ids() and sum(expected_ids().values()) == 1


def test_a_publisher_crash_after_put_events_publishes_a_duplicate_with_the_same_id(client, alice, aws_calls):
    # Given a committed create, and a publisher that dies right after PutEvents succeeded
    mailer = Mailer()
    client.create(label="bot")
    source = stream_source()
    aws_calls.arm(Fault(Mode.CRASH_AFTER, operation="events.PutEvents"))
    with pytest.raises(HandlerCrashed):
        source.poll_once()
    aws_calls.disarm()
    # When the batch is delivered again
    source.drain()
    # Then the event arrived twice, both times under the same event id: the mailer drops the second
    [event_id] = expected_ids()
    assert received_ids(mailer) == Counter({event_id: 2})
    first, second = mailer.received()
    assert first["detail"] == second["detail"]


@pytest.mark.parametrize("mode", [Mode.FAIL_BEFORE, Mode.LOST_RESPONSE])
def test_a_failed_put_events_is_a_batch_item_failure_and_is_retried(client, alice, aws_calls, mode):
    # Given two committed changes, and a PutEvents that fails (an AWS fault, or its answer lost)
    mailer = Mailer()
    key_id = client.create(label="bot").json()["api_key"]
    client.update(key_id, label="renamed")
    source = stream_source()
    aws_calls.arm(Fault(mode, operation="events.PutEvents"))
    delivery = source.poll_once()
    aws_calls.disarm()
    # Then the publisher answered a batch item failure (the stream stays at the first entry) ...
    assert delivery.failed
    # ... and the next delivery publishes every entry
    source.drain()
    assert set(received_ids(mailer)) == set(expected_ids()) and len(expected_ids()) == 2


def test_an_entry_put_events_does_not_accept_is_retried_from_there(client, alice, monkeypatch):
    # Given three committed changes, and EventBridge accepting only the first entry of a request
    from keygate.storage.events import EventBridgePublisher

    mailer = Mailer()
    key_id = client.create(label="bot").json()["api_key"]
    client.update(key_id, label="one")
    client.update(key_id, label="two")
    original, calls = EventBridgePublisher.put, []

    def first_only(self, events):
        calls.append(len(events))
        return original(self, events[:1]) + [False] * (len(events) - 1)

    monkeypatch.setattr(EventBridgePublisher, "put", first_only)
    answer = invoke_publisher({"Records": []})
    assert answer == {"batchItemFailures": []}
    source = stream_source()
    # When the batch is delivered until everything is accepted
    for _ in range(5):
        source.poll_once()
    # Then each entry was published once, in commit order
    assert list(received_ids(mailer)) == [lifecycle_events.event_id(item["pk"], item["sk"])
                                         for item in sorted(published_entries(), key=lambda item: item["created_at"])]
    assert calls[:3] == [3, 2, 1]


def test_only_inserted_audit_entries_and_notices_reach_the_publisher(client, alice):
    # Given the template's filter, and a create (key record, pointer, keyset, audit entry, step-up use ...)
    delivered = []
    source = stream_source(invoke=lambda event: delivered.extend(event["Records"]) or {"batchItemFailures": []})
    client.create(label="bot")
    source.drain()
    # Then the function saw the audit entry alone
    assert [record["dynamodb"]["NewImage"]["type"]["S"] for record in delivered] == ["audit"]
    assert all(record["eventName"] == "INSERT" for record in delivered)


# ------------------------------------------------------------ no secret, ever
SECRET_LIKE = re.compile(r"kgs_[0-9A-Za-z]{20,}|eyJ[\w-]+\.[\w-]+|PRIVATE KEY")


def _synthetic_entry(action: str, **details):
    """An audit item of an action another capability writes (rotation, passkeys, leaks, operators), put as
    the layer puts audit entries, with details that try to smuggle a secret and a token out."""
    from keygate.records import ApiKeyRecord, KeyStatus

    record = ApiKeyRecord(key_id="kgk_" + "A" * 28, user_id="alice", label="bot", permissions=["read"],
                          ip_whitelist=[], status=KeyStatus.ACTIVE, created_at=now_utc())
    item = layout.to_item({"pk": layout.audit_pk(record.key_id), "sk": layout.audit_sk(2, now_utc(), action),
                           "type": "audit", "user_id": "alice", "event": action, "api_key": record.key_id,
                           "label": record.label, "ip_address": "198.51.100.7",
                           "created_at": layout.stored_time(now_utc()), "details": details})
    return item


def test_no_event_of_any_detail_type_carries_a_secret_or_a_token(client, alice):
    # Given the real changes (create with its secret shown once, update, revoke, revoke-all, expiry notices)
    import boto3

    from tests.support.stack import REGION, TABLE_NAME

    mailer = Mailer()
    created = client.create(label="bot", expires_days=8).json()
    secret = created["api_secret"]
    client.update(created["api_key"], label="renamed")
    client.revoke(created["api_key"])
    client.create(label="other", expires_days=8)
    client.revoke_all()
    expiring = client.create(label="expiring", expires_days=8).json()["api_key"]
    for days in (1, 7, 8):
        layer().lifecycle.at(FixedClock(now_utc() + timedelta(days=days, minutes=1))).send_expiry_notices()
    # ... and every action the map names that other capabilities write, with a secret and a token planted
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    for action, reason in lifecycle_events.DETAIL_TYPES:
        details = {"reason": reason} if reason else {}
        dynamodb.put_item(TableName=TABLE_NAME, Item=_synthetic_entry(
            action, **details, url=f"https://github.com/o/r/blob/main/.env?k={secret}", operator=token,
            passkey_id="pk1", changes={"note": secret}))
    # When everything is published
    stream_source().drain()
    # Then every detail-type was published, and no event carries a secret, a token or a private key
    events = mailer.received()
    assert {event["detail-type"] for event in events} == set(lifecycle_events.DETAIL_TYPES.values())
    assert expiring
    for event in events:
        text = json.dumps(event)
        assert secret not in text and token not in text and not SECRET_LIKE.search(text), event["detail-type"]


# --------------------------------------------------------------- expiry notices
def test_expiry_notices_are_sent_at_7_days_1_day_and_the_expiry_once_each(client, alice):
    # Given a key created now that expires in 8 days, and a mailer
    mailer = Mailer()
    created = client.create(label="bot", expires_days=8).json()
    expires_at = layer().keys.get_key("alice", created["api_key"]).expires_at  # to the millisecond
    source = stream_source()

    def run_at(moment):
        report = layer().lifecycle.at(FixedClock(moment)).send_expiry_notices()
        source.drain()
        return report

    second = timedelta(seconds=1)
    # When the schedule runs just before each threshold, at it, and again later
    assert run_at(expires_at - timedelta(days=7) - second).sent == []
    assert len(run_at(expires_at - timedelta(days=7) + second).sent) == 1
    assert run_at(expires_at - timedelta(days=7) + timedelta(hours=1)).sent == []
    assert run_at(expires_at - timedelta(days=1) - second).sent == []
    assert len(run_at(expires_at - timedelta(days=1) + second).sent) == 1
    assert run_at(expires_at - second).sent == []
    assert len(run_at(expires_at + second).sent) == 1
    assert run_at(expires_at + timedelta(days=3)).sent == []
    # Then the mailer got each notice once, in order, naming the key and its expiry
    notices = [event for event in mailer.received() if event["detail-type"] in {"ApiKeyExpiring", "ApiKeyExpired"}]
    assert [(event["detail-type"], event["detail"]["changes"].get("expires_in_days")) for event in notices] == [
        ("ApiKeyExpiring", 7), ("ApiKeyExpiring", 1), ("ApiKeyExpired", None)]
    for event in notices:
        assert event["detail"]["api_key"] == created["api_key"] and event["detail"]["label"] == "bot"
        assert layout.parse_time(event["detail"]["changes"]["expires_at"].replace("Z", "+00:00")) == expires_at
    # And what was sent is recorded, and nothing is left due
    assert len([item for item in table_items() if item["type"] == "notice"]) == 3
    assert [item for item in table_items() if item["pk"] == layout.EXPIRY_PARTITION] == []


def test_a_revoked_key_gets_no_expiry_notice_and_a_short_key_no_7_day_notice(client, alice):
    mailer = Mailer()
    revoked = client.create(label="revoked", expires_days=8).json()["api_key"]
    client.revoke(revoked)
    short = client.create(label="short", expires_days=2).json()["api_key"]
    layer().lifecycle.at(FixedClock(now_utc() + timedelta(days=1, hours=1))).send_expiry_notices()
    report = layer().lifecycle.at(FixedClock(now_utc() + timedelta(days=9))).send_expiry_notices()
    stream_source().drain()
    assert report.sent == [f"{short} expired"]
    assert len(report.dropped) == 2  # the revoked key's 1-day notice and expiry (its 7-day one went earlier)
    notices = [event for event in mailer.received() if event["detail-type"].startswith("ApiKeyExpir")]
    assert {event["detail"]["api_key"] for event in notices} == {short}


def test_a_late_run_sends_only_the_latest_notice_due(client, alice):
    # Given a key expiring in 8 days, and a schedule that did not run until after its expiry
    mailer = Mailer()
    key_id = client.create(label="bot", expires_days=8).json()["api_key"]
    # When it runs
    report = layer().lifecycle.at(FixedClock(now_utc() + timedelta(days=8, minutes=1))).send_expiry_notices()
    stream_source().drain()
    # Then only ApiKeyExpired is sent: the two "expiring" notices are dropped as superseded
    assert report.sent == [f"{key_id} expired"] and len(report.dropped) == 2
    assert [event["detail-type"] for event in mailer.received() if event["detail-type"].startswith("ApiKeyExpir")] \
        == ["ApiKeyExpired"]


def test_the_expiry_schedule_reads_the_index_without_scan(client, alice, aws_calls):
    client.create(label="bot", expires_days=8)
    with aws_calls.recording() as calls:
        layer().lifecycle.at(FixedClock(now_utc() + timedelta(days=9))).send_expiry_notices()
    assert "dynamodb.Scan" not in calls and "dynamodb.Query" in calls


def test_a_batch_never_accepted_goes_to_the_dead_letter_queue_by_position_only(client, alice, monkeypatch):
    # Given a committed create whose event EventBridge never accepts, and the mapping's on-failure queue
    import boto3

    from keygate.storage.events import EventBridgePublisher
    from tests.support.stack import REGION

    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="lifecycle-dead-letters")["QueueUrl"]
    created = client.create(label="bot").json()
    original = EventBridgePublisher.put
    monkeypatch.setattr(EventBridgePublisher, "put", lambda self, events: [False] * len(events))
    source = stream_source()
    source.max_retries, source.on_failure = 2, (sqs, queue)
    # When Lambda's retries are spent
    deliveries = [source.poll_once() for _ in range(3)]
    # Then every delivery failed, and the batch's position (never its content) went to the queue
    assert all(delivery.failed for delivery in deliveries)
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["DDBStreamBatchInfo"]["batchSize"] == 1
    assert created["api_secret"] not in message["Body"] and created["api_key"] not in message["Body"]
    # And the stream moved on: a later change is published once EventBridge accepts again
    monkeypatch.setattr(EventBridgePublisher, "put", original)
    mailer = Mailer()
    client.update(created["api_key"], label="renamed")
    source.drain()
    assert [event["detail-type"] for event in mailer.received()] == ["ApiKeyUpdated"]


def test_a_notice_that_failed_to_commit_stays_due_and_the_next_run_sends_it(client, alice, aws_calls):
    # Given a key whose 7-day notice is due, and the schedule's run failing at the notice's commit
    from tests.support.faults import Fault, Mode

    client.create(label="bot", expires_days=8)
    handler_clock = FixedClock(now_utc() + timedelta(days=1, minutes=1))
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation="dynamodb.TransactWriteItems"))
    failed = layer().lifecycle.at(handler_clock).send_expiry_notices()
    aws_calls.disarm()
    assert failed.sent == [] and len(failed.failed) == 1
    assert [item for item in table_items() if item["type"] == "notice"] == []
    # When the next run comes
    retried = layer().lifecycle.at(handler_clock).send_expiry_notices()
    # Then the notice is recorded, once
    assert retried.failed == [] and len(retried.sent) == 1
    assert len([item for item in table_items() if item["type"] == "notice"]) == 1


def test_the_expiry_function_fails_its_invocation_when_a_notice_failed(client, alice, aws_calls):
    # A failed run is a Lambda error: Scheduler's and Lambda's retries, then the dead-letter queue (alarmed)
    from keygate_dev import template as template_module
    from keygate_dev.lambda_runner import LambdaContext
    from tests.support.faults import Fault, Mode

    client.create(label="bot", expires_days=8)
    layer_items = [item for item in table_items() if item["pk"] == layout.EXPIRY_PARTITION]
    assert len(layer_items) == 3
    # (the handler runs on the wall clock: make one notice due now by moving its due time into the past)
    import boto3

    from tests.support.stack import REGION, TABLE_NAME

    first = min(layer_items, key=lambda item: item["sk"])
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.delete_item(TableName=TABLE_NAME, Key=layout.key(first["pk"], first["sk"]))
    due_now = first["sk"].replace(first["sk"].split("#", 1)[0], "0000000000001", 1)
    dynamodb.put_item(TableName=TABLE_NAME, Item=layout.to_item({**first, "sk": due_now}))
    handler = template_module.load_handler("ExpiryNoticesFunction")
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation="dynamodb.TransactWriteItems"))
    with pytest.raises(RuntimeError, match="stay due"):
        handler({}, LambdaContext("ExpiryNoticesFunction"))
    aws_calls.disarm()
    assert handler({}, LambdaContext("ExpiryNoticesFunction"))["failed"] == []


@pytest.mark.parametrize("stack_env", [BUILTIN_STEP_UP], indirect=True, ids=["builtin"])
def test_a_passkey_registration_is_published_naming_the_passkey(client, alice):
    # Given a mailer subscribed to the lifecycle bus
    mailer = Mailer()
    # When alice creates a key on the built-in step-up, whose first ceremony registers her passkey
    assert client.create(label="bot").status == 200
    stream_source().drain()
    # Then the registration is published too, naming the passkey (no key: api_key and label are null)
    [event] = mailer.of_type("PasskeyRegistered")
    detail = event["detail"]
    assert detail["user_id"] == "alice" and detail["action"] == "passkey_registered"
    assert detail["api_key"] is None and detail["key_prefix"] is None and detail["label"] is None
    assert detail["changes"]["passkey_id"] and "passkey_label" in detail["changes"]
    # And every committed entry, the passkey's among them, was published exactly once
    assert received_ids(mailer) == expected_ids()
