"""Floor 1 of the cold-start benchmark sends what the signature authorizer sends (issue 5).

The floor may not import KeyGate (it measures the stack without KeyGate's code), so it
repeats keygate.storage's requests; this test keeps the copy honest: same client
config, same operations in the same order, the same items, expressions and
parameters, for a bot's first signed request.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from typing import Any

from benchmarks.cold_start import FLOORS_DIR
from keygate.config import StorageConfig
from keygate.storage import aws
from keygate_dev.store_hooks import StoreClientHooks
from tests.support.stack import layer

Request = tuple[str, dict[str, Any]]


def _floor_module() -> Any:
    spec = importlib.util.spec_from_file_location("floor_aws", FLOORS_DIR / "floor_aws.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _key_shape(key: dict[str, Any]) -> dict[str, str]:
    # The item's kind, not its id: `KEY#<key>` -> `KEY#`, `<key>#<nonce>` (a nonce) -> `<key>#`.
    return {name: re.sub(r"#.*", "#", next(iter(value.values()))) for name, value in key.items()
            if name in ("pk", "sk")}


def _shape(params: dict[str, Any]) -> dict[str, Any]:
    """A request without its values: what must match between the authorizer and the floor."""
    shape: dict[str, Any] = {"parameters": sorted(params), "table": params.get("TableName")}
    for name in ("ConditionExpression", "UpdateExpression", "ExpressionAttributeNames", "ConsistentRead",
                 "ReturnValuesOnConditionCheckFailure"):
        if name in params:
            shape[name] = params[name]
    if "ExpressionAttributeValues" in params:
        shape["value_types"] = {name: list(value) for name, value in params["ExpressionAttributeValues"].items()}
    for name in ("Key", "Item"):
        if name in params:
            shape[name] = _key_shape(params[name])
            shape[f"{name} attributes"] = {attribute: list(value) for attribute, value in params[name].items()}
    return shape


def _recorder(into: list[Request]) -> Callable[..., None]:
    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        into.append((model.name, _shape(params)))
    return record


def test_floor_one_sends_the_requests_of_the_authorizers_first_event(gate):
    # Given a key, and a fresh authorizer instance (nothing cached)
    key = gate.create_key()
    # When the authorizer serves the bot's first signed request
    authorizer_requests: list[Request] = []
    with StoreClientHooks({"provide-client-params": _recorder(authorizer_requests)}):
        assert gate.send(key).status == 200
    # And floor 1 serves its first event for the same key, on fresh clients of its own
    floor = _floor_module()
    floor_requests: list[Request] = []
    floor.session().register("provide-client-params", _recorder(floor_requests))
    answer = floor.serve({"table": StorageConfig.from_environ().table_name,
                          "nonces_table": StorageConfig.from_environ().nonces_table_name, "key_id": key[0],
                          "secret_id": layer().secrets.name(key[0])})
    # Then the floor found the key's user through its pointer, as the authorizer does
    assert answer == {"principalId": "alice"}
    # And it sent the same five operations, in order, on the same items with the same expressions
    assert [operation for operation, _ in authorizer_requests] == [
        "GetItem", "GetItem", "GetSecretValue", "PutItem", "UpdateItem"]
    assert floor_requests == authorizer_requests
    # And its clients are configured as keygate.storage's (the retry mode changes client creation; that both are
    # made by botocore alone is read in tests/unit/test_benchmarks_smoke.py)
    for setting in ("connect_timeout", "read_timeout", "retries"):
        assert getattr(floor.CLIENT_CONFIG, setting) == getattr(aws.BOTO_CONFIG, setting), setting
