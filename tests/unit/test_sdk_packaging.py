"""`pip install ./sdk/python` ships the layer's signing.py as keygate_client/_kg1.py, in the sdist and the wheel.

In the repository `_kg1.py` is a relative symlink to layers/common/keygate/signing.py (one implementation
of SIGNING.md). These tests build the package the way pip does (setuptools' PEP 517 hooks) from a copy
of the repository layout, and check that the built artifacts carry the file's content, not the link:
an sdist unpacked elsewhere has no layers/ beside it, so a link there would dangle.
"""

from __future__ import annotations

import email
import shutil
import subprocess  # nosec B404  # runs this interpreter's own setuptools hooks, no shell
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIGNING = ROOT / "layers" / "common" / "keygate" / "signing.py"
SERVER_SIDE = ("boto3", "botocore", "aws-lambda-powertools", "pydantic", "keygate ")


def build(hook: str, source: Path, out: Path) -> Path:
    """Run setuptools' PEP 517 `hook` in `source`, as pip would (no network: no isolated environment)."""
    out.mkdir(parents=True, exist_ok=True)
    code = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    result = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True,  # noqa: S603
                            text=True, check=True)  # nosec B603
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def repository_copy(tmp_path_factory) -> Path:
    """sdk/python and the signing module at their repository paths, the symlink kept as a symlink."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "sdk" / "python", root / "sdk" / "python", symlinks=True,
                    ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    (root / SIGNING.relative_to(ROOT)).parent.mkdir(parents=True)
    shutil.copy2(SIGNING, root / SIGNING.relative_to(ROOT))
    assert (root / "sdk/python/keygate_client/_kg1.py").is_symlink()
    return root


@pytest.fixture(scope="module")
def sdist(repository_copy, tmp_path_factory) -> Path:
    return build("build_sdist", repository_copy / "sdk" / "python", tmp_path_factory.mktemp("sdist"))


def test_the_sdist_carries_the_signing_module_as_a_regular_file(sdist):
    # When the sdist is built from the repository (where _kg1.py is a symlink)
    with tarfile.open(sdist) as archive:
        [member] = [member for member in archive.getmembers() if member.name.endswith("keygate_client/_kg1.py")]
        # Then it holds the layer's signing.py itself, byte for byte
        assert member.isfile() and not member.issym()
        assert archive.extractfile(member).read() == SIGNING.read_bytes()


def test_a_wheel_built_from_the_unpacked_sdist_alone_carries_it_too(sdist, tmp_path):
    # Given the sdist unpacked where no layers/ directory exists
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    [source] = (tmp_path / "unpacked").iterdir()
    # When pip would build the wheel from it
    wheel = build("build_wheel", source, tmp_path / "wheel")
    # Then the wheel installs the same module, and depends on nothing server-side
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("keygate_client/_kg1.py") == SIGNING.read_bytes()
        [metadata_name] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        entry_points = archive.read(metadata_name.replace("METADATA", "entry_points.txt")).decode()
    requirements = metadata.get_all("Requires-Dist") or []
    assert all("extra ==" in requirement for requirement in requirements), requirements
    assert not any(requirement.lower().startswith(SERVER_SIDE) for requirement in requirements)
    assert "keygate-sign = keygate_client.cli:main" in entry_points


def test_a_wheel_built_straight_from_the_repository_carries_it(repository_copy, tmp_path):
    # pip install ./sdk/python builds the wheel in place, following the symlink
    wheel = build("build_wheel", repository_copy / "sdk" / "python", tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("keygate_client/_kg1.py") == SIGNING.read_bytes()
