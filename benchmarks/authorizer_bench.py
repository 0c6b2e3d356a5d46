"""Benchmark of the KG1 signature authorizer (issue 3). A script, not a test:

    .venv/bin/python benchmarks/authorizer_bench.py [--quick]

Prints two tables and writes benchmarks/results/authorizer.json:

1. Warm-path latency with the key record and secret cached, next to a bare
   `hmac.new(...).hexdigest()` + `compare_digest` over the same string to sign,
   as a ratio (target: at most 25 at p50), for three scopes, and next to the
   handler's floor (issue 15: the deployed handler at most 1.15x it at p50):
   - `checks`: `api.signed_request(event)` + `SignatureAuthorizer.authorize`,
     the nonce's conditional write kept in memory (KeyGate's own CPU work);
   - `handler_stubbed_network`: the deployed handler (functions/signature_authorizer/app.py)
     as the stack runs it (at the template's default LogLevel, metrics on, the output
     discarded; an allowed request writes no line: docs/architecture.md), with the nonce PutItem going
     through botocore (parameters, serialisation, SigV4, parsing) to a canned
     HTTP response: what the Lambda's CPU does per request, minus the round trip;
   - `handler_moto`: the same handler against in-process moto, nonce write
     included, as the team's brief asks (moto's emulation time counts too);
   - `floor`: what no authorizer can do without, on the same canned network:
     the bare HMAC verify plus the one nonce PutItem replay protection needs,
     through the same botocore client with the authorizer's parameters. The
     handler's ratio to it is what KeyGate adds to that one write;
   - for an Ed25519 key, `handler_ed25519` (the deployed handler, canned
     network) against `floor_ed25519` (a bare Ed25519 verify + the PutItem).
2. AWS calls per 1,000 requests, by service and operation, on one hot key and
   spread over 100 keys (20 with --quick), keys created through the service,
   against in-process moto with a simulated clock at --rate requests per second
   (the authorizer's caches run on it, so the counts are those of real time at
   that rate), next to a naive authorizer: the same code with every cache
   defeated, reading the key and the secret on every request. Targets: Secrets
   Manager at most one call per key per secret TTL; DynamoDB key reads at most
   one per key per record TTL (plus the key id's immutable pointer, once per
   key), nonce writes (PutItem) and last-use updates (UpdateItem) aside.

One warm Lambda instance is measured; N concurrent instances each keep their
own caches, so multiply the cached figures by N.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse
from moto.core.models import botocore_stubber as moto_stubber

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

import kg1  # noqa: E402  # after the sys.path set-up above
from benchmarks._stack import CallRecorder, LocalStack, local_stack  # noqa: E402  # after the sys.path set-up above
from keygate import apigw, authorizer, keys  # noqa: E402  # after the sys.path set-up above
from keygate.config import AuthorizerConfig, StorageConfig  # noqa: E402  # after the sys.path set-up above
from keygate.observability import logger  # noqa: E402  # after the sys.path set-up above
from keygate.ports import NonceReused  # noqa: E402  # after the sys.path set-up above
from keygate.records import ED25519, ApiKeyRecord, KeyStatus  # noqa: E402  # after the sys.path set-up above
from keygate.storage import layout  # noqa: E402  # after the sys.path set-up above
from keygate_dev import template  # noqa: E402  # after the sys.path set-up above
from keygate_dev.lambda_runner import LambdaContext  # noqa: E402  # after the sys.path set-up above
from keygate_dev.store_hooks import layer_clients  # noqa: E402  # after the sys.path set-up above
from kg1 import ed25519  # noqa: E402  # after the sys.path set-up above
from tests.support.bots import Bot  # noqa: E402  # after the sys.path set-up above
from tests.support.clocks import Clocks  # noqa: E402  # after the sys.path set-up above

RESULTS = ROOT / "benchmarks" / "results" / "authorizer.json"
STAGE = "bench"
PATH = "/v1/trade/api-keys/self"
RATIO_TARGET = 25
FLOOR_RATIO_TARGET = 1.15  # issue 15: the deployed handler's p50 at most this times its floor's
KEYS_PER_USER = 10  # the stack's default key limit
MANY_KEYS = 100


def signed_event(key: tuple[str, Any], clock: Clocks, **sdk: Any) -> dict[str, Any]:
    """A bot's signed GET /v1/trade/api-keys/self at `clock`'s time, as API Gateway's REQUEST authorizer event.
    `key` is (key id, secret), or (key id, Ed25519 private key); `sdk` are keygate_client.Signer's options."""
    key_id, credential = key
    if isinstance(credential, str):
        return Bot(key_id, credential, clock, STAGE).event("GET", PATH, resource=PATH, **sdk)
    return Bot(key_id, None, clock, STAGE, private_key=credential).event("GET", PATH, resource=PATH, **sdk)


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {"p50_us": round(statistics.median(ordered) / 1000, 3),
            "p99_us": round(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] / 1000, 3)}


class InMemoryWrites:
    """The authorizer's storage for reads; the nonce and last-use writes in memory (the I/O left out of table 1)."""

    def __init__(self, reads: Any) -> None:
        self.get_key_owner = reads.get_key_owner
        self.get_key = reads.get_key
        self.nonces: set[tuple[str, str]] = set()

    def record_nonce(self, key_id: str, nonce: str, *, now_ms: int, expires_at_ms: int) -> None:
        if (key_id, nonce) in self.nonces:
            raise NonceReused()
        self.nonces.add((key_id, nonce))

    def touch_last_used(self, *args: Any, **kwargs: Any) -> None:
        return None


def _timed(function: Callable[[], Any], samples: list[int]) -> Any:
    started = time.perf_counter_ns()
    result = function()
    samples.append(time.perf_counter_ns() - started)
    return result


class _CannedNetwork:
    """botocore `before-send` hook in place of the network: PutItem answers `{}`, anything else fails.

    Registered while moto's own stubber is switched off, so neither moto nor a
    socket is involved: what remains is the Lambda's own CPU work per request.
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        if not event_name.endswith(".dynamodb.PutItem"):
            raise RuntimeError(f"unexpected AWS call on the warm path: {event_name}")
        self.calls += 1
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.0"}, _RawBody(b"{}"))


@dataclass
class _RawBody:
    body: bytes

    def stream(self, **_: Any) -> Any:
        yield self.body


class _Discarded(io.TextIOBase):
    """Where the handler's output goes while it is timed: nowhere, but every write is counted, and its decision
    lines and metric lines (EMF, with their `_aws` metadata) on their own."""

    def __init__(self) -> None:
        self.characters = 0
        self.decisions = 0
        self.metric_lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.characters += len(text)
        self.decisions += text.count('"message":"signature checked"')
        self.metric_lines += text.count('"_aws":')
        return len(text)


@contextmanager
def _as_deployed(handler: Callable[..., Any], context: Any, probe: dict[str, Any]) -> Iterator[None]:
    """The handler as the stack runs it: at the template's default LogLevel with metrics on, the output discarded
    (the benchmark stack is quiet otherwise). On leaving, `_check_output_as_deployed` with `probe`."""
    registered, level = logger.registered_handler, logger.log_level
    metrics_disabled = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    discarded = _Discarded()
    with redirect_stdout(discarded):  # Metrics prints; the Logger's handler holds its own stream
        stream = registered.setStream(discarded)
        logger.setLevel(template.parameter_defaults()["LogLevel"])
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
        try:
            yield
            _check_output_as_deployed(discarded, handler, context, probe)
        finally:
            registered.setStream(stream)
            logger.setLevel(level)
            if metrics_disabled is None:
                os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
            else:
                os.environ["POWERTOOLS_METRICS_DISABLED"] = metrics_disabled


def _check_output_as_deployed(discarded: _Discarded, handler: Callable[..., Any], context: Any,
                              event: dict[str, Any]) -> None:
    """The (allowed) invocations so far wrote what the deployed handler writes for them, nothing at all (the
    API's access log records allowed requests: docs/architecture.md), and the output was live: a refusal of
    `event` with its signature altered then writes its decision line and its metric line. Raises otherwise,
    so the figures can neither leave out nor add what the deployed handler writes."""
    if discarded.characters:
        raise RuntimeError(f"allowed requests wrote {discarded.characters} characters ({discarded.decisions} "
                           f"decision lines, {discarded.metric_lines} metric lines); the deployed handler writes "
                           "nothing for them")
    signature = event["headers"]["X-KG-SIGNATURE"]
    forged = {**event, "headers": {**event["headers"], "X-KG-SIGNATURE": "0" * len(signature)}}
    if handler(forged, context)["policyDocument"]["Statement"][0]["Effect"] != "Deny":
        raise RuntimeError("a forged signature was not refused")
    if (discarded.decisions, discarded.metric_lines) != (1, 1):
        raise RuntimeError(f"a refusal wrote {discarded.decisions} decision lines and {discarded.metric_lines} "
                           "metric lines, not one of each: the output was not live")


def _handler_samples(key: tuple[str, Any], iterations: int, clock: Clocks, *,
                     stub_network: bool) -> list[int]:
    """The deployed handler on `iterations` fresh signed events, after one warming event."""
    function = template.module_for("SignatureAuthorizerFunction")
    function.use(authorizer.from_environment(clock_ms=clock.wall_clock_ms, monotonic=clock.monotonic_clock))
    handler, context = template.load_handler("SignatureAuthorizerFunction"), LambdaContext("SignatureAuthorizer")
    prepared = [signed_event(key, clock) for _ in range(iterations + 1)]
    canned, client = _CannedNetwork(), layer_clients()[0]
    samples: list[int] = []
    try:
        with _as_deployed(handler, context, signed_event(key, clock)):
            assert "principalId" in handler(prepared[0], context)  # warm: record and secret cached
            if stub_network:
                moto_stubber.enabled = False
                client.meta.events.register_first("before-send", canned)
            for event in prepared[1:]:
                assert "principalId" in _timed(lambda: handler(event, context), samples)  # noqa: B023  # called at once, within this iteration
    finally:
        client.meta.events.unregister("before-send", canned)
        moto_stubber.enabled = True
        function.use(None)
    if stub_network and canned.calls != iterations:
        raise RuntimeError(f"expected {iterations} canned nonce writes, saw {canned.calls}")
    return samples


def _handler_and_floor_samples(key: tuple[str, Any], iterations: int, clock: Clocks,
                               verify: Callable[[], bool]) -> tuple[list[int], list[int]]:
    """The deployed handler on the canned network, and its floor: what any authorizer must do per request,
    `verify` (a bare HMAC or Ed25519 verify) and the nonce's conditional PutItem through the same client with
    the same parameters. Interleaved request by request, so the machine's drift hits both alike."""
    function = template.module_for("SignatureAuthorizerFunction")
    function.use(authorizer.from_environment(clock_ms=clock.wall_clock_ms, monotonic=clock.monotonic_clock))
    handler, context = template.load_handler("SignatureAuthorizerFunction"), LambdaContext("SignatureAuthorizer")
    prepared = [signed_event(key, clock) for _ in range(iterations + 1)]
    canned, client = _CannedNetwork(), layer_clients()[0]
    nonces_table = StorageConfig.from_environ().nonces_table_name
    if not nonces_table:
        raise RuntimeError("the benchmark stack gives the authorizer no NONCES_TABLE_NAME")

    def floor(nonce: str) -> None:
        assert verify()
        now_ms = clock.wall_clock_ms()
        # The authorizer's expiry: the request's timestamp (now, for these fresh events) + its window + 1 ms.
        client.put_item(TableName=nonces_table,
                        Item=layout.nonce_item(key[0], nonce, now_ms + 5001, os.urandom(8).hex()),
                        ConditionExpression="attribute_not_exists(pk) OR expires_at_ms < :now",
                        ExpressionAttributeValues={":now": {"N": str(now_ms)}},
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")

    handler_ns: list[int] = []
    floor_ns: list[int] = []
    try:
        with _as_deployed(handler, context, signed_event(key, clock)):
            assert "principalId" in handler(prepared[0], context)  # warm: record and secret cached
            moto_stubber.enabled = False
            client.meta.events.register_first("before-send", canned)
            floor(kg1.new_nonce())  # warm too: the operation model and the signer are the handler's already
            for event in prepared[1:]:
                assert "principalId" in _timed(lambda: handler(event, context), handler_ns)  # noqa: B023  # called at once, within this iteration
                _timed(lambda: floor(kg1.new_nonce()), floor_ns)
    finally:
        client.meta.events.unregister("before-send", canned)
        moto_stubber.enabled = True
        function.use(None)
    if canned.calls != 2 * iterations + 1:
        raise RuntimeError(f"expected {2 * iterations + 1} canned nonce writes, saw {canned.calls}")
    return handler_ns, floor_ns


def _ratios(figures: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    return {"p50": round(figures["p50_us"] / base["p50_us"], 2), "p99": round(figures["p99_us"] / base["p99_us"], 2)}


def latency(key: tuple[str, str], iterations: int, ed25519_key: tuple[str, Any] | None = None) -> dict[str, Any]:
    # Loaded before anything is timed: importing the deployed handler freezes this process's heap
    # (docs/architecture.md, "Cold start"), and every scope here is to be timed on the same heap.
    template.load_handler("SignatureAuthorizerFunction")
    clock = Clocks(time.time_ns() // 1_000_000)
    stored = authorizer.from_environment(clock_ms=clock.wall_clock_ms, monotonic=clock.monotonic_clock)
    checker = authorizer.SignatureAuthorizer(
        AuthorizerConfig.from_environ(), InMemoryWrites(stored.lookup), stored.secret_reader,
        clock_ms=clock.wall_clock_ms, monotonic=clock.monotonic_clock)
    prepared = [signed_event(key, clock) for _ in range(iterations + 1)]
    assert checker.authorize(apigw.signed_request(prepared[0])).allowed  # warm: record and secret cached
    checks_ns: list[int] = []
    for event in prepared[1:]:
        decision = _timed(lambda: checker.authorize(apigw.signed_request(event)), checks_ns)  # noqa: B023  # called at once, within this iteration
        assert decision.allowed, decision

    # The bare HMAC over the very string the authorizer verified last.
    signed = kg1.parse_signed_headers(prepared[-1]["headers"])
    text = kg1.string_to_sign(timestamp=signed.timestamp, recv_window=signed.recv_window, nonce=signed.nonce,
                                  key_id=signed.key_id, method="GET", path=PATH, query_pairs=[],
                                  content_sha256=signed.content_sha256)
    secret_bytes, message, sent = key[1].encode(), text.encode(), signed.signature

    def bare_verify() -> bool:
        return hmac.compare_digest(hmac.new(secret_bytes, message, hashlib.sha256).hexdigest(), sent)

    bare_ns: list[int] = []
    for _ in range(iterations):
        assert _timed(bare_verify, bare_ns)

    bare = percentiles(bare_ns)
    handler_ns, floor_ns = _handler_and_floor_samples(key, iterations, clock, bare_verify)
    scopes = {"checks": percentiles(checks_ns), "handler_stubbed_network": percentiles(handler_ns),
              "handler_moto": percentiles(_handler_samples(key, iterations, clock, stub_network=False))}
    for figures in scopes.values():
        ratio = _ratios(figures, bare)
        figures["ratio_p50"], figures["ratio_p99"] = ratio["p50"], ratio["p99"]
        figures["target_met"] = figures["ratio_p50"] <= RATIO_TARGET
    floor = percentiles(floor_ns)
    handler_to_floor = _ratios(scopes["handler_stubbed_network"], floor)
    report = {"iterations": iterations, "bare_hmac": bare, **scopes, "target_ratio_p50": RATIO_TARGET,
              "floor": {**floor, "handler_ratio_p50": handler_to_floor["p50"],
                        "handler_ratio_p99": handler_to_floor["p99"],
                        "target_met": handler_to_floor["p50"] <= FLOOR_RATIO_TARGET},
              "floor_target_ratio_p50": FLOOR_RATIO_TARGET}
    if ed25519_key is not None:
        report.update(_ed25519_latency(ed25519_key, iterations, clock))
    return report


def _ed25519_latency(key: tuple[str, Any], iterations: int, clock: Clocks) -> dict[str, Any]:
    """The deployed handler with an Ed25519 key (canned network), next to a bare Ed25519 verify + the PutItem."""
    event = signed_event(key, clock)
    signed = kg1.parse_signed_headers(event["headers"])
    text = kg1.string_to_sign(timestamp=signed.timestamp, recv_window=signed.recv_window, nonce=signed.nonce,
                              key_id=signed.key_id, method="GET", path=PATH, query_pairs=[],
                              content_sha256=signed.content_sha256, scheme=ed25519.SCHEME)
    public = ed25519._cryptography().Ed25519PublicKey.from_public_bytes(ed25519.public_key_of(key[1]))
    signature, message = bytes.fromhex(signed.signature), text.encode()

    def bare_verify() -> bool:
        public.verify(signature, message)
        return True

    bare_ns: list[int] = []
    for _ in range(iterations):
        assert _timed(bare_verify, bare_ns)
    handler_ns, floor_ns = _handler_and_floor_samples(key, iterations, clock, bare_verify)
    handler, floor = percentiles(handler_ns), percentiles(floor_ns)
    ratio = _ratios(handler, floor)
    return {"bare_ed25519": percentiles(bare_ns), "handler_ed25519": handler,
            "floor_ed25519": {**floor, "handler_ratio_p50": ratio["p50"], "handler_ratio_p99": ratio["p99"],
                              "target_met": ratio["p50"] <= FLOOR_RATIO_TARGET}}


def call_counts(key_set: list[tuple[str, str]], requests: int, rate_per_second: float, *,
                naive: bool) -> dict[str, Any]:
    """`requests` requests at `rate_per_second`, round-robin over `key_set`, against moto."""
    clock = Clocks(time.time_ns() // 1_000_000, defeat_caches=naive)
    checker = authorizer.from_environment(clock_ms=clock.wall_clock_ms, monotonic=clock.monotonic_clock)
    with CallRecorder() as recorder:
        for number in range(requests):
            decision = checker.authorize(apigw.signed_request(signed_event(key_set[number % len(key_set)], clock)))
            assert decision.allowed, decision
            clock.advance(1 / rate_per_second)
    calls = dict(sorted(recorder.calls.items()))
    return {"requests": requests, "keys": len(key_set), "rate_per_second": rate_per_second,
            "simulated_seconds": requests / rate_per_second, "calls": calls,
            "calls_per_1000": {name: count * 1000 / requests for name, count in calls.items()}}


def targets(result: dict[str, Any], config: AuthorizerConfig) -> dict[str, Any]:
    """The stated bounds for this run's duration and key count, and whether the run kept them.

    DynamoDB GetItem counts the immutable key-id pointer too (once per key per warm instance).
    """
    seconds, key_count = result["simulated_seconds"], result["keys"]
    secret_bound = key_count * math.ceil(seconds / config.secret_cache_ttl_seconds)
    read_bound = key_count * (math.ceil(seconds / config.record_cache_ttl_seconds) + 1)
    touch_bound = key_count * math.ceil(seconds / config.last_used_interval_seconds)
    secret_calls = result["calls"].get("secretsmanager.GetSecretValue", 0)
    key_reads = result["calls"].get("dynamodb.GetItem", 0)
    touches = result["calls"].get("dynamodb.UpdateItem", 0)
    return {"secretsmanager_calls": secret_calls, "secretsmanager_bound": secret_bound,
            "secretsmanager_ok": secret_calls <= secret_bound,
            "dynamodb_key_reads": key_reads, "dynamodb_key_read_bound": read_bound,
            "dynamodb_key_reads_ok": key_reads <= read_bound,
            "last_used_updates": touches, "last_used_update_bound": touch_bound,
            "last_used_updates_ok": touches <= touch_bound}


def seed_ed25519_key(user_id: str = "bench-authorizer-ed25519") -> tuple[str, Any]:
    """An active Ed25519 read+trade key as the create path stores it (record with its public key, pointer)."""
    private_key = ed25519.generate_private_key()
    record = ApiKeyRecord(key_id=keys.new_key_id(AuthorizerConfig.from_environ().key_id_prefix), user_id=user_id,
                          label="bench ed25519", permissions=["read", "trade"], ip_whitelist=[],
                          status=KeyStatus.ACTIVE, created_at=datetime.now(UTC), key_type=ED25519,
                          public_key=ed25519.public_key_base64(ed25519.public_key_of(private_key)))
    client = layer_clients()[0]
    for item in (layout.record_item(record), layout.pointer_item(record)):
        client.put_item(TableName=StorageConfig.from_environ().table_name, Item=item)
    return record.key_id, private_key


def seed_keys(stack: LocalStack, count: int) -> list[tuple[str, str]]:
    """`count` read+trade keys created through the service, KEYS_PER_USER per user."""
    created: list[tuple[str, str]] = []
    for user_number in range(math.ceil(count / KEYS_PER_USER)):
        wanted = min(KEYS_PER_USER, count - len(created))
        keys = stack.user_with_keys(f"bench-authorizer-{user_number}", wanted, permissions=["read", "trade"])
        created.extend((key.api_key, key.api_secret) for key in keys)
    return created


def run(quick: bool = False, rate_per_second: float = 50.0) -> dict[str, Any]:
    """Every figure of this benchmark as one JSON-ready dict (benchmarks/run.py calls this too)."""
    # Full run: 20,000 requests at 50/s = 400 simulated seconds, past the secret TTL (300 s), so its expiry
    # is counted; the naive authorizer's counts are the same for every request, so 2,000 show them.
    iterations, requests, naive_requests, key_count = ((500, 200, 200, 20) if quick
                                                       else (20_000, 20_000, 2_000, MANY_KEYS))
    with local_stack() as stack:
        config = AuthorizerConfig.from_environ()
        seeded = seed_keys(stack, key_count)
        report: dict[str, Any] = {
            "quick": quick, "python": sys.version.split()[0],
            "record_cache_ttl_seconds": config.record_cache_ttl_seconds,
            "secret_cache_ttl_seconds": config.secret_cache_ttl_seconds,
            "latency": latency(seeded[0], iterations, seed_ed25519_key()), "aws_calls": {}}
        for name, key_set in (("hot_key", seeded[:1]), (f"{key_count}_keys", seeded)):
            cached = call_counts(key_set, requests, rate_per_second, naive=False)
            report["aws_calls"][name] = {**cached, "targets": targets(cached, config)}
            report["aws_calls"][f"{name}_naive"] = call_counts(key_set, naive_requests, rate_per_second, naive=True)
    calls_met = all(scenario["targets"]["secretsmanager_ok"] and scenario["targets"]["dynamodb_key_reads_ok"]
                    and scenario["targets"]["last_used_updates_ok"]
                    for scenario in report["aws_calls"].values() if "targets" in scenario)
    report["targets_met"] = (report["latency"]["checks"]["target_met"] and report["latency"]["floor"]["target_met"]
                             and report["latency"]["floor_ed25519"]["target_met"] and calls_met)
    return report


def print_tables(report: dict[str, Any]) -> None:
    timing = report["latency"]
    print(f"Warm path (key and secret cached), {timing['iterations']} requests, microseconds")
    print(f"{'':44} {'p50':>9} {'p99':>9} {'ratio p50':>10}")
    print(f"{'bare hmac.new().hexdigest() + compare_digest':44} {timing['bare_hmac']['p50_us']:9.2f} "
          f"{timing['bare_hmac']['p99_us']:9.2f}")
    for label, name in (("checks (nonce write in memory)", "checks"),
                        ("handler, nonce PutItem to a canned response", "handler_stubbed_network"),
                        ("handler against moto, nonce write included", "handler_moto")):
        verdict = "ok" if timing[name]["target_met"] else "over target"
        print(f"{label:44} {timing[name]['p50_us']:9.2f} {timing[name]['p99_us']:9.2f} "
              f"{timing[name]['ratio_p50']:9.1f}x  ({verdict}: p50 <= {RATIO_TARGET}x)")
    floor = timing["floor"]
    print(f"{'floor: bare HMAC + one PutItem, canned':44} {floor['p50_us']:9.2f} {floor['p99_us']:9.2f} "
          f"handler {floor['handler_ratio_p50']:.2f}x  ({'ok' if floor['target_met'] else 'over target'}: "
          f"p50 <= {FLOOR_RATIO_TARGET}x floor)")
    for name, scenario in report["aws_calls"].items():
        if "targets" not in scenario:
            continue
        naive = report["aws_calls"][f"{name}_naive"]
        print(f"\nAWS calls per 1,000 requests, {scenario['keys']} key(s) at {scenario['rate_per_second']:g} req/s "
              f"({scenario['simulated_seconds']:g} s simulated)")
        print(f"{'operation':36} {'KeyGate':>10} {'naive':>10}")
        for operation in sorted(set(scenario["calls"]) | set(naive["calls"])):
            print(f"{operation:36} {scenario['calls_per_1000'].get(operation, 0):10.1f} "
                  f"{naive['calls_per_1000'].get(operation, 0):10.1f}")
        bounds = scenario["targets"]
        print(f"targets: GetSecretValue {bounds['secretsmanager_calls']} <= {bounds['secretsmanager_bound']} "
              f"({'ok' if bounds['secretsmanager_ok'] else 'MISSED'}); GetItem {bounds['dynamodb_key_reads']} <= "
              f"{bounds['dynamodb_key_read_bound']} ({'ok' if bounds['dynamodb_key_reads_ok'] else 'MISSED'}); "
              "PutItem = nonces, UpdateItem = last use")


def main(argv: list[str] | None = None) -> int:
    # Powertools warns when a handler emits no metric; this benchmark publishes none on purpose.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    parser = argparse.ArgumentParser(description="Benchmark of the KG1 signature authorizer.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (fewer samples and requests)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second for the call counts")
    arguments = parser.parse_args(argv)
    report = run(arguments.quick, arguments.rate)
    print_tables(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    return 0 if report["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
