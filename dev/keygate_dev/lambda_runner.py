"""Run Lambda handlers in this process, each with the environment CloudFormation would give it.

`InProcessLambdaRunner` takes the place of SAM CLI's Docker-based
LocalLambdaRunner: same `invoke(function_identifier, event, stdout=...)`
protocol, so SAM CLI's local API Gateway (samcli.local.apigw) drives it
unchanged, plus `run()` which returns the result or the error as Lambda
reports it. Invocations are serialised: the process has one `os.environ`, and
each function sees exactly its own variables while it runs (the layer's
config and AWS clients are rebuilt when they change), as in its own
Lambda sandbox. Handler modules stay imported between calls, like a warm
Lambda instance, so module-level caches (the signature authorizer's) behave
as in AWS.
"""

from __future__ import annotations

import json
import os
import threading
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keygate_dev import template

# What `sam local` sets in every container; Powertools' Tracer disables itself on it.
SAM_LOCAL_ENVIRONMENT = {"AWS_SAM_LOCAL": "true", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13"}


@dataclass
class LambdaContext:
    """The attributes Powertools reads from a Lambda context object."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@dataclass(frozen=True)
class LocalFunction:
    function_id: str
    template_path: Path
    environment: dict[str, str]


@dataclass
class Invocation:
    """A function's result, or the error Lambda would report for it."""

    payload: Any = None
    error: dict[str, Any] | None = None

    def output(self) -> str:
        return json.dumps(self.error if self.error is not None else self.payload)


def local_functions(parameters: Mapping[str, str], resource_names: Mapping[str, str],
                    aws_environment: Mapping[str, str], env_overrides: Mapping[str, Mapping[str, str]] | None = None,
                    example_parameters: Mapping[str, str] | None = None) -> dict[str, LocalFunction]:
    """Every function of template.yaml and of the protected-API example, with its local environment.

    `resource_names` are the physical names of the template's resources the environments reference
    (tables, the secrets' KMS key), by logical id. `env_overrides` has the shape of `sam local --env-vars`
    files: a function's logical id, or "Parameters" for all functions, mapped to variables.
    """
    overrides = env_overrides or {}
    stacks = {template.TEMPLATE_PATH: (dict(parameters), dict(resource_names))}
    if template.EXAMPLE_TEMPLATE_PATH.exists():
        stacks[template.EXAMPLE_TEMPLATE_PATH] = ({"Stage": parameters.get("Stage", "local"),
                                                   **(example_parameters or {})}, {})
    functions = {}
    for template_path, (stack_parameters, references) in stacks.items():
        for function_id in template.function_ids(template_path):
            environment = template.function_environment(function_id, stack_parameters, references, template_path)
            environment.update({**SAM_LOCAL_ENVIRONMENT, **aws_environment})
            for scope in ("Parameters", function_id):
                environment.update({name: str(value) for name, value in (overrides.get(scope) or {}).items()})
            functions.setdefault(function_id, LocalFunction(function_id, template_path, environment))
    return functions


def _layer_caches_reset(aws_changed: bool) -> None:
    from keygate import wiring
    from keygate.storage import aws

    wiring.forget()
    if aws_changed:
        aws.forget_clients()


class InProcessLambdaRunner:
    def __init__(self, functions: Mapping[str, LocalFunction], base_environment: Mapping[str, str] | None = None):
        self.functions = dict(functions)
        base = dict(os.environ if base_environment is None else base_environment)
        # The caller's endpoint overrides must not leak into functions (each gets its own).
        self._base = {name: value for name, value in base.items() if not name.startswith("AWS_ENDPOINT_URL")}
        self._lock = threading.RLock()
        self._applied: dict[str, str] | None = None

    # SAM CLI's LocalApigwService asks this of its runner.
    def is_debugging(self) -> bool:
        return False

    def function(self, function_id: str) -> LocalFunction:
        try:
            return self.functions[function_id]
        except KeyError:
            known = ", ".join(sorted(self.functions))
            raise LookupError(f"No function {function_id!r} in the templates (known: {known}).") from None

    @contextmanager
    def environment_of(self, function_id: str) -> Iterator[LocalFunction]:
        """Hold the runner and give this process exactly the function's environment."""
        function = self.function(function_id)
        with self._lock:
            wanted = {**self._base, **function.environment}
            if wanted != self._applied:
                previous = self._applied or {}
                aws_changed = {k: v for k, v in previous.items() if k.startswith("AWS_")} != \
                    {k: v for k, v in wanted.items() if k.startswith("AWS_")}
                os.environ.clear()
                os.environ.update(wanted)
                self._applied = wanted
                _layer_caches_reset(aws_changed or not previous)
            yield function

    def run(self, function_id: str, event: Any) -> Invocation:
        with self.environment_of(function_id) as function:
            handler = template.load_handler(function.function_id, function.template_path)
            context = LambdaContext(function.function_id)
            try:
                return Invocation(payload=handler(event, context))
            except Exception as error:  # noqa: BLE001  # Lambda reports any exception as the invocation's error
                return Invocation(error={
                    "errorMessage": str(error), "errorType": type(error).__name__,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_tb(error.__traceback__) if str(error) != "Unauthorized" else [],
                })

    # SAM CLI's LocalLambdaRunner protocol (samcli.commands.local.lib.local_lambda).
    def invoke(self, function_identifier: str, event: str, tenant_id: str | None = None, stdout: Any = None,
               stderr: Any = None, **_: Any) -> None:
        result = self.run(function_identifier, json.loads(event))
        if stdout is not None:
            stdout.write_str(result.output())
            stdout.flush()
        return None


class SharedEnvironmentRunner(InProcessLambdaRunner):
    """Runs every function in this process's environment as it is, concurrently (tests).

    Tests give the process the stack's environment (the management functions' Globals) and
    race requests on threads; a runner that switched the environment per function would
    have to serialise them.
    """

    @contextmanager
    def environment_of(self, function_id: str) -> Iterator[LocalFunction]:
        yield self.function(function_id)
