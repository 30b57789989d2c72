"""What some tests need from outside the clone, and what happens when it is missing.

A missing prerequisite skips the tests that need it, with the reason printed (``pytest -ra``);
under ``CI`` (``.ci/run`` sets ``CI=1``) it fails them instead, so a CI machine that lost a
prerequisite cannot turn green by skipping.

Reference data (real emails, their documentation) lives beside the clone in ``../shared``
and is never copied into the project; ``CLICKMAP_SHARED`` names another folder holding it
(``CLICKMAP_CORPUS`` still names the corpus folder alone).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "") not in {"", "0", "false"}


def missing(reason: str) -> NoReturn:
    """Skip the running test (or fixture) for ``reason``; under CI, fail it."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: missing prerequisites fail)", pytrace=False)
    pytest.skip(reason)


def shared_root() -> Path:
    """The reference data folder: ``$CLICKMAP_SHARED``, else ``shared`` beside the clone."""
    configured = os.environ.get("CLICKMAP_SHARED")
    return Path(configured) if configured else ROOT.parent / "shared"


def shared_path(name: str) -> Path | None:
    """A folder of the reference data, or None when it is not there."""
    if name == "corpus" and os.environ.get("CLICKMAP_CORPUS"):
        path = Path(os.environ["CLICKMAP_CORPUS"])
    else:
        path = shared_root() / name
    return path if path.is_dir() else None


def shared_reason(name: str) -> str:
    return f"reference data ../shared/{name} not found beside the clone (set CLICKMAP_SHARED)"


def require_shared(name: str) -> Path:
    """The reference data folder ``name``, or skip (fail under CI) saying it is missing."""
    path = shared_path(name)
    if path is None:
        missing(shared_reason(name))
    return path


def corpus_files(kind: str) -> list[Path]:
    """The corpus's files of one kind ("email" or "amp"); none when the corpus is absent.

    Parametrize with ``corpus_params`` instead when an absent corpus must show as a skip.
    """
    corpus = shared_path("corpus")
    return sorted((corpus / kind).glob("*.html")) if corpus else []


def corpus_params(*kinds: str) -> list[object]:
    """Parameters for a test over corpus files: each file, or, when the corpus is absent, one
    parameter marked ``shared("corpus")`` (the marker skips it, or fails it under CI, saying
    why), so an absent corpus never makes a test vanish silently."""
    files = [path for kind in kinds for path in corpus_files(kind)]
    if files:
        return [pytest.param(path, id=path.name) for path in files]
    return [pytest.param(None, id="no-corpus", marks=pytest.mark.shared("corpus"))]


def require_programs(*names: str) -> None:
    """Skip (fail under CI) unless every program is on the PATH."""
    absent = [name for name in names if shutil.which(name) is None]
    if absent:
        missing(f"{', '.join(absent)} not installed (Debian: make system)")
