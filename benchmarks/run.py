"""Run every KeyGate benchmark, print one table, write benchmarks/results/benchmarks.json.

    .venv/bin/python -m benchmarks.run            # the full run (a few minutes; use a quiet machine)
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
        pairs = ", ".join(f"{label} {latency[name]['p50_us']:.1f} / {latency[name]['p99_us']:.1f}"
                          for label, name in (("authorizer", "authorizer"), ("bare HMAC", "bare_hmac"),
                                              ("handler", "handler")))
        yield "authorizer warm path", "p50 / p99 us", pairs, ""
        yield ("authorizer warm path", "ratio to bare HMAC",
               f"{latency['ratio_p50']:.1f}x p50, {latency['ratio_p99']:.1f}x p99",
               f"p50 <= {latency['target_ratio_p50']}x")
    for name, counted in results.get("authorizer", {}).get("aws_calls", {}).items():
        figure = f"{name} ({counted['rate_per_second']:g} req/s)"
        yield "calls/1000 req", figure, _calls(counted["calls_per_1000"]), ""
    for name, figures in results.get("cost", {}).get("scenarios", {}).items():
        billed = f"{figures['billed_duration_ms']} ms at {figures['memory_mb']} MB"
        yield "cost/1M req", name, f"${figures['usd_per_million']:.2f} ({billed})", ""


def _cold_start_rows(results: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    cold = results.get("cold_start", {})
    for variant, figures in cold.get("variants", {}).items():
        for function_id, timing in figures["functions"].items():
            target = f"<= {cold['target_ratio']}x" if function_id == cold_start.AUTHORIZER else ""
            value = (f"{timing['total_ms_median']:.0f} ms = {timing['ratio_to_baseline']:.2f}x (import "
                     f"{timing['import_ms_median']:.0f}, first event {timing['first_event_ms_median']:.0f})")
            yield f"cold start ({variant})", function_id, value, target


def _size_rows(results: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    size = results.get("package_size")
    if not size:
        return
    stale = " (stale build)" if size["stale"] else ""
    target = f"<= {size['layer_target_mb']:g} MB"
    yield "size", "layer (unzipped)", f"{size['layer_mb']:.2f} MB{stale}", target
    largest = list(size["layer_by_distribution_mb"].items())[:6]
    yield "size", "layer, largest", ", ".join(f"{name} {mb:g}" for name, mb in largest), ""
    yield "size", "each function", f"{max(size['functions_kb'].values(), default=0):g} KB at most", ""
    for proposal in size["proposals"]:
        yield ("size", f"then: {proposal['name']}",
               f"-{proposal['saves_mb']:g} -> {proposal['layer_mb_after']:g} MB", "")


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
        "machine": {"python": platform.python_version(), "machine": platform.machine(),
                    "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "seconds": {},
    }
    for name in BENCHMARKS:
        if arguments.only and name not in arguments.only:
            continue
        started = time.perf_counter()
        results[name] = BENCHMARKS[name](arguments.quick, results)
        results["seconds"][name] = round(time.perf_counter() - started, 1)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    print(f"\nwrote {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
