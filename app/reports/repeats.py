"""Repeat clicks: one recipient clicking the same link again and again within seconds.

In an email this usually means the landing page did not load (or loaded too slowly to look
alive), so the recipient tapped the link again. It is the email version of a web page's
"rage clicks", grouped per placement so the sender sees which link to check first.

**The burst rule.** Take one recipient's clicks on one placement in time order. They split
into *runs*: a click belongs to the previous click's run when it follows that click by at
most ``window`` (10 s by default, inclusive: 10.0 s apart still joins, 10.001 s starts a new
run). A run of at least ``min_clicks`` clicks (5 by default) is a *burst*. Runs never
overlap, so every click belongs to at most one burst, and a pause longer than ``window``
separates two bursts by the same recipient. Chained gaps were chosen over "N clicks within
any 10 s span" because that rule needs a choice of where each span starts and lets spans
overlap, which makes "how many bursts" and "clicks per burst" ambiguous.

**Severity** grades a placement by its mean clicks per burst, as reported (``avg_clicks``,
one decimal, halves rounded up): ``high`` at 10 or more, ``medium`` from 6 up to (not
including) 10, ``low`` below 6. The bands of the reference this follows (high 10+,
medium 6-9, low 5-6) overlap at 6 and leave 9-10 open; these are the same bands made to
meet without a gap.

**Cost.** This reads every raw click the filter covers (the period's clicks of the campaign,
variant or part), sorted by placement, recipient and time. The ``(placement_id,
clicked_at)`` and ``(campaign_id, clicked_at)`` indexes narrow the rows, but the database
still sorts them by recipient; rows reach Python in chunks (``yield_per``, a server-side
cursor on PostgreSQL) and only one run and one tally per placement with bursts are held, so
memory stays flat however many clicks there are. Time grows with the period's clicks: ask
for a period rather than all time on very large campaigns.

**Machine clicks.** Security scanners that open every link of an email several times in a
second look exactly like bursts. Clicks carry no human/machine label yet; when they do, the
query in ``_click_rows`` is where machine clicks are to be left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Click, Placement
from app.reports.stats import REPORTED, ClickFilter, click_filters

MIN_CLICKS = 5
WINDOW = timedelta(seconds=10)
# Lower bounds of the severity grades on avg_clicks, highest first.
SEVERITY_BANDS = (("high", 10.0), ("medium", 6.0))
# Rows fetched per round trip while streaming raw clicks.
CHUNK = 2000


@dataclass(frozen=True)
class RepeatClicks:
    """One placement's repeat-click bursts within the filter."""

    placement_id: int
    position: int  # the placement's position in its part (document order)
    kind: str  # "a" | "area" | "vml"
    text: str
    destination: str | None
    count: int  # bursts
    avg_clicks: float  # mean clicks per burst, one decimal
    max_clicks: int  # clicks in the longest burst
    recipients: int  # distinct recipients with at least one burst
    severity: str  # "high" | "medium" | "low"


@dataclass
class _Tally:
    """Running figures of one placement's bursts while the clicks stream past."""

    bursts: int = 0
    clicks: int = 0
    max_clicks: int = 0
    recipients: int = 0
    last_recipient: int | None = None

    def add(self, recipient: int, clicks: int) -> None:
        self.bursts += 1
        self.clicks += clicks
        self.max_clicks = max(self.max_clicks, clicks)
        # Rows come ordered by recipient within a placement, so a new recipient is new.
        if recipient != self.last_recipient:
            self.recipients += 1
            self.last_recipient = recipient


def severity_for(avg_clicks: float) -> str:
    """The grade of a placement whose bursts average ``avg_clicks`` clicks."""
    for grade, lower in SEVERITY_BANDS:
        if avg_clicks >= lower:
            return grade
    return "low"


def mean_one_decimal(total: int, count: int) -> float:
    """``total / count`` to one decimal, halves rounded up, computed exactly in integers
    (so 5.95 never turns into 5.9 through a float)."""
    tenths = (total * 20 + count) // (count * 2)
    return tenths / 10


def _check_rule(min_clicks: int, window: timedelta) -> None:
    if min_clicks < 2:
        raise InvalidInput("invalid_repeat_rule", f"min_clicks must be 2 or more, got {min_clicks}")
    if window <= timedelta(0):
        raise InvalidInput("invalid_repeat_rule", f"window must be positive, got {window}")


def _click_rows(session: Session, where: ClickFilter) -> Iterator[tuple[int, int, datetime]]:
    """``(placement_id, recipient_id, clicked_at)`` of every click ``where`` covers, grouped
    by placement and recipient and in time order within each, streamed in chunks."""
    query = (
        select(Click.placement_id, Click.recipient_id, Click.clicked_at)
        .where(*click_filters(where))
        .order_by(Click.placement_id, Click.recipient_id, Click.clicked_at, Click.id)
        .execution_options(yield_per=CHUNK)
    )
    for placement_id, recipient_id, clicked_at in session.execute(query):
        yield int(placement_id), int(recipient_id), clicked_at


def _find_bursts(
    rows: Iterable[tuple[int, int, datetime]], *, min_clicks: int, window: timedelta
) -> dict[int, _Tally]:
    """Tallies per placement of the bursts in ``rows`` (ordered as ``_click_rows`` gives
    them); one pass, holding only the current run."""
    tallies: dict[int, _Tally] = {}
    key: tuple[int, int] | None = None
    run, last = 0, None

    def close() -> None:
        if key is not None and run >= min_clicks:
            tallies.setdefault(key[0], _Tally()).add(key[1], run)

    for placement_id, recipient_id, clicked_at in rows:
        if key == (placement_id, recipient_id) and last is not None and clicked_at - last <= window:
            run += 1
        else:
            close()
            key, run = (placement_id, recipient_id), 1
        last = clicked_at
    close()
    return tallies


def _result(target: Placement, tally: _Tally) -> RepeatClicks:
    average = mean_one_decimal(tally.clicks, tally.bursts)
    return RepeatClicks(
        placement_id=target.id,
        position=target.position,
        kind=target.kind,
        text=target.text,
        destination=target.destination,
        count=tally.bursts,
        avg_clicks=average,
        max_clicks=tally.max_clicks,
        recipients=tally.recipients,
        severity=severity_for(average),
    )


def repeat_clicks(
    session: Session,
    where: ClickFilter,
    *,
    min_clicks: int = MIN_CLICKS,
    window: timedelta = WINDOW,
) -> list[RepeatClicks]:
    """The placements with repeat-click bursts among the clicks ``where`` covers, most
    bursts first (ties: earlier in the email first); placements without a burst are left
    out. See the module's docstring for the burst rule and what it costs."""
    _check_rule(min_clicks, window)
    tallies = _find_bursts(_click_rows(session, where), min_clicks=min_clicks, window=window)
    if not tallies:
        return []
    placements = session.scalars(select(Placement).where(Placement.id.in_(tallies), REPORTED))
    results = [_result(target, tallies[target.id]) for target in placements]
    results.sort(key=lambda r: (-r.count, r.position, r.placement_id))
    return results
