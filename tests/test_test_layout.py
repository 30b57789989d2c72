"""The tests' own layout: test modules share helpers through tests/factories.py and
fixtures through conftest, never by importing one another (or conftest)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def imported_modules(source: str, module: str) -> list[str]:
    """Every module ``source`` (the text of module ``module``) imports, relative ones resolved;
    ``from package import name`` also counts ``package.name``, which may be a module."""
    package = module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            found.append(name)
            found += [f"{name}.{alias.name}" for alias in node.names]
    return found


def is_test_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "tests" and any(p.startswith("test_") or p == "conftest" for p in parts)


def test_no_test_module_imports_another() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        module = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
        source = path.read_text(encoding="utf-8")
        offenders += [
            f"{module} imports {name}"
            for name in imported_modules(source, module)
            if is_test_module(name)
        ]
    assert offenders == [], "share helpers through tests/factories.py instead"


@pytest.mark.parametrize(
    ("source", "offends"),
    [
        ("from tests.web.test_auth import log_in", True),
        ("import tests.test_cli", True),
        ("from tests.clicks import test_redirector", True),
        ("from tests.conftest import make_app", True),
        ("from .test_stats import T0", True),
        ("from ..web.test_auth import add_user", True),
        ("from tests.factories import make_app", False),
        ("from tests import ampvalidator", False),
        ("from app.reports import stats", False),
    ],
)
def test_the_check_sees_every_spelling(source: str, offends: bool) -> None:
    found = imported_modules(source, "tests.reports.test_heatmap")
    assert any(is_test_module(name) for name in found) == offends
