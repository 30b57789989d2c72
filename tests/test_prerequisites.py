"""What the suite does when something it needs from outside the clone is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import pgserver
from tests.pgserver import PgServer
from tests.prerequisites import corpus_files, require_programs, require_shared, shared_path

REASON = "reference data ../shared/corpus not found beside the clone (set CLICKMAP_SHARED)"


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CLICKMAP_CORPUS", raising=False)
    return monkeypatch


def test_missing_reference_data_skips_with_its_reason(
    no_ci: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_ci.setenv("CLICKMAP_SHARED", str(tmp_path))
    assert shared_path("corpus") is None
    assert corpus_files("email") == []
    with pytest.raises(pytest.skip.Exception, match=re.escape(REASON)):
        require_shared("corpus")
    no_ci.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_shared("corpus")


def test_reference_data_is_found_where_clickmap_shared_points(
    no_ci: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "corpus" / "email").mkdir(parents=True)
    (tmp_path / "corpus" / "email" / "a.html").write_text("<a href='https://e.example'>x</a>")
    no_ci.setenv("CLICKMAP_SHARED", str(tmp_path))
    assert require_shared("corpus") == tmp_path / "corpus"
    assert corpus_files("email") == [tmp_path / "corpus" / "email" / "a.html"]
    # CLICKMAP_CORPUS still names the corpus folder on its own.
    no_ci.setenv("CLICKMAP_SHARED", str(tmp_path / "elsewhere"))
    no_ci.setenv("CLICKMAP_CORPUS", str(tmp_path / "corpus"))
    assert shared_path("corpus") == tmp_path / "corpus"


def test_missing_postgresql_binaries_skip_or_fail_under_ci(no_ci: pytest.MonkeyPatch) -> None:
    no_ci.delenv("CLICKMAP_TEST_PG", raising=False)
    no_ci.setattr(pgserver, "find_bindir", lambda: None)
    with pytest.raises(pytest.skip.Exception, match="initdb"):
        PgServer().url()
    no_ci.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="initdb"):
        PgServer().url()


def test_installed_binaries_that_do_not_start_fail_even_outside_ci(
    no_ci: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_ci.delenv("CLICKMAP_TEST_PG", raising=False)
    no_ci.setattr(pgserver, "find_bindir", lambda: tmp_path)  # no initdb in there
    with pytest.raises(pytest.fail.Exception, match="could not start a PostgreSQL cluster"):
        PgServer().url()


def test_a_configured_server_is_used_as_given(no_ci: pytest.MonkeyPatch) -> None:
    no_ci.setenv("CLICKMAP_TEST_PG", "postgresql+psycopg://someone@db.example:5433/x")
    no_ci.setattr(pgserver, "find_bindir", lambda: pytest.fail("no cluster is started"))
    assert PgServer().url() == "postgresql+psycopg://someone@db.example:5433/x"


def test_missing_programs_are_named(no_ci: pytest.MonkeyPatch) -> None:
    with pytest.raises(pytest.skip.Exception, match="no-such-program-here not installed"):
        require_programs("sh", "no-such-program-here")
