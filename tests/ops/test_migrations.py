"""The migrations on a fresh database of each kind: the report aggregates added by 0002 are
backfilled from clicks stored before it, and the click writer carries on exactly from there;
0003 drops the foreign keys of ``click`` and keeps its rows; 0004 adds ``login_attempt``;
0005 computes each tracked placement's ``location``; 0006 gives users a session version;
0007 labels clicks and keeps human figures beside every aggregate; 0008 counts first and
last links; 0009 gives stored clicks the country of their network; 0010 adds the marketer's
link names and CTA flags, with their history; 0011 keeps clicker sets per aggregate cell;
0012 partitions ``click`` by month on PostgreSQL, keeping every row; 0013 gives
deliveries a status and adds the ESPs' delivery events and used webhook tokens; 0014
adds opens, conversions and the campaign settings for both; 0015 keeps clicker sets per
variant part and per (link, day, segment). Every migration gives up on a lock it cannot
get in time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, bindparam, func, inspect, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.clicks import rebuild
from app.clicks.rebuild import AGGREGATES
from app.clicks.recording import ClickEvent, record_clicks
from app.db import make_engine
from app.models import (
    CampaignStats,
    Click,
    ClickSegment,
    ClickSegmentDaily,
    PartHourly,
    PartStats,
    PlacementStats,
    UTCDateTime,
)
from app.ops.migrate import alembic_config, current, upgrade
from tests.factories import (
    DESKTOP,
    clicker_sets_exact,
    first_and_last_links,
    part_and_campaign_aggregates,
)
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


def _downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema to ``revision``: ``app.ops.migrate.upgrade``'s twin, which only
    these tests need."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


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
    _downgrade(fresh, "0001")
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
    _downgrade(fresh, "0002")
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
    _downgrade(fresh, "0003")
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
    _downgrade(fresh, "0004")
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
    _downgrade(fresh, "0005")
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
    _downgrade(fresh, "0006")
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
    _downgrade(fresh, "0008")
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
    _downgrade(fresh, "0009")
    columns = {c["name"] for c in inspect(fresh).get_columns("placement")}
    assert not {"label", "cta"} & columns
    assert "placement_change" not in inspect(fresh).get_table_names()
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM placement")).scalar() == 5


def test_clicker_sets_are_filled_from_the_stored_clicks_at_upgrade(fresh: Engine) -> None:
    """0011 and 0015: every (link, hour, device), (link, device, client, country) and (link,
    day, device, client, country) cell and every variant part gets the recipients who
    clicked in it, and those who did as a human, from the stored clicks."""
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    upgrade(fresh)
    with fresh.begin() as conn:  # one recipient is a machine; clients and countries vary
        conn.execute(text("UPDATE click SET label = 'machine' WHERE recipient_id = 1"))
        conn.execute(text("UPDATE click SET client = 'Outlook', country = 'FR' WHERE id % 3 = 0"))
    with Session(fresh) as session:  # the aggregates as the writer keeps them
        for campaign in (1, 2):
            rebuild.rebuild_campaign(session, campaign)
        session.commit()
        clicker_sets_exact(session)
    _downgrade(fresh, "0010")
    assert "click_segment" not in inspect(fresh).get_table_names()
    upgrade(fresh)
    with Session(fresh) as session:
        clicker_sets_exact(session)
        segments = session.scalar(select(func.count()).select_from(ClickSegment))
        assert segments is not None and segments > 5
    # 0015 alone: the part sets and the daily segment cells, filled from the labels.
    _downgrade(fresh, "0014")
    assert "click_segment_daily" not in inspect(fresh).get_table_names()
    upgrade(fresh)
    with Session(fresh) as session:
        clicker_sets_exact(session)
        days = session.scalar(select(func.count()).select_from(ClickSegmentDaily))
        assert days is not None and days > segments


# What 0015 adds, which a comparison made at 0011 or 0012 leaves out.
_ADDED_BY_0015 = {"click_segment_daily": None, "part_stats": {"clickers", "human_clickers"}}


def _clicks_and_aggregates(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    """Every click (all columns) and every aggregate row, by table, as 0011 has them."""
    found = {}
    with engine.connect() as conn:
        for table in ("click", *(model.__tablename__ for model in AGGREGATES)):
            if table in _ADDED_BY_0015 and _ADDED_BY_0015[table] is None:
                continue
            later = _ADDED_BY_0015.get(table) or set()
            names = [c["name"] for c in inspect(conn).get_columns(table) if c["name"] not in later]
            quoted = ", ".join(f'"{name}"' for name in names)
            rows = conn.execute(text(f"SELECT {quoted} FROM {table}"))
            found[table] = {tuple(row) for row in rows}
    return found


def _partitions(engine: Engine) -> dict[str, str]:
    """PostgreSQL: ``click``'s partitions and their bounds."""
    with engine.connect() as conn:
        conn.execute(text("SET TIME ZONE 'UTC'"))
        return {
            name: bound
            for name, bound in conn.execute(
                text(
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = CAST('click' AS regclass)"
                )
            )
        }


def test_click_is_partitioned_by_month_and_keeps_every_row(fresh: Engine, backend: str) -> None:
    """0011: on PostgreSQL ``click`` becomes one partition per month with clicks, this month
    and the next two, and a default one; every click and every aggregate is kept, ids go on,
    a replay still conflicts. SQLite is left as it was. Downgrading makes one table again."""
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    with fresh.begin() as conn:  # clicks of a second month
        conn.execute(
            text("UPDATE click SET clicked_at = clicked_at + interval '40 days' WHERE id % 3 = 0")
            if backend == "postgresql"
            else text(
                "UPDATE click SET clicked_at = datetime(clicked_at, '+40 days') WHERE id % 3 = 0"
            )
        )
    upgrade(fresh, "0011")
    before = _clicks_and_aggregates(fresh)
    assert len(before["click"]) == 60
    upgrade(fresh, "0012")
    assert current(fresh) == "0012"
    assert _clicks_and_aggregates(fresh) == before
    if backend == "postgresql":
        this_month = datetime.now(UTC).date().replace(day=1)
        months = {"click_2026_03", "click_2026_04", f"click_{this_month:%Y_%m}"}
        found = _partitions(fresh)
        assert set(found) >= months | {"click_default"}
        assert found["click_default"] == "DEFAULT"
        assert found["click_2026_03"] == (
            "FOR VALUES FROM ('2026-03-01 00:00:00+00') TO ('2026-04-01 00:00:00+00')"
        )
        assert len(found) == len(months | {"click_default"}) + 2  # the two months ahead
        pk = inspect(fresh).get_pk_constraint("click")
        assert (pk["name"], pk["constrained_columns"]) == ("pk_click", ["id", "clicked_at"])
        with fresh.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM click_2026_04")).scalar() == 20
            assert conn.execute(text("SELECT count(*) FROM click_default")).scalar() == 0
    else:
        assert inspect(fresh).get_pk_constraint("click")["constrained_columns"] == ["id"]
    upgrade(fresh)  # the writer of today writes today's tables
    with Session(fresh) as session:
        part_and_campaign_aggregates(session)
        old = session.scalars(select(Click).where(Click.click_id == "old000003")).one()
        replay = ClickEvent(
            old.click_id, old.clicked_at, 1, old.variant_id, old.part, old.placement_id,
            old.recipient_id, "GET", DESKTOP, None,
        )  # fmt: skip
        new = _click(2, 1, "html", 8, T0 + timedelta(days=300))  # a month with no partition
        assert record_clicks(session, [replay, new]) == 1
        session.commit()
        # The ids go on from the old table's (a conflicting insert may use one up).
        assert session.scalar(select(func.max(Click.id))) > max(r[0] for r in before["click"])
        part_and_campaign_aggregates(session)
    after = _clicks_and_aggregates(fresh)
    _downgrade(fresh, "0011")
    assert _clicks_and_aggregates(fresh) == after
    if backend == "postgresql":
        assert _partitions(fresh) == {}
        pk = inspect(fresh).get_pk_constraint("click")
        assert pk["constrained_columns"] == ["id"]
    upgrade(fresh)
    assert _clicks_and_aggregates(fresh) == after


@pytest.mark.postgres
def test_a_migration_gives_up_on_a_lock_it_cannot_get(tmp_path: Path, pg_server: PgServer) -> None:
    """A query holding ``click`` makes the upgrade fail after the lock timeout, rather than
    queue every click writer behind it for as long as the query runs."""
    schema, url = pg_server.new_schema("clickmap_migrate")
    engine = make_engine(url)
    try:
        upgrade(engine, "0011")
        with engine.connect() as reader:
            reader.execute(text("SELECT count(*) FROM click"))  # holds its lock until rollback
            cfg = alembic_config(engine)
            cfg.attributes["lock_timeout"] = "200ms"
            started = time.monotonic()
            with (
                pytest.raises(OperationalError, match="lock timeout"),
                engine.begin() as connection,
            ):
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "0012")
            assert time.monotonic() - started < 5
            reader.rollback()
        assert current(engine) == "0011"
        upgrade(engine, "0012")
        assert current(engine) == "0012"
    finally:
        engine.dispose()
        pg_server.drop_schema(schema)


def test_deliveries_start_delivered_and_the_event_tables_come_and_go(fresh: Engine) -> None:
    """0013: recorded deliveries keep counting as delivered; the two tables and both columns
    go on downgrade, the deliveries stay."""
    upgrade(fresh, "0001")
    _store_clicks_the_old_way(fresh)
    at = bindparam("at", type_=UTCDateTime())
    with fresh.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO recipient (id, external_id, created_at) VALUES (90, 'z', :at)"
            ).bindparams(at),
            {"at": T0},
        )
        conn.execute(
            text(
                "INSERT INTO delivery (campaign_id, variant_id, recipient_id, delivered_at) "
                "VALUES (1, 1, 90, :at)"
            ).bindparams(at),
            {"at": T0},
        )
    upgrade(fresh, "0012")
    upgrade(fresh)
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT status, status_at FROM delivery")).all() == [
            ("delivered", None)
        ]
    tables = set(inspect(fresh).get_table_names())
    assert {"delivery_event", "webhook_token"} <= tables
    _downgrade(fresh, "0012")
    assert not {"delivery_event", "webhook_token"} & set(inspect(fresh).get_table_names())
    assert not {"status", "status_at"} & {c["name"] for c in inspect(fresh).get_columns("delivery")}
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM delivery")).scalar() == 1


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
    _downgrade(fresh, "0013")
    assert not OPEN_TABLES & set(inspect(fresh).get_table_names())
    columns = {c["name"] for c in inspect(fresh).get_columns("campaign")}
    assert not {"track_opens", "click_param"} & columns
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM placement")).scalar() == 5
        assert conn.execute(text("SELECT count(*) FROM click")).scalar() > 0
