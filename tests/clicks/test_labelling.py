"""Labels given by the writer, on each database: every stored click carries the verdict the
rules give it among all of its recipient's clicks, a label changes when later clicks bring
new evidence, and the human figures of every aggregate stay exact through it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clicks import rebuild
from app.clicks.machines import DEFAULT_THRESHOLDS
from app.clicks.recording import ClickEvent, record_clicks
from app.ingest import campaigns
from app.ingest.campaigns import record_deliveries
from app.models import Campaign, CampaignStats, Click, PlacementStats
from tests.factories import (
    SENT,
    click_event,
    email_with_links,
    human_aggregates,
    part_and_campaign_aggregates,
    race_writers,
    recipients,
)


def five_links(session: Session) -> Campaign:
    """A campaign of five tracked links, delivered to ann and bob at ``SENT``."""
    created = campaigns.create_campaign(
        session,
        "Five",
        [campaigns.VariantInput("A", email_with_links(5))],
        rules=campaigns.LinkRules(),
        max_part_bytes=1_000_000,
    )
    record_deliveries(session, created.campaign, "A", ["ann", "bob"], delivered_at=SENT)
    session.flush()
    return created.campaign


def event(
    campaign: Campaign, link: int, recipient: int, at: datetime, **request: Any
) -> ClickEvent:
    """A click on the campaign's tracked link number ``link`` (from 0), from a browser on
    one network unless ``request`` says otherwise (``method``, ``user_agent``, ``purpose``)."""
    placement = [p for p in campaign.variants[0].placements if p.tracked][link]
    return click_event(placement, recipient, at, ip_prefix="198.51.100.0/24", **request)


SLACKBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


def labels(session: Session) -> list[tuple[str, str]]:
    session.expire_all()
    return [(c.label, c.reasons) for c in session.scalars(select(Click).order_by(Click.clicked_at))]


def stats(session: Session, campaign: Campaign) -> tuple[int, int, int, int]:
    session.expire_all()
    found = session.get(CampaignStats, campaign.id)
    assert found is not None
    return found.total, found.unique, found.human_total, found.human_unique


def test_a_sweep_split_across_batches_is_relabelled_and_the_figures_follow(
    session: Session,
) -> None:
    """Two quick clicks look human on their own; the next batch completes a sweep of every
    link, and the first two become machine with it. A person's click ten minutes later
    stays human, and every human figure equals a count over the labels."""
    campaign = five_links(session)
    ann = recipients(session, "ann")["ann"]
    scan = SENT + timedelta(minutes=3)
    assert (
        record_clicks(
            session, [event(campaign, i, ann, scan + timedelta(seconds=i)) for i in (0, 1)]
        )
        == 2
    )
    assert labels(session) == [("human", ""), ("human", "")]
    assert stats(session, campaign) == (2, 1, 2, 1)
    human_aggregates(session)

    later = [event(campaign, i, ann, scan + timedelta(seconds=i)) for i in (2, 3, 4)]
    person = event(campaign, 1, ann, scan + timedelta(minutes=10))
    assert record_clicks(session, [*later, person]) == 4
    assert labels(session) == [("machine", "sweep")] * 5 + [("human", "")]
    assert stats(session, campaign) == (6, 1, 1, 1)
    human_aggregates(session)
    part_and_campaign_aggregates(session)  # the all-clicks figures never moved
    link = session.get(PlacementStats, person.placement_id)
    assert link is not None and (link.total, link.human_total, link.human_unique) == (2, 1, 1)


def test_request_signals_label_a_click_on_their_own(session: Session) -> None:
    """HEAD, a prefetch, a link previewer's agent: machine, certain; the same person's GET
    from a browser, an hour later, is human."""
    campaign = five_links(session)
    ann, bob = recipients(session, "ann", "bob").values()
    hour = SENT + timedelta(hours=1)
    record_clicks(
        session,
        [
            event(campaign, 0, ann, hour, method="HEAD"),
            event(campaign, 1, ann, hour + timedelta(minutes=1), purpose="prefetch"),
            event(
                campaign,
                2,
                bob,
                hour + timedelta(minutes=2),
                user_agent="Slackbot-LinkExpanding 1.0",
            ),
            event(campaign, 0, bob, hour + timedelta(hours=1)),
        ],
    )
    assert labels(session) == [
        ("machine", "head"),
        ("machine", "prefetch"),
        ("machine", "scanner_ua"),
        ("human", ""),
    ]
    session.expire_all()
    assert {
        c.certainty for c in session.scalars(select(Click).where(Click.label == "machine"))
    } == {"certain"}
    human_aggregates(session)


def test_timing_against_the_delivery(session: Session) -> None:
    """A click a minute before its delivery was recorded, and one half a second after it,
    are machines; one two minutes after it is a person's."""
    campaign = five_links(session)
    ann, bob = recipients(session, "ann", "bob").values()
    record_clicks(
        session,
        [
            event(campaign, 0, ann, SENT - timedelta(minutes=1)),
            event(campaign, 1, bob, SENT + timedelta(milliseconds=500)),
            event(campaign, 2, bob, SENT + timedelta(minutes=2)),
        ],
    )
    assert labels(session) == [
        ("machine", "before_delivery"),
        ("machine", "too_soon"),
        ("human", ""),
    ]
    human_aggregates(session)


def test_a_replayed_batch_changes_nothing(session: Session) -> None:
    campaign = five_links(session)
    ann = recipients(session, "ann")["ann"]
    batch = [event(campaign, i, ann, SENT + timedelta(minutes=5, seconds=i)) for i in range(5)]
    assert record_clicks(session, batch) == 5
    before = (labels(session), stats(session, campaign))
    assert record_clicks(session, batch) == 0
    assert (labels(session), stats(session, campaign)) == before
    human_aggregates(session)


def test_reclassify_applies_new_settings_exactly_and_twice_changes_nothing(
    session: Session,
) -> None:
    """A sweep under the default settings; with sweeps switched off (a share above 100%)
    the reclassify makes those clicks human, and the aggregates follow exactly."""
    campaign = five_links(session)
    ann, bob = recipients(session, "ann", "bob").values()
    start = SENT + timedelta(minutes=5)
    record_clicks(
        session,
        [event(campaign, i, ann, start + timedelta(seconds=i)) for i in range(5)]
        + [event(campaign, 0, bob, start + timedelta(hours=2))],
    )
    assert stats(session, campaign) == (6, 2, 1, 1)
    no_sweeps = replace(DEFAULT_THRESHOLDS, sweep_share=1.01, sweep_min_links=99)
    assert (
        rebuild.rebuild_campaign(session, campaign.id, relabel_clicks=True, thresholds=no_sweeps)
        == 6
    )
    assert stats(session, campaign) == (6, 2, 6, 2)
    human_aggregates(session)
    rebuild.rebuild_campaign(session, campaign.id, relabel_clicks=True, thresholds=no_sweeps)
    assert stats(session, campaign) == (6, 2, 6, 2)
    rebuild.rebuild_campaign(session, campaign.id, relabel_clicks=True)
    assert stats(session, campaign) == (6, 2, 1, 1)
    assert labels(session)[0] == ("machine", "sweep")
    human_aggregates(session)
    part_and_campaign_aggregates(session)


def test_the_reclassify_command(session: Session, runner: FlaskCliRunner) -> None:
    campaign = five_links(session)
    ann = recipients(session, "ann")["ann"]
    record_clicks(session, [event(campaign, 0, ann, SENT + timedelta(hours=1), method="HEAD")])
    session.commit()
    result = runner.invoke(args=["clicks", "reclassify", "--campaign", str(campaign.id)])
    assert result.exit_code == 0, result.output
    assert f"campaign {campaign.id}: 1 click judged, 1 machine (head 1)" in result.output
    assert runner.invoke(args=["clicks", "reclassify", "--campaign", "99999"]).exit_code != 0


def test_a_walk_through_the_hidden_link_is_a_machine_and_the_heatmap_never_shows_it(
    session: Session,
) -> None:
    """A scanner meets the honeypot first and walks on: its clicks are certain machines,
    and neither the human nor the all-clicks view lists the hidden link."""
    from app.reports import stats

    campaign = five_links(session)
    ann = recipients(session, "ann")["ann"]
    trap = next(p for p in campaign.variants[0].placements if p.kind == "honeypot")
    walk = SENT + timedelta(hours=2)
    record_clicks(
        session,
        [
            click_event(trap, ann, walk),
            event(campaign, 0, ann, walk + timedelta(seconds=1)),
            event(campaign, 1, ann, walk + timedelta(seconds=2)),
        ],
    )
    session.expire_all()
    found = session.scalars(select(Click).order_by(Click.clicked_at)).all()
    assert [(c.label, c.reasons, c.certainty) for c in found] == [
        ("machine", "honeypot", "certain")
    ] * 3
    human_aggregates(session)
    for human_only in (True, False):
        where = stats.ClickFilter(
            campaign.id, campaign.variants[0].id, "html", human_only=human_only
        )
        assert trap.id not in stats.link_counts(session, where)


def test_writers_racing_on_one_sweep_keep_every_figure_exact(app: Flask) -> None:
    """Five writers each store one link's clicks of the same recipients' sweeps, at once,
    and replay each other's: no writer alone sees a sweep, together they do, and the labels
    and the human figures end exactly as judging all the clicks at once gives."""
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        campaign = five_links(s)
        people = list(recipients(s, *(f"r{n}" for n in range(6))).values())
        s.commit()
        start = SENT + timedelta(hours=1)
        per_link = [
            [
                event(campaign, link, r, start + timedelta(minutes=n, seconds=link))
                for n, r in enumerate(people)
            ]
            for link in range(5)
        ]
    race_writers(factory, [[per_link[i], per_link[(i + 1) % 5], per_link[i]] for i in range(5)])
    with factory() as s:
        assert labels(s) == [("machine", "sweep")] * 30
        human_aggregates(s)
        part_and_campaign_aggregates(s)
