"""keygate-client's build hook: the SDK ships kg1 as its private copy, keygate_client/_kg1.

Built from the repository (sdk/kg1 beside sdk/python), every build refreshes
that copy from sdk/kg1/kg1 first; it is generated, gitignored, never edited.
Built from the sdist, which carries the copy, it is used as it is.
`python setup.py vendor_kg1` refreshes it alone (the Makefile does, for the
editable install).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build_py import build_py
from setuptools.command.egg_info import egg_info

HERE = Path(__file__).resolve().parent
KG1_PROJECT = HERE.parent / "kg1"
KG1_SOURCE = KG1_PROJECT / "kg1"
VENDORED = HERE / "keygate_client" / "_kg1"


def vendor_kg1() -> None:
    """Make keygate_client/_kg1 hold exactly kg1's modules, byte for byte."""
    if not (KG1_PROJECT / "pyproject.toml").is_file():
        if not (VENDORED / "__init__.py").is_file():
            raise SystemExit("keygate_client/_kg1 is missing: build from the KeyGate repository "
                             "(sdk/kg1 beside sdk/python) or from keygate-client's sdist")
        return  # an unpacked sdist: the copy it carries is the one to ship
    sources = {path.name: path.read_bytes() for path in KG1_SOURCE.glob("*.py")}
    VENDORED.mkdir(exist_ok=True)
    for stale in VENDORED.glob("*.py"):
        if stale.name not in sources:
            stale.unlink()
    for name, content in sources.items():
        target = VENDORED / name
        if not target.is_file() or target.read_bytes() != content:
            target.write_bytes(content)


class VendorKg1(Command):
    description = "refresh keygate_client/_kg1 from sdk/kg1/kg1"
    user_options: list[tuple[str, str | None, str]] = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        vendor_kg1()


class EggInfo(egg_info):
    # The first step of an sdist, an editable install and pip's metadata preparation.
    def run(self) -> None:
        vendor_kg1()
        super().run()


class BuildPy(build_py):
    # The first step of a wheel built without pip's metadata preparation.
    def run(self) -> None:
        vendor_kg1()
        super().run()


setup(cmdclass={"vendor_kg1": VendorKg1, "egg_info": EggInfo, "build_py": BuildPy})
