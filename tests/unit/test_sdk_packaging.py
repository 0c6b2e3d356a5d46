"""`pip install ./sdk/python` ships kg1 (sdk/kg1/kg1) as keygate_client/_kg1, in the sdist and the wheel.

The copy is made by sdk/python/setup.py's build hook and never committed (docs/signing.md). These tests
build the package the way pip does (setuptools' PEP 517 hooks) from a copy of the repository layout as a
fresh clone has it (no copy yet), and check the artifacts: they carry kg1's modules byte for byte, depend
on nothing server-side, and import nothing outside the standard library.
"""

from __future__ import annotations

import email
import json
import shutil
import subprocess  # nosec B404  # runs this interpreter's own setuptools hooks and git, no shell
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import keygate_client
from keygate_client import _kg1

ROOT = Path(__file__).resolve().parents[2]
KG1 = ROOT / "sdk" / "kg1" / "kg1"
VENDORED = ROOT / "sdk" / "python" / "keygate_client" / "_kg1"
SERVER_SIDE = ("boto3", "botocore", "aws-lambda-powertools", "pydantic", "keygate ", "keygate-kg1", "kg1")
GET_SIGNATURE = "458772e593bd5f81e4cb9b146b16e1e8a75a42580340dd6f32473997dbd907b8"


def kg1_modules() -> dict[str, bytes]:
    """sdk/kg1's modules by file name: what every shipped copy must hold, byte for byte."""
    modules = {path.name: path.read_bytes() for path in sorted(KG1.glob("*.py"))}
    assert "__init__.py" in modules
    return modules


def build(hook: str, source: Path, out: Path) -> Path:
    """Run setuptools' PEP 517 `hook` in `source`, as pip would (no network: no isolated environment)."""
    out.mkdir(parents=True, exist_ok=True)
    code = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    result = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True,  # noqa: S603
                            text=True, check=True)  # nosec B603
    return out / result.stdout.strip().splitlines()[-1]


def fresh_clone(root: Path) -> Path:
    """sdk/kg1 and sdk/python at their repository paths, without anything a build or install generated."""
    ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "_kg1")
    for project in ("kg1", "python"):
        shutil.copytree(ROOT / "sdk" / project, root / "sdk" / project, ignore=ignore)
    assert not (root / "sdk/python/keygate_client/_kg1").exists()
    assert (root / "sdk/kg1/kg1/__init__.py").is_file()
    return root


def wheel_modules(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name.removeprefix("keygate_client/_kg1/"): archive.read(name) for name in archive.namelist()
                if name.startswith("keygate_client/_kg1/")}


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    clone = fresh_clone(tmp_path_factory.mktemp("repo"))
    return build("build_sdist", clone / "sdk" / "python", tmp_path_factory.mktemp("sdist"))


@pytest.fixture(scope="module")
def wheel_from_sdist(sdist, tmp_path_factory) -> Path:
    # Unpacked where no sdk/kg1 exists beside it
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    [source] = unpacked.iterdir()
    return build("build_wheel", source, tmp_path_factory.mktemp("wheel"))


def test_the_sdist_carries_kg1_as_regular_files(sdist):
    # When the sdist is built from a fresh clone
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers() if "/keygate_client/_kg1/" in member.name]
        # Then it holds kg1's modules as keygate_client/_kg1, byte for byte
        assert all(member.isfile() for member in members)
        shipped = {Path(member.name).name: archive.extractfile(member).read() for member in members}
    assert shipped == kg1_modules()


def test_a_wheel_built_from_the_unpacked_sdist_alone_carries_it_too(wheel_from_sdist):
    # Then the wheel pip builds from the sdist installs the same modules, and depends on nothing server-side
    assert wheel_modules(wheel_from_sdist) == kg1_modules()
    with zipfile.ZipFile(wheel_from_sdist) as archive:
        [metadata_name] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        entry_points = archive.read(metadata_name.replace("METADATA", "entry_points.txt")).decode()
        top_level = archive.read(metadata_name.replace("METADATA", "top_level.txt")).decode().split()
    requirements = metadata.get_all("Requires-Dist") or []
    assert all("extra ==" in requirement for requirement in requirements), requirements
    assert not any(requirement.lower().startswith(SERVER_SIDE) for requirement in requirements)
    assert "keygate-sign = keygate_client.cli:main" in entry_points
    # And it installs keygate_client alone: no top-level kg1 or keygate beside a bot's own packages
    assert top_level == ["keygate_client"]


def test_a_wheel_built_straight_from_a_fresh_clone_carries_it(tmp_path):
    # Given a fresh clone, where no copy exists yet
    clone = fresh_clone(tmp_path / "repo")
    # When pip install ./sdk/python builds the wheel in place
    wheel = build("build_wheel", clone / "sdk" / "python", tmp_path / "wheel")
    # Then the build hook made the copy, and the wheel carries it
    assert wheel_modules(wheel) == kg1_modules()


def test_the_installed_sdk_imports_only_the_standard_library(wheel_from_sdist):
    # Given the wheel alone on the path (a pure-Python wheel imports as a zip; -I -S: no site-packages)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import json, keygate_client, keygate_client.cli; "
            "headers = keygate_client.sign('kg_live_example_key_id', 'kgs_example_secret_do_not_use', 'GET', "
            "'/v1/trade/api-keys/self', timestamp_ms=1767225600000, nonce='n0nce-3f9c2a7e1b4d4c8a'); "
            "print(json.dumps([headers['X-KG-SIGNATURE'], sorted(sys.modules)]))")
    # When the SDK and its command are imported and sign the GET worked example
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(wheel_from_sdist)],  # noqa: S603
                            capture_output=True, text=True, check=True)  # nosec B603
    signature, modules = json.loads(result.stdout)
    # Then it signs with its own copy of kg1, and every module loaded is the standard library's or its own
    assert signature == GET_SIGNATURE
    foreign = {name.split(".")[0] for name in modules} - set(sys.stdlib_module_names) - {"__main__"}
    assert foreign == {"keygate_client"}
    assert "keygate_client._kg1" in modules and "kg1" not in modules and "keygate" not in modules


def test_the_copy_the_editable_install_imports_is_kg1s_source():
    # Given the development install (the Makefile refreshes the copy whenever sdk/kg1 changes)
    # Then the SDK imports its own copy, and that copy is sdk/kg1's source byte for byte
    assert Path(_kg1.__file__).resolve().parent == VENDORED
    shipped = {path.name: path.read_bytes() for path in sorted(VENDORED.glob("*.py"))}
    assert shipped == kg1_modules(), "stale copy of kg1: run make (or sdk/python/setup.py vendor_kg1)"
    assert keygate_client.SigningError is _kg1.SigningError


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_the_copy_is_ignored_by_git_and_never_committed():
    tracked = subprocess.run(["git", "ls-files", "--", "sdk/python/keygate_client/_kg1"],  # noqa: S607
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout  # nosec B603 B607
    assert tracked == ""
    ignored = subprocess.run(["git", "check-ignore", "-q", "sdk/python/keygate_client/_kg1/__init__.py"],  # noqa: S607
                             cwd=ROOT, check=False)  # nosec B603 B607
    assert ignored.returncode == 0
