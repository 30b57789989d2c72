"""The click table's months: made ahead by the writer and by ``clickmap clicks partitions``
(PostgreSQL), and dropped whole by ``clickmap clicks drop-month`` (both databases), with
the aggregates rebuilt so that no report counts a dropped click."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.clicks import partitions
from app.clicks.recording import record_clicks
from app.clicks.spool import Spool
from app.clicks.writer import ClickWriter
from app.models import CampaignStats, Click
from tests.factories import (
    click_event,
    human_aggregates,
    make_campaign,
    part_and_campaign_aggregates,
    placement,
    recipients,
)

# Months no other test writes in: partitions made here outlive the test in the run's schema.
JULY = datetime(2019, 7, 14, 10, 0, tzinfo=UTC)
AUGUST = datetime(2019, 8, 2, 16, 0, tzinfo=UTC)


def _in_partition(session: Session, name: str) -> int:
    return int(session.scalar(text(f"SELECT count(*) FROM {name}")) or 0)


def _writer(app: Flask) -> ClickWriter:
    return ClickWriter(app.extensions["clickmap.sessionmaker"], app.config["SPOOL_DIR"], 0.0)


@pytest.mark.parametrize(
    ("moment", "month", "name"),
    [
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), date(2026, 12, 1), "click_2026_12"),
        # Just past midnight in UTC, still the 31st in New York: the UTC month counts.
        (datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC), date(2027, 1, 1), "click_2027_01"),
    ],
)
def test_a_click_belongs_to_its_utc_month(moment: datetime, month: date, name: str) -> None:
    assert partitions.month_of(moment) == month
    assert partitions.partition_name(month) == name
    assert partitions.months_from(date(2026, 11, 1), 2) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2027, 1, 1),
    ]


@pytest.mark.parametrize("value", ["2026-13", "2026-1", "26-01", "2026-01-01", "", "may"])
def test_a_month_is_written_year_dash_month(value: str) -> None:
    with pytest.raises(ValueError):
        partitions.parse_month(value)


def test_the_writer_makes_the_months_it_sees_and_moves_clicks_out_of_the_default(
    app: Flask, session: Session, backend: str
) -> None:
    campaign = make_campaign(session)
    who = recipients(session, "ann", "bob")
    session.commit()
    link = placement(campaign, 0)
    # Stored without the writer (whose first sight of a month makes it): July has no
    # partition yet, so on PostgreSQL these wait in the default one.
    early = [click_event(link, who["ann"], JULY + timedelta(minutes=n)) for n in range(3)]
    assert record_clicks(session, early) == 3
    session.commit()
    if backend == "postgresql":
        assert _in_partition(session, "click_default") == 3
    session.rollback()  # a reader of the default partition would keep the writer waiting
    spool = Spool(app.config["SPOOL_DIR"])
    later = [click_event(link, who["bob"], JULY + timedelta(hours=n)) for n in range(4)]
    for event in [*later, early[0], later[1]]:  # with two replays
        spool.append(event.to_record())
    spool.close()
    writer = _writer(app)
    assert writer.cycle()
    writer.close()
    assert session.scalar(select(func.count()).select_from(Click)) == 7
    if backend == "postgresql":
        assert {date(2019, 7, 1), date(2019, 8, 1), date(2019, 9, 1)} <= writer.months_ready
        assert _in_partition(session, "click_2019_07") == 7
        assert _in_partition(session, "click_default") == 0
        assert {date(2019, 8, 1), date(2019, 9, 1)} <= partitions.existing_months(
            session.connection()
        )
    part_and_campaign_aggregates(session)
    human_aggregates(session)


def test_partitions_command_makes_months_ahead(runner: FlaskCliRunner, backend: str) -> None:
    result = runner.invoke(args=["clicks", "partitions", "--ahead", "4"])
    assert result.exit_code == 0, result.output
    if backend == "sqlite":
        assert "not partitioned on sqlite: nothing to do" in result.output
        return
    this_month = datetime.now(UTC).date().replace(day=1)
    last = partitions.months_from(this_month, 4)[-1]
    assert f"to {last:%Y-%m}; 0 clicks in click_default" in result.output
    again = runner.invoke(args=["clicks", "partitions", "--ahead", "4"])
    assert "created" not in again.output  # safe to repeat


def _two_months(session: Session) -> tuple[int, int]:
    """Campaign one: clicks in July and August; campaign two: July only."""
    one, two = make_campaign(session, "One"), make_campaign(session, "Two")
    who = recipients(session, "ann", "bob", "cid")
    events = []
    for n, name in enumerate(["ann", "bob", "cid", "ann"]):
        events.append(click_event(placement(one, n % 2), who[name], JULY + timedelta(hours=n)))
        events.append(click_event(placement(one, 1), who[name], AUGUST + timedelta(hours=n)))
    events.append(click_event(placement(two, 0), who["bob"], JULY))
    assert record_clicks(session, events) == 9
    session.commit()
    return one.id, two.id


def test_drop_month_removes_the_month_and_rebuilds_its_campaigns(
    runner: FlaskCliRunner, session: Session, backend: str
) -> None:
    one, two = _two_months(session)
    if backend == "postgresql":  # July in its partition, August in the default one
        partitions.ensure_months(session.connection(), [date(2019, 7, 1)])
        session.commit()
    result = runner.invoke(args=["clicks", "drop-month", "2019-07", "--yes"])
    assert result.exit_code == 0, result.output
    assert f"campaign {one}: 4 clicks dropped, aggregates rebuilt from the 4 left" in result.output
    assert f"campaign {two}: 1 clicks dropped, aggregates rebuilt from the 0 left" in result.output
    assert "2019-07: 5 clicks dropped" in result.output
    session.expire_all()
    left = session.scalars(select(Click.clicked_at)).all()
    assert len(left) == 4 and all(at >= AUGUST for at in left)
    if backend == "postgresql":
        assert date(2019, 7, 1) not in partitions.existing_months(session.connection())
    # Every figure is what the clicks left say, and campaign two has none at all.
    part_and_campaign_aggregates(session)
    human_aggregates(session)
    stats = session.get(CampaignStats, one)
    assert stats is not None and (stats.total, stats.unique) == (4, 3)
    assert session.get(CampaignStats, two) is None
    again = runner.invoke(args=["clicks", "drop-month", "2019-07", "--yes"])
    assert (again.exit_code, again.output) == (0, "no clicks in 2019-07\n")


def test_drop_month_asks_first_and_refuses_months_not_over(
    runner: FlaskCliRunner, session: Session
) -> None:
    _two_months(session)
    result = runner.invoke(args=["clicks", "drop-month", "2019-07"], input="n\n")
    assert result.exit_code == 1
    assert "Delete 5 clicks of 2019-07 for good, and rebuild the aggregates of campaigns" in (
        result.output
    )
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Click)) == 9
    this_month = f"{datetime.now(UTC):%Y-%m}"
    refused = runner.invoke(args=["clicks", "drop-month", this_month, "--yes"])
    assert refused.exit_code == 2
    assert "not over yet" in refused.output
    bad = runner.invoke(args=["clicks", "drop-month", "2019-7", "--yes"])
    assert bad.exit_code == 2
    assert "a month is written YYYY-MM" in bad.output


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_click_of_the_month_arriving_for_another_campaign_stops_the_drop(
    app: Flask, session: Session
) -> None:
    """Between the rebuilds and the drop, a late click of the month for a campaign that was
    not rebuilt would be dropped uncounted-for: nothing is dropped instead."""
    one, two = make_campaign(session, "One"), make_campaign(session, "Two")
    who = recipients(session, "ann")
    assert record_clicks(session, [click_event(placement(one, 0), who["ann"], JULY)]) == 1
    assert record_clicks(session, [click_event(placement(two, 0), who["ann"], AUGUST)]) == 1
    session.commit()
    partitions.ensure_months(session.connection(), [date(2019, 7, 1)])
    session.commit()
    late = click_event(placement(two, 0), who["ann"], JULY + timedelta(days=1))

    def meanwhile(_campaign: int, _read: int) -> None:
        with app.extensions["clickmap.sessionmaker"]() as other:
            assert record_clicks(other, [late]) == 1
            other.commit()

    with app.extensions["clickmap.sessionmaker"]() as dropping:
        with pytest.raises(partitions.MonthChanged):
            partitions.drop_month(dropping, date(2019, 7, 1), meanwhile)
        dropping.rollback()
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Click)) == 3
    assert date(2019, 7, 1) in partitions.existing_months(session.connection())
    part_and_campaign_aggregates(session)
