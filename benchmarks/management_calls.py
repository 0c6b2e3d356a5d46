"""AWS calls per management operation on a user with 10 keys (issue 5, benchmark 5).

Each operation goes through its real handler (tests/support/client.py's ApiClient:
the proxy event API Gateway would send after the session authorizer, with a
fresh step-up token) against in-process moto, on a fresh user seeded with 10
active keys; only the operation itself is counted, by botocore operation.
Create is the exception: a user with 10 keys is at the limit, so it starts
with 9 and creates the 10th.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks._stack import CallRecorder, LocalStack, local_stack
from keygate.config import KeyPolicy
from tests.support.client import ApiClient, Response, local_gateway

KEYS_PER_USER = 10
# operation -> (keys seeded first, the call, the status it must answer)
Operation = Callable[[ApiClient, str, list[str]], Response]
OPERATIONS: dict[str, tuple[int, Operation, int]] = {
    "create": (KEYS_PER_USER - 1, lambda api, user, keys: api.create(user, label="the tenth"), 200),
    "list": (KEYS_PER_USER, lambda api, user, keys: api.list(user), 200),
    "update": (KEYS_PER_USER, lambda api, user, keys: api.update(keys[0], user, label="renamed"), 200),
    "revoke": (KEYS_PER_USER, lambda api, user, keys: api.revoke(keys[0], user), 200),
    "revoke_all": (KEYS_PER_USER, lambda api, user, keys: api.revoke_all(user), 200),
    "audit": (KEYS_PER_USER, lambda api, user, keys: api.audit(keys[0], user), 200),
}


def count_operation(stack: LocalStack, name: str) -> dict[str, Any]:
    seeded, call, expected_status = OPERATIONS[name]
    user = f"bench-{name}"
    keys = [created.api_key for created in stack.user_with_keys(user, seeded)]
    with CallRecorder() as recorder:
        response = call(ApiClient(stack.identity, local_gateway(stack.parameters)), user, keys)
    if response.status != expected_status:
        # The status and error code only: a create's body holds its secret.
        code = response.json().get("error", {}).get("code") if response.status >= 400 else None
        raise RuntimeError(f"{name} answered {response.status} {code or ''}")
    return {"keys_before": seeded, "total": recorder.total(), "calls": dict(sorted(recorder.calls.items())),
            "transaction_items": recorder.transaction_items}


def run(quick: bool = False) -> dict[str, Any]:
    """Every operation once (the counts are deterministic, so quick and full are alike)."""
    with local_stack() as stack:
        limit = KeyPolicy.from_environ().max_active_keys_per_user
        if limit < KEYS_PER_USER:
            raise RuntimeError(f"the stack allows {limit} keys per user; this needs {KEYS_PER_USER}")
        return {"keys_per_user": KEYS_PER_USER,
                "operations": {name: count_operation(stack, name) for name in OPERATIONS}}
