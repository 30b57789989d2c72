"""Configuration: environment parsing and the refusals that keep production safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app
from app.config import DEV_SECRET, ConfigError, from_environ
from tests.factories import TEST_SECRET, make_app
from tests.prerequisites import ROOT


def test_environment_overrides_defaults() -> None:
    settings = from_environ(
        {
            "CLICKMAP_SECRET_KEYS": "old-key, new-key",
            "CLICKMAP_DO_NOT_TRACK_DOMAINS": "example.org,intranet.example.com",
            "CLICKMAP_MAX_PART_BYTES": "1000",
            "CLICKMAP_TRACKING_BASE_URL": "https://t.example.com",
            "CLICKMAP_CTA_MIN_CLICK_RATE": "12.5",
        }
    )
    assert settings["CTA_MIN_CLICK_RATE"] == 12.5
    assert settings["SECRET_KEYS"] == ["old-key", "new-key"]
    assert settings["DO_NOT_TRACK_DOMAINS"] == ["example.org", "intranet.example.com"]
    assert settings["MAX_PART_BYTES"] == 1000
    assert settings["TRACKING_BASE_URL"] == "https://t.example.com"


def test_default_database_is_sqlite_in_instance_folder(tmp_path: Path) -> None:
    app = create_app({"TESTING": True}, instance_path=tmp_path / "instance")
    assert app.config["DATABASE_URL"].startswith("sqlite:///")
    assert app.config["DATABASE_URL"].endswith("clickmap.sqlite3")
    assert Path(app.instance_path) == tmp_path / "instance"
    assert Path(app.instance_path) in Path(app.config["DATABASE_URL"][10:]).parents
    assert Path(app.config["SPOOL_DIR"]) == tmp_path / "instance" / "spool"


BOGUS_ENVIRONMENT = {
    "CLICKMAP_DATABASE_URL": "postgresql+psycopg://nobody@192.0.2.1:1/bogus",
    "CLICKMAP_SECRET_KEYS": "bogus-key-from-the-shell",
    "CLICKMAP_TRACKING_BASE_URL": "https://bogus.example",
    "CLICKMAP_SPOOL_DIR": "/nonexistent/bogus-spool",
    "CLICKMAP_ENV": "production",
}


def test_a_config_mapping_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A developer's shell may hold CLICKMAP_* for their own instance: apps built from a
    # mapping (every test app) must not pick any of it up.
    for name, value in BOGUS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    app = make_app("sqlite://", tmp_path)
    assert app.config["DATABASE_URL"] == "sqlite://"
    assert app.config["SECRET_KEYS"] == [TEST_SECRET]
    assert app.config["SECRET_KEY"] == TEST_SECRET
    assert app.config["TRACKING_BASE_URL"] == "https://t.example.com"
    assert app.config["SPOOL_DIR"] == str(tmp_path / "spool")
    assert app.config["ENV"] == "development"
    # Settings the mapping leaves out keep their defaults, not the environment's values.
    bare = create_app({"TESTING": True}, instance_path=tmp_path / "bare")
    assert bare.config["SECRET_KEYS"] == [DEV_SECRET]
    assert bare.config["DATABASE_URL"].startswith(f"sqlite:///{tmp_path / 'bare'}")
    assert bare.config["TRACKING_BASE_URL"] == "http://127.0.0.1:5000"
    assert bare.config["ENV"] == "development"


def test_without_a_mapping_the_environment_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLICKMAP_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    monkeypatch.setenv("CLICKMAP_SECRET_KEYS", "old-key-from-env,new-key-from-env")
    monkeypatch.setenv("CLICKMAP_SPOOL_DIR", str(tmp_path / "env-spool"))
    app = create_app(instance_path=tmp_path / "instance")
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'env.sqlite3'}"
    assert app.config["SECRET_KEYS"] == ["old-key-from-env", "new-key-from-env"]
    assert app.config["SECRET_KEY"] == "new-key-from-env"
    assert app.config["SPOOL_DIR"] == str(tmp_path / "env-spool")


def test_the_suite_keeps_out_of_the_checkout_instance_folder(tmp_path: Path) -> None:
    # Every test app gets an instance folder under pytest's temporary directory (and
    # conftest checks at the end of the run that the checkout's instance/ was not touched).
    app = make_app("sqlite://", tmp_path)
    assert Path(app.instance_path) == tmp_path / "instance"
    assert ROOT / "instance" not in Path(app.instance_path).parents


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ENV": "production"}, "development secret"),
        ({"ENV": "production", "SECRET_KEYS": ["short"]}, "at least 32"),
        ({"SECRET_KEYS": []}, "non-empty"),
        ({"SECRET_KEYS": [""]}, "non-empty"),
        ({"TRACKING_BASE_URL": "t.example.com"}, "TRACKING_BASE_URL"),
        ({"TRACKING_BASE_URL": "https://t.example.com/"}, "trailing slash"),
        ({"CTA_MIN_CLICK_RATE": -1}, "CTA_MIN_CLICK_RATE"),
        ({"CTA_MIN_CLICK_RATE": 101}, "CTA_MIN_CLICK_RATE"),
        ({"CTA_MIN_CLICK_RATE": "10"}, "CTA_MIN_CLICK_RATE"),
    ],
)
def test_unsafe_configuration_is_refused(
    overrides: dict[str, object], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app({"DATABASE_URL": "sqlite://", **overrides}, instance_path=tmp_path)


def test_production_starts_with_a_real_secret(tmp_path: Path) -> None:
    app = create_app(
        {"DATABASE_URL": "sqlite://", "ENV": "production", "SECRET_KEYS": ["k" * 40]},
        instance_path=tmp_path,
    )
    assert app.config["SECRET_KEY"] == "k" * 40
    assert DEV_SECRET not in app.config["SECRET_KEYS"]


def test_database_down_is_a_clear_503(tmp_path: Path) -> None:
    # Nothing listens on port 9 of the loopback: the connection is refused at once.
    app = create_app(
        {
            "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/test?connect_timeout=2",
            "SPOOL_DIR": str(tmp_path / "spool"),
            "TESTING": True,
        },
        instance_path=tmp_path / "instance",
    )
    response = app.test_client().get(
        "/api/v1/campaigns/1", headers={"Authorization": "Bearer cm_" + "x" * 43}
    )
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"
