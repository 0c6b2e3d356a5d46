"""What every checkout of the repository holds: regular files only (no symlinks, which break on checkouts
without them), and no reference to documents outside it (the contract is docs/signing.md, the product
docs/product.md)."""

from __future__ import annotations

import re
import shutil
import subprocess  # nosec B404  # runs git, no shell
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYMLINK_MODE = "120000"
# Documents that lived beside the repository, not in it: a clone has neither.
OUTSIDE_REFERENCE = re.compile(r"\.\./shared|shared/(SIGNING|DESIGN)")

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                reason="needs git and a git checkout of the repository")


def git(*arguments: str) -> str:
    return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True,  # noqa: S603, S607
                          check=True).stdout  # nosec B603 B607


def repository_files() -> list[str]:
    """Tracked files, and new ones not ignored (so a test fails before the commit, not after)."""
    return git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")[:-1]


def test_no_tracked_file_is_a_symlink():
    # Given the index of the repository
    entries = [line.split(maxsplit=3) for line in git("ls-files", "-s").splitlines()]
    # Then no entry has git's symlink mode
    assert [path for mode, _, _, path in entries if mode == SYMLINK_MODE] == []


def test_no_new_file_is_a_symlink_either():
    assert [path for path in repository_files() if (ROOT / path).is_symlink()] == []


def test_no_file_refers_to_documents_outside_the_repository():
    # Given every file of the repository but binary ones
    found = []
    for path in repository_files():
        file = ROOT / path
        if not file.is_file() or b"\0" in (content := file.read_bytes()):
            continue
        text = content.decode("utf-8", "replace")
        found += [f"{path}:{text.count(chr(10), 0, match.start()) + 1}: {match.group()}"
                  for match in OUTSIDE_REFERENCE.finditer(text)]
    # Then none points at the directory beside the repository or at the two documents it held
    assert found == []
