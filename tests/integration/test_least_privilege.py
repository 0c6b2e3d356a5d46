"""Least privilege, measured: each function is granted exactly the IAM actions its code uses.

tests/unit/test_template.py checks the shape of the policies (no wildcard, no
Scan, secrets scoped to the stage); this checks their content against what the
handlers really call. Each route runs through its real handler on its success
path and on the side paths that make extra calls (a no-op update, a second
revoke, a create that loses its races and deletes its secret); the AWS
operations it makes are turned into the IAM actions they need (a transaction
needs the action of each item in it; tagging a secret on creation needs
TagResource) and compared with the function's statements in template.yaml.
Nothing is missing (moto does not enforce IAM, AWS would) and nothing is spare.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keygate.storage.dynamodb import DynamoKeyRepository
from keygate_dev import template
from keygate_dev.store_hooks import StoreClientHooks
from tests.support.client import ApiClient

TRANSACTION_ITEM_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem",
                            "Delete": "dynamodb:DeleteItem", "ConditionCheck": "dynamodb:ConditionCheckItem"}


class ActionRecorder:
    """The IAM actions behind the layer's AWS calls (on its own clients, like faults.AwsCalls)."""

    def __init__(self) -> None:
        self.actions: set[str] = set()
        self._hooks = StoreClientHooks({"before-parameter-build.*.*": self._record})

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.endpoint_prefix
        if model.name == "TransactWriteItems":
            self.actions.update(TRANSACTION_ITEM_ACTIONS[kind] for item in params["TransactItems"] for kind in item)
            return
        self.actions.add(f"{service}:{model.name}")
        if model.name == "CreateSecret" and params.get("Tags"):
            self.actions.add("secretsmanager:TagResource")

    def __enter__(self) -> ActionRecorder:
        self._hooks.install()
        return self

    def __exit__(self, *_: object) -> None:
        self._hooks.uninstall()


def granted(function_id: str) -> set[str]:
    properties = template.resources("AWS::Serverless::Function")[function_id]["Properties"]
    return {action for policy in properties.get("Policies", []) for statement in policy["Statement"]
            for action in statement["Action"]}


def lose_create_races(client: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A create whose commit loses five times (a rival create commits first each time) deletes its secret."""
    original, busy = DynamoKeyRepository.commit_create, []

    def contested(*args: Any, **kwargs: Any) -> None:
        if not busy:
            busy.append(True)
            try:
                assert client.create(label="rival").status == 200
            finally:
                busy.clear()
        original(*args, **kwargs)

    monkeypatch.setattr(DynamoKeyRepository, "commit_create", contested)
    assert client.create(label="loser").status == 409
    monkeypatch.setattr(DynamoKeyRepository, "commit_create", original)


# function id -> the requests that exercise every AWS call its code can make
SCENARIOS: dict[str, Callable[[ApiClient, str, pytest.MonkeyPatch], None]] = {
    "CreateApiKeyFunction": lambda client, key_id, monkeypatch: (
        client.create(label="plain", permissions=["read", "trade"]), lose_create_races(client, monkeypatch)),
    "ListApiKeysFunction": lambda client, key_id, monkeypatch: client.list(),
    "UpdateApiKeyFunction": lambda client, key_id, monkeypatch: (
        client.update(key_id, permissions=["read", "trade"]), client.update(key_id, label="bot")),
    "RevokeApiKeyFunction": lambda client, key_id, monkeypatch: (client.revoke(key_id), client.revoke(key_id)),
    "RevokeAllApiKeysFunction": lambda client, key_id, monkeypatch: (client.revoke_all(), client.revoke_all()),
    "GetApiKeyAuditFunction": lambda client, key_id, monkeypatch: client.audit(key_id),
}


@pytest.mark.parametrize("function_id", sorted(SCENARIOS))
def test_each_management_function_is_granted_exactly_what_it_calls(client, alice, monkeypatch, function_id):
    # Given a key that a route's requests can act on
    key_id = client.create(label="bot").json()["api_key"]
    # When the route's requests run (each through its real handler) and their AWS calls are recorded
    with ActionRecorder() as recorder:
        SCENARIOS[function_id](client, key_id, monkeypatch)
    # Then the function's statements in template.yaml grant exactly the actions used
    assert recorder.actions == granted(function_id)


def test_the_scenarios_cover_every_management_route():
    routed = {function_id for _method, _path, function_id in template.api_routes()}
    bot_facing = {"GetCallingApiKeyFunction", "GetServerTimeFunction"}  # tests/integration/test_bot_endpoints.py
    assert routed - bot_facing == set(SCENARIOS)


def test_the_recorder_sees_the_items_of_a_transaction(client, alice):
    # A control for the comparison above: a create's commit shows up as the actions of its items.
    with ActionRecorder() as recorder:
        client.create()
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= recorder.actions
    assert "dynamodb:TransactWriteItems" not in recorder.actions


