"""Real threads racing through the handlers (issue 2 and issue 5, docs/product.md invariants 2 and 3).

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

from keygate.config import KeyPolicy
from keygate.storage.dynamodb import DynamoKeyRepository
from tests.support.client import ApiClient, Response
from tests.support.errors import assert_error
from tests.support.faults import run_together
from tests.support.invariants import check_invariants
from tests.support.profiles import GAIAEX, ZDEX
from tests.support.stack import ZDEX_STYLE_STACK, layer, onboard

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
    if response.status == 200:
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
            self.samples.append(sum(record.is_active(now) for record in layer().keys.load_user(self.user).keys))

    @contextmanager
    def watching(self) -> Iterator[ActiveKeyWatcher]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


# GaiaEx's routes on the default stack, and ZDEX's on a ZDEX-style stack (5 keys, no step-up).
LIMIT_RACES = [pytest.param(GAIAEX, {}, id="gaiaex"),
               pytest.param(ZDEX, ZDEX_STYLE_STACK, id="zdex-style-stack")]


@pytest.mark.parametrize(("profile", "stack_env"), LIMIT_RACES, indirect=["stack_env"])
def test_fifty_concurrent_creates_stop_exactly_at_the_limit(warm, profile, stack_env):
    client, limit = warm, KeyPolicy.from_environ().max_active_keys_per_user
    # Given an onboarded user without keys and one step-up token per request (ignored where none is needed)
    onboard("alice")
    tokens = [client.step_up("alice", "api_keys:create") for _ in range(50)]

    # When fifty creates start together
    results = run_together([
        lambda token=token: send_until_not_409(client, CREATE_ATTEMPTS, "POST", profile.collection, "alice",
                                               token, profile.body(label="bot"))
        for token in tokens])

    # Then every answer is 200, 400 KEY_LIMIT_REACHED or 409 CONCURRENT_MODIFICATION, never a 5xx
    for response in (response for responses in results for response in responses):
        assert_create_outcome(response)
    finals = [responses[-1] for responses in results]
    assert all(response.status in (200, 400) for response in finals)
    # And exactly the limit was created, and those keys are the user's active ones
    created = {profile.key_id_of(response.json()) for response in finals if response.status == 200}
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
    updates = [lambda label=label, token=client.step_up("alice", "api_keys:update"): client.call(  # noqa: B008  # one token each, issued before the race
        "PATCH", path, user="alice", step_up=token, body={"label": label}) for label in labels]
    revokes = [lambda token=client.step_up("alice", "api_keys:revoke"): send_until_not_409(  # noqa: B008  # one token each, issued before the race
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
    client, limit = warm, KeyPolicy.from_environ().max_active_keys_per_user
    # Given a user with six active keys
    onboard("alice")
    existing = {client.create().json()["api_key"] for _ in range(6)}
    creates = [lambda token=client.step_up("alice", "api_keys:create"): send_until_not_409(  # noqa: B008  # one token each, issued before the race
        client, CREATE_ATTEMPTS, "POST", "/v1/trade/api-keys", "alice", token, {"label": "racer"})
        for _ in range(8)]
    revoke_alls = [lambda token=client.step_up("alice", "api_keys:revoke_all"): client.call(  # noqa: B008  # one token each, issued before the race
        "DELETE", "/v1/trade/api-keys/all", user="alice", step_up=token) for _ in range(2)]

    # When eight creates and two revoke-alls start together, while the active count is sampled
    with ActiveKeyWatcher("alice").watching() as watcher:
        results = run_together([*creates, *revoke_alls])
    create_results, revoke_all_responses = results[:len(creates)], results[len(creates):]

    # Then the limit held at every sample and at the end
    assert watcher.samples and max(watcher.samples) <= limit
    for response in (response for responses in create_results for response in responses):
        assert_create_outcome(response)
    created = {responses[-1].json()["api_key"] for responses in create_results if responses[-1].status == 200}
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


# ------------------------------------------------------ forced interleavings
# The races above are real, but which interleavings they hit is up to the
# scheduler: moto answers each request whole and fast (under the GIL, and under
# `atomic_aws`'s lock), so the window between a request's read and its commit
# is rarely the one another commit lands in. The tests below force the
# interleavings that matter: a request is paused right after one of its repository
# calls (the lifecycle reaches DynamoDB only through DynamoKeyRepository, so patching one
# of its methods pauses the request between two AWS calls), and the rival change
# commits in that gap. Nothing else is simulated: every write goes to moto.
PAUSED_THREAD = "paused-request"


def pause_every_racer_after_its_first(monkeypatch: pytest.MonkeyPatch, function_name: str, racers: int) -> None:
    """Each of `racers` threads waits, after its first call of the repository's <function_name>, until all have."""
    original = getattr(DynamoKeyRepository, function_name)
    barrier, waited = threading.Barrier(racers), set()

    def paused(*args, **kwargs):
        result = original(*args, **kwargs)
        if threading.current_thread() is not threading.main_thread() and threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait(60)  # outside moto (the call returned): the others can make theirs
        return result

    monkeypatch.setattr(DynamoKeyRepository, function_name, paused)


def run_with_rival_in_between(monkeypatch: pytest.MonkeyPatch, function_name: str, request, rival):
    """Run `request` on a thread paused after its first call of the repository's <function_name>; run
    `rival` to completion in that pause, then let the request go on. Returns (request's result, rival's)."""
    original = getattr(DynamoKeyRepository, function_name)
    reached, resume = threading.Event(), threading.Event()

    def pausing(*args, **kwargs):
        result = original(*args, **kwargs)
        if threading.current_thread().name == PAUSED_THREAD and not reached.is_set():
            reached.set()
            assert resume.wait(60)
        return result

    monkeypatch.setattr(DynamoKeyRepository, function_name, pausing)
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["result"] = request()
        except BaseException as error:  # noqa: BLE001 (handed to the test thread below)
            outcome["error"] = error

    thread = threading.Thread(target=work, name=PAUSED_THREAD, daemon=True)
    thread.start()
    try:
        assert reached.wait(60), f"the request never called {function_name}"
        rival_result = rival()
    finally:
        resume.set()
        thread.join(60)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"], rival_result


def events_of(key_id: str) -> list[str]:
    return [entry["event"] for entry in check_invariants(settled=True).audit[key_id]]


def test_creates_that_all_counted_before_any_committed_still_stop_at_the_limit(warm, monkeypatch):
    client, limit = warm, KeyPolicy.from_environ().max_active_keys_per_user
    # Given a user one key below the limit, and twenty creates that all count her keys
    # (limit - 1 active) before any of them commits
    onboard("alice")
    for _ in range(limit - 1):
        assert client.create().status == 200
    tokens = [client.step_up("alice", "api_keys:create") for _ in range(20)]
    pause_every_racer_after_its_first(monkeypatch, "load_user", len(tokens))

    # When they all commit on what they counted
    responses = run_together([lambda token=token: client.call("POST", "/v1/trade/api-keys", user="alice",
                                                              step_up=token, body={"label": "racer"})
                              for token in tokens])

    # Then exactly one commits (the keyset version each read lets only one through);
    # the others re-count, find the limit reached and say so
    assert sorted(response.status for response in responses) == [200] + [400] * (len(tokens) - 1)
    for response in responses:
        if response.status == 400:
            assert_error(response, 400, "KEY_LIMIT_REACHED")
    # And the losers deleted the secrets they had stored: nothing is left for the janitor
    state = check_invariants(settled=True)
    assert len(state.active_keys("alice", datetime.now(UTC))) == limit


def test_an_update_that_read_the_key_before_a_revocation_does_not_change_the_revoked_key(client, alice,
                                                                                          monkeypatch):
    # Given an active key, and an update that has read it (active) when a revoke commits
    key_id = client.create(label="bot").json()["api_key"]
    update, revoke = run_with_rival_in_between(
        monkeypatch, "get_key", lambda: client.update(key_id, label="too late"), lambda: client.revoke(key_id))
    # Then the revoke went through and the update, whose commit found the key changed, re-read it and refused
    assert revoke.status == 200 and revoke.json()["already_revoked"] is False
    assert_error(update, 400, "KEY_REVOKED")
    # And the audit log holds the creation and the revocation only, matching the record
    assert events_of(key_id) == ["key_created", "key_revoked"]
    assert client.list().json()["keys"][0]["label"] == "bot"


def test_a_revoke_that_read_the_key_before_an_update_revokes_the_updated_key(client, alice, monkeypatch):
    # Given an active key, and a revoke that has read it when an update commits
    key_id = client.create(label="bot").json()["api_key"]
    revoke, update = run_with_rival_in_between(
        monkeypatch, "get_key", lambda: client.revoke(key_id), lambda: client.update(key_id, label="renamed"))
    # Then both committed, in that order: the revoke re-read the key and revoked it as updated
    assert update.status == 200 and update.json()["updated_fields"] == ["label"]
    assert revoke.status == 200 and revoke.json()["already_revoked"] is False
    assert events_of(key_id) == ["key_created", "key_updated", "key_revoked"]
    (view,) = client.list().json()["keys"]
    assert (view["label"], view["is_active"]) == ("renamed", False)


def test_two_updates_of_one_key_both_land_and_the_audit_says_from_what(client, alice, monkeypatch):
    # Given a key, and an update to "first" that has read it when an update to "second" commits
    key_id = client.create(label="bot").json()["api_key"]
    first, second = run_with_rival_in_between(
        monkeypatch, "get_key", lambda: client.update(key_id, label="first"),
        lambda: client.update(key_id, label="second"))
    # Then both committed, the paused one last, each audited as a change from what it replaced
    assert first.status == 200 and second.status == 200
    entries = check_invariants(settled=True).audit[key_id]
    assert [entry["details"].get("changes") for entry in entries[1:]] == [
        {"label": {"from": "bot", "to": "second"}}, {"label": {"from": "second", "to": "first"}}]
    assert client.list().json()["keys"][0]["label"] == "first"


def test_a_revoke_all_that_listed_the_keys_before_an_update_still_revokes_them_all(client, alice, monkeypatch):
    # Given two active keys, and a revoke-all that has listed them when an update of one commits
    first, second = (client.create(label=label).json()["api_key"] for label in ("one", "two"))
    revoke_all, update = run_with_rival_in_between(
        monkeypatch, "load_user", lambda: client.revoke_all(), lambda: client.update(first, label="renamed"))
    # Then the revoke-all's commit found the key changed, listed again and revoked both
    assert update.status == 200
    assert revoke_all.status == 200 and sorted(revoke_all.json()["revoked_api_keys"]) == sorted([first, second])
    assert events_of(first) == ["key_created", "key_updated", "key_revoked"]
    assert events_of(second) == ["key_created", "key_revoked"]


def test_a_key_created_while_revoke_all_runs_is_either_revoked_or_listed_as_active(client, alice, monkeypatch):
    # Given an active key, and a revoke-all that has listed the keys when a create commits
    old = client.create(label="old").json()["api_key"]
    revoke_all, created = run_with_rival_in_between(
        monkeypatch, "load_user", lambda: client.revoke_all(), lambda: client.create(label="new"))
    new = created.json()["api_key"]
    # Then the revoke-all revoked what it listed and says so; the new key, committed after its list, stays active
    # (revoke-all revokes the keys that exist when it starts; a create racing it is a new, visible key)
    assert revoke_all.json() == {"success": True, "revoked_count": 1, "revoked_api_keys": [old]}
    views = {view["api_key"]: view["is_active"] for view in client.list().json()["keys"]}
    assert views == {old: False, new: True}
    state = check_invariants(settled=True)
    assert new in state.secrets and old not in state.secrets


def test_a_create_that_counted_before_a_revoke_all_commits_after_it(client, alice, monkeypatch):
    # Given an active key, and a create that has counted the keys when a revoke-all commits
    old = client.create(label="old").json()["api_key"]
    created, revoke_all = run_with_rival_in_between(
        monkeypatch, "load_user", lambda: client.create(label="new"), lambda: client.revoke_all())
    # Then both committed: the old key is revoked, the new one active with its secret
    assert revoke_all.json()["revoked_api_keys"] == [old]
    assert created.status == 200
    state = check_invariants(settled=True)
    assert state.keys[created.json()["api_key"]].status.value == "active"
    assert set(state.secrets) == {created.json()["api_key"]}


# ------------------------------------------- losing the same race five times
@dataclass
class RivalBeforeEachCommit:
    """Before each commit of the request under test, a rival change commits for real (through the API)."""

    rival: object
    results: list = field(default_factory=list)
    enabled: bool = True
    _inside: bool = False

    def install(self, monkeypatch: pytest.MonkeyPatch, function_name: str) -> None:
        original = getattr(DynamoKeyRepository, function_name)

        def contested(*args, **kwargs):
            if self.enabled and not self._inside:
                self._inside = True
                try:
                    self.results.append(self.rival(len(self.results)))  # type: ignore[operator]
                finally:
                    self._inside = False
            return original(*args, **kwargs)

        monkeypatch.setattr(DynamoKeyRepository, function_name, contested)


CONTESTED = {
    # mutation: (store commit it makes, the request, the rival that commits first each time)
    "create": ("commit_create", lambda client, key_id, token: client.call(
        "POST", "/v1/trade/api-keys", step_up=token, body={"label": "mine"}),
        lambda client, key_id, number: client.create(label=f"rival {number}")),
    "update": ("commit_update", lambda client, key_id, token: client.call(
        "PATCH", f"/v1/trade/api-keys/{key_id}", step_up=token, body={"label": "mine"}),
        lambda client, key_id, number: client.update(key_id, label=f"rival {number}")),
    "revoke": ("commit_revocations", lambda client, key_id, token: client.call(
        "DELETE", f"/v1/trade/api-keys/{key_id}", step_up=token),
        lambda client, key_id, number: client.update(key_id, label=f"rival {number}")),
    "revoke_all": ("commit_revocations", lambda client, key_id, token: client.call(
        "DELETE", "/v1/trade/api-keys/all", step_up=token),
        lambda client, key_id, number: client.update(key_id, label=f"rival {number}")),
}


@pytest.mark.parametrize("mutation", sorted(CONTESTED))
def test_a_mutation_that_loses_five_races_in_a_row_answers_409_and_can_be_retried(client, alice, monkeypatch,
                                                                                   mutation):
    commit, send, rival = CONTESTED[mutation]
    # Given a key, and a rival change that commits just before each commit attempt of the request
    key_id = client.create(label="bot").json()["api_key"]
    token = client.step_up("alice", f"api_keys:{mutation}")
    contest = RivalBeforeEachCommit(lambda number: rival(client, key_id, number))
    contest.install(monkeypatch, commit)
    # When the request is sent
    response = send(client, key_id, token)
    # Then it gave up after five lost races with 409, and every rival change went through
    assert_error(response, 409, "CONCURRENT_MODIFICATION")
    assert [result.status for result in contest.results] == [200] * 5
    # And it left nothing behind (a create's secret is deleted at once) and broke no invariant
    check_invariants(settled=True)
    # And when the races stop, the same step-up token works: it was not spent
    contest.enabled = False
    retried = send(client, key_id, token)
    assert retried.status in (200, 201), retried.body
    check_invariants(settled=True)
