"""common.keys stays one place for every Redis key: each module's names all reach the package, once."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from types import ModuleType

import common.keys as keys


def _modules() -> list[ModuleType]:
    names = [info.name for info in pkgutil.iter_modules(keys.__path__)]
    return [importlib.import_module(f"common.keys.{name}") for name in names]


def _defined(module: ModuleType) -> set[str]:
    """The public names a module's own top-level statements bind (functions and constants)."""
    names = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return {name for name in names if not name.startswith("_")}


def test_every_key_module_lists_what_it_defines() -> None:
    """Each module of common.keys names in __all__ exactly the keys it defines, so the package has them."""
    for module in _modules():
        assert set(module.__all__) == _defined(module), module.__name__


def test_every_key_reaches_the_package_and_no_name_is_used_twice() -> None:
    """keys.NAME is the object its module defines, whichever module; no two modules share a name."""
    seen: dict[str, str] = {}
    for module in _modules():
        for name in module.__all__:
            assert name not in seen, f"{name}: in {seen[name]} and {module.__name__}"
            seen[name] = module.__name__
            assert getattr(keys, name) is getattr(module, name), name
    submodules = {module.__name__.rpartition(".")[2] for module in _modules()}
    assert not submodules & set(seen), "a key named like a module of common.keys hides one or the other"
