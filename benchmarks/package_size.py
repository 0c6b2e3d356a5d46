"""Unzipped size of each function and of the shared layer (issue 5, benchmark 4).

Read from `sam build`'s output (.aws-sam/build: arm64 wheels, what Lambda
unpacks), the layer broken down by distribution through each one's RECORD.
Without a build, the same distributions are sized from this venv (x86_64
wheels, so the compiled parts differ a little) and the figure says so. Sizes
are bytes on disk as unpacked; MB means 2**20 bytes, like Lambda's limits.
The layer target is 15 MB: boto3 and botocore come with the runtime.

The layer ships only the keygate and kg1 packages: Powertools, the X-Ray SDK, pydantic,
PyJWT and cryptography come from the AWS-managed Powertools layer (template
parameter PowertoolsLayerArn), which is AWS's to build and is not in
`sam build`'s output. Its share of the 250 MB unzipped limit is estimated from
this venv's copies of what KeyGate imports from it (the real layer holds
Powertools' [all] extras, so it is larger).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from benchmarks._stack import function_property
from keygate_dev import template

BUILD_DIR = template.ROOT / ".aws-sam" / "build"
LAYER_ID = "CommonLayer"
LAYER_SOURCE = template.ROOT / "layers" / "common"
# KeyGate's own packages in the layer (layers/common/Makefile copies kg1 from sdk/kg1).
LAYER_PACKAGES = {"keygate": LAYER_SOURCE / "keygate", "kg1": template.ROOT / "sdk" / "kg1" / "kg1"}
LAYER_TARGET_MB = 15.0
MB = 2**20
# What the Python 3.13 runtime already provides: boto3 and its dependencies (never shipped in a layer).
RUNTIME_REQUIREMENTS = ["boto3"]
# What KeyGate takes from the AWS-managed Powertools layer (which AWS builds with every extra, minus boto3's).
MANAGED_POWERTOOLS_REQUIREMENTS = ["aws-lambda-powertools[tracer,parser,jwt]"]


def managed_powertools_distributions() -> set[str]:
    """The distributions of the managed Powertools layer that KeyGate imports, as this venv holds them."""
    return resolve_distributions(MANAGED_POWERTOOLS_REQUIREMENTS) - resolve_distributions(RUNTIME_REQUIREMENTS)


def layer_requirements() -> list[str]:
    return [line.strip() for line in (LAYER_SOURCE / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def resolve_distributions(requirements: Iterable[str]) -> set[str]:
    """The installed distributions `requirements` pull in, extras and markers applied (as pip would)."""
    found: set[str] = set()
    pending = [Requirement(line) for line in requirements]
    while pending:
        requirement = pending.pop()
        distribution = metadata.distribution(requirement.name)
        key = (_normalise(distribution.metadata["Name"]), frozenset(requirement.extras))
        if key in found:
            continue
        found.add(key)
        for text in distribution.requires or []:
            dependency = Requirement(text)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra})
                                                for extra in requirement.extras or {""}):
                pending.append(dependency)
    return {name for name, _ in found}


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def tree_bytes(path: Path) -> int:
    """Bytes of every file below `path` (symlinks not followed)."""
    return sum(os.lstat(Path(directory) / name).st_size
               for directory, _, files in os.walk(path) for name in files)


def _built_layer_by_distribution(site: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    claimed: set[Path] = set()
    for record in sorted(site.glob("*.dist-info/RECORD")):
        name = _normalise(metadata.Distribution.at(record.parent).metadata["Name"])
        files = {site / row[0] for row in csv.reader(record.read_text().splitlines()) if row}
        present = {file for file in files if file.is_file()}
        sizes[name] = sum(file.stat().st_size for file in present)
        claimed |= present
    for entry in site.iterdir():
        unclaimed = [entry] if entry.is_file() else [Path(d) / f for d, _, fs in os.walk(entry) for f in fs]
        rest = sum(file.stat().st_size for file in unclaimed if file not in claimed)
        if rest:
            name = entry.name if entry.name in LAYER_PACKAGES else "other"
            sizes[name] = sizes.get(name, 0) + rest
    return sizes


def _venv_sizes(distributions: Iterable[str]) -> dict[str, int]:
    sizes = {}
    for name in distributions:
        distribution = metadata.distribution(name)
        files = [distribution.locate_file(file) for file in distribution.files or []
                 if file.parts[0] != ".." and file.suffix != ".pyc"]
        sizes[name] = sum(Path(file).stat().st_size for file in files if Path(file).is_file())
    return sizes


def _venv_layer_by_distribution() -> dict[str, int]:
    sizes = _venv_sizes(resolve_distributions(layer_requirements()))
    for name, source in LAYER_PACKAGES.items():
        sizes[name] = sum(file.stat().st_size for file in source.rglob("*.py"))
    return sizes


def _newest_source_mtime() -> float:
    sources = [template.TEMPLATE_PATH, *LAYER_SOURCE.rglob("*"), *LAYER_PACKAGES["kg1"].rglob("*"),
               *(template.ROOT / "functions").rglob("*")]
    return max(path.stat().st_mtime for path in sources if path.is_file() and "__pycache__" not in path.parts)


def run(quick: bool = False) -> dict[str, Any]:
    built_layer = BUILD_DIR / LAYER_ID / "python"
    function_ids = template.function_ids()
    if built_layer.is_dir():
        source = "sam build output (.aws-sam/build, arm64)"
        by_distribution = _built_layer_by_distribution(built_layer)
        functions = {function_id: tree_bytes(BUILD_DIR / function_id) for function_id in function_ids
                     if (BUILD_DIR / function_id).is_dir()}
        not_built = sorted(set(function_ids) - set(functions))
        stale = (BUILD_DIR / "template.yaml").stat().st_mtime < _newest_source_mtime() or bool(not_built)
    else:
        source = "estimate from this venv's distributions (no sam build output; x86_64 wheels)"
        by_distribution = _venv_layer_by_distribution()
        functions = {function_id: tree_bytes(template.ROOT / function_property(function_id, "CodeUri"))
                     for function_id in function_ids}
        not_built, stale = [], False
    ranked = sorted(by_distribution.items(), key=lambda item: -item[1])
    managed = _venv_sizes(managed_powertools_distributions())
    return {
        "source": source, "stale": stale, "functions_not_built": not_built,
        "layer_mb": round(sum(by_distribution.values()) / MB, 2), "layer_target_mb": LAYER_TARGET_MB,
        "layer_target_met": sum(by_distribution.values()) / MB <= LAYER_TARGET_MB,
        "layer_by_distribution_mb": {name: round(size / MB, 2) for name, size in ranked},
        "functions_kb": {function_id: round(size / 1024, 1)
                         for function_id, size in sorted(functions.items())},
        "powertools_layer": {
            "source": "AWS-managed (template parameter PowertoolsLayerArn); estimated from this venv's x86_64 copies",
            "estimate_mb": round(sum(managed.values()) / MB, 2),
            "by_distribution_mb": {name: round(size / MB, 2)
                                   for name, size in sorted(managed.items(), key=lambda item: -item[1])},
        },
    }
