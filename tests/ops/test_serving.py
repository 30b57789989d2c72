"""Many redirectors, one database: three ``clickmap serve`` instances, each with its own
spool and writer, store clicks in one PostgreSQL under load.

Every 302 any instance answered must be stored exactly once, wherever the same link was
clicked again; a spool replayed after everything is stored must add nothing; the writers,
racing, make the click table's month once; and the aggregates the three writers kept must
equal a rebuild from the raw clicks (``clickmap stats rebuild``).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from app.clicks import partitions
from app.clicks.rebuild import AGGREGATES
from app.clicks.spool import SpoolReader
from app.clicks.writer import ClickWriter
from app.db import get_engine
from app.models import Click
from tests.factories import (
    Load,
    Server,
    clicks_per_recipient,
    human_aggregates,
    make_app,
    own_database,
    part_and_campaign_aggregates,
    recipient_ids,
    rows,
    seed,
)
from tests.pgserver import PgServer

INSTANCES = 3
RECIPIENTS = 2700  # one token each, a third per instance
AGAIN = 300  # tokens clicked a second time, on the next instance


def _aggregates(session: Session) -> dict[str, set[tuple[Any, ...]]]:
    session.expire_all()
    return {
        model.__tablename__: rows(session, select(*model.__table__.columns)) for model in AGGREGATES
    }


@pytest.mark.slow
@pytest.mark.postgres
def test_three_instances_store_every_click_once(tmp_path: Path, pg_server: PgServer) -> None:
    with own_database("postgresql", tmp_path, pg_server) as url:
        tokens = seed(url, tmp_path, RECIPIENTS)
        recipients = recipient_ids(url, RECIPIENTS)
        # No partition for this month (or the next, should the run cross midnight at the end
        # of one): the three writers must make it while clicks arrive, once between them.
        now = partitions.month_of(datetime.now(UTC))
        engine = create_engine(url)
        with engine.begin() as conn:
            for month in partitions.months_from(now, 1):
                conn.execute(text(f"DROP TABLE {partitions.partition_name(month)}"))
        engine.dispose()
        servers = [
            Server(url, tmp_path / f"spool{i}", tmp_path / f"server{i}.log", workers=1, cli=True)
            for i in range(INSTANCES)
        ]
        try:
            for server in servers:
                server.start()
            # Each instance its third of the tokens, and the next instance's first few again.
            third = RECIPIENTS // INSTANCES
            plans = []
            for i in range(INSTANCES):
                mine = list(range(i * third, (i + 1) * third))
                ahead = (i + 1) % INSTANCES
                again = list(range(ahead * third, ahead * third + AGAIN // INSTANCES))
                plans.append(mine + again)
            loads = [
                Load(server, [tokens[t] for t in plan], threads=3, seconds=90)
                for server, plan in zip(servers, plans, strict=True)
            ]
            replayed = tmp_path / "replayed"
            for load in loads:
                load.__enter__()
            loads[0].wait_for(len(plans[0]) // 2)
            # A copy of one instance's spool halfway, without its checkpoints: replayed from
            # the start at the end, it must add nothing.
            ignored = shutil.ignore_patterns("*.lock", "*.done", "writer.status")
            shutil.copytree(servers[0].spool, replayed, ignore=ignored)
            assert list(replayed.glob("*.clicks"))
            for load, plan in zip(loads, plans, strict=True):
                load.wait_for(len(plan), seconds=90)
                load.stop()
            for load in loads:
                assert (load.errors, set(load.statuses)) == (0, {302}), load.statuses
            expected: dict[int, int] = {}
            for load, plan in zip(loads, plans, strict=True):
                for index in load.redirected:
                    recipient = recipients[plan[index]]
                    expected[recipient] = expected.get(recipient, 0) + 1
            assert sum(expected.values()) == RECIPIENTS + AGAIN
            for server in servers:
                server.stop()  # gracefully: each writer stores what its spool holds
            for server in servers:  # nothing left unstored (a stored file may wait to go)
                reader = SpoolReader(server.spool)
                reader.scan()
                assert reader.pending() == 0, server.log.read_text()[-3000:]
                reader.close()
            assert clicks_per_recipient(url) == expected
        finally:
            for server in servers:
                server.kill()

        app = make_app(url, tmp_path / "check")
        factory = app.extensions["clickmap.sessionmaker"]
        try:
            writer = ClickWriter(factory, str(replayed), 0.0)
            assert writer.cycle()
            assert writer.reader.pending() == 0
            writer.close()
            assert list(replayed.glob("*.clicks")) == []  # all read, and every click known
            assert clicks_per_recipient(url) == expected
            with factory() as session:
                connection = session.connection()
                assert now in partitions.existing_months(connection)
                # Should a writer have lost the race for a lock, its clicks wait in the
                # default partition; the maintenance command moves them to their month.
                result = app.test_cli_runner().invoke(args=["clicks", "partitions"])
                assert result.exit_code == 0, result.output
                assert "; 0 clicks in click_default" in result.output
                in_month = f"SELECT count(*) FROM {partitions.partition_name(now)}"
                assert session.scalar(text(in_month)) == RECIPIENTS + AGAIN
                session.rollback()

                part_and_campaign_aggregates(session)
                human_aggregates(session)
                kept = _aggregates(session)
                session.rollback()
                result = app.test_cli_runner().invoke(args=["stats", "rebuild"])
                assert result.exit_code == 0, result.output
                assert f"aggregates rebuilt from {RECIPIENTS + AGAIN:,} clicks" in result.output
                assert _aggregates(session) == kept
                total = session.scalar(select(func.count()).select_from(Click))
                assert total == RECIPIENTS + AGAIN
        finally:
            get_engine(app).dispose()
