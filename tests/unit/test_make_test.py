"""`make test` runs every stage even when one fails, then prints one line per stage (issue 13, finding 9).

Cheap on purpose: `make -n` shows what `make test` would run without running it, and
scripts/run-stages is exercised with a throwaway Makefile whose second stage fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess  # nosec B404  # runs only this project's own commands, no shell
from pathlib import Path

import pytest

from keygate_dev import template

RUN_STAGES = template.ROOT / "scripts" / "run-stages"
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _environment() -> dict[str, str]:
    """This environment without the settings of a make that may be running these tests."""
    return {name: value for name, value in os.environ.items() if name not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}


def _run(*argv: str | Path, cwd: Path = template.ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in argv], cwd=cwd, env=_environment(), capture_output=True,  # noqa: S603  # nosec B603  # argv of this project's own commands, no shell
                          text=True, timeout=60, check=False)


def test_make_test_hands_every_stage_to_run_stages_in_order():
    # When make shows what `make test` would run, without running it
    shown = _run(MAKE, "-n", "test")
    # Then its one command hands pytest, the template checks and the scanners, in that order, to run-stages
    assert shown.returncode == 0, shown.stderr
    assert re.fullmatch(r'scripts/run-stages "\S*make --no-print-directory" pytest template-check lint',
                        shown.stdout.splitlines()[-1]), shown.stdout
    # And each stage is a target of its own (the pytest stage runs the whole suite on two workers)
    assert _run(MAKE, "-n", "pytest").stdout.splitlines()[-1] == ".venv/bin/python -m pytest -n 2 -q"
    for stage in ("template-check", "lint"):
        assert _run(MAKE, "-n", stage).returncode == 0, stage


def _stages(directory: Path, failing: str | None) -> str:
    """A Makefile of three stages that say they ran; `failing` exits 3."""
    (directory / "Makefile").write_text("".join(
        f"{stage}:\n\t@echo {stage} ran{'; exit 3' if stage == failing else ''}\n"
        for stage in ("first", "second", "third")))
    return f"{MAKE} --no-print-directory -C {directory}"


def test_a_failed_stage_does_not_stop_the_next_and_fails_the_run(tmp_path: Path):
    # Given three stages, the second of which fails
    runner = _stages(tmp_path, failing="second")
    # When run-stages runs them
    finished = _run(RUN_STAGES, runner, "first", "second", "third", cwd=tmp_path)
    # Then every stage ran, in order, the third after the failed second
    lines = finished.stdout.splitlines()
    assert [line for line in lines if line.endswith(" ran")] == ["first ran", "second ran", "third ran"]
    # And the output ends with one line per stage, saying which failed
    assert len(lines) >= 3
    assert re.fullmatch(r"make test: first passed \(\d+ s\)", lines[-3])
    assert re.fullmatch(r"make test: second FAILED \(exit 2, \d+ s\)", lines[-2])  # make's status for a failed recipe
    assert re.fullmatch(r"make test: third passed \(\d+ s\)", lines[-1])
    # And the run fails
    assert finished.returncode == 1


def test_when_every_stage_passes_the_run_passes(tmp_path: Path):
    runner = _stages(tmp_path, failing=None)
    finished = _run(RUN_STAGES, runner, "first", "second", "third", cwd=tmp_path)
    assert finished.returncode == 0, finished.stdout
    assert [line.split(" (")[0] for line in finished.stdout.splitlines()[-3:]] == [
        "make test: first passed", "make test: second passed", "make test: third passed"]
