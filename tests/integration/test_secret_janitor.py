"""The secret janitor and the bounds of docs/architecture.md ("Bounds", invariant 4).

- A revoked key's secret is deleted during the revoke; if that fails, by the
  next janitor run, i.e. within one JANITOR_PERIOD of the revocation.
- A failed create's orphan secret lives until ORPHAN_GRACE_SECONDS passed
  (not less: the create may still be committing) and is deleted by the first
  run after that, i.e. within the grace period plus one JANITOR_PERIOD.
- A key that committed after all keeps its secret; a failed janitor run
  leaves the entry queued; the janitor only queries and deletes by key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keygate import service
from keygate.config import KeyPolicy
from keygate.errors import ServiceUnavailable
from keygate_dev.lambda_runner import LambdaContext
from keygate_dev.template import load_handler, module_for, resources
from tests.support.clocks import FixedClock
from tests.support.errors import assert_error
from tests.support.faults import Fault, HandlerCrashed, Mode, empty_aws
from tests.support.invariants import check_invariants, stored_state
from tests.support.stack import layer, onboard, run_janitor

COMMIT = "dynamodb.TransactWriteItems"
DELETE_SECRET = "secretsmanager.DeleteSecret"


def grace() -> timedelta:
    return timedelta(seconds=KeyPolicy.from_environ().orphan_grace_seconds)


def revoke_with_failed_secret_deletion(client, aws_calls, user: str = "alice") -> tuple[str, datetime]:
    """A key revoked while Secrets Manager was down: the revocation stands, the secret is left over."""
    key_id = client.create(user).json()["api_key"]
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation=DELETE_SECRET))
    revoked = client.revoke(key_id, user)
    aws_calls.disarm()
    assert revoked.status == 200, revoked.body
    # (the stored time, to the millisecond: GaiaEx's answer gives it to the second)
    return key_id, stored_state().keys[key_id].revoked_at


def test_a_revoked_keys_secret_is_deleted_during_the_revoke(client, alice):
    # Given an active key with its secret
    key_id = client.create().json()["api_key"]
    assert key_id in stored_state().secrets
    # When it is revoked
    assert client.revoke(key_id).status == 200
    # Then the secret is gone at once and nothing is left for the janitor
    state = check_invariants(settled=True)
    assert key_id not in state.secrets


@pytest.mark.parametrize("run_after", [timedelta(0), service.JANITOR_PERIOD], ids=["at-once", "one-period-later"])
def test_a_failed_deletion_after_revoke_is_finished_by_the_next_janitor_run(client, alice, aws_calls, run_after):
    # Given a revocation whose inline secret deletion failed
    key_id, revoked_at = revoke_with_failed_secret_deletion(client, aws_calls)
    state = check_invariants(settled=False)
    assert key_id in state.secrets and key_id in state.cleanup_key_ids
    # When the next janitor run comes, at the earliest right at the revocation, at the latest one period later
    report = run_janitor(FixedClock(revoked_at + run_after))
    # Then it deletes the secret: a revoked key's secret outlives the revocation by at most one period
    assert report.deleted == [key_id] and report.failed == []
    state = check_invariants(settled=True)
    assert key_id not in state.secrets


def test_the_scheduled_janitor_function_finishes_a_failed_deletion(client, alice, aws_calls):
    # Given a revocation whose inline secret deletion failed
    key_id, _ = revoke_with_failed_secret_deletion(client, aws_calls)
    # When EventBridge Scheduler invokes the janitor function
    handler = load_handler("SecretJanitorFunction")
    result = handler({"source": "aws.scheduler"}, LambdaContext("SecretJanitorFunction"))
    # Then the secret is deleted and reported
    assert result == {"deleted": [key_id], "kept": [], "failed": []}
    check_invariants(settled=True)


def test_the_janitor_function_counts_failed_deletions_for_its_alarm(client, alice, aws_calls, monkeypatch):
    # Given a revoked key whose secret is left over, and the metrics the janitor function records
    key_id, _ = revoke_with_failed_secret_deletion(client, aws_calls)
    handler = load_handler("SecretJanitorFunction")
    recorded: dict[str, float] = {}
    monkeypatch.setattr(module_for("SecretJanitorFunction").metrics, "add_metric",
                        lambda name, unit, value, **_: recorded.__setitem__(name, value))
    # When a scheduled run cannot delete it (Secrets Manager still down)
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation=DELETE_SECRET))
    result = handler({"source": "aws.scheduler"}, LambdaContext("SecretJanitorFunction"))
    aws_calls.disarm()
    # Then the entry stays queued and the run counts it as SecretCleanupFailed (SecretCleanupFailedAlarm)
    assert result["failed"] == [key_id]
    assert recorded == {"SecretCleanupDeleted": 0, "SecretCleanupFailed": 1}
    # When the next run succeeds, Then it counts the deletion and no failure
    recorded.clear()
    handler({"source": "aws.scheduler"}, LambdaContext("SecretJanitorFunction"))
    assert recorded == {"SecretCleanupDeleted": 1, "SecretCleanupFailed": 0}


def test_an_orphan_secret_of_a_failed_create_lives_out_the_grace_period_then_goes(client, alice, aws_calls):
    # Given a create whose commit failed after its secret was stored
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation=COMMIT))
    started = datetime.now(UTC)
    assert_error(client.create(label="bot"), 503, "SERVICE_UNAVAILABLE")
    finished = datetime.now(UTC)
    state = check_invariants(settled=False)
    [orphan] = state.secrets
    assert orphan not in state.keys and state.cleanup_key_ids == [orphan]

    # When the janitor runs just before the grace period can have passed
    early = run_janitor(FixedClock(started + grace() - timedelta(milliseconds=1)))
    # Then the secret stays: the create might still have been committing
    assert early.deleted == [] and early.failed == []
    assert orphan in stored_state().secrets

    # When the first janitor run after the grace period comes
    due = run_janitor(FixedClock(finished + grace()))
    # Then the orphan is deleted (so it lives at most the grace period plus one janitor period)
    assert due.deleted == [orphan]
    state = check_invariants(settled=True)
    assert orphan not in state.secrets


def test_a_create_that_committed_after_a_lost_response_keeps_its_secret(client, alice, aws_calls):
    # Given a create whose commit went through but whose response was lost
    aws_calls.arm(Fault(Mode.LOST_RESPONSE, operation=COMMIT))
    assert_error(client.create(label="bot"), 503, "SERVICE_UNAVAILABLE")
    # When the janitor runs after every possible cleanup entry fell due
    run_janitor(FixedClock(datetime.now(UTC) + grace() + service.JANITOR_PERIOD))
    # Then the committed key is active and keeps its secret
    state = check_invariants(settled=True)
    [record] = state.keys.values()
    assert record.is_active(datetime.now(UTC)) and record.key_id in state.secrets


def test_a_cleanup_entry_of_a_key_that_is_active_keeps_its_secret(client, alice):
    # Given an active key whose create left a cleanup entry behind (e.g. a PutItem applied late)
    key_id = client.create().json()["api_key"]
    due = datetime.now(UTC)
    layer().keys.add_cleanup(key_id, due, "create")
    # When the janitor handles the entry
    report = run_janitor(FixedClock(due + service.JANITOR_PERIOD))
    # Then the secret stays and the entry is retired
    assert report.kept == [key_id] and report.deleted == []
    state = check_invariants(settled=True)
    assert key_id in state.secrets


@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_a_failed_janitor_run_leaves_the_entry_for_the_next_run(client, aws_calls, mode):
    # Given the AWS calls of a clean janitor run over one revoked key's pending deletion
    onboard("alice")
    revoke_with_failed_secret_deletion(client, aws_calls)
    with aws_calls.recording() as operations:
        run_janitor()
    assert DELETE_SECRET in operations

    for index, operation in enumerate(operations):
        # Given a fresh revoked key whose secret is left over
        empty_aws()
        onboard("alice")
        key_id, revoked_at = revoke_with_failed_secret_deletion(client, aws_calls)
        clock = FixedClock(revoked_at + service.JANITOR_PERIOD)

        # When that call of the janitor run fails
        fault = aws_calls.arm(Fault(mode, index=index))
        try:
            report = run_janitor(clock)
        except (ServiceUnavailable, HandlerCrashed):
            # The run itself failed (its due entries could not be listed, or the Lambda died):
            # the scheduler's next invocation starts over.
            report = None
        aws_calls.disarm()
        assert fault.fired_at == operation, (index, operation)
        if report is not None:
            assert report.failed == [key_id], (index, operation)

        # Then the entry is still queued (unless it was retired and only then the Lambda died or the
        # response was lost) and no invariant is broken
        retired = mode is not Mode.FAIL_BEFORE and operation == "dynamodb.DeleteItem"
        state = check_invariants(settled=False)
        assert state.cleanup_key_ids == ([] if retired else [key_id]), (index, operation)
        # And the next run deletes the secret and retires the entry
        clock.advance(seconds=service.JANITOR_PERIOD.total_seconds())
        assert run_janitor(clock).failed == []
        state = check_invariants(settled=True)
        assert key_id not in state.secrets


def test_the_janitor_only_reads_and_deletes_by_key(client, alice, aws_calls):
    # Given one entry of each kind: a revoked key's leftover secret, a failed create's orphan, an active key
    revoke_with_failed_secret_deletion(client, aws_calls)
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation=COMMIT))
    assert client.create().status == 503
    active = client.create().json()["api_key"]
    layer().keys.add_cleanup(active, datetime.now(UTC), "create")
    # When the janitor handles them all
    with aws_calls.recording() as operations:
        report = run_janitor(FixedClock(datetime.now(UTC) + grace() + service.JANITOR_PERIOD))
    assert len(report.deleted) == 2 and report.kept == [active]
    # Then it used GetItem, Query, DeleteItem and DeleteSecret only: no Scan
    assert set(operations) == {"dynamodb.Query", "dynamodb.GetItem", "dynamodb.DeleteItem", DELETE_SECRET}
    # And each of them is granted to the janitor function by template.yaml, and nothing else is needed
    statements = resources("AWS::Serverless::Function")["SecretJanitorFunction"]["Properties"]["Policies"][0]
    granted = {action.replace(":", ".") for statement in statements["Statement"] if statement["Effect"] == "Allow"
               for action in statement["Action"]}
    assert set(operations) == granted
    check_invariants(settled=True)


def test_an_expired_keys_secret_is_deleted_by_the_first_run_after_its_expiry(client, alice):
    # Given a key that expires in one day
    created = client.create(expires_days=1).json()
    key_id, expires_at = created["api_key"], datetime.fromisoformat(created["expires_at"])
    # When the janitor runs before the expiry
    early = run_janitor(lambda: expires_at - timedelta(seconds=1))
    # Then the secret stays (the key is still usable) and its deletion stays queued
    assert key_id not in early.deleted and key_id in stored_state().secrets
    assert key_id in stored_state().cleanup_key_ids
    # When it runs after the expiry
    late = run_janitor(lambda: expires_at + service.JANITOR_PERIOD)
    # Then the secret is deleted and nothing is left queued
    assert key_id in late.deleted
    state = stored_state()
    assert key_id not in state.secrets and key_id not in state.cleanup_key_ids
