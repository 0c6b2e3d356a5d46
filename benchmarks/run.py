"""Run every KeyGate benchmark, print one table, write benchmarks/results/benchmarks.json.

    .venv/bin/python -m benchmarks.run            # the full run (a few minutes; use a quiet machine),
                                                  # also copied to docs/benchmarks.json
    .venv/bin/python -m benchmarks.run --quick    # the smoke run CI uses: every figure, few repeats

Figures, not pass/fail: a missed target is reported in the table, never
raised. The JSON holds every figure with its assumptions (prices and their
date, simulated request rate, which layer variant, where sizes were read).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import authorizer_bench, cold_start, cost, management_calls, package_size

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "benchmarks.json"
# A full run of every benchmark into the default file is also published here (docs/performance.md quotes it).
PUBLISHED_PATH = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.json"


def _cost(quick: bool, results: dict[str, Any]) -> dict[str, Any]:
    return cost.run(quick, authorizer=results.get("authorizer"))  # priced from the authorizer's counts


# name -> run(quick, results so far); in this order, since cost prices the authorizer's call counts.
BENCHMARKS: dict[str, Callable[[bool, dict[str, Any]], dict[str, Any]]] = {
    "authorizer": lambda quick, results: authorizer_bench.run(quick),
    "cost": _cost,
    "cold_start": lambda quick, results: cold_start.run(quick),
    "package_size": lambda quick, results: package_size.run(quick),
    "management_calls": lambda quick, results: management_calls.run(quick),
}


# ----------------------------------------------------------------------- table
def _calls(counts: dict[str, float]) -> str:
    return ", ".join(f"{operation.split('.')[1]} {count:g}" for operation, count in counts.items())


def _authorizer_rows(results: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    latency = results.get("authorizer", {}).get("latency")
    if latency:
        bare = latency["bare_hmac"]
        yield "authorizer warm path", "bare HMAC p50 / p99", f"{bare['p50_us']:.1f} / {bare['p99_us']:.1f} us", ""
        for label, name in (("checks (nonce in memory)", "checks"),
                            ("handler, canned network", "handler_stubbed_network"),
                            ("handler on moto", "handler_moto")):
            figures = latency[name]
            verdict = "met" if figures["target_met"] else "missed"
            yield ("authorizer warm path", label,
                   f"{figures['p50_us']:.1f} / {figures['p99_us']:.1f} us = {figures['ratio_p50']:.1f}x / "
                   f"{figures['ratio_p99']:.1f}x bare", f"p50 <= {latency['target_ratio_p50']}x: {verdict}")
        yield from _floor_rows(latency)
    for name, counted in results.get("authorizer", {}).get("aws_calls", {}).items():
        figure = f"{name} ({counted['requests']} req at {counted['rate_per_second']:g}/s)"
        bounds, target = counted.get("targets"), ""
        if bounds:
            target = (f"SM {bounds['secretsmanager_calls']}<={bounds['secretsmanager_bound']}, "
                      f"GetItem {bounds['dynamodb_key_reads']}<={bounds['dynamodb_key_read_bound']}, "
                      f"UpdateItem {bounds['last_used_updates']}<={bounds['last_used_update_bound']}: "
                      + ("met" if bounds["secretsmanager_ok"] and bounds["dynamodb_key_reads_ok"]
                         and bounds["last_used_updates_ok"] else "missed"))
        yield "calls/1000 req", figure, _calls(counted["calls_per_1000"]), target
    for name, figures in results.get("cost", {}).get("scenarios", {}).items():
        billed = f"{figures['billed_duration_ms']} ms at {figures['memory_mb']} MB"
        yield "cost/1M req", name, f"${figures['usd_per_million']:.2f} ({billed})", ""
    per_key = results.get("cost", {}).get("per_key_month")
    if per_key:
        items = per_key["usd_by_item"]
        storage = items["dynamodb_storage"] + items["dynamodb_pitr"]
        yield ("cost/month", "per active key",
               f"${per_key['usd_per_key']:.4f} (Secrets Manager ${items['secretsmanager']:.2f}, "
               f"DynamoDB ${storage:.7f} for {per_key['assumed_bytes_per_key']} B)", "")
        yield ("cost/month", "per million active keys",
               f"${per_key['usd_per_million_keys']:,.2f} (Secrets Manager "
               f"${items['secretsmanager'] * 1e6:,.2f}, DynamoDB ${storage * 1e6:,.2f})", "")


def _floor_rows(latency: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """The deployed handler against its floor (a bare verify + the nonce PutItem), per key type (issue 15)."""
    target = latency["floor_target_ratio_p50"]
    for key_type, floor_name, handler_name, bare_name in (
            ("HMAC", "floor", "handler_stubbed_network", "bare_hmac"),
            ("Ed25519", "floor_ed25519", "handler_ed25519", "bare_ed25519")):
        if floor_name not in latency:
            continue
        floor, handler, bare = latency[floor_name], latency[handler_name], latency[bare_name]
        if key_type != "HMAC":
            yield ("authorizer warm path", f"bare {key_type} p50 / p99",
                   f"{bare['p50_us']:.1f} / {bare['p99_us']:.1f} us", "")
        yield ("authorizer warm path", f"floor ({key_type}): verify + PutItem",
               f"{floor['p50_us']:.1f} / {floor['p99_us']:.1f} us", "")
        yield ("authorizer warm path", f"handler / floor ({key_type})",
               f"{handler['p50_us']:.1f} / {floor['p50_us']:.1f} us = {floor['handler_ratio_p50']:.2f}x "
               f"(p99 {floor['handler_ratio_p99']:.2f}x)",
               f"p50 <= {target}x: {'met' if floor['target_met'] else 'missed'}")


def _cold_start_rows(results: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    cold = results.get("cold_start", {})
    for variant, figures in cold.get("variants", {}).items():
        for function_id, timing in figures["functions"].items():
            target = "no KeyGate code" if function_id in cold_start.FLOORS else ""
            if function_id in cold_start.TARGET_SUBJECTS:
                verdict = "met" if timing["ratio_to_baseline"] <= cold["target_ratio"] else "missed"
                target = f"<= {cold['target_ratio']}x: {verdict}"
            if function_id == cold_start.AUTHORIZER:
                beyond = figures["authorizer_beyond_floor_ms"]
                floor = figures["authorizer_floor"].partition(":")[0]
                target += f"; {beyond:.0f} ms beyond {floor}"
            value = (f"{timing['total_ms_median']:.0f} ms = {timing['ratio_to_baseline']:.2f}x, fastest "
                     f"{timing['ratio_of_fastest']:.2f}x, paired {timing['paired_ratio_to_baseline']:.2f}x "
                     f"(import {timing['import_ms_median']:.0f}, first event {timing['first_event_ms_median']:.0f})")
            yield f"cold start ({variant})", function_id, value, target
    yield from _instruction_rows(cold.get("instructions", {}))


def _instruction_rows(counted: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """The cold starts' CPU work (as_built), which the machine's speed does not move (docs/performance.md)."""
    for outcome in ("skipped", "failed"):
        if outcome in counted:
            yield "cold start (instructions)", "all subjects", f"not counted ({outcome}): {counted[outcome]}", ""
    for subject, count in counted.get("instructions", {}).items():
        yield ("cold start (instructions)", subject,
               f"{count / 1e6:,.0f} M = {counted['ratio_to_baseline'][subject]:.2f}x", "network waits excluded")


def _size_rows(results: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    size = results.get("package_size")
    if not size:
        return
    stale = " (stale build)" if size["stale"] else ""
    target = f"<= {size['layer_target_mb']:g} MB"
    verdict = "met" if size["layer_target_met"] else "missed"
    yield "size", "layer (unzipped)", f"{size['layer_mb']:.2f} MB{stale}", f"{target}: {verdict}"
    yield "size", "layer, by distribution", ", ".join(
        f"{name} {mb:g}" for name, mb in list(size["layer_by_distribution_mb"].items())[:6]), ""
    yield "size", "each function", f"{max(size['functions_kb'].values(), default=0):g} KB at most", ""
    managed = size["powertools_layer"]
    yield ("size", "AWS Powertools layer (est.)", f"{managed['estimate_mb']:.2f} MB: " + ", ".join(
        f"{name} {mb:g}" for name, mb in list(managed["by_distribution_mb"].items())[:5]), "AWS's, not ours")


def _management_rows(results: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    for name, figures in results.get("management_calls", {}).get("operations", {}).items():
        yield ("management calls", f"{name} ({figures['keys_before']} keys)",
               f"{figures['total']}: {_calls(figures['calls'])}", "")


def format_table(results: dict[str, Any]) -> str:
    """(benchmark, figure, value, target) rows for every headline figure, as one aligned table."""
    rows = [("benchmark", "figure", "value", "target")]
    for section in (_authorizer_rows, _cold_start_rows, _size_rows, _management_rows):
        rows.extend(section(results))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = []
    for number, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
        if number == 0:
            lines.append("-" * (sum(widths) + 6 + len("target")))
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats and requests: the CI smoke run")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS),
                        help="run only these (repeatable)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH,
                        help="the JSON file (default benchmarks/results/benchmarks.json)")
    arguments = parser.parse_args(argv)
    # Handlers that add no metric of their own make Powertools warn on every call.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
        "quick": arguments.quick,
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cpu": _cpu_model(),
                    "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "seconds": {},
    }
    for name in BENCHMARKS:
        if arguments.only and name not in arguments.only:
            continue
        started = time.perf_counter()
        results[name] = BENCHMARKS[name](arguments.quick, results)
        results["seconds"][name] = round(time.perf_counter() - started, 1)
    text = json.dumps(results, indent=2) + "\n"
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(text)
    print(format_table(results))
    print(f"\nwrote {arguments.output}")
    if not arguments.quick and not arguments.only and arguments.output == RESULTS_PATH:
        PUBLISHED_PATH.write_text(text)
        print(f"wrote {PUBLISHED_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
