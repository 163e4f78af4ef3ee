"""The package rules the Architecture page states, read from the source (no Ray, no imports run).

Imports run one way, down the layers of docs/architecture.md; no module imports another module's
private name; only the documented facades re-export names defined elsewhere.
"""
from __future__ import annotations

import ast
import os

import pytest
from helpers import REPO_DIR

# The layers of docs/architecture.md, top (imported by everything below) to bottom. A module may
# import from its own layer or one above it, never from one below.
LAYERS = [
    {"errors", "vocab", "optimize", "objectives", "space", "reporting", "checkpoints", "compat"},
    {"config", "store"},
    {"plugins", "views"},
    {"searchers", "assessors"},
    {"engine"},
    {"mujoco", "schedulers"},
    {"cli"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}

# The facades: the manual's import paths and the packages' own __init__ modules.
FACADES = {"gml_ray/__init__.py", "gml_ray/searchers/base_searcher.py", "gml_ray/searchers/builder.py",
           "gml_ray/schedulers/naive.py", "gml_ray/schedulers/job.py", "gml_ray/schedulers/stop_criterion.py",
           "gml_ray/schedulers/filter_criterion.py"}


def modules() -> list[tuple[str, str]]:
    """(path relative to the repository, the package it belongs to) of every library module."""
    out = []
    for root, package_dir in (("gml_ray", None), ("cli", "cli")):
        for dirpath, _, files in os.walk(os.path.join(REPO_DIR, root)):
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, name), REPO_DIR)
                    parts = rel.split(os.sep)
                    package = package_dir or parts[1].removesuffix(".py")
                    out.append((rel.replace(os.sep, "/"), package))
    return sorted(out)


def gml_imports(path: str) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute ``gml_ray`` import in a file."""
    tree = ast.parse(open(os.path.join(REPO_DIR, path)).read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "gml_ray" or node.module.startswith("gml_ray."):
                out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names if a.name.startswith("gml_ray."))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            out.append((node.lineno, "." * node.level + (node.module or ""), []))
    return out


def target_package(module: str, names: list[str]) -> str | None:
    parts = module.split(".")
    if parts[0] != "gml_ray":
        return None
    if len(parts) == 1:  # `from gml_ray import cli` / `from gml_ray import SummaryWriter`
        return names[0] if names and names[0] in LAYER_OF else "reporting"
    return parts[1]


MODULES = modules()


def test_every_package_has_a_layer():
    assert {package for _, package in MODULES} - {"__init__"} <= set(LAYER_OF)


@pytest.mark.parametrize("path, package", MODULES, ids=[m[0] for m in MODULES])
def test_imports_run_one_way(path, package):
    if package == "__init__":
        return  # gml_ray/__init__.py: the job-side facade (SummaryWriter, report)
    upward = []
    for line, module, names in gml_imports(path):
        assert not module.startswith("."), f"{path}:{line}: relative import {module} (imports are absolute)"
        target = target_package(module, names)
        if target is not None and LAYER_OF[target] > LAYER_OF[package]:
            upward.append(f"{path}:{line}: {package} imports {module} (a layer below it)")
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path, package", MODULES, ids=[m[0] for m in MODULES])
def test_no_private_name_crosses_modules(path, package):
    private = [f"{path}:{line}: imports {name} from {module}" for line, module, names in gml_imports(path)
               for name in names if name.startswith("_") and not name.startswith("__")]
    assert not private, "\n".join(private)


def test_only_facades_re_export():
    re_exports = []
    for path, _ in MODULES:
        if path in FACADES or path.endswith("/__init__.py"):
            continue
        for number, text in enumerate(open(os.path.join(REPO_DIR, path)), 1):
            if "noqa: F401" in text:
                re_exports.append(f"{path}:{number}: {text.strip()}")
    assert not re_exports, "re-exported outside the facades:\n" + "\n".join(re_exports)
