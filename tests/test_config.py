"""Configuration: environment parsing and the refusals that keep production safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app
from app.config import DEV_SECRET, ConfigError, from_environ


def test_environment_overrides_defaults() -> None:
    settings = from_environ(
        {
            "CLICKMAP_SECRET_KEYS": "old-key, new-key",
            "CLICKMAP_DO_NOT_TRACK_DOMAINS": "example.org,intranet.example.com",
            "CLICKMAP_MAX_PART_BYTES": "1000",
            "CLICKMAP_TRACKING_BASE_URL": "https://t.example.com",
        }
    )
    assert settings["SECRET_KEYS"] == ["old-key", "new-key"]
    assert settings["DO_NOT_TRACK_DOMAINS"] == ["example.org", "intranet.example.com"]
    assert settings["MAX_PART_BYTES"] == 1000
    assert settings["TRACKING_BASE_URL"] == "https://t.example.com"


def test_default_database_is_sqlite_in_instance_folder() -> None:
    app = create_app({"TESTING": True})
    assert app.config["DATABASE_URL"].startswith("sqlite:///")
    assert app.config["DATABASE_URL"].endswith("clickmap.sqlite3")
    assert Path(app.instance_path) in Path(app.config["DATABASE_URL"][10:]).parents


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ENV": "production"}, "development secret"),
        ({"ENV": "production", "SECRET_KEYS": ["short"]}, "at least 32"),
        ({"SECRET_KEYS": []}, "non-empty"),
        ({"SECRET_KEYS": [""]}, "non-empty"),
        ({"TRACKING_BASE_URL": "t.example.com"}, "TRACKING_BASE_URL"),
        ({"TRACKING_BASE_URL": "https://t.example.com/"}, "trailing slash"),
    ],
)
def test_unsafe_configuration_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app({"DATABASE_URL": "sqlite://", **overrides})


def test_production_starts_with_a_real_secret() -> None:
    app = create_app({"DATABASE_URL": "sqlite://", "ENV": "production", "SECRET_KEYS": ["k" * 40]})
    assert app.config["SECRET_KEY"] == "k" * 40
    assert DEV_SECRET not in app.config["SECRET_KEYS"]


def test_database_down_is_a_clear_503(tmp_path: Path) -> None:
    # Nothing listens on port 9 of the loopback: the connection is refused at once.
    app = create_app(
        {
            "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/test?connect_timeout=2",
            "SPOOL_DIR": str(tmp_path / "spool"),
            "TESTING": True,
        }
    )
    response = app.test_client().get(
        "/api/v1/campaigns/1", headers={"Authorization": "Bearer cm_" + "x" * 43}
    )
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"
