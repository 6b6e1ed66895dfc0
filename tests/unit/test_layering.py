"""The package's layers, bottom-up: a module imports only from its own layer or the ones below.

Parses every module's imports (no import runs) and fails on any that runs upward, naming the file
and line. ``docs/architecture.md`` describes the layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fairseq_shiftadd"

# Top-level names of the package (modules or subpackages), lowest layer first.
LAYERS: list[set[str]] = [
    {"errors", "files", "venv_commands", "quiet"},
    {"space", "op_record", "checkpoint_compat", "warm_start", "checkpoint_io", "distributed", "recipes", "data"},
    {"modules"},
    {"models"},
    {"tasks", "criterions", "hardware"},
    {"search"},
    {"demo"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def top_name(module: Path) -> str:
    """``fairseq_shiftadd/models/build.py`` -> ``models``; ``fairseq_shiftadd/space.py`` -> ``space``."""
    return module.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_top_names(module: Path) -> list[tuple[int, str]]:
    """(line, top-level package name) of every package-internal import in ``module``."""
    tree = ast.parse(module.read_text(), filename=str(module))
    package_parts = module.relative_to(PACKAGE.parent).parent.parts  # e.g. ('fairseq_shiftadd', 'models')
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                dotted = ".".join([*base, node.module] if node.module else base)
                targets = [dotted] if node.module else [f"{dotted}.{alias.name}" for alias in node.names]
            else:
                targets = [node.module or ""]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] == "fairseq_shiftadd" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def test_every_top_level_name_has_a_layer():
    names = {top_name(path) for path in PACKAGE.rglob("*.py") if path.parent != PACKAGE or path.name != "__init__.py"}
    assert names <= set(RANK), f"assign a layer to: {sorted(names - set(RANK))}"


def test_no_import_runs_upward():
    upward = []
    for module in sorted(PACKAGE.rglob("*.py")):
        if module == PACKAGE / "__init__.py":  # the package root imports its plugins to register them
            continue
        own = RANK[top_name(module)]
        for line, name in imported_top_names(module):
            if RANK.get(name, -1) > own:
                upward.append(f"{module.relative_to(PACKAGE.parent)}:{line} imports {name} (layer {RANK[name]} > {own})")
    assert not upward, "imports running upward:\n" + "\n".join(upward)


def test_the_checker_sees_relative_and_absolute_imports():
    module = PACKAGE / "models" / "build.py"
    names = {name for _, name in imported_top_names(module)}
    assert {"modules", "space"} <= names
