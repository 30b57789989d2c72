"""Opens: the pixel load as the redirector saw it, its label, and storing it exactly once.

An open travels the click's path (docs/opens.md): ``/o/<token>`` spools a record, the click
writer stores it in the same transaction as the clicks of its batch. Its spool form is a
list that starts with ``OPEN_MARK`` (a click's record starts with its 32-digit hex id, so
the two never mix), then the fields of ``OpenEvent`` in order.

Labels, decided from the request alone (``label_open``):

``proxy``    a mailbox provider's image proxy fetched the pixel for a reader: Gmail's
             ``GoogleImageProxy``, Yahoo's ``YahooMailProxy``. A real open, without the
             reader's own device; counted apart from human opens, and in "viewed".
``machine``  with its reasons: ``apple_privacy`` (Apple Mail Privacy Protection fetches
             every image of every message through Apple's proxies when the mail arrives,
             read or not: a bare ``Mozilla/5.0`` agent, certain from Apple's own network,
             likely from anywhere else, since Apple relays through CDN networks we have no
             published list of), ``scanner_ua``, ``scanner_network`` and ``head``, read as
             for clicks (``app.clicks.machines``).
``human``    anything else.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.clicks.scanners import is_scanner_agent, shipped_networks
from app.clicks.statements import dialect_insert, insert_ignoring_conflicts, memo, table_of
from app.models import EmailOpen, OpenRecipient, OpenStats, Recipient, Variant

OPEN_MARK = "o"
USER_AGENT_LIMIT = 512

HUMAN = "human"
PROXY = "proxy"
MACHINE = "machine"
LABELS = (HUMAN, PROXY, MACHINE)
VIEWED = (HUMAN, PROXY)  # the labels a "viewer" has an open of

APPLE_PRIVACY = "apple_privacy"
SCANNER_UA = "scanner_ua"
SCANNER_NETWORK = "scanner_network"
HEAD = "head"
REASONS = (APPLE_PRIVACY, SCANNER_UA, SCANNER_NETWORK, HEAD)

# Apple Mail Privacy Protection's user agent: nothing but the product token
# (https://help.socketlabs.com/docs/identifying-apple-mpp-opens-in-notification-api-events,
# https://www.mailgun.com/blog/product/bot-detection/).
APPLE_PRIVACY_AGENT = "Mozilla/5.0"
# Apple's own address block (ARIN NET-17-0-0-0-1, https://whois.arin.net/rest/net/NET-17-0-0-0-1).
APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
# The image proxies of mailbox providers: a reader's open, fetched on their behalf.
PROXY_AGENTS = ("GoogleImageProxy", "ggpht.com", "YahooMailProxy")


@dataclass(frozen=True, slots=True)
class OpenEvent:
    """One pixel load as the redirector saw it. Field order is the spool record's."""

    open_id: str
    opened_at: datetime  # aware, UTC; a Unix timestamp in the record
    campaign_id: int
    variant_id: int
    part: str
    recipient_id: int
    method: str
    user_agent: str
    ip_prefix: str | None

    def to_record(self) -> list[Any]:
        record: list[Any] = [OPEN_MARK, *(getattr(self, f) for f in OPEN_FIELDS)]
        record[2] = self.opened_at.timestamp()
        return record

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> OpenEvent:
        """The event of an open's spool record; ``ValueError`` or ``TypeError`` if it is not
        one."""
        if len(record) != len(OPEN_FIELDS) + 1 or record[0] != OPEN_MARK:
            raise ValueError("not an open record")
        _mark, open_id, ts, campaign, variant, part, recipient, method, agent, ip = record
        return cls(
            str(open_id),
            datetime.fromtimestamp(float(ts), UTC),
            int(campaign),
            int(variant),
            str(part),
            int(recipient),
            str(method),
            str(agent)[:USER_AGENT_LIMIT],
            None if ip is None else str(ip),
        )


OPEN_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(OpenEvent))


def is_open_record(record: Any) -> bool:
    return isinstance(record, list) and bool(record) and record[0] == OPEN_MARK


def _from_apple(ip_prefix: str | None) -> bool:
    if not ip_prefix:
        return False
    try:
        network = ipaddress.ip_network(ip_prefix, strict=False)
    except ValueError:
        return False
    return any(
        network.version == apple.version and network.subnet_of(apple)  # type: ignore[arg-type]
        for apple in APPLE_NETWORKS
    )


def label_open(
    user_agent: str, ip_prefix: str | None, method: str
) -> tuple[str, tuple[str, ...], str | None]:
    """``(label, reasons, certainty)`` of one pixel load; reasons in ``REASONS`` order."""
    agent = user_agent.strip()
    # Crawler lists name the proxies too, but a proxy fetches for a reader.
    proxy = any(name in agent for name in PROXY_AGENTS)
    if proxy and method.upper() != "HEAD":
        return PROXY, (), None
    reasons: list[str] = []
    certain = False
    if agent == APPLE_PRIVACY_AGENT:
        reasons.append(APPLE_PRIVACY)
        certain = certain or _from_apple(ip_prefix)
    if not proxy and is_scanner_agent(agent):
        reasons.append(SCANNER_UA)
        certain = True
    match = shipped_networks().match(ip_prefix)
    if match is not None:
        reasons.append(SCANNER_NETWORK)
        certain = certain or (match.whole and match.entry.certainty == "certain")
    if method.upper() == "HEAD":
        reasons.append(HEAD)  # an image is never loaded with HEAD
        certain = True
    if not reasons or (reasons == [SCANNER_NETWORK] and not certain):
        return HUMAN, (), None  # a shared network alone decides nothing, as for clicks
    return MACHINE, tuple(reasons), "certain" if certain else "likely"


def record_opens(session: Session, events: Sequence[OpenEvent]) -> int:
    """Store ``events``, labelled, and add the new ones to ``open_recipient`` and
    ``open_stats``; returns how many were new. A replayed open (its ``open_id`` stored
    already) changes nothing. The caller owns the transaction."""
    unique = list({e.open_id: e for e in events}.values())
    if not unique:
        return 0
    insert = dialect_insert(session)
    connection = session.connection()
    rows: list[dict[str, Any]] = []
    for e in unique:
        label, reasons, certainty = label_open(e.user_agent, e.ip_prefix, e.method)
        rows.append(
            {
                "open_id": e.open_id,
                "opened_at": e.opened_at,
                "campaign_id": e.campaign_id,
                "variant_id": e.variant_id,
                "part": e.part,
                "recipient_id": e.recipient_id,
                "method": e.method,
                "user_agent": e.user_agent[:USER_AGENT_LIMIT],
                "ip_prefix": e.ip_prefix,
                "label": label,
                "reasons": ",".join(reasons),
                "certainty": certainty,
            }
        )
    stored = {
        row[0] for row in insert_ignoring_conflicts(connection, insert, EmailOpen, rows, "open_id")
    }
    new = sorted((r for r in rows if r["open_id"] in stored), key=lambda r: r["opened_at"])
    if new:
        add_opens(connection, insert, new)
    return len(new)


def add_opens(connection: Connection, insert: Any, opens: list[dict[str, Any]]) -> None:
    """The aggregates of newly stored opens: openers and viewers first (a row per recipient,
    the insert that creates it decides who is new), then the per-variant counters. Keys are
    sorted, so concurrent writers take row locks in one order."""
    firsts: dict[tuple[int, int, bool], dict[str, Any]] = {}
    counts: dict[tuple[int, int], dict[str, int]] = {}
    for row in opens:
        variant = (row["campaign_id"], row["variant_id"])
        count = counts.setdefault(variant, dict.fromkeys((*LABELS, "openers", "viewers"), 0))
        count[row["label"]] += 1
        for viewer in (False, True) if row["label"] in VIEWED else (False,):
            key = (row["variant_id"], row["recipient_id"], viewer)
            firsts.setdefault(
                key,
                {
                    "variant_id": key[0],
                    "recipient_id": key[1],
                    "viewer": viewer,
                    "campaign_id": row["campaign_id"],
                    "first_opened_at": row["opened_at"],
                },
            )
    by_variant = {v: c for (c, v) in counts}
    created = insert_ignoring_conflicts(
        connection, insert, OpenRecipient, [firsts[k] for k in sorted(firsts)]
    )
    for variant_id, _recipient, viewer in created:
        counts[(by_variant[variant_id], variant_id)]["viewers" if viewer else "openers"] += 1
    table = table_of(OpenStats)
    stmt = memo(
        ("open_stats", connection.dialect.name),
        lambda: (base := insert(table)).on_conflict_do_update(
            index_elements=["campaign_id", "variant_id"],
            set_={
                name: table.c[name] + base.excluded[name]
                for name in ("total", *LABELS, "openers", "viewers")
            },
        ),
    )
    connection.execute(
        stmt,
        [
            {
                "campaign_id": campaign,
                "variant_id": variant,
                "total": sum(count[label] for label in LABELS),
                **count,
            }
            for (campaign, variant), count in sorted(counts.items())
        ],
    )


def known_only(session: Session, events: Sequence[OpenEvent]) -> list[OpenEvent]:
    """The events whose variant and recipient still exist (see ``recording.known_only``)."""
    variants = set(
        session.scalars(select(Variant.id).where(Variant.id.in_({e.variant_id for e in events})))
    )
    recipients = set(
        session.scalars(
            select(Recipient.id).where(Recipient.id.in_({e.recipient_id for e in events}))
        )
    )
    return [e for e in events if e.variant_id in variants and e.recipient_id in recipients]
