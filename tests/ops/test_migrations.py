"""The migrations on a fresh database of each kind: the report aggregates added by 0002 are
backfilled from clicks stored before it, and the click writer carries on exactly from there;
0003 drops the foreign keys of ``click`` and keeps its rows; 0004 adds ``login_attempt``;
0005 computes each tracked placement's ``location``; 0006 gives users a session version;
0007 labels clicks and keeps human figures beside every aggregate; 0008 counts first and
last links; 0009 gives stored clicks the country of their network; 0010 adds the marketer's
link names and CTA flags, with their history; 0014 adds opens, conversions and the campaign
settings behind them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, bindparam, func, inspect, select, text
from sqlalchemy.orm import Session

from app.clicks.recording import ClickEvent, record_clicks
from app.db import make_engine
from app.models import CampaignStats, Click, PartHourly, PartStats, PlacementStats, UTCDateTime
from app.ops.migrate import alembic_config, current, upgrade
from tests.factories import DESKTOP, first_and_last_links, part_and_campaign_aggregates
from tests.pgserver import PgServer

NEW_TABLES = {"part_clicker", "campaign_clicker", "part_stats", "campaign_stats", "part_hourly"}
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEVICES = ("desktop", "mobile", "tablet", "other")


@pytest.fixture
def fresh(backend: str, tmp_path: Path, pg_server: PgServer) -> Iterator[Engine]:
    """An empty database (a new SQLite file, or a new PostgreSQL schema dropped after)."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrate.sqlite3'}")
        yield engine
        engine.dispose()
        return
    schema, url = pg_server.new_schema("clickmap_migrate")
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        pg_server.drop_schema(schema)


def _store_clicks_the_old_way(engine: Engine) -> None:
    """Campaigns, placements, recipients and clicks written with plain SQL at revision 0001.

    Campaign 1: variant 1 (HTML placements 1, 2; AMP placement 3) and variant 2 (HTML
    placement 4); campaign 2: variant 3 (placement 5). Recipients click in several places,
    at several hours and on several devices.
    """
    at = bindparam("at", type_=UTCDateTime())
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO campaign (id, name, created_at) "
                "VALUES (1, 'one', :at), (2, 'two', :at)"
            ).bindparams(at),
            {"at": T0},
        )
        conn.execute(
            text(
                "INSERT INTO variant (id, campaign_id, name, html, amp) VALUES "
                "(1, 1, 'A', '<a>', '<a>'), (2, 1, 'B', '<a>', NULL), (3, 2, 'A', '<a>', NULL)"
            )
        )
        for placement, campaign, variant, part, position in [
            (1, 1, 1, "html", 0),
            (2, 1, 1, "html", 1),
            (3, 1, 1, "amp", 0),
            (4, 1, 2, "html", 0),
            (5, 2, 3, "html", 0),
        ]:
            conn.execute(
                text(
                    "INSERT INTO placement (id, campaign_id, variant_id, part, position, kind, "
                    "href, destination, text, tracked, occurrences) VALUES (:id, :campaign, "
                    ":variant, :part, :position, 'a', 'h', 'https://e', '', :tracked, 1)"
                ),
                {
                    "id": placement,
                    "campaign": campaign,
                    "variant": variant,
                    "part": part,
                    "position": position,
                    "tracked": True,
                },
            )
        for recipient in range(1, 9):
            conn.execute(
                text(
                    "INSERT INTO recipient (id, external_id, created_at) VALUES (:id, :ext, :at)"
                ).bindparams(at),
                {"id": recipient, "ext": f"r{recipient}", "at": T0},
            )
        placements = {1: (1, 1, "html"), 2: (1, 1, "html"), 3: (1, 1, "amp"), 4: (1, 2, "html")}
        placements[5] = (2, 3, "html")
        for n in range(60):
            placement = 1 + (n * 3) % 5
            campaign, variant, part = placements[placement]
            conn.execute(
                text(
                    "INSERT INTO click (click_id, clicked_at, campaign_id, variant_id, part, "
                    "placement_id, recipient_id, method, user_agent, device) VALUES (:click_id, "
                    ":at, :campaign, :variant, :part, :placement, :recipient, 'GET', '', :device)"
                ).bindparams(at),
                {
                    "click_id": f"old{n:06d}",
                    "at": T0 + timedelta(minutes=23 * n, seconds=n, microseconds=n),
                    "campaign": campaign,
                    "variant": variant,
                    "part": part,
                    "placement": placement,
                    "recipient": 1 + n % 7,
                    "device": DEVICES[n % 4],
                },
            )


def _click(placement: int, variant: int, part: str, recipient: int, at: datetime) -> ClickEvent:
    campaign = 2 if placement == 5 else 1
    return ClickEvent(
        secrets.token_hex(16),
        at,
        campaign,
        variant,
        part,
        placement,
        recipient,
        "GET",
        DESKTOP,
        None,
    )


def test_upgrade_backfills_the_report_aggregates(fresh: Engine) -> None:
    upgrade(fresh, "0001")
    assert current(fresh) == "0001"
    assert not NEW_TABLES & set(inspect(fresh).get_table_names())
    _store_clicks_the_old_way(fresh)
    upgrade(fresh, "0002")
    assert current(fresh) == "0002"
    with Session(fresh) as session:
        found = part_and_campaign_aggregates(session)
        assert found["campaigns"] == {1: (48, 7), 2: (12, 7)}
        assert sum(n for n, _ in found["parts"].values()) == 60
    upgrade(fresh)
    with Session(fresh) as session:
        # The writer goes on from the backfill: known clickers add totals only, a newcomer
        # adds a clicker to the part and the campaign, and clicks in an hour that already
        # has a bucket land in that bucket (the backfill wrote hours as the writer does).
        first_hour = T0 + timedelta(minutes=5)
        buckets = session.scalar(select(func.count()).select_from(PartHourly))
        new = [
            _click(1, 1, "html", 1, first_hour),  # recipient 1 clicked placement 1 at T0, desktop
            _click(4, 2, "html", 2, first_hour),  # a new bucket: B had a mobile click then
            _click(3, 1, "amp", 8, T0 + timedelta(days=9)),
        ]
        assert record_clicks(session, new) == 3
        session.commit()
        found = part_and_campaign_aggregates(session)
        assert found["campaigns"] == {1: (51, 8), 2: (12, 7)}
        assert session.scalar(select(func.count()).select_from(PartHourly)) == (buckets or 0) + 2
        part = session.get(PartStats, (1, 1, "amp"))
        assert part is not None and part.unique == found["parts"][(1, 1, "amp")][1]


def test_downgrade_drops_and_upgrade_refills(fresh: Engine) -> None:
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    upgrade(fresh)
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")
    assert current(fresh) == "0001"
    assert not NEW_TABLES & set(inspect(fresh).get_table_names())
    upgrade(fresh)
    with Session(fresh) as session:
        part_and_campaign_aggregates(session)
        assert session.get(CampaignStats, 2) is not None


def test_upgrade_of_an_install_without_clicks(fresh: Engine) -> None:
    upgrade(fresh)
    assert set(inspect(fresh).get_table_names()) >= NEW_TABLES
    with Session(fresh) as session:
        assert part_and_campaign_aggregates(session) == {"parts": {}, "campaigns": {}}


CLICK_KEYS = {
    "fk_click_campaign_id_campaign": ("campaign_id", "campaign"),
    "fk_click_placement_id_placement": ("placement_id", "placement"),
    "fk_click_recipient_id_recipient": ("recipient_id", "recipient"),
    "fk_click_variant_id_variant": ("variant_id", "variant"),
}


def _click_keys(engine: Engine) -> dict[str, tuple[str, str]]:
    return {
        str(fk["name"]): (fk["constrained_columns"][0], fk["referred_table"])
        for fk in inspect(engine).get_foreign_keys("click")
    }


def _click_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM click")).scalar_one())


def test_click_loses_its_foreign_keys_and_keeps_its_rows(fresh: Engine) -> None:
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    upgrade(fresh, "0002")
    assert _click_keys(fresh) == CLICK_KEYS
    upgrade(fresh, "0003")
    assert current(fresh) == "0003"
    assert inspect(fresh).get_foreign_keys("click") == []
    assert {ix["name"] for ix in inspect(fresh).get_indexes("click")} >= {
        "ix_click_campaign_clicked_at",
        "ix_click_placement_clicked_at",
    }
    assert _click_count(fresh) == 60
    # The pair rows still check the parents of every click the writer stores.
    pair_keys = {
        (fk["constrained_columns"][0], fk["referred_table"], fk["options"].get("ondelete"))
        for fk in inspect(fresh).get_foreign_keys("placement_recipient")
    }
    assert pair_keys == {
        ("campaign_id", "campaign", "CASCADE"),
        ("placement_id", "placement", "CASCADE"),
        ("recipient_id", "recipient", "CASCADE"),
    }
    with fresh.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO click (click_id, clicked_at, campaign_id, variant_id, part, "
                "placement_id, recipient_id, method, user_agent, device) VALUES ('later', "
                ":at, 1, 1, 'html', 2, 8, 'GET', '', 'other')"
            ).bindparams(bindparam("at", type_=UTCDateTime())),
            {"at": T0 + timedelta(days=1)},
        )
    assert _click_count(fresh) == 61

    # A click whose placement is gone (no cascade removes it any more) is deleted by the
    # downgrade, as the cascade would have; the rest keep their rows and get their keys back.
    with fresh.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO click (click_id, clicked_at, campaign_id, variant_id, part, "
                "placement_id, recipient_id, method, user_agent, device) VALUES ('orphan', "
                ":at, 1, 1, 'html', 999999, 1, 'GET', '', 'other')"
            ).bindparams(bindparam("at", type_=UTCDateTime())),
            {"at": T0},
        )
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0002")
    assert current(fresh) == "0002"
    assert _click_keys(fresh) == CLICK_KEYS
    assert all(
        fk["options"].get("ondelete") == "CASCADE"
        for fk in inspect(fresh).get_foreign_keys("click")
    )
    assert _click_count(fresh) == 61


def test_login_attempts_table_comes_and_goes(fresh: Engine) -> None:
    upgrade(fresh, "0004")
    assert current(fresh) == "0004"
    assert {c["name"] for c in inspect(fresh).get_columns("login_attempt")} == {
        "id",
        "username",
        "network",
        "attempted_at",
    }
    assert {ix["name"] for ix in inspect(fresh).get_indexes("login_attempt")} == {
        "ix_login_attempt_username_network",
        "ix_login_attempt_network",
        "ix_login_attempt_attempted_at",
    }
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0003")
    assert "login_attempt" not in inspect(fresh).get_table_names()


def test_placements_get_the_browsers_location_at_upgrade(fresh: Engine) -> None:
    """Destinations stored before 0005 are parsed again: each tracked placement gets the
    Location a browser would request, UTM included, and one the parser refuses is skipped."""
    upgrade(fresh, "0004")
    at = bindparam("at", type_=UTCDateTime())
    rows = [
        (1, "https://faß.de/x?a=%7e#f", True, "https://xn--fa-hia.de/x?a=%7e&utm_source=n#f"),
        (2, "https://example.com\\@evil.com/", True, "https://example.com/@evil.com/?utm_source=n"),
        (3, "https://exa mple.com/", True, None),
        (4, "https://skipped.example/", False, None),
    ]
    with fresh.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO campaign (id, name, created_at, utm) "
                """VALUES (1, 'one', :at, '{"utm_source": "n"}')"""
            ).bindparams(at),
            {"at": T0},
        )
        conn.execute(
            text("INSERT INTO variant (id, campaign_id, name, html) VALUES (1, 1, 'A', '')")
        )
        for position, destination, tracked, _location in rows:
            conn.execute(
                text(
                    "INSERT INTO placement (id, campaign_id, variant_id, part, position, kind, "
                    "href, destination, text, tracked, occurrences) VALUES (:id, 1, 1, 'html', "
                    ":id, 'a', :d, :d, '', :tracked, 1)"
                ),
                {"id": position, "d": destination, "tracked": tracked},
            )
    upgrade(fresh)
    with fresh.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT id, destination, location, tracked, skip_reason FROM placement ORDER BY id"
            )
        ).all()
    assert [(r.id, r.location, bool(r.tracked)) for r in stored] == [
        (1, rows[0][3], True),
        (2, rows[1][3], True),
        (3, None, False),
        (4, None, False),
    ]
    assert stored[0].destination == "https://xn--fa-hia.de/x?a=%7e#f"
    assert stored[2].skip_reason == "invalid_url"
    assert stored[3].destination == "https://skipped.example/"
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0004")
    assert "location" not in {c["name"] for c in inspect(fresh).get_columns("placement")}


def test_users_get_a_session_version_at_upgrade(fresh: Engine) -> None:
    """0006: existing users keep their rows and can log in (version 0); downgrading drops
    the column again."""
    upgrade(fresh, "0005")
    at = bindparam("at", type_=UTCDateTime())
    with fresh.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO user_account (id, username, password_hash, created_at) "
                "VALUES (1, 'ana', 'scrypt:x', :at)"
            ).bindparams(at),
            {"at": T0},
        )
    upgrade(fresh)
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT username, session_version FROM user_account")).all() == [
            ("ana", 0)
        ]
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0005")
    assert "session_version" not in {c["name"] for c in inspect(fresh).get_columns("user_account")}
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT username FROM user_account")).scalars().all() == ["ana"]


def test_stored_clicks_start_human_and_every_human_figure_equals_the_total(
    fresh: Engine,
) -> None:
    """0007: clicks stored before it were never judged, so they start human and reports
    read exactly as before; the writer labels from there, and downgrading drops it all."""
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    upgrade(fresh, "0006")
    upgrade(fresh)
    with Session(fresh) as session:
        assert set(session.scalars(select(Click.label).distinct())) == {"human"}
        stats = session.get(CampaignStats, 1)
        assert stats is not None and (stats.human_total, stats.human_unique) == (48, 7)
        for table, counter, human in (
            ("placement_recipient", "clicks", "human_clicks"),
            ("placement_stats", '"unique"', "human_unique"),
            ("part_stats", "total", "human_total"),
            ("part_stats", '"unique"', "human_unique"),
            ("click_hourly", "total", "human_total"),
            ("part_hourly", "total", "human_total"),
        ):
            unequal = f"SELECT count(*) FROM {table} WHERE {counter} <> {human}"
            assert session.scalar(text(unequal)) == 0, table
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0006")
    assert "label" not in {c["name"] for c in inspect(fresh).get_columns("click")}
    assert "machine_reasons" not in inspect(fresh).get_table_names()


def test_first_and_last_links_are_counted_at_upgrade(fresh: Engine) -> None:
    """0008: each link's first and last clickers, of all clicks and of human ones, counted
    from the stored clicks exactly as the writer would have kept them."""
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    upgrade(fresh, "0007")
    with fresh.begin() as conn:  # one recipient's clicks turn out to be a machine's
        conn.execute(text("UPDATE click SET label = 'machine' WHERE recipient_id = 1"))
        # The rows the writer keeps for every clicked link (the clicks above were written
        # without it).
        conn.execute(
            text(
                'INSERT INTO placement_stats (placement_id, campaign_id, total, "unique") '
                "SELECT placement_id, min(campaign_id), count(*), 0 FROM click "
                "GROUP BY placement_id"
            )
        )
    upgrade(fresh)  # 0010 too, which must not cascade-delete these rows from ``placement``
    with Session(fresh) as session:
        for human_only in (True, False):
            kept = {
                s.placement_id: (
                    (s.human_first_clickers, s.human_last_clickers)
                    if human_only
                    else (s.first_clickers, s.last_clickers)
                )
                for s in session.scalars(select(PlacementStats))
            }
            expected = first_and_last_links(session, human_only)
            assert {p: kept.get(p, (0, 0)) for p in expected} == expected, human_only
        assert sum(s.first_clickers for s in session.scalars(select(PlacementStats))) > sum(
            s.human_first_clickers for s in session.scalars(select(PlacementStats))
        )


def test_stored_clicks_get_the_country_of_their_network_at_upgrade(fresh: Engine) -> None:
    """0009: clicks stored before it get the country their stored network is registered to,
    so a country view covers the campaign's whole history; downgrading drops the column."""
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    networks = {"old000000": "8.8.8.0/24", "old000001": "2001:67c:2e8::/48"}
    networks["old000002"] = "192.0.2.0/24"  # documentation: no country
    with fresh.begin() as conn:
        for click_id, network in networks.items():
            conn.execute(
                text("UPDATE click SET ip_prefix = :network WHERE click_id = :click_id"),
                {"network": network, "click_id": click_id},
            )
    upgrade(fresh, "0008")
    upgrade(fresh, "0009")
    with Session(fresh) as session:
        found = {
            c: country for c, country in session.execute(select(Click.click_id, Click.country))
        }
    assert (found["old000000"], found["old000001"], found["old000002"]) == ("US", "NL", None)
    assert found["old000003"] is None  # stored without an address
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0008")
    assert "country" not in {c["name"] for c in inspect(fresh).get_columns("click")}


def test_placements_start_unnamed_and_no_cta_and_changes_are_recorded(fresh: Engine) -> None:
    """0010: existing links keep their rows, without a name and not a CTA; the history
    table takes who changed what and goes, with both columns, on downgrade."""
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    upgrade(fresh, "0009")
    upgrade(fresh)
    at = bindparam("at", type_=UTCDateTime())
    with fresh.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM placement")).scalar() == 5
        unset = "SELECT count(*) FROM placement WHERE label IS NULL AND cta = :no"
        assert conn.execute(text(unset), {"no": False}).scalar() == 5
        conn.execute(
            text(
                "INSERT INTO user_account (id, username, password_hash, created_at) "
                "VALUES (1, 'ana', 'scrypt:x', :at)"
            ).bindparams(at),
            {"at": T0},
        )
        conn.execute(
            text(
                "INSERT INTO placement_change (campaign_id, placement_id, user_id, username, "
                "field, old_value, new_value, changed_at) "
                "VALUES (1, 2, 1, 'ana', 'label', NULL, 'Hero', :at)"
            ).bindparams(at),
            {"at": T0},
        )
        conn.execute(text("DELETE FROM user_account"))
        # The history outlives the account, and still says who it was.
        assert conn.execute(text("SELECT user_id, username FROM placement_change")).all() == [
            (None, "ana")
        ]
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0009")
    columns = {c["name"] for c in inspect(fresh).get_columns("placement")}
    assert not {"label", "cta"} & columns
    assert "placement_change" not in inspect(fresh).get_table_names()
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM placement")).scalar() == 5


OPEN_TABLES = {"sent_email", "email_open", "open_recipient", "open_stats", "conversion"}


def test_campaigns_track_opens_and_the_funnel_tables_come_and_go(fresh: Engine) -> None:
    """0014: existing campaigns get the open pixel and no click parameter, nothing they hold
    is lost (no table copy, so no cascade), and the schema is exactly the models'; a
    downgrade drops the tables and both columns."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.db import Base

    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    upgrade(fresh, "0013")
    upgrade(fresh)
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM placement")).scalar() == 5
        settings = conn.execute(text("SELECT track_opens, click_param FROM campaign")).all()
        assert settings and all(bool(on) and param is None for on, param in settings)
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if any(name in repr(d) for name in (*OPEN_TABLES, "track_opens"))]
    assert ours == []
    cfg = alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0013")
    assert not OPEN_TABLES & set(inspect(fresh).get_table_names())
    columns = {c["name"] for c in inspect(fresh).get_columns("campaign")}
    assert not {"track_opens", "click_param"} & columns
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM placement")).scalar() == 5
        assert conn.execute(text("SELECT count(*) FROM click")).scalar() > 0
