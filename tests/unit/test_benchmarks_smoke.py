"""The benchmarks' smoke run (issue 5): `python -m benchmarks.run --quick` yields every figure.

Figures only: nothing here asserts a duration, a size or a price (benchmarks/
reports those); the checks are on what must hold whatever the machine: every
figure is there, and the call counts follow from the code (one nonce write per
signed request, one secret deletion per revoked key, caches that save calls).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess  # nosec B404  # runs only this project's own commands, no shell
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import cold_start
from keygate_dev import template

MANAGEMENT_OPERATIONS = ("create", "list", "update", "revoke", "revoke_all")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Any]:
    output = tmp_path_factory.mktemp("bench") / "benchmarks.json"
    finished = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output)],  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                              cwd=template.ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert finished.returncode == 0, finished.stderr[-4000:]
    return finished, json.loads(Path(output).read_text())


def test_quick_run_prints_one_table_of_every_benchmark(quick_run: Any) -> None:
    # Given the quick run's output (module fixture: it runs once)
    finished, results = quick_run
    # When reading the table it printed
    first_column = {line.split("  ")[0] for line in finished.stdout.splitlines()}
    # Then every benchmark has rows, and the JSON says it was the quick run
    assert {"authorizer warm path", "calls/1000 req", "cost/1M req", "cost/month", "cold start (no_bytecode)",
            "cold start (as_built)", "size", "management calls"} <= first_column
    assert results["quick"] is True
    assert set(results["seconds"]) == {"authorizer", "cost", "cold_start", "package_size", "management_calls"}
    # And issue 15's targets each have their row: the handler against its floor per key type, and the cold
    # starts of the signature authorizer with an HMAC and with an Ed25519 key
    figures = {tuple(cell.strip() for cell in line.split("  ") if cell.strip())[:2]
               for line in finished.stdout.splitlines()}
    assert {("authorizer warm path", "handler / floor (HMAC)"), ("authorizer warm path", "handler / floor (Ed25519)"),
            ("cold start (as_built)", cold_start.AUTHORIZER),
            ("cold start (as_built)", cold_start.AUTHORIZER_ED25519)} <= figures
    # And the cold-start row keeps the format issue 15 fixes: `N ms = R.RRx` first, the other figures after it
    issue_row = re.compile(r"^cold start \(as_built\)\s+SignatureAuthorizerFunction\s+\d+ ms = \d+\.\d\dx, fastest")
    assert sum(bool(issue_row.match(line)) for line in finished.stdout.splitlines()) == 1


def test_authorizer_latency_scopes_next_to_bare_hmac(quick_run: Any) -> None:
    # Given the warm-path latency figures
    latency = quick_run[1]["authorizer"]["latency"]
    # Then each scope (checks alone, the handler on a canned network, the handler on moto) has its ratio
    assert latency["target_ratio_p50"] == 25 and latency["bare_hmac"]["p50_us"] > 0
    for scope in ("checks", "handler_stubbed_network", "handler_moto"):
        figures = latency[scope]
        assert figures["p99_us"] >= figures["p50_us"] > 0, scope
        assert figures["ratio_p50"] == round(figures["p50_us"] / latency["bare_hmac"]["p50_us"], 2), scope
    # And the handler is set against its floor (a bare verify + the one nonce PutItem, same canned network), for
    # an HMAC key and for an Ed25519 key
    assert latency["floor_target_ratio_p50"] == 1.15
    for floor, handler in (("floor", "handler_stubbed_network"), ("floor_ed25519", "handler_ed25519")):
        assert latency[floor]["p50_us"] > 0, floor
        assert latency[floor]["handler_ratio_p50"] == round(latency[handler]["p50_us"] / latency[floor]["p50_us"], 2)
    assert latency["bare_ed25519"]["p50_us"] > 0


def test_authorizer_calls_and_cost_per_scenario(quick_run: Any) -> None:
    # Given the authorizer benchmark's call counts and the cost priced from them
    results = quick_run[1]
    counted, cost = results["authorizer"]["aws_calls"], results["cost"]
    cached = [name for name in counted if not name.endswith("_naive")]
    # Then there is a hot key and a many-keys scenario, each next to the naive authorizer
    assert "hot_key" in cached and len(cached) == 2
    assert set(counted) == {*cached, *(f"{name}_naive" for name in cached)}
    # And the caching authorizer keeps issue 3's bounds on the simulated clock
    for name in cached:
        bounds = counted[name]["targets"]
        assert bounds["secretsmanager_ok"] and bounds["dynamodb_key_reads_ok"] and bounds["last_used_updates_ok"], name
    # And the prices carry their date and region, and every scenario is priced by line item
    assert cost["prices"]["taken"] == "2026-11" and cost["prices"]["region"] == "us-east-1"
    assert set(cost["scenarios"]) == set(counted)
    for name, figures in cost["scenarios"].items():
        # one nonce write per signed request, cached or not (replay protection is never skipped)
        assert figures["calls_per_1000"]["dynamodb.PutItem"] == 1000, name
        assert figures["usd_per_million"] > 0 and figures["billed_duration_ms"] >= 1, name
        assert set(figures["usd_by_item"]) == {"lambda_requests", "lambda_duration", "dynamodb_reads",
                                               "dynamodb_writes", "secretsmanager"}, name
    # And what grows with users is priced per active key and month: one secret each, and its table items
    per_key = cost["per_key_month"]
    assert set(per_key["usd_by_item"]) == {"secretsmanager", "dynamodb_storage", "dynamodb_pitr"}
    assert per_key["usd_by_item"]["secretsmanager"] == cost["prices"]["secretsmanager_monthly_fee"]
    assert per_key["usd_per_key"] == pytest.approx(sum(per_key["usd_by_item"].values()), abs=1e-6)
    assert per_key["usd_per_million_keys"] == pytest.approx(per_key["usd_per_key"] * 1e6, rel=1e-3)
    # And the naive authorizer reads the secret on every request, the caching one far less often
    for name in cached:
        naive = f"{name}_naive"
        assert cost["scenarios"][naive]["calls_per_1000"]["secretsmanager.GetSecretValue"] == 1000
        assert cost["scenarios"][name]["calls_per_1000"]["secretsmanager.GetSecretValue"] < 1000
        assert cost["scenarios"][name]["usd_per_million"] < cost["scenarios"][naive]["usd_per_million"]


def test_cold_start_figures_for_both_layer_variants(quick_run: Any) -> None:
    # Given the cold start figures
    cold = quick_run[1]["cold_start"]
    # Then both variants time the baseline and the signature authorizer, with a ratio and a profile
    assert cold["target_ratio"] == 1.3
    for variant in ("no_bytecode", "as_built"):
        functions = cold["variants"][variant]["functions"]
        assert {"baseline", "SignatureAuthorizerFunction", *cold["floors"]} <= set(functions), variant
        for timing in functions.values():
            assert timing["runs"] >= 1 and timing["total_ms_median"] > 0 and timing["ratio_to_baseline"] > 0
            assert 0 < timing["total_ms_min"] <= timing["total_ms_median"] and timing["ratio_of_fastest"] > 0
            assert len(timing["total_ms_by_round"]) == timing["runs"] and timing["paired_ratio_to_baseline"] > 0
        authorizer = functions["SignatureAuthorizerFunction"]
        assert cold["authorizer_ratio"][variant] == authorizer["ratio_to_baseline"]
        ed25519 = functions[cold_start.AUTHORIZER_ED25519]  # answered its KG1-ED25519 request with an Allow
        assert cold["authorizer_ed25519_ratio"][variant] == ed25519["ratio_to_baseline"]
        # And the authorizer is set against its stack alone (its floor), in milliseconds
        assert cold["variants"][variant]["authorizer_floor"] in cold["floors"], variant
        assert isinstance(cold["variants"][variant]["authorizer_beyond_floor_ms"], float), variant
        # And a cold start that answered wrongly was measured again, and said so (issue 13, finding 10)
        assert isinstance(cold["variants"][variant]["wrong_answers_retried"], dict), variant
        profile = cold["variants"][variant]["authorizer_import_profile"]
        assert profile["extra_self_ms_by_package"] and profile["handler_imports_ms"], variant
    # And the Lambda path holds the layer's own packages, never the venv's development tools
    assert {"pydantic", "aws-lambda-powertools"} <= set(cold["layer_distributions"])
    on_lambda_path = set(cold["layer_distributions"]) | set(cold["runtime_distributions"])
    assert not {"moto", "pytest", "aws-sam-cli", "awscrt", "pyopenssl"} & on_lambda_path


def test_cold_start_instructions_are_counted_under_valgrind(quick_run: Any) -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (.ci/run installs it): the run reports the count as skipped")
    # Given the quick run's instruction counts (the layer as built) and its table
    finished, results = quick_run
    counted = results["cold_start"]["instructions"]
    assert "instructions" in counted, counted
    # Then the baseline and the signature authorizer were each counted: a real interpreter's hundreds of
    # millions of instructions (it imports botocore), and the authorizer's ratio to the baseline
    assert set(counted["instructions"]) == set(cold_start.QUICK_INSTRUCTION_SUBJECTS)
    assert all(count > 100_000_000 for count in counted["instructions"].values()), counted
    assert counted["ratio_to_baseline"][cold_start.BASELINE] == 1.0
    assert counted["ratio_to_baseline"][cold_start.AUTHORIZER] == round(
        counted["instructions"][cold_start.AUTHORIZER] / counted["instructions"][cold_start.BASELINE], 3)
    # And the table has their rows
    rows = [line for line in finished.stdout.splitlines() if line.startswith("cold start (instructions)")]
    assert len(rows) == len(cold_start.QUICK_INSTRUCTION_SUBJECTS) and all(" M = " in row for row in rows), rows


def test_layer_and_function_sizes(quick_run: Any) -> None:
    # Given the size figures
    size = quick_run[1]["package_size"]
    # Then the layer is broken down by distribution and every function of the template is sized or listed
    assert size["layer_target_mb"] == 15
    assert size["layer_mb"] > 0 and "keygate" in size["layer_by_distribution_mb"]
    assert set(size["functions_kb"]) | set(size["functions_not_built"]) == set(template.function_ids())
    # And the managed Powertools layer's share is estimated from what KeyGate imports from it
    assert {"aws-lambda-powertools", "pydantic", "pyjwt"} <= set(size["powertools_layer"]["by_distribution_mb"])
    if not size["stale"]:
        # the layer ships none of what the runtime or the managed Powertools layer provides
        provided = {"boto3", "botocore", "pydantic", "pydantic-core", "cryptography", "aws-lambda-powertools"}
        assert not provided & set(size["layer_by_distribution_mb"])


def test_management_calls_of_a_user_with_ten_keys(quick_run: Any) -> None:
    # Given the management path counts
    management = quick_run[1]["management_calls"]
    operations = management["operations"]
    # Then every operation was counted, and the counts follow the write order of docs/architecture.md
    assert management["keys_per_user"] == 10
    assert set(MANAGEMENT_OPERATIONS) <= set(operations)
    assert operations["create"]["calls"]["secretsmanager.CreateSecret"] == 1
    assert operations["list"]["calls"] == {"dynamodb.Query": 2}  # the user's partition, then the last uses
    assert operations["revoke_all"]["calls"]["secretsmanager.DeleteSecret"] == 10
    for name in ("create", "update", "revoke", "revoke_all"):
        # the change, its audit entry and the step-up use in one transaction
        assert operations[name]["calls"]["dynamodb.TransactWriteItems"] == 1, name


def test_cold_start_floors_run_no_keygate_code_and_build_on_one_another() -> None:
    # Given the floor modules, in the order the benchmark reports them
    modules = [spec.rpartition(".")[0] for spec in cold_start.FLOORS.values()]
    for number, module in enumerate(modules):
        # When reading what each imports
        tree = ast.parse((cold_start.FLOORS_DIR / f"{module}.py").read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        dynamic = [node for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id == "__import__"
                   or isinstance(node, ast.ImportFrom) and node.level]
        # Then none touches KeyGate, not even by a relative or dynamic import, and each adds to the floor before it
        assert not imported & {"keygate", "keygate_dev", "keygate_client", "importlib"} and not dynamic, module
        if number:
            assert modules[number - 1] in imported, module
        # And the first makes its clients as keygate.storage does, with botocore; none imports boto3
        assert "boto3" not in imported and (number or "botocore" in imported), module


def test_keygate_cost_beyond_the_stack_is_paired_by_round() -> None:
    # Given three rounds in which the authorizer and its floor drift together
    def rounds(*totals: float) -> list[cold_start.Run]:
        return [cold_start.Run(total_ms=total, startup_ms=0, import_ms=0, first_event_ms=0) for total in totals]
    runs = {cold_start.AUTHORIZER: rounds(300, 430, 520), cold_start.AUTHORIZER_FLOOR: rounds(290, 400, 500)}
    # When taking KeyGate's own cost
    beyond = cold_start.beyond_floor_ms(runs)
    # Then it is the median of the differences within rounds (10, 30, 20), not the difference of the medians (30)
    assert beyond == 20.0


def test_the_paired_ratio_cancels_the_drift_between_rounds_that_the_ratio_of_medians_keeps() -> None:
    # Given five rounds in which the machine slowed down threefold after the second, and the subject, 10% slower
    # than the baseline in every round, happened to run its third round before the slowdown
    def rounds(*totals: float) -> list[cold_start.Run]:
        return [cold_start.Run(total_ms=total, startup_ms=0, import_ms=0, first_event_ms=0) for total in totals]
    runs = {cold_start.BASELINE: rounds(100, 100, 300, 300, 300), "subject": rounds(110, 110, 110, 330, 330)}
    # When summarising
    subject = cold_start.summarise(runs)["subject"]
    # Then the ratio of the medians (issue 15's figure) reads 0.37x, the paired ratio 1.10x, and every round is kept
    assert subject["ratio_to_baseline"] == 0.37
    assert subject["paired_ratio_to_baseline"] == 1.1
    assert subject["total_ms_by_round"] == [110, 110, 110, 330, 330]


def test_cold_start_rounds_pair_every_subject_and_vary_the_order() -> None:
    # Given a cold-start run whose interpreters are replaced by a log of who ran when
    order: list[str] = []

    class Logged(cold_start.ColdStarts):
        def run_once(self, function_id: str, *, profile: bool = False,
                     under: tuple[str, ...] = ()) -> tuple[cold_start.Run, str]:
            order.append(function_id)
            return cold_start.Run(total_ms=len(order), startup_ms=0, import_ms=0, first_event_ms=0), ""

    emptied_after: list[int] = []

    class Stack:
        def empty_aws(self) -> None:
            emptied_after.append(len(order))

    functions = [cold_start.AUTHORIZER, "CreateApiKeyFunction"]
    subjects = [cold_start.BASELINE, *cold_start.FLOORS, *functions]
    # When measuring three rounds
    runs = Logged(Stack(), None, Path(".")).measure(functions, repeats=3)  # type: ignore[arg-type]  # only empty_aws
    # Then every subject ran once per round, so the n-th runs of any two were in the same round
    rounds = [order[index * len(subjects):(index + 1) * len(subjects)] for index in range(3)]
    assert all(sorted(round_order) == sorted(subjects) for round_order in rounds)
    assert {subject: len(measured) for subject, measured in runs.items()} == dict.fromkeys(subjects, 3)
    # And each subject's i-th run is the one of round i (the paired ratio divides within a round)
    assert all(index * len(subjects) < run.total_ms <= (index + 1) * len(subjects)
               for measured in runs.values() for index, run in enumerate(measured))
    # And each round ran in an order of its own, the same in every run, so that no subject always ran first
    # nor always after the same subject (the authorizer after SessionAuthorizerFunction, in the table's order)
    assert rounds == [cold_start.round_order(subjects, index) for index in range(3)]
    assert len({round_order[0] for round_order in rounds}) > 1
    assert len({round_order[round_order.index(cold_start.AUTHORIZER) - 1] for round_order in rounds}) > 1
    assert list(runs) == subjects
    # And each round started on emptied tables (moto's state would otherwise grow with the run)
    assert emptied_after == [0, len(subjects), 2 * len(subjects)]


def test_a_wrong_answer_is_measured_again_not_a_crash() -> None:
    # Given cold starts whose first attempt answers wrongly (a retried transaction refused as a reused token)
    attempts: list[str] = []

    class Flaky(cold_start.ColdStarts):
        def run_once(self, function_id: str, *, profile: bool = False,
                     under: tuple[str, ...] = ()) -> tuple[cold_start.Run, str]:
            attempts.append(function_id)
            if len(attempts) == 1:
                raise cold_start.WrongAnswer("answered 403 STEP_UP_REQUIRED")
            return cold_start.Run(total_ms=1, startup_ms=0, import_ms=0, first_event_ms=0), ""

    flaky = Flaky(None, None, Path("."))  # type: ignore[arg-type]  # never used
    # When it is measured
    run, _ = flaky.run_answered("CreateApiKeyFunction")
    # Then the run goes on with the second attempt, and the retry is counted
    assert run.total_ms == 1 and attempts == ["CreateApiKeyFunction"] * 2
    assert flaky.retried == {"CreateApiKeyFunction": 1}

    # And a function that never answers right still fails the run, after WRONG_ANSWER_ATTEMPTS
    class Broken(cold_start.ColdStarts):
        def run_once(self, function_id: str, *, profile: bool = False,
                     under: tuple[str, ...] = ()) -> tuple[cold_start.Run, str]:
            raise cold_start.WrongAnswer("answered 500")

    with pytest.raises(cold_start.WrongAnswer):
        Broken(None, None, Path(".")).run_answered("CreateApiKeyFunction")  # type: ignore[arg-type]


def test_an_instruction_count_that_fails_is_reported_and_the_timed_figures_stand(monkeypatch: Any) -> None:
    # Given valgrind, and a cold start that outlasts its timeout under it (a loaded machine)
    monkeypatch.setattr(cold_start.shutil, "which", lambda name: "/usr/bin/valgrind")
    counted: list[str] = []

    class Slow(cold_start.ColdStarts):
        def run_once(self, function_id: str, *, profile: bool = False,
                     under: tuple[str, ...] = ()) -> tuple[cold_start.Run, str]:
            counted.append(function_id)
            if function_id == cold_start.AUTHORIZER:
                raise subprocess.TimeoutExpired([*under, "python"], 600)
            return cold_start.Run(total_ms=1, startup_ms=0, import_ms=0, first_event_ms=0), \
                "==42== Collected : 1000000000\n"

    # When the instructions are counted
    result = cold_start.instruction_counts(Slow(None, None, Path(".")),  # type: ignore[arg-type]  # never used
                                           cold_start.INSTRUCTION_SUBJECTS)
    # Then the run is not raised out of (the timed variants before it would be lost) but says what failed
    assert counted == [cold_start.BASELINE, cold_start.AUTHORIZER_FLOOR, cold_start.AUTHORIZER]
    assert set(result) == {"failed"} and result["failed"].startswith(f"{cold_start.AUTHORIZER}: ")


PROBE_HANDLER = """
import atexit, pathlib
def handler(event, context):
    atexit.register(pathlib.Path(event["marker"]).write_text, "the interpreter shut down")
    return {"served": True}
"""


def test_a_measured_cold_start_ends_at_its_response_not_at_the_interpreters_shutdown(tmp_path: Path) -> None:
    # Given a handler that leaves a marker at interpreter shutdown, and its first event
    (tmp_path / "probe.py").write_text(PROBE_HANDLER)
    marker, result_path, event_path = tmp_path / "shut-down", tmp_path / "result.json", tmp_path / "event.json"
    event_path.write_text(json.dumps({"marker": str(marker)}))
    # When the cold-start child serves it, as a measured cold start does
    finished = subprocess.run([sys.executable, "-S", "-c", cold_start._CHILD, str(result_path), str(event_path),  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                               "probe.handler"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              check=False, env={"PYTHONPATH": str(tmp_path), "AWS_LAMBDA_FUNCTION_NAME": "Probe",
                                                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"})
    # Then its response is reported, and the interpreter was not shut down (Lambda never does; the instruction
    # count must stop where the timed figure does)
    assert finished.returncode == 0, finished.stderr
    assert json.loads(result_path.read_text())["result"] == {"served": True}
    assert not marker.exists()


def test_the_warm_path_figures_fail_unless_the_handler_wrote_what_it_writes_as_deployed() -> None:
    from benchmarks import authorizer_bench
    from keygate.observability import flush_added_metrics, logger, metrics

    event = {"headers": {"X-KG-SIGNATURE": "ab" * 32}}

    def refusing(*, writes: bool) -> Any:
        """A handler that refuses the probe (a forged signature), writing its decision line through KeyGate's
        Logger and its metric through Metrics, as the deployed one does, or writing nothing."""
        def handler(forged: dict[str, Any], context: Any) -> dict[str, Any]:
            assert forged["headers"]["X-KG-SIGNATURE"] == "0" * 64
            if writes:
                logger.warning("signature checked")
                metrics.add_metric(name="SignatureRefused401", unit="Count", value=1)
                flush_added_metrics()
            return {"policyDocument": {"Statement": [{"Effect": "Deny"}]}}
        return handler

    # Timed requests that wrote nothing, then a refusal that writes its decision line and its metric line: passes
    with authorizer_bench._as_deployed(refusing(writes=True), None, event):
        pass
    # Timed requests that wrote anything (here a decision line): the figures would include work the deployed
    # handler does not do
    with pytest.raises(RuntimeError, match=r"allowed requests wrote \d+ characters \(1 decision lines"), \
            authorizer_bench._as_deployed(refusing(writes=True), None, event):
        logger.info("signature checked")
    # A refusal that writes nothing: the output the timed requests went to was not live
    with pytest.raises(RuntimeError, match="not live"), \
            authorizer_bench._as_deployed(refusing(writes=False), None, event):
        pass
