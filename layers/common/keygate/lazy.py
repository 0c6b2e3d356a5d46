"""Names a package hands out from one of its modules, imported only when first asked for (docs/architecture.md,
"Cold start"). Standard library only."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def module_getattr(package_globals: dict[str, Any], module_name: str, names: tuple[str, ...]) -> Callable[[str], Any]:
    """A package's `__getattr__` (PEP 562): the first of `names` asked for imports `module_name` and binds every
    one of them in the package, so later lookups never come back here. Any other name is an AttributeError."""

    def attribute(name: str) -> Any:
        if name in names:
            module = importlib.import_module(module_name)
            package_globals.update({each: getattr(module, each) for each in names})
            return package_globals[name]
        raise AttributeError(f"module {package_globals['__name__']!r} has no attribute {name!r}")

    return attribute
