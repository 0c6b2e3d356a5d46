"""docs/architecture.md's "Where things live" map matches the tree: nothing named that is not there,
nothing there that is not named."""

from __future__ import annotations

import re
import subprocess  # nosec B404  # runs git ls-files, no shell
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()
LAYER = ROOT / "layers" / "common" / "keygate"


def _section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", DOC, re.DOTALL | re.MULTILINE)
    assert found, f"no section {title!r}"
    return found.group(1)


def _first_column_names(table_text: str) -> set[str]:
    """Every `name` in the first column of the markdown tables of `table_text`."""
    names = set()
    for line in table_text.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def _tracked_top_level() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S607  # nosec B603 B607  # git, no shell
    return {path.split("/")[0] for path in listed.stdout.splitlines() if "/" in path}


MAP = _section("Where things live")
NAMED = _first_column_names(MAP)


def test_everything_the_map_names_exists():
    # Given the folders and layer modules the map names
    # Then each is in the tree (folders relative to the root, modules relative to the layer)
    missing = []
    for name in NAMED:
        candidates = [ROOT / name.split("<")[0].rstrip("/")] + [LAYER / part.strip() for part in name.split(",")]
        if not any(candidate.exists() for candidate in candidates):
            missing.append(name)
    assert missing == [], missing


def test_every_top_level_source_folder_and_layer_module_is_on_the_map():
    # Given the tracked top-level folders that hold code or docs (tooling and config folders aside)
    tooling = {".ci", "requirements", "scripts"}
    folders = _tracked_top_level() - tooling
    # Then each is on the map, and so is every module and package of the layer
    on_map = {name.split("/")[0] for name in NAMED}
    assert folders <= on_map, folders - on_map
    modules = {path.name for path in LAYER.iterdir() if path.suffix == ".py" or path.is_dir()} - {
        "__init__.py", "__pycache__"}
    named_modules = {part.strip().rstrip("/") for name in NAMED for part in name.split(",")}
    assert modules <= named_modules, modules - named_modules
