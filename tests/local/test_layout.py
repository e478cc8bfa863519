"""Where local inference and the test helpers live, and the old import paths that still work.

``ra_guard.local`` holds local inference; ``ra_guard.testing`` the test and demo
helpers. The modules they came from re-export the same objects (not copies), the
spec strings resolve to the new home, and private modules stay private to their
package.
"""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

import ra_guard.judges.local
import ra_guard.local
import ra_guard.samplers.transformers
import ra_guard.smollm2
import ra_guard.testing
import ra_guard.testing.smollm2
import ra_guard.testing.tiny_model
import ra_guard.tiny_model
from ra_guard.judges import resolve_judge
from ra_guard.samplers import resolve_sampler

PACKAGE = Path(ra_guard.local.__file__).resolve().parents[1]

#: old module -> the module that now defines its names
MOVED = {
    "ra_guard.judges.local": "ra_guard.local",
    "ra_guard.samplers.transformers": "ra_guard.local",
    "ra_guard.tiny_model": "ra_guard.testing.tiny_model",
    "ra_guard.smollm2": "ra_guard.testing.smollm2",
}


def test_local_package_exports() -> None:
    assert sorted(ra_guard.local.__all__) == [
        "JudgeSettings",
        "LoadOptions",
        "LoadSettings",
        "LocalJudge",
        "LocalJudgeSettings",
        "LocalModelError",
        "LocalOutOfMemoryError",
        "LowDigitMass",
        "Mode",
        "OnTooLong",
        "SamplerOutOfMemoryError",
        "TransformersSampler",
    ]
    assert all(hasattr(ra_guard.local, name) for name in ra_guard.local.__all__)


def test_testing_package_keeps_its_exports() -> None:
    assert sorted(ra_guard.testing.__all__) == ["FunctionJudge", "FunctionSampler"]
    assert ra_guard.testing.FunctionSampler is importlib.import_module("ra_guard.samplers").FunctionSampler


@pytest.mark.parametrize(("old", "new"), MOVED.items())
def test_old_paths_re_export_the_same_objects(old: str, new: str) -> None:
    before, after = importlib.import_module(old), importlib.import_module(new)
    assert before.__all__, old
    for name in before.__all__:
        assert getattr(before, name) is getattr(after, name), f"{old}.{name}"
    assert "Moved to" in (before.__doc__ or ""), "the old module says where its names went"


def test_the_backends_are_one_class_each() -> None:
    assert ra_guard.judges.local.LocalJudge is ra_guard.local.LocalJudge
    assert ra_guard.samplers.transformers.TransformersSampler is ra_guard.local.TransformersSampler
    assert ra_guard.local.LocalJudge.__module__ == "ra_guard.local.judge"
    assert ra_guard.local.TransformersSampler.__module__ == "ra_guard.local.sampler"


def test_spec_strings_resolve_to_the_local_package(tiny_model_path: Path) -> None:
    judge = resolve_judge(f"local:{tiny_model_path}")
    sampler = resolve_sampler(f"transformers:{tiny_model_path}")
    assert type(judge) is ra_guard.local.LocalJudge
    assert type(sampler) is ra_guard.local.TransformersSampler


def _imported_modules(path: Path) -> set[str]:
    """The ``ra_guard`` modules a file imports (``from a.b import c`` counts ``a.b`` and ``a.b.c``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("ra_guard.")}


def _module_name(path: Path) -> str:
    parts = Path(os.path.relpath(path, PACKAGE.parent)).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_owner(module: str) -> str | None:
    """The package a private module belongs to (``ra_guard.local._engine`` -> ``ra_guard.local``)."""
    parts = module.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_no_package_imports_another_packages_private_modules() -> None:
    """A private module is its package's own: ``ra_guard.local._engine`` is imported inside ``ra_guard.local`` only.

    Root-private modules (``ra_guard._http``, ``ra_guard._threads``) are shared
    by the whole library, the linked integrations included.
    """
    crossings = []
    # os.walk with followlinks: the integrations are linked into the package (pathlib's rglob skips links).
    for folder, _, files in os.walk(PACKAGE, followlinks=True):
        for path in (Path(folder) / name for name in files if name.endswith(".py")):
            importer = _module_name(path)
            for module in _imported_modules(path):
                owner = _private_owner(module)
                if owner is None or owner == "ra_guard" or importer == owner or importer.startswith(owner + "."):
                    continue
                crossings.append(f"{importer} imports {module}")
    assert crossings == []
