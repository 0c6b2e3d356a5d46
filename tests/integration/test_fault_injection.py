"""Each AWS call of each lifecycle path fails in turn (issues 2 and 5, docs/product.md invariants 3 and 4).

For every path (create, update, revoke, revoke-all) a clean run through the
real handler records the AWS calls it makes; then, for each of those calls on
a fresh user, the call fails before reaching AWS, succeeds and the Lambda dies
right after, or succeeds and its response is lost. Afterwards: the caller got
503 with Retry-After (or its 200 when only a best-effort secret deletion after
a committed revocation failed), every invariant holds before and after the
secret janitor, the step-up token is spent exactly when the change committed, and the lifecycle
events published (the keys table's stream delivered to the publisher) are exactly one per committed
audit entry (issue 16).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from keygate import service
from keygate.config import KeyPolicy
from tests.support.client import ApiClient, Response
from tests.support.clocks import FixedClock
from tests.support.errors import assert_error
from tests.support.faults import (
    AwsCalls,
    Fault,
    HandlerCrashed,
    Mode,
    answer_to_a_crashed_handler,
    empty_aws,
    retried_after_lost_response,
)
from tests.support.invariants import StoredState, check_invariants
from tests.support.lifecycle import Mailer, assert_every_committed_entry_published_once
from tests.support.profiles import ZDEX
from tests.support.stack import onboard, run_janitor, state_snapshot, unique_user

COMMIT = "dynamodb.TransactWriteItems"
# A read whose response is lost is a failed read: LOST_RESPONSE only adds cases for writes.
READS = {"dynamodb.Query", "dynamodb.GetItem", "secretsmanager.DescribeSecret", "secretsmanager.GetSecretValue"}
# After a revocation committed, deleting the secret and its cleanup entry is
# best effort: the committed cleanup entry makes the janitor finish the job.
BEST_EFFORT_AFTER_REVOCATION = {"secretsmanager.DeleteSecret", "dynamodb.DeleteItem"}


@dataclass(frozen=True)
class LifecyclePath:
    name: str
    action: str
    success_status: int
    must_call: frozenset[str]  # a clean run that misses one of these was not recorded properly
    prepare: Callable[[ApiClient, str], list[str]]  # the user's key ids before the request
    send: Callable[[ApiClient, str, list[str], str], Response]


def create_keys(client: ApiClient, user: str, count: int, **body: object) -> list[str]:
    key_ids = []
    for _ in range(count):
        created = client.create(user, **body)
        assert created.status == 200, created.body
        key_ids.append(created.json()["api_key"])
    return key_ids


def create_zdex_keys(client: ApiClient, user: str, count: int) -> list[str]:
    """Keys created on ZDEX's route: their ids (handles), which ZDEX's paths take."""
    handles = []
    for _ in range(count):
        created = client.call("POST", ZDEX.collection, user=user, body=ZDEX.body(label="bot"))
        assert created.status == 200, created.status
        handles.append(ZDEX.ref_of(created.json()))
    return handles


PATHS = [
    LifecyclePath(
        "create", "api_keys:create", 200, frozenset({"dynamodb.Query", "secretsmanager.CreateSecret", COMMIT}),
        prepare=lambda client, user: [],
        send=lambda client, user, keys, token: client.call(
            "POST", "/v1/trade/api-keys", user=user, step_up=token,
            body={"label": "bot", "permissions": ["read", "trade"], "ip_whitelist": ["198.51.100.0/24"]}),
    ),
    LifecyclePath(
        # Adding a permission re-reads the account's prerequisites: one more call to fail.
        "update", "api_keys:update", 200, frozenset({"dynamodb.GetItem", "dynamodb.Query", COMMIT}),
        prepare=lambda client, user: create_keys(client, user, 1),
        send=lambda client, user, keys, token: client.call(
            "PATCH", f"/v1/trade/api-keys/{keys[0]}", user=user, step_up=token,
            body={"label": "renamed", "permissions": ["read", "trade"]}),
    ),
    LifecyclePath(
        "revoke", "api_keys:revoke", 200, frozenset({COMMIT, *BEST_EFFORT_AFTER_REVOCATION}),
        prepare=lambda client, user: create_keys(client, user, 1),
        send=lambda client, user, keys, token: client.call(
            "DELETE", f"/v1/trade/api-keys/{keys[0]}", user=user, step_up=token),
    ),
    LifecyclePath(
        "revoke-all", "api_keys:revoke_all", 200, frozenset({"dynamodb.Query", COMMIT, *BEST_EFFORT_AFTER_REVOCATION}),
        prepare=lambda client, user: create_keys(client, user, 2),
        send=lambda client, user, keys, token: client.call(
            "DELETE", "/v1/trade/api-keys/all", user=user, step_up=token),
    ),
    # ZDEX's routes: the same functions through the other profile (a key addressed by its handle).
    LifecyclePath(
        "zdex-create", "api_keys:create", 200, frozenset({"dynamodb.Query", "secretsmanager.CreateSecret", COMMIT}),
        prepare=lambda client, user: [],
        send=lambda client, user, keys, token: client.call(
            "POST", ZDEX.collection, user=user, step_up=token,
            body=ZDEX.body(label="bot", permissions=["read", "trade"], ip_whitelist=["198.51.100.0/24"])),
    ),
    LifecyclePath(
        "zdex-update", "api_keys:update", 200, frozenset({"dynamodb.GetItem", "dynamodb.Query", COMMIT}),
        prepare=lambda client, user: create_zdex_keys(client, user, 1),
        send=lambda client, user, keys, token: client.call(
            "PATCH", ZDEX.key_path(keys[0]), user=user, step_up=token,
            body=ZDEX.body(label="renamed", permissions=["read", "trade"])),
    ),
    LifecyclePath(
        "zdex-revoke", "api_keys:revoke", 200, frozenset({COMMIT, *BEST_EFFORT_AFTER_REVOCATION}),
        prepare=lambda client, user: create_zdex_keys(client, user, 1),
        send=lambda client, user, keys, token: client.call("DELETE", ZDEX.key_path(keys[0]), user=user,
                                                           step_up=token),
    ),
    # Issue 15: rotation writes a new secret, then commits the record naming it (as a create does).
    LifecyclePath(
        "rotate", "api_keys:rotate", 200, frozenset({"dynamodb.GetItem", "secretsmanager.CreateSecret", COMMIT}),
        prepare=lambda client, user: create_keys(client, user, 1),
        send=lambda client, user, keys, token: client.call(
            "POST", f"/v1/trade/api-keys/{keys[0]}/rotate", user=user, step_up=token, body={"grace_seconds": 600}),
    ),
    LifecyclePath(
        "zdex-rotate", "api_keys:rotate", 200, frozenset({"dynamodb.GetItem", "secretsmanager.CreateSecret", COMMIT}),
        prepare=lambda client, user: create_zdex_keys(client, user, 1),
        send=lambda client, user, keys, token: client.call(
            "POST", ZDEX.key_path(keys[0]) + "/rotate", user=user, step_up=token, body={}),
    ),
]


def janitor_clock() -> FixedClock:
    """A janitor run after every cleanup entry written so far fell due."""
    grace = timedelta(seconds=KeyPolicy.from_environ().orphan_grace_seconds)
    return FixedClock(datetime.now(UTC) + grace + service.JANITOR_PERIOD)


def audit_entry_count(state: StoredState) -> int:
    return sum(len(entries) for entries in state.audit.values())


def record_clean_run(client: ApiClient, aws_calls: AwsCalls, path: LifecyclePath) -> list[str]:
    user = unique_user()
    onboard(user)
    keys = path.prepare(client, user)
    with aws_calls.recording() as operations:
        response = path.send(client, user, keys, client.step_up(user, path.action))
    assert response.status == path.success_status, response.body
    assert path.must_call <= set(operations), operations
    check_invariants(settled=True)
    return operations


def run_with_fault(client: ApiClient, aws_calls: AwsCalls, path: LifecyclePath, mode: Mode, index: int,
                   operation: str, commit_at: int, mailer: Mailer) -> None:
    # Given a fresh user in the state the path starts from, and a step-up token for the action
    empty_aws()
    user = unique_user()
    onboard(user)
    keys = path.prepare(client, user)
    token = client.step_up(user, path.action)
    audit_before = len(keys)  # one key_created entry per prepared key

    # When the index-th AWS call of the request fails
    fault = aws_calls.arm(Fault(mode, index=index))
    response, crashed = None, False
    try:
        response = path.send(client, user, keys, token)
    except HandlerCrashed:
        crashed = True
    finally:
        aws_calls.disarm()

    # Then the fault hit the call the clean run made at that position
    assert fault.fired_at == operation
    assert crashed == (mode is Mode.CRASH_AFTER)
    if crashed:
        # And the caller, whose Lambda died, got API Gateway's DEFAULT_5XX answer: 503 with Retry-After
        answer = answer_to_a_crashed_handler()
        assert answer.status == 503 and int(answer.headers["Retry-After"]) > 0
    # And no invariant is broken even before the janitor ran (an orphan secret is queued for deletion)
    after_fault = check_invariants(settled=False)
    # And the change committed exactly when the commit itself went through
    committed = audit_entry_count(after_fault) > audit_before
    assert committed == (index > commit_at or (index == commit_at and mode is not Mode.FAIL_BEFORE))
    if response is not None:
        if index > commit_at:
            # Only the best-effort secret deletion after a committed revocation can
            # fail after the commit, and the caller rightly gets the revocation's 200.
            assert operation in BEST_EFFORT_AFTER_REVOCATION
            assert response.status == path.success_status, response.body
        else:
            assert_error(response, 503, "SERVICE_UNAVAILABLE")

    # And after the janitor ran no orphan is left and every committed key kept its secret
    report = run_janitor(janitor_clock())
    assert report.failed == []
    check_invariants(settled=True)

    # When the caller retries with the same step-up token
    retry = path.send(client, user, keys, token)
    # Then a failed mutation did not spend it, and a committed one did
    if committed:
        assert_error(retry, 403, "STEP_UP_REQUIRED")
    else:
        assert retry.status == path.success_status, retry.body
    check_invariants(settled=True)
    # And the lifecycle events published are exactly the committed changes', each once (issue 16)
    assert_every_committed_entry_published_once(mailer)


@pytest.mark.parametrize("mode", list(Mode), ids=str)
@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_each_aws_call_failing_in_turn_keeps_every_invariant(client, aws_calls, path, mode):
    # Given the AWS calls a clean run of the path makes, the last transaction being its commit
    operations = record_clean_run(client, aws_calls, path)
    commit_at = max(position for position, operation in enumerate(operations) if operation == COMMIT)
    mailer = Mailer()
    # When each of them fails in turn, Then the caller and the stored state are as described above
    for index, operation in enumerate(operations):
        if mode is Mode.LOST_RESPONSE and operation in READS:
            continue
        try:
            run_with_fault(client, aws_calls, path, mode, index, operation, commit_at, mailer)
        except AssertionError as error:
            raise AssertionError(f"{path.name}, {mode} at call #{index} ({operation}): {error}") from error


# What differs between two runs of the same request: ids, secrets and times.
VOLATILE_FIELDS = {"api_key", "api_secret", "key_prefix", "created_at", "expires_at", "revoked_at", "revoked_api_keys",
                   "id", "apiKey", "secretKey", "keyPrefix", "createdAt", "expiresAt", "revokedAt",
                   "usable_from", "previous_valid_until", "usableFrom", "previousValidUntil"}


def comparable(body: dict) -> dict:
    return {name: "<varies>" if name in VOLATILE_FIELDS else value for name, value in body.items()}


def answer_of_a_clean_run(client: ApiClient, path: LifecyclePath) -> dict:
    user = unique_user()
    onboard(user)
    keys = path.prepare(client, user)
    response = path.send(client, user, keys, client.step_up(user, path.action))
    assert response.status == path.success_status, response.body
    return comparable(response.json())


@pytest.mark.parametrize("stack_env", [{}, {"StepUpRequired": "false"}], indirect=True,
                         ids=["step-up", "no-step-up"])
@pytest.mark.parametrize("idempotent", [False, True], ids=["retry-runs-its-conditions", "client-request-token"])
@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_a_commit_retried_after_its_answer_was_lost_answers_what_committed(client, stack_env, path, idempotent):
    # Given a user in the state the path starts from, a step-up token, and what a clean run answers
    expected = answer_of_a_clean_run(client, path)
    user = unique_user()
    onboard(user)
    keys = path.prepare(client, user)
    token = client.step_up(user, path.action)
    audit_before = audit_entry_count(check_invariants(settled=True))
    # When every commit's first attempt goes through, its answer is lost, and botocore sends it again
    # (with DynamoDB's ClientRequestToken idempotency, or without it, as on moto)
    with retried_after_lost_response(idempotent=idempotent) as retries:
        response = path.send(client, user, keys, token)
    # Then the caller gets the answer of the change that committed, not a refusal of its own retry
    assert response.status == path.success_status, response.body
    assert comparable(response.json()) == expected
    # And the change committed once: one audit entry per key it changed, every invariant holding
    state = check_invariants(settled=True)
    changed = 1 if path.name.endswith("create") or path.name.endswith("update") else max(len(keys), 1)
    assert audit_entry_count(state) == audit_before + changed
    # And each transaction carried a token of its own, so a retry is one DynamoDB can recognise
    assert retries.tokens and None not in retries.tokens and len(set(retries.tokens)) == len(retries.tokens)
    # And the step-up token is spent (where the stack asks for one)
    again = path.send(client, user, keys, token)
    if stack_env["STEP_UP_REQUIRED"] == "false":
        assert again.status != 403, again.body
    else:
        assert_error(again, 403, "STEP_UP_REQUIRED")


def test_a_timed_out_create_that_committed_keeps_its_secret(client, aws_calls):
    # Given an onboarded user
    onboard("carol")
    # When the create's commit goes through but its response is lost
    aws_calls.arm(Fault(Mode.LOST_RESPONSE, operation=COMMIT))
    response = client.create("carol", label="bot")
    # Then the caller is told to retry
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    # And the key exists, is active and keeps its secret once the janitor ran past the grace period
    run_janitor(janitor_clock())
    state = check_invariants(settled=True)
    [record] = [record for record in state.keys.values() if record.user_id == "carol"]
    assert record.is_active(datetime.now(UTC))
    assert record.key_id in state.secrets


def test_a_crashed_handler_is_answered_503_with_retry_after_in_the_error_shape():
    # Given the Gateway Response API Gateway uses when a function dies or times out (template.yaml)
    answer = answer_to_a_crashed_handler()
    # Then the caller of a crashed mutation is told to retry, in docs/product.md's error shape
    assert answer.status == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.body["error"]["code"] == "SERVICE_UNAVAILABLE" and answer.body["error"]["message"]


READ_ONLY_PATHS = {
    "list": lambda client, user, key_id: client.list(user),
    "audit": lambda client, user, key_id: client.audit(key_id, user),
}


@pytest.mark.parametrize("mode", [Mode.FAIL_BEFORE, Mode.LOST_RESPONSE], ids=str)
@pytest.mark.parametrize("route", sorted(READ_ONLY_PATHS))
def test_each_aws_call_of_a_read_failing_in_turn_answers_503(client, aws_calls, route, mode):
    # Given a user with a key, and the AWS calls a clean read of the route makes
    send = READ_ONLY_PATHS[route]
    onboard("alice")
    key_id = create_keys(client, "alice", 1)[0]
    with aws_calls.recording() as operations:
        assert send(client, "alice", key_id).status == 200
    assert operations and set(operations) <= READS
    before = state_snapshot()
    for index, operation in enumerate(operations):
        # When that call fails (before reaching AWS, or with its response lost)
        fault = aws_calls.arm(Fault(mode, index=index))
        response = send(client, "alice", key_id)
        aws_calls.disarm()
        # Then the caller gets 503 with Retry-After, and nothing was written
        assert fault.fired_at == operation
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert state_snapshot() == before


def test_a_fault_between_the_batches_of_a_large_revoke_all_leaves_the_first_batch_revoked(client, aws_calls,
                                                                                         identity):
    from keygate.records import now_utc
    from keygate_dev.events import seed_key

    # Given 35 keys to revoke (25 expired ones count too), more than one transaction holds (30)
    onboard("alice")
    now = now_utc()
    for days_ago in range(26, 1, -1):
        seed_key("alice", at=now - timedelta(days=days_ago), expires_days=1)
    for _ in range(10):
        seed_key("alice")
    token = client.step_up("alice", "api_keys:revoke_all")
    # When the second batch's commit fails (the calls are: the user's Query, the usage Query, first commit,
    # second commit)
    fault = aws_calls.arm(Fault(Mode.FAIL_BEFORE, index=3))
    response = client.call("DELETE", "/v1/trade/api-keys/all", step_up=token)
    aws_calls.disarm()
    assert fault.fired_at == COMMIT
    # Then the caller is told to retry, and the first batch stands: revoked, audited, queued for deletion
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    state = check_invariants(settled=False)
    revoked = [record for record in state.keys.values() if record.revoked_at is not None]
    assert len(revoked) == service.REVOCATIONS_PER_TRANSACTION
    # And after the janitor ran, no revoked key has a secret
    run_janitor(janitor_clock())
    check_invariants(settled=True)
    # When the caller retries: the token was spent with the first batch, a new confirmation revokes the rest
    assert_error(client.call("DELETE", "/v1/trade/api-keys/all", step_up=token), 403, "STEP_UP_REQUIRED")
    retried = client.revoke_all()
    assert retried.status == 200 and retried.json()["revoked_count"] == 35 - service.REVOCATIONS_PER_TRANSACTION
    state = check_invariants(settled=True)
    assert all(record.revoked_at is not None for record in state.keys.values()) and not state.secrets
