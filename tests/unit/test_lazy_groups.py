"""keygate.config and keygate.records import their other groups on first use (docs/architecture.md, "Cold start"):
the names a package hands out, the module it imports them from, and what mypy is told must agree."""

import ast
import importlib
import inspect

import pytest

GROUPS = [("keygate.config", "keygate.config.management", "_MANAGEMENT"),
          ("keygate.records", "keygate.records.lifecycle", "_LIFECYCLE")]


def _defined_publicly(module) -> set[str]:
    """The public names a module defines itself (classes, functions, constants), not those it imports."""
    names: set[str] = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return {name for name in names if not name.startswith("_")}


def _told_to_mypy(package, module_name: str) -> set[str]:
    """The names the package's `if TYPE_CHECKING:` block imports from `module_name`."""
    names: set[str] = set()
    for node in ast.parse(inspect.getsource(package)).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            names |= {alias.name for statement in node.body
                      if isinstance(statement, ast.ImportFrom) and statement.module == module_name
                      for alias in statement.names}
    return names


@pytest.mark.parametrize(("package_name", "module_name", "table"), GROUPS)
def test_a_package_hands_out_exactly_its_groups_names(package_name, module_name, table):
    # Given a package and the module it imports on first use
    package, module = importlib.import_module(package_name), importlib.import_module(module_name)
    defined = _defined_publicly(module)
    # Then it hands out every public name the module defines, and tells mypy the same names
    assert set(getattr(package, table)) == defined
    assert _told_to_mypy(package, module_name) == defined
    # And each is the module's own object, whichever way it is imported
    for name in defined:
        assert getattr(package, name) is getattr(module, name)


@pytest.mark.parametrize(("package_name", "module_name", "table"), GROUPS)
def test_a_misspelt_name_is_still_an_attribute_error(package_name, module_name, table):
    # Given a package that imports its other group on first use
    package = importlib.import_module(package_name)
    # When a name that neither it nor its group defines is asked for
    # Then the answer is the usual AttributeError, naming the package
    with pytest.raises(AttributeError, match=package_name):
        package.NoSuchName  # noqa: B018
