"""Cold start per function, next to boto3 alone (issue 5, benchmark 3).

Each measurement is a fresh interpreter (`python -S`, so the venv's
site-packages are not on the path) that sees what a Lambda sees: sys.path is
the function's CodeUri, then a copy of the layer, then the runtime's boto3
(symlink forests of the same pinned distributions the venv holds: what
KeyGate imports from the AWS-managed Powertools layer, what
layers/common/requirements.txt resolves to, plus `keygate` and `kg1`; and boto3 with its
dependencies). It gets the function's environment from template.yaml and the
Lambda variables (LAMBDA_TASK_ROOT makes the X-Ray SDK behave as on Lambda),
imports the handler the way the runtime does, and serves one event prepared by
this process (seeded through the layer, signed or carrying fresh tokens). AWS
is a moto server on 127.0.0.1, the JWKS the local identity provider.

The baseline is `import boto3; boto3.client("dynamodb")` in the same kind of
interpreter. Times run from the parent's spawn to the child's response (both
read CLOCK_MONOTONIC), so interpreter start-up counts for both; the ratio is
median(function) / median(baseline).

Four floors (benchmarks/cold_start_floors/) serve the authorizer's first event
without any KeyGate code, each adding one part of the stack the team's rules
fix: botocore (which boto3 wraps; keygate.storage uses it alone) with the
first event's two clients and five calls, then the
Powertools Logger and Metrics (the signature authorizer's whole fixed stack,
AUTHORIZER_FLOOR), then a pydantic model of the environment and the
Powertools Tracer (what the management functions add). They show how much of
the authorizer's cold start is KeyGate's own.

Two variants of KeyGate's own layer (the runtime and the managed Powertools
layer ship bytecode in both):
- `no_bytecode`: the layer without .pyc files, as `BuildMethod: python3.13`
  built it; /opt is read-only on Lambda, so every cold start compiles the
  keygate modules it imports.
- `as_built`: the layer with the bytecode layers/common/Makefile compiles
  (`compileall --invalidation-mode unchecked-hash`), as `sam build` ships it.
"""

from __future__ import annotations

import gc
import json
import os
import random
import re
import shutil
import statistics
import subprocess  # nosec B404  # runs only this project's own commands, no shell
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import authorizer_bench
from benchmarks._stack import AWS_BASICS, LocalStack, function_property, local_stack
from benchmarks.package_size import (
    LAYER_PACKAGES,
    RUNTIME_REQUIREMENTS,
    layer_requirements,
    managed_powertools_distributions,
    resolve_distributions,
)
from keygate import routes
from keygate_dev import template
from keygate_dev.events import SeededKey, response_status
from kg1 import MAX_RECV_WINDOW_MS
from tests.support.apigw_events import ProxyRequest, proxy_event, resource_parameters
from tests.support.clocks import Clocks
from tests.support.stack import REGION

AUTHORIZER = "SignatureAuthorizerFunction"
# The same function, its first request signed with an Ed25519 key: no secret to read, the verifier's import.
AUTHORIZER_ED25519 = "SignatureAuthorizerFunction, Ed25519 key"
SUBJECT_FUNCTIONS = {AUTHORIZER_ED25519: AUTHORIZER}  # a subject that is not itself a function of the template
TARGET_RATIO = 1.3
TARGET_SUBJECTS = (AUTHORIZER, AUTHORIZER_ED25519)  # the subjects issue 15's TARGET_RATIO is for
# The smoke run: the authorizers (the signature authorizer has the target) and the heaviest management path.
QUICK_FUNCTIONS = (AUTHORIZER, AUTHORIZER_ED25519, "SessionAuthorizerFunction", "CreateApiKeyFunction")
BASELINE = "baseline"
FLOORS_DIR = Path(__file__).parent / "cold_start_floors"
# Each floor adds one part of the fixed stack to the one before it (module docstrings say what).
FLOORS = {
    "floor 1: botocore + AWS calls": "floor_aws.handler",
    "floor 2: + Logger, Metrics": "floor_logger_metrics.handler",
    "floor 3: + pydantic config": "floor_pydantic.handler",
    "floor 4: + Tracer": "floor_tracer.handler",
}
# The signature authorizer's own floor: its import path has neither pydantic nor the Tracer (issue 15).
AUTHORIZER_FLOOR = "floor 2: + Logger, Metrics"
VARIANTS = ("no_bytecode", "as_built")  # KeyGate's layer before and after layers/common/Makefile
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:k3yg4t3abc/dev/{method}{path}"

# Runs in the fresh interpreter: only the standard library before the handler's own imports.
_CHILD = r"""
import json, sys, time
def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)
started_ns = now()
result_path, event_path, handler_spec = sys.argv[1:4]
if handler_spec == "baseline":
    import boto3
    boto3.client("dynamodb")
    imported_ns = served_ns = now()
    result = {}
else:
    import os
    module_name, _, attribute = handler_spec.rpartition(".")
    __import__(module_name)  # the import statement's path, which -X importtime reports
    handler = getattr(sys.modules[module_name], attribute)
    imported_ns = now()
    class Context:
        function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
        aws_request_id = "cold-start"
        def get_remaining_time_in_millis(self):
            return 10000
    with open(event_path) as file:
        event = json.load(file)
    try:
        result = handler(event, Context())
    except Exception as error:
        result = {"errorType": type(error).__name__, "errorMessage": str(error)}
    served_ns = now()
with open(result_path, "w") as file:
    json.dump({"started_ns": started_ns, "imported_ns": imported_ns, "served_ns": served_ns,
               "result": result}, file)
# No interpreter shutdown, which Lambda never runs (docs/performance.md, "Cold start", *Instructions*)
sys.stdout.flush()
sys.stderr.flush()
import os
os._exit(0)
"""


# ------------------------------------------------------------- the Lambda path
def _mirror(source: Path, target: Path) -> None:
    """Real directories, symlinked files, no bytecode caches: a copy that costs next to nothing.

    A directory without Python source (botocore's service models) is linked whole.
    """
    if source.is_file() or next(source.rglob("*.py"), None) is None:
        target.symlink_to(source)
        return
    target.mkdir()
    for entry in source.iterdir():
        if entry.name != "__pycache__" and entry.suffix != ".pyc":
            _mirror(entry, target / entry.name)


def build_forest(target: Path, distributions: Iterable[str],
                 extra: dict[str, Path] | None = None) -> list[str]:
    target.mkdir(parents=True)
    tops: dict[str, Path] = dict(extra or {})
    for name in distributions:
        distribution = metadata.distribution(name)
        for file in distribution.files or []:
            if file.parts[0] not in ("..", "__pycache__"):  # scripts; bytecode of top-level modules
                tops.setdefault(file.parts[0], Path(distribution.locate_file(file.parts[0])))
    for top, source in sorted(tops.items()):
        _mirror(source, target / top)
    return sorted(distributions)


@dataclass
class LambdaPath:
    """/opt/python (KeyGate's layer and the managed Powertools layer) and the runtime's boto3, on this machine.

    Lambda unpacks both layers into the one /opt/python; two directories on
    sys.path behave alike, and let the variants compile one and not the other.
    """

    layer: Path
    powertools_layer: Path
    runtime: Path
    layer_distributions: list[str]
    runtime_distributions: list[str]

    @classmethod
    def build(cls, root: Path) -> LambdaPath:
        layer = build_forest(root / "opt-python-keygate", resolve_distributions(layer_requirements()),
                             LAYER_PACKAGES)
        managed = build_forest(root / "opt-python-powertools", managed_powertools_distributions())
        runtime = build_forest(root / "runtime", resolve_distributions(RUNTIME_REQUIREMENTS))
        # The runtime ships compiled, and so does the managed Powertools layer (its release canary fails
        # on any source compiled at import); our layer is compiled only in the `as_built` variant.
        _compile(root / "runtime")
        _compile(root / "opt-python-powertools")
        return cls(root / "opt-python-keygate", root / "opt-python-powertools", root / "runtime",
                   sorted({*layer, *managed}), runtime)

    def python_path(self, code_dir: Path) -> str:
        return os.pathsep.join(map(str, (code_dir, self.layer, self.powertools_layer, self.runtime)))


def _compile(directory: Path, *, invalidation_mode: str = "timestamp") -> None:
    # A process of its own: compileall's workers would otherwise re-import this program.
    command = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", invalidation_mode,
               str(directory)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603  # nosec B603  # argv of this project's own command, no shell


# ---------------------------------------------------------------- first events
def _api_event(stack: LocalStack, function_id: str, path: str, *, user: str | None, body: Any = None,
               headers: dict[str, str] | None = None, **context: str) -> dict[str, Any]:
    """The proxy event API Gateway sends the function's route, after the session authorizer when `user` is set."""
    # The function's GaiaEx route (the first it serves): a first event is the same work on either profile's.
    route = next(route for route in routes.ROUTES if route.function_id == function_id)
    request_headers = {"Content-Type": "application/json", **(headers or {})}
    if route.step_up and user:
        request_headers["X-PASSKEY-TOKEN"] = stack.identity.step_up_token(user, route.step_up.value)
    authorizer = None if user is None else {"principalId": user, "user_id": user, **context}
    request = ProxyRequest(method=route.method, path=path, headers=request_headers,
                           body=None if body is None else json.dumps(body))
    return proxy_event(request, route.path, resource_parameters(route.path, path), authorizer)


def _session_event(stack: LocalStack, user: str) -> dict[str, Any]:
    """What API Gateway hands the session authorizer (a REQUEST authorizer on the Authorization header)."""
    request = ProxyRequest(method="GET", path="/v1/trade/api-keys",
                           headers={"Authorization": f"Bearer {stack.identity.session_token(user)}"})
    event = proxy_event(request, "/v1/trade/api-keys", {}, None)
    del event["body"], event["isBase64Encoded"], event["requestContext"]["authorizer"]
    return {"type": "REQUEST", "methodArn": METHOD_ARN.format(method="GET", path="/v1/trade/api-keys"), **event}


def _signed_request_event(stack: LocalStack, user: str, keys: list[SeededKey]) -> dict[str, Any]:
    """What API Gateway hands the REQUEST authorizer for a bot's signed GET /v1/trade/api-keys/self.

    Signed with the longest receive window: under valgrind (`instruction_counts`) a cold start takes seconds.
    """
    return authorizer_bench.signed_event((keys[0].api_key, keys[0].api_secret), Clocks(time.time_ns() // 1_000_000),
                                         recv_window_ms=MAX_RECV_WINDOW_MS)


def _ed25519_signed_request_event(stack: LocalStack, user: str, keys: list[SeededKey]) -> dict[str, Any]:
    """The same request signed KG1-ED25519 with a fresh Ed25519 key of the (onboarded) user."""
    return authorizer_bench.signed_event(authorizer_bench.seed_ed25519_key(user), Clocks(time.time_ns() // 1_000_000),
                                         recv_window_ms=MAX_RECV_WINDOW_MS)


@dataclass(frozen=True)
class FirstEvent:
    keys: int  # active keys the (onboarded) user holds before the event
    build: Callable[[LocalStack, str, list[SeededKey]], dict[str, Any]]
    status: int = 200  # what the function must answer: a cheaper error path would not count


FIRST_EVENTS: dict[str, FirstEvent] = {
    "SessionAuthorizerFunction": FirstEvent(0, lambda stack, user, keys: _session_event(stack, user)),
    AUTHORIZER: FirstEvent(1, _signed_request_event),
    AUTHORIZER_ED25519: FirstEvent(0, _ed25519_signed_request_event),
    "CreateApiKeyFunction": FirstEvent(0, lambda stack, user, keys: _api_event(
        stack, "CreateApiKeyFunction", "/v1/trade/api-keys", user=user, body={"label": "cold start"})),
    "ListApiKeysFunction": FirstEvent(2, lambda stack, user, keys: _api_event(
        stack, "ListApiKeysFunction", "/v1/trade/api-keys", user=user)),
    "UpdateApiKeyFunction": FirstEvent(1, lambda stack, user, keys: _api_event(
        stack, "UpdateApiKeyFunction", f"/v1/trade/api-keys/{keys[0].api_key}", user=user, body={"label": "renamed"})),
    "RevokeApiKeyFunction": FirstEvent(1, lambda stack, user, keys: _api_event(
        stack, "RevokeApiKeyFunction", f"/v1/trade/api-keys/{keys[0].api_key}", user=user)),
    "RevokeAllApiKeysFunction": FirstEvent(2, lambda stack, user, keys: _api_event(
        stack, "RevokeAllApiKeysFunction", "/v1/trade/api-keys/all", user=user)),
    "RotateApiKeyFunction": FirstEvent(1, lambda stack, user, keys: _api_event(
        stack, "RotateApiKeyFunction", f"/v1/trade/api-keys/{keys[0].api_key}/rotate", user=user, body={})),
    "GetApiKeyAuditFunction": FirstEvent(1, lambda stack, user, keys: _api_event(
        stack, "GetApiKeyAuditFunction", f"/v1/trade/api-keys/{keys[0].api_key}/audit", user=user)),
    "GetCallingApiKeyFunction": FirstEvent(1, lambda stack, user, keys: _api_event(
        stack, "GetCallingApiKeyFunction", "/v1/trade/api-keys/self", user=user, key_id=keys[0].api_key)),
    "GetServerTimeFunction": FirstEvent(0, lambda stack, user, keys: _api_event(
        stack, "GetServerTimeFunction", "/v1/time", user=None)),
    "SecretJanitorFunction": FirstEvent(0, lambda stack, user, keys: {
        "version": "0", "detail-type": "Scheduled Event", "source": "aws.scheduler", "region": REGION,
        "detail": {}}),
}


def _answered(function_id: str, result: Any, user: str | None) -> bool:
    """Whether a cold start served its first event as the route must (a cheaper error path would not count)."""
    if function_id == BASELINE:
        return True
    if function_id in FLOORS:
        return bool(result == {"principalId": user})
    return response_status(function_of(function_id), result) == FIRST_EVENTS[function_id].status


def function_of(subject: str) -> str:
    """The template's function a measured subject runs."""
    return SUBJECT_FUNCTIONS.get(subject, subject)


# ------------------------------------------------------------------- measuring
# A cold start whose answer was not the one its first event needs is measured again (with a fresh event), at
# most this many times: a management function's transaction retried by botocore after a read timeout can
# come back "step-up token already used" for a change that committed (moto ignores ClientRequestToken; the
# root cause is issue 13's finding 10). A cheaper error path must never count, nor crash the run.
WRONG_ANSWER_ATTEMPTS = 3
# A cold start takes well under a second; under valgrind (`instruction_counts`) about 15 s here.
CHILD_TIMEOUT_SECONDS = 60


class WrongAnswer(RuntimeError):
    """A cold start answered something else than what its first event needs."""


@dataclass
class Run:
    total_ms: float
    startup_ms: float
    import_ms: float
    first_event_ms: float


class ColdStarts:
    def __init__(self, stack: LocalStack, path: LambdaPath, scratch: Path) -> None:
        self.stack = stack
        self.path = path
        self.scratch = scratch
        self.retried: dict[str, int] = {}

    def _child_environment(self, function_id: str | None, code_dir: Path | None) -> dict[str, str]:
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC",
                "PYTHONDONTWRITEBYTECODE": "1"}
        if function_id is None or code_dir is None:
            return {**base, **AWS_BASICS, "PYTHONPATH": str(self.path.runtime)}
        memory = str(function_property(function_id, "MemorySize"))
        # The template's default LogLevel, not the benchmark process's quiet one: the first event logs as deployed.
        deployed = self.stack.environment(function_id, LogLevel=template.parameter_defaults()["LogLevel"])
        return {**base, **deployed,
                "PYTHONPATH": self.path.python_path(code_dir),
                "LAMBDA_TASK_ROOT": str(code_dir), "AWS_LAMBDA_FUNCTION_NAME": function_id,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                # Not sampled, as most requests are: the X-Ray SDK sends nothing.
                "_X_AMZN_TRACE_ID": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                                    f"Parent={uuid.uuid4().hex[:16]};Sampled=0"}

    def _floor_event(self) -> tuple[dict[str, Any], str]:
        """What floors need to make the authorizer's calls for a fresh key; and the user they must answer.

        The event names the key, not its user: a floor finds the user through the key's pointer.
        """
        user = f"cold-{uuid.uuid4().hex[:10]}"
        key = self.stack.user_with_keys(user, 1)[0]
        environment = self.stack.environment(AUTHORIZER)
        return {"table": environment["TABLE_NAME"], "nonces_table": environment["NONCES_TABLE_NAME"],
                "key_id": key.api_key,
                "secret_id": environment["SECRET_NAME_PREFIX"] + key.api_key}, user

    def run_once(self, function_id: str, *, profile: bool = False, under: tuple[str, ...] = ()) -> tuple[Run, str]:
        """One cold start; returns its timings and its standard error: with `profile`, the -X importtime
        report; `under` is a command the interpreter runs under (valgrind), whose report is there too."""
        scratch = self.scratch / uuid.uuid4().hex
        scratch.mkdir()
        event_path, result_path = scratch / "event.json", scratch / "result.json"
        user = None
        if function_id == BASELINE:
            code_dir, handler_spec = None, BASELINE
            environment = self._child_environment(None, None)
            event_path.write_text("{}")
        elif function_id in FLOORS:
            code_dir, handler_spec = FLOORS_DIR, FLOORS[function_id]
            event, user = self._floor_event()
            event_path.write_text(json.dumps(event))
            environment = self._child_environment(AUTHORIZER, code_dir)
        else:
            code_dir = template.ROOT / function_property(function_of(function_id), "CodeUri")
            handler_spec = function_property(function_of(function_id), "Handler")
            first = FIRST_EVENTS[function_id]
            user = f"cold-{uuid.uuid4().hex[:10]}"
            event = first.build(self.stack, user, self.stack.user_with_keys(user, first.keys))
            event_path.write_text(json.dumps(event))
            environment = self._child_environment(function_of(function_id), code_dir)
        command = [*under, sys.executable, "-S", *(["-X", "importtime"] if profile else []), "-c", _CHILD,
                   str(result_path), str(event_path), handler_spec]
        spawned_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        finished = subprocess.run(command, env=environment, cwd=code_dir or scratch, text=True,  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=CHILD_TIMEOUT_SECONDS * (10 if under else 1), check=False)
        if finished.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"{function_id}: the cold start failed:\n{finished.stderr[-3000:]}")
        report = json.loads(result_path.read_text())
        if not _answered(function_id, report["result"], user):
            raise WrongAnswer(f"{function_id}: answered {report['result']!r}, not what its first event needs")
        to_ms = 1e-6
        return Run(total_ms=(report["served_ns"] - spawned_ns) * to_ms,
                   startup_ms=(report["started_ns"] - spawned_ns) * to_ms,
                   import_ms=(report["imported_ns"] - report["started_ns"]) * to_ms,
                   first_event_ms=(report["served_ns"] - report["imported_ns"]) * to_ms), finished.stderr

    def measure(self, function_ids: list[str], repeats: int) -> dict[str, list[Run]]:
        """Interleaved rounds (the baseline, the floors and each function), so drift hits them alike.

        Each round starts on empty tables (`LocalStack.empty_aws`) and runs the subjects in an order of
        its own (`round_order`), so no subject always runs first or always follows the same one. A wrong answer
        is measured again (WRONG_ANSWER_ATTEMPTS); `self.retried` counts them per subject. This process
        (the moto server's) collects garbage between rounds only (docs/performance.md, "Cold start").
        """
        subjects = [BASELINE, *FLOORS, *function_ids]
        runs: dict[str, list[Run]] = {subject: [] for subject in subjects}
        with _collector_between_rounds():
            for round_number in range(repeats):
                self.stack.empty_aws()  # each round's first events see tables of one round's size
                gc.collect()
                for function_id in round_order(subjects, round_number):
                    runs[function_id].append(self.run_answered(function_id)[0])
        return runs

    def run_answered(self, function_id: str, *, under: tuple[str, ...] = ()) -> tuple[Run, str]:
        """One cold start that answered its first event as it must, retrying a wrong answer a few times;
        its timings and standard error, as `run_once`'s."""
        for attempt in range(1, WRONG_ANSWER_ATTEMPTS + 1):
            try:
                return self.run_once(function_id, under=under)
            except WrongAnswer:
                self.retried[function_id] = self.retried.get(function_id, 0) + 1
                if attempt == WRONG_ANSWER_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")


def round_order(subjects: list[str], round_number: int) -> list[str]:
    """The subjects in a shuffled order, the same for a round number in every run (docs/performance.md,
    "Cold start": a cold start that follows a heavy one measured slower)."""
    return random.Random(round_number).sample(subjects, k=len(subjects))  # noqa: S311  # nosec B311  # an order, no secret


@contextmanager
def _collector_between_rounds() -> Iterator[None]:
    """Automatic garbage collection off while the rounds run (`measure` collects between them), then restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _median(runs: list[Run], field: str) -> float:
    return round(statistics.median(getattr(run, field) for run in runs), 1)


def summarise(runs: dict[str, list[Run]]) -> dict[str, Any]:
    """Medians, and the fastest runs' ratio and the paired ratio next to them.

    The ratio of the medians is the figure issue 15 counts. A shared machine only ever adds time, so the
    minimum of each subject is its least disturbed figure; and the median of each round's own ratio (the
    subject against the baseline of the same round, `runs` holding one run per round in round order)
    cancels the drift between rounds that the ratio of the medians keeps. Together they show how far noise
    moves the figure. Every round's total is kept.
    """
    baseline = statistics.median(run.total_ms for run in runs[BASELINE])
    baseline_fastest = min(run.total_ms for run in runs[BASELINE])
    summary = {}
    for function_id, measured in runs.items():
        fastest = min(run.total_ms for run in measured)
        paired = statistics.median(run.total_ms / base.total_ms
                                   for run, base in zip(measured, runs[BASELINE], strict=True))
        summary[function_id] = {
            "runs": len(measured),
            **{f"{field}_median": _median(measured, field)
               for field in ("total_ms", "startup_ms", "import_ms", "first_event_ms")},
            "total_ms_min": round(fastest, 1),
            "ratio_to_baseline": round(statistics.median(run.total_ms for run in measured) / baseline, 2),
            "ratio_of_fastest": round(fastest / baseline_fastest, 2),
            "paired_ratio_to_baseline": round(paired, 2),
            "total_ms_by_round": [round(run.total_ms, 1) for run in measured],
        }
    return summary


def beyond_floor_ms(runs: dict[str, list[Run]]) -> float:
    """What KeyGate's own code adds to the authorizer's cold start: its stack alone is AUTHORIZER_FLOOR.

    The median of the two's difference within each round, which cancels the drift
    between rounds that a difference of medians would keep.
    """
    paired = zip(runs[AUTHORIZER], runs[AUTHORIZER_FLOOR], strict=True)
    return round(statistics.median(authorizer.total_ms - floor.total_ms for authorizer, floor in paired), 1)


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def _self_us_by_package(stderr: str) -> dict[str, int]:
    by_package: dict[str, int] = defaultdict(int)
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            by_package[match[4].split(".")[0]] += int(match[1])
    return by_package


def _handler_imports_us(stderr: str, module_name: str) -> dict[str, int]:
    """Cumulative time of each module the handler module imports itself (one level below it).

    -X importtime prints a module after everything it imported, indented one level deeper.
    """
    below: dict[str, int] = {}
    for match in map(_IMPORT_LINE.match, stderr.splitlines()):
        if not match:
            continue
        depth = len(match[3])
        if depth == 1 and match[4] == module_name:
            return below
        if depth == 1:
            below = {}
        elif depth == 3:
            below[match[4]] = int(match[2])
    return {}


def import_profile(function_stderr: str, baseline_stderr: str, handler_module: str,
                   top: int = 12) -> dict[str, Any]:
    """-X importtime of a function next to the baseline's: what the function imports beyond the baseline."""
    function, baseline = _self_us_by_package(function_stderr), _self_us_by_package(baseline_stderr)
    extra = {name: us - baseline.get(name, 0) for name, us in function.items()}
    ranked = sorted(((name, us) for name, us in extra.items() if us > 0), key=lambda item: -item[1])[:top]
    handler_imports = sorted(_handler_imports_us(function_stderr, handler_module).items(),
                             key=lambda item: -item[1])[:top]
    return {"import_ms": round(sum(function.values()) / 1000, 1),
            "baseline_import_ms": round(sum(baseline.values()) / 1000, 1),
            "extra_self_ms_by_package": {name: round(us / 1000, 1) for name, us in ranked},
            "handler_imports_ms": {name: round(us / 1000, 1) for name, us in handler_imports}}


# The instructions a cold start executes, up to its response, under valgrind's callgrind (docs/performance.md,
# "Cold start", *Instructions*); one run each suffices.
INSTRUCTION_SUBJECTS = (BASELINE, AUTHORIZER_FLOOR, AUTHORIZER, AUTHORIZER_ED25519)
QUICK_INSTRUCTION_SUBJECTS = (BASELINE, AUTHORIZER)
_COLLECTED = re.compile(r"^==\d+== Collected : (\d+)$", re.MULTILINE)


def instruction_counts(cold: ColdStarts, subjects: Iterable[str]) -> dict[str, Any]:
    """Each subject's cold start in instructions, and its ratio to the baseline's; skipped without valgrind,
    and a failure is reported (`failed`) rather than raised, so that the timed figures measured before stand."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return {"skipped": "valgrind is not installed"}
    counts: dict[str, int] = {}
    for subject in subjects:
        report = cold.scratch / f"callgrind-{uuid.uuid4().hex}.out"
        try:
            stderr = cold.run_answered(subject, under=(valgrind, "--tool=callgrind",
                                                       f"--callgrind-out-file={report}"))[1]
        except (RuntimeError, subprocess.TimeoutExpired) as error:  # the timed figures before it are kept
            return {"failed": f"{subject}: {str(error)[-500:]}"}
        collected = _COLLECTED.search(stderr)
        if collected is None:
            return {"failed": f"{subject}: valgrind reported no instruction count: {stderr[-500:]}"}
        counts[subject] = int(collected[1])
    return {"tool": "valgrind --tool=callgrind", "variant": "as_built", "instructions": counts,
            "ratio_to_baseline": {subject: round(count / counts[BASELINE], 3) for subject, count in counts.items()},
            "wrong_answers_retried": dict(cold.retried)}


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 1 if quick else 11
    subjects = [*template.function_ids(), *(subject for subject, function_id in SUBJECT_FUNCTIONS.items()
                                            if function_id in template.function_ids())]
    function_ids = [subject for subject in subjects if subject in FIRST_EVENTS
                    and (not quick or subject in QUICK_FUNCTIONS)]
    missing = sorted(set(template.function_ids()) - set(FIRST_EVENTS))
    with tempfile.TemporaryDirectory(prefix="keygate-cold-") as scratch_dir, \
            local_stack(server=True) as stack:
        scratch = Path(scratch_dir)
        path = LambdaPath.build(scratch / "lambda")
        cold = ColdStarts(stack, path, scratch)
        cold.run_once(BASELINE)  # the moto server's and the page cache's first touch, not counted
        variants: dict[str, Any] = {}
        for variant in VARIANTS:
            if variant == "as_built":
                _compile(path.layer, invalidation_mode="unchecked-hash")  # what layers/common/Makefile does
            runs = cold.measure(function_ids, repeats)
            summary = summarise(runs)
            profile: dict[str, Any] = {}
            beyond_floor = None
            if AUTHORIZER in summary:
                beyond_floor = beyond_floor_ms(runs)
                handler_module = function_property(AUTHORIZER, "Handler").rpartition(".")[0]
                profile = import_profile(cold.run_once(AUTHORIZER, profile=True)[1],
                                         cold.run_once(BASELINE, profile=True)[1], handler_module)
            variants[variant] = {"functions": summary, "authorizer_import_profile": profile,
                                 "authorizer_floor": AUTHORIZER_FLOOR, "authorizer_beyond_floor_ms": beyond_floor,
                                 "wrong_answers_retried": dict(cold.retried)}
            cold.retried.clear()
        # The layer is as built now
        instructions = instruction_counts(cold, QUICK_INSTRUCTION_SUBJECTS if quick else INSTRUCTION_SUBJECTS)
    authorizer = {variant: figures["functions"].get(AUTHORIZER, {}).get("ratio_to_baseline")
                  for variant, figures in variants.items()}
    authorizer_ed25519 = {variant: figures["functions"].get(AUTHORIZER_ED25519, {}).get("ratio_to_baseline")
                          for variant, figures in variants.items()}
    return {"target_ratio": TARGET_RATIO, "floors": dict(FLOORS), "repeats": repeats,
            "interpreter": sys.version.split()[0],
            "machine": os.uname().machine, "layer_distributions": path.layer_distributions,
            "runtime_distributions": path.runtime_distributions, "functions_without_first_event": missing,
            "authorizer_ratio": authorizer, "authorizer_ed25519_ratio": authorizer_ed25519,
            "variants": variants, "instructions": instructions}
