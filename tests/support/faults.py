"""Fault-injection and concurrency harness for integration tests against in-process moto.

`AwsCalls` hooks botocore's event system on the layer's own cached clients
(keygate_dev.store_hooks: the clients keygate.storage.aws made for the stack), so the checks in
tests/support/invariants.py, which use clients of their own, are never affected. It
records every AWS operation the layer makes and can make one of them fail:

- `Mode.FAIL_BEFORE`: the call never reaches AWS and raises an AWS fault;
- `Mode.CRASH_AFTER`: the call succeeds, then the Lambda dies (`HandlerCrashed`
  is a BaseException, so no `except Exception` in the handler can answer);
- `Mode.LOST_RESPONSE`: the call succeeds but its response is lost (a read
  timeout), so the layer sees a failure for a write that took effect.

`retried_after_lost_response` models botocore sending a TransactWriteItems again
after a read timeout lost the answer of an attempt that committed, with or
without DynamoDB's `ClientRequestToken` idempotency (which moto does not model).

`serialised_moto` models DynamoDB's per-request atomicity for real threads,
and `run_together` starts threads behind a barrier.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from moto.dynamodb.responses import DynamoHandler
from moto.secretsmanager.responses import SecretsManagerResponse

from keygate_dev import template
from keygate_dev.store_hooks import StoreClientHooks, layer_clients
from tests.support.invariants import aws_client
from tests.support.stack import NONCES_TABLE_NAME, RESOURCE_NAMES, TABLE_NAME


class HandlerCrashed(BaseException):  # a simulated process death, not an error to handle
    """The Lambda died right after an AWS call returned (timeout, out of memory, ...)."""


class Mode(StrEnum):
    FAIL_BEFORE = "fail-before"
    CRASH_AFTER = "crash-after"
    LOST_RESPONSE = "lost-response"


def _client_error(code: str, status: int) -> Callable[[str], Exception]:
    def build(operation: str) -> Exception:
        return ClientError({"Error": {"Code": code, "Message": "injected fault"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, operation.split(".")[-1])
    return build


# The faults AWS really returns after botocore's own retries gave up; they are
# rotated over the call indices so every kind is exercised on every path.
AWS_FAULTS: tuple[Callable[[str], Exception], ...] = (
    _client_error("ServiceUnavailable", 503),
    _client_error("InternalServerError", 500),
    _client_error("ThrottlingException", 400),
    lambda operation: EndpointConnectionError(endpoint_url="https://injected.invalid"),
)


def aws_fault(index: int, operation: str) -> Exception:
    return AWS_FAULTS[index % len(AWS_FAULTS)](operation)


@dataclass
class Fault:
    """One injected failure: at the `index`-th call after arming, or the first call of `operation`."""

    mode: Mode
    index: int | None = None
    operation: str | None = None
    error: Exception | None = None
    fired_at: str | None = None  # the operation it hit, once it fired

    def matches(self, position: int, operation: str) -> bool:
        if self.fired_at is not None:
            return False
        return position == self.index if self.operation is None else operation == self.operation


@dataclass
class AwsCalls:
    """Every AWS call the layer makes, as "service.Operation", in order; optionally one fault."""

    calls: list[str] = field(default_factory=list)
    fault: Fault | None = None
    _armed_at: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hooks: StoreClientHooks | None = None

    def install(self) -> None:
        self._hooks = StoreClientHooks({"before-call.*.*": self._before_call, "after-call.*.*": self._after_call})
        self._hooks.install()

    def uninstall(self) -> None:
        if self._hooks is not None:
            self._hooks.uninstall()

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        """The operations made inside the block."""
        recorded: list[str] = []
        start = len(self.calls)
        try:
            yield recorded
        finally:
            recorded.extend(self.calls[start:])

    def arm(self, fault: Fault) -> Fault:
        with self._lock:
            self.fault, self._armed_at = fault, len(self.calls)
        return fault

    def disarm(self) -> None:
        self.fault = None

    @staticmethod
    def _name(model: Any) -> str:
        return f"{model.service_model.service_name}.{model.name}"

    def _before_call(self, model: Any, **_: Any) -> None:
        operation = self._name(model)
        with self._lock:
            position = len(self.calls) - self._armed_at
            self.calls.append(operation)
            fault = self.fault
            if fault is None or fault.mode is not Mode.FAIL_BEFORE or not fault.matches(position, operation):
                return
            fault.fired_at = operation
        raise fault.error or aws_fault(position, operation)

    def _after_call(self, model: Any, http_response: Any, **_: Any) -> None:
        operation = self._name(model)
        with self._lock:
            position = len(self.calls) - 1 - self._armed_at
            fault = self.fault
            if fault is None or fault.mode is Mode.FAIL_BEFORE or http_response.status_code >= 300 \
                    or not fault.matches(position, operation):
                return
            fault.fired_at = operation
        if fault.mode is Mode.CRASH_AFTER:
            raise HandlerCrashed(f"the Lambda died after {operation} succeeded")
        raise fault.error or ReadTimeoutError(endpoint_url="https://injected.invalid")


@dataclass
class LostResponseRetries:
    """What `retried_after_lost_response` saw: the ClientRequestToken of each transaction the layer sent."""

    tokens: list[str | None] = field(default_factory=list)
    _outcomes: dict[str, tuple[dict[str, Any], Any]] = field(default_factory=dict)

    def idempotent(self, send: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """DynamoDB's answer to a token it has seen within ten minutes: the first call's outcome, nothing
        applied again; the same token with other parameters is IdempotentParameterMismatchException."""
        token = kwargs.get("ClientRequestToken")
        if token is not None and token in self._outcomes:
            seen, outcome = self._outcomes[token]
            if seen != kwargs:
                raise _client_error("IdempotentParameterMismatchException", 400)("TransactWriteItems")
        else:
            try:
                outcome = send(**kwargs)
            except ClientError as error:
                outcome = error
            if token is not None:
                self._outcomes[token] = (kwargs, outcome)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@contextmanager
def retried_after_lost_response(*, idempotent: bool,
                                meanwhile: Callable[[], object] | None = None) -> Iterator[LostResponseRetries]:
    """Every TransactWriteItems the layer sends is sent twice, as botocore does when a read timeout lost
    the answer of the first attempt: the first attempt takes effect, the caller sees the second's outcome.

    `idempotent=True` answers the second as DynamoDB does a repeated ClientRequestToken; `False` is moto
    (and DynamoDB without a token): the second attempt runs its conditions again, against the first's writes.
    `meanwhile` runs once, between the first transaction's two attempts: another request landing while
    the answer was lost (its own transactions are sent twice too).
    """
    client = layer_clients()[0]
    send = client.transact_write_items
    seen = LostResponseRetries()
    pending = [meanwhile] if meanwhile is not None else []

    def twice(**kwargs: Any) -> Any:
        seen.tokens.append(kwargs.get("ClientRequestToken"))
        attempt = (lambda: seen.idempotent(send, kwargs)) if idempotent else (lambda: send(**kwargs))
        with suppress(ClientError):  # the first attempt's answer is lost, whatever it was
            attempt()
        if pending:
            pending.pop()()
        return attempt()

    client.transact_write_items = twice  # on this client object only: moto and the checks use their own
    try:
        yield seen
    finally:
        del client.transact_write_items


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def answer_to_a_crashed_handler() -> GatewayAnswer:
    """What API Gateway answers when the Lambda dies mid-request (`Mode.CRASH_AFTER`).

    A proxy integration whose function fails or times out is a 5XX that API
    Gateway answers itself, with the template's DEFAULT_5XX Gateway Response:
    read from template.yaml, so the claim "the caller got 503 with Retry-After"
    is checked against what is deployed, not restated here.
    """
    response = template.gateway_responses()["DEFAULT_5XX"]
    headers = {name: value.strip("'")
               for name, value in ((response.get("ResponseParameters") or {}).get("Headers") or {}).items()}
    return GatewayAnswer(status=int(response["StatusCode"]), headers=headers,
                         body=json.loads(response["ResponseTemplates"]["application/json"]))


def empty_aws() -> None:
    """Start again from an empty table (from template.yaml) and no secrets, inside the same mock.

    moto deep-copies the whole table for every transaction, so a loop of
    scenarios stays fast only if each one starts small.
    """
    dynamodb, secretsmanager = aws_client("dynamodb"), aws_client("secretsmanager")
    for table_name in (TABLE_NAME, NONCES_TABLE_NAME):
        dynamodb.delete_table(TableName=table_name)
    template.create_tables(dynamodb, RESOURCE_NAMES)
    for page in secretsmanager.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            secretsmanager.delete_secret(SecretId=secret["Name"], ForceDeleteWithoutRecovery=True)


# Why serialise: moto applies a TransactWriteItems item by item and undoes a
# cancelled one by putting back a deep copy of the whole table, so two threads
# inside moto at once can see half a transaction or have a committed write
# wiped by another request's rollback. DynamoDB itself applies every single
# request atomically (conditional writes and transactions are serialisable), so
# holding one lock per request models it; it is stricter than DynamoDB only for
# Query, which real DynamoDB isolates from transactions as read-committed.
# Secrets Manager requests are made atomic the same way.
_MOTO_REQUEST_LOCK = threading.RLock()


@contextmanager
def serialised_moto() -> Iterator[None]:
    handlers = (DynamoHandler, SecretsManagerResponse)
    own = {handler: handler.__dict__.get("call_action") for handler in handlers}

    def atomic(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def call_action(self: Any) -> Any:
            with _MOTO_REQUEST_LOCK:
                return original(self)
        return call_action

    for handler in handlers:
        handler.call_action = atomic(handler.call_action)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for handler, original in own.items():
            if original is None:
                del handler.call_action  # inherited again from moto's BaseResponse
            else:
                handler.call_action = original  # type: ignore[method-assign]


def run_together[Result](tasks: list[Callable[[], Result]], *, timeout: float = 60) -> list[Result]:
    """Run each task on its own thread, all released at once by a barrier; results in task order.

    An exception in a task is re-raised here, so a crash cannot pass for a result.
    """
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException] = []

    def run(position: int, task: Callable[[], Result]) -> None:
        try:
            barrier.wait(timeout)
            results[position] = task()
        except BaseException as error:  # noqa: BLE001 (handed to the test thread below)
            errors.append(error)

    threads = [threading.Thread(target=run, args=(position, task), daemon=True)
               for position, task in enumerate(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError("a concurrent task did not finish")
    if errors:
        raise errors[0]
    return results
