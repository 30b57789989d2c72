"""The package map holds: imports run one way, from the web down to the core, with no cycles.

Every ``app`` module belongs to one layer; a module may import its own layer's modules and
any lower layer's, never a higher one. Imports inside functions count too (they are how a
cycle hides). The map is the one docs/architecture.md opens with.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

# Highest first. The root package (create_app), cli and ops assemble and run everything, so
# they sit on top; then the web surfaces; then the stages of the data's path, latest first.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("app", "app.cli", "app.ops"),
    ("app.web",),
    ("app.reports",),
    ("app.clicks",),
    ("app.ingest",),
    (
        "app.config",
        "app.db",
        "app.models",
        "app.errors",
        "app.tokens",
        "app.urls",
        "app.accounts",
        "app.vocabulary",
    ),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    """The layer of ``module``: its longest matching prefix in ``LAYERS``."""
    best, depth = -1, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and name.count(".") > depth:
                best, depth = index, name.count(".")
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and the docs' map")
    return best


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every ``app`` module ``path`` imports, wherever the import is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "app":  # ``from app import cli`` names a module, or the root's
                for alias in node.names:
                    named = APP / alias.name
                    is_module = named.is_dir() or named.with_suffix(".py").exists()
                    found.append((node.lineno, f"app.{alias.name}" if is_module else "app"))
            elif node.module.startswith("app."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("app.")]
    return found


MODULES = sorted(APP.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        _layer(_module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_point_down(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module)
    upward = [f"line {line}: {target}" for line, target in _imports(path) if _layer(target) < own]
    assert not upward, f"{module} imports from a higher layer: {upward}"


def test_a_higher_import_is_caught() -> None:
    """The check itself: a domain module importing the web layer is reported."""
    assert _layer("app.reports.stats") > _layer("app.web.api")
    assert _layer("app.tokens") > _layer("app.ingest.campaigns")
    assert _layer("app.ops.demo") < _layer("app.web.auth")
    assert _layer("app.accounts") > _layer("app.web.auth")
    assert _layer("app") < _layer("app.web.dashboard")
