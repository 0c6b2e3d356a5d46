"""Real threads racing through the handlers (issue 2 and issue 5, DESIGN.md invariants 2 and 3).

moto does not serialise concurrent requests, so the `atomic_aws` fixture
applies each request atomically, as DynamoDB does (see faults.serialised_moto).
Every request carries its own step-up token; threads start together behind a
barrier. A client that gets 409 retries with the same token, as the API
tells it to (the token is spent only by a committed change).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from keygate import store
from keygate.config import get_config
from keygate_dev.gateway import Response
from tests.conftest import ApiClient, assert_error, onboard
from tests.integration.faults import run_together
from tests.invariants import check_invariants

# A 409 on create means five other creates committed meanwhile, so with a limit
# of 10 the third attempt at the latest sees the limit (400) or commits.
CREATE_ATTEMPTS = 3
# A revoke loses a round only to a committed update or revoke of the same key.
REVOKE_ATTEMPTS = 20


@pytest.fixture
def warm(client: ApiClient, atomic_aws: None) -> ApiClient:
    """One request per route first: handler imports, the JWKS fetch, boto3 clients and moto's
    backends are created lazily and not meant to be created by fifty threads at once."""
    onboard("warm-up")
    key_id = client.create("warm-up").json()["api_key"]
    assert client.update(key_id, "warm-up", label="warm").status == 200
    assert client.revoke(key_id, "warm-up").status == 200
    assert client.revoke_all("warm-up").status == 200
    return client


def send_until_not_409(client: ApiClient, attempts: int, method: str, path: str, user: str, token: str,
                       body: dict | None = None) -> list[Response]:
    responses = []
    for _ in range(attempts):
        responses.append(client.call(method, path, user=user, step_up=token, body=body))
        if responses[-1].status != 409:
            break
    return responses


def assert_create_outcome(response: Response) -> None:
    if response.status == 201:
        return
    if response.status == 400:
        assert_error(response, 400, "KEY_LIMIT_REACHED")
    else:
        assert_error(response, 409, "CONCURRENT_MODIFICATION")


@dataclass
class ActiveKeyWatcher:
    """Samples a user's active key count while a race runs (the count may go down as well as up)."""

    user: str
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = datetime.now(UTC)
            self.samples.append(sum(record.is_active(now) for record in store.load_user(self.user).keys))

    @contextmanager
    def watching(self) -> Iterator[ActiveKeyWatcher]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def test_fifty_concurrent_creates_stop_exactly_at_the_limit(warm):
    client, limit = warm, get_config().max_active_keys_per_user
    # Given an onboarded user without keys and one step-up token per request
    onboard("alice")
    tokens = [client.step_up("alice", "api_keys:create") for _ in range(50)]

    # When fifty creates start together
    results = run_together([
        lambda token=token: send_until_not_409(client, CREATE_ATTEMPTS, "POST", "/v1/trade/api-keys", "alice",
                                               token, {"label": "bot"})
        for token in tokens])

    # Then every answer is 201, 400 KEY_LIMIT_REACHED or 409 CONCURRENT_MODIFICATION, never a 5xx
    for response in (response for responses in results for response in responses):
        assert_create_outcome(response)
    finals = [responses[-1] for responses in results]
    assert all(response.status in (201, 400) for response in finals)
    # And exactly the limit was created, and those keys are the user's active ones
    created = {response.json()["api_key"] for response in finals if response.status == 201}
    assert len(created) == limit
    state = check_invariants(settled=True)
    assert {record.key_id for record in state.active_keys("alice", datetime.now(UTC))} == created
    # And each has its secret and its key_created entry; the losers left no secret behind
    assert {key_id for key_id in state.secrets if state.keys[key_id].user_id == "alice"} == created
    assert all([entry["event"] for entry in state.audit[key_id]] == ["key_created"] for key_id in created)


def test_twenty_concurrent_updates_and_revokes_of_one_key_match_the_audit_log(warm):
    client = warm
    # Given an active key, sixteen updates to distinct labels and four revokes, each with its own token
    onboard("alice")
    key_id = client.create(label="original").json()["api_key"]
    path = f"/v1/trade/api-keys/{key_id}"
    labels = [f"label-{number:02d}" for number in range(16)]
    updates = [lambda label=label, token=client.step_up("alice", "api_keys:update"): client.call(
        "PATCH", path, user="alice", step_up=token, body={"label": label}) for label in labels]
    revokes = [lambda token=client.step_up("alice", "api_keys:revoke"): send_until_not_409(
        client, REVOKE_ATTEMPTS, "DELETE", path, "alice", token) for _ in range(4)]

    # When they all start together
    results = run_together([*updates, *revokes])
    update_responses, revoke_results = results[:len(updates)], results[len(updates):]

    # Then an update either committed, found the key revoked, or lost too many races
    committed_labels = set()
    for label, response in zip(labels, update_responses, strict=True):
        if response.status == 200:
            assert response.json()["updated_fields"] == ["label"]
            committed_labels.add(label)
        elif response.status == 400:
            assert_error(response, 400, "KEY_REVOKED")
        else:
            assert_error(response, 409, "CONCURRENT_MODIFICATION")
    # And exactly one revoke revoked the key; the others found it revoked
    finals = [responses[-1] for responses in revoke_results]
    assert all(response.status == 200 for response in finals), [response.body for response in finals]
    assert sorted(response.json()["already_revoked"] for response in finals) == [False, True, True, True]
    # And the audit log holds every committed update and nothing that was refused; replaying it gives
    # the stored record, and no update follows the revocation (check_invariants)
    state = check_invariants(settled=True)
    entries = state.audit[key_id]
    assert {entry["details"]["changes"]["label"]["to"] for entry in entries
            if entry["event"] == "key_updated"} == committed_labels
    assert [entry["event"] for entry in entries].count("key_revoked") == 1
    assert key_id not in state.secrets


def test_revoke_all_racing_creates_leaves_a_consistent_state(warm):
    client, limit = warm, get_config().max_active_keys_per_user
    # Given a user with six active keys
    onboard("alice")
    existing = {client.create().json()["api_key"] for _ in range(6)}
    creates = [lambda token=client.step_up("alice", "api_keys:create"): send_until_not_409(
        client, CREATE_ATTEMPTS, "POST", "/v1/trade/api-keys", "alice", token, {"label": "racer"})
        for _ in range(8)]
    revoke_alls = [lambda token=client.step_up("alice", "api_keys:revoke_all"): client.call(
        "DELETE", "/v1/trade/api-keys/all", user="alice", step_up=token) for _ in range(2)]

    # When eight creates and two revoke-alls start together, while the active count is sampled
    with ActiveKeyWatcher("alice").watching() as watcher:
        results = run_together([*creates, *revoke_alls])
    create_results, revoke_all_responses = results[:len(creates)], results[len(creates):]

    # Then the limit held at every sample and at the end
    assert watcher.samples and max(watcher.samples) <= limit
    for response in (response for responses in create_results for response in responses):
        assert_create_outcome(response)
    created = {responses[-1].json()["api_key"] for responses in create_results if responses[-1].status == 201}
    # And the revoke-alls revoked every key that existed before them, each key once
    assert all(response.status == 200 for response in revoke_all_responses)
    revoked_lists = [response.json()["revoked_api_keys"] for response in revoke_all_responses]
    revoked = [key_id for revoked_list in revoked_lists for key_id in revoked_list]
    assert len(revoked) == len(set(revoked)) == sum(response.json()["revoked_count"]
                                                      for response in revoke_all_responses)
    assert existing <= set(revoked) <= existing | created
    # And the stored state matches: revoked keys audited as revoked without secret, the rest active with one
    state = check_invariants(settled=True)
    alice_keys = {key_id for key_id, record in state.keys.items() if record.user_id == "alice"}
    assert alice_keys == existing | created
    assert {key_id for key_id in alice_keys if state.keys[key_id].revoked_at is not None} == set(revoked)
    assert {key_id for key_id in alice_keys if key_id in state.secrets} == alice_keys - set(revoked)
