"""Cost per million authorized requests (issue 5, benchmark 2).

Prices: AWS on-demand list prices for us-east-1, Lambda on arm64, as
written down on 2026-11-24 (DynamoDB's on-demand prices are those in force
since its 2024-11-01 reduction). This machine cannot reach the pricing pages,
so they were not re-read online that day: re-check
https://aws.amazon.com/lambda/pricing/,
https://aws.amazon.com/dynamodb/pricing/on-demand/ and
https://aws.amazon.com/secrets-manager/pricing/ before quoting a figure.
API Gateway ($3.50 per million REST calls, the same whatever the authorizer
does) is left out. What grows with users rather than requests is priced per
active key and month (`cost_per_key_month`): Secrets Manager's $0.40 per
secret-month (one secret per active key; a revoked or expired key's secret is
deleted, which ends its fee) and the key's items in DynamoDB, stored and
backed up (point-in-time recovery), at an assumed size.

Calls per 1,000 requests, per scenario (one hot key, many keys, each next to
the naive authorizer that reads everything on every request), come from
benchmarks/authorizer_bench.py: the real SignatureAuthorizer against moto on
a simulated clock, one warm instance.

Billed duration per request: the deployed handler's warm-path p50 from the
same benchmark (Powertools, what the handler writes for an allowed request
(nothing at INFO) and botocore's client-side work for the nonce write
included, the network round trip excluded), plus an assumed
round trip for each AWS call the request makes, as a Lambda in the same
region sees it; rounded up to the millisecond, as Lambda bills. Measured on
this x86_64 machine, not on Graviton: the duration is an estimate, but at
these sizes the bill is dominated by the per-request and per-call prices.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks import authorizer_bench
from benchmarks._stack import function_property

AUTHORIZER_FUNCTION = "SignatureAuthorizerFunction"
PRICES = {
    "taken": "2026-11",
    "region": "us-east-1",
    "written_down": "2026-11-24",
    "source": "AWS pricing pages, on-demand list prices (not re-read online on that day); re-check before quoting",
    "lambda_per_million_requests": 0.20,
    "lambda_arm64_per_gb_second": 0.0000133334,
    "dynamodb_per_million_write_request_units": 0.625,
    "dynamodb_per_million_read_request_units": 0.125,
    "secretsmanager_per_10000_api_calls": 0.05,
    "secretsmanager_monthly_fee": 0.40,  # per secret, prorated by the hour
    "dynamodb_storage_per_gb_month": 0.25,
    "dynamodb_pitr_per_gb_month": 0.20,
}
# Assumed table bytes per active key: its record, pointer and last-use item and a few audit entries,
# each with DynamoDB's 100 bytes of per-item overhead (about 1.5 KB), rounded up.
ASSUMED_BYTES_PER_KEY = 2048
# Request units per call for KeyGate's items (key records and pointers well under 4 KB, nonce and
# usage items under 1 KB). The store reads with ConsistentRead, a full unit per 4 KB; a conditional
# write that fails its condition (a replayed nonce, a last-use refresh already made) is billed too.
READ_UNITS = {"dynamodb.GetItem": 1.0}
WRITE_UNITS = {"dynamodb.PutItem": 1.0, "dynamodb.UpdateItem": 1.0}
SECRETS_MANAGER_CALLS = ("secretsmanager.GetSecretValue",)
# Assumed p50 round trip per call seen from a Lambda in the same region (network and service).
ASSUMED_LATENCY_MS = {"dynamodb.GetItem": 4.0, "dynamodb.PutItem": 6.0, "dynamodb.UpdateItem": 6.0,
                      "secretsmanager.GetSecretValue": 15.0}


def cost_per_million(calls_per_1000: dict[str, float], *, own_work_ms: float,
                     memory_mb: int) -> dict[str, Any]:
    """Dollars per million authorized requests, by line item."""
    per_request = {name: count / 1000 for name, count in calls_per_1000.items()}
    unpriced = set(per_request) - set(READ_UNITS) - set(WRITE_UNITS) - set(SECRETS_MANAGER_CALLS)
    if unpriced:
        raise ValueError(f"no price rule for {sorted(unpriced)}: extend READ_UNITS / WRITE_UNITS")
    waiting_ms = sum(count * ASSUMED_LATENCY_MS[name] for name, count in per_request.items())
    duration_ms = math.ceil(own_work_ms + waiting_ms)
    reads = sum(count * READ_UNITS.get(name, 0.0) for name, count in per_request.items())
    writes = sum(count * WRITE_UNITS.get(name, 0.0) for name, count in per_request.items())
    secret_calls = sum(per_request.get(name, 0.0) for name in SECRETS_MANAGER_CALLS)
    items = {
        "lambda_requests": PRICES["lambda_per_million_requests"],
        "lambda_duration": 1e6 * duration_ms / 1000 * memory_mb / 1024 * PRICES["lambda_arm64_per_gb_second"],
        "dynamodb_reads": reads * PRICES["dynamodb_per_million_read_request_units"],
        "dynamodb_writes": writes * PRICES["dynamodb_per_million_write_request_units"],
        "secretsmanager": secret_calls * 1e6 / 10_000 * PRICES["secretsmanager_per_10000_api_calls"],
    }
    return {"billed_duration_ms": duration_ms, "memory_mb": memory_mb,
            "read_units_per_request": round(reads, 4), "write_units_per_request": round(writes, 4),
            "usd_by_item": {name: round(value, 4) for name, value in items.items()},
            "usd_per_million": round(sum(items.values()), 4)}


def cost_per_key_month() -> dict[str, Any]:
    """Dollars per active key and month, and per million active keys, by line item (no request counted)."""
    gigabytes = ASSUMED_BYTES_PER_KEY / 1024**3
    items = {
        "secretsmanager": PRICES["secretsmanager_monthly_fee"],
        "dynamodb_storage": gigabytes * PRICES["dynamodb_storage_per_gb_month"],
        "dynamodb_pitr": gigabytes * PRICES["dynamodb_pitr_per_gb_month"],
    }
    per_key = sum(items.values())
    return {"assumed_bytes_per_key": ASSUMED_BYTES_PER_KEY,
            "usd_by_item": {name: round(value, 8) for name, value in items.items()},
            "usd_per_key": round(per_key, 6), "usd_per_million_keys": round(per_key * 1e6, 2)}


def run(quick: bool = False, authorizer: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cost per scenario of `authorizer` (authorizer_bench.run's report; run here when not given)."""
    report = authorizer if authorizer is not None else authorizer_bench.run(quick)
    memory_mb = int(function_property(AUTHORIZER_FUNCTION, "MemorySize"))
    own_work_ms = report["latency"]["handler_stubbed_network"]["p50_us"] / 1000
    scenarios = {}
    for name, counted in report["aws_calls"].items():
        scenarios[name] = {"keys": counted["keys"], "rate_per_second": counted["rate_per_second"],
                           "calls_per_1000": counted["calls_per_1000"],
                           **cost_per_million(counted["calls_per_1000"], own_work_ms=own_work_ms,
                                              memory_mb=memory_mb)}
    return {"prices": PRICES, "assumed_latency_ms": ASSUMED_LATENCY_MS, "handler_warm_p50_ms": own_work_ms,
            "scenarios": scenarios, "per_key_month": cost_per_key_month()}
