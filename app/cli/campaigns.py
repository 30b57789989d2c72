"""``clickmap campaign``: register campaigns, personalize them, record deliveries."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click
from flask import current_app
from flask.cli import with_appcontext

from app.db import get_session
from app.errors import ClickmapError, cli_error
from app.ingest import campaigns
from app.ingest.rewriting import decode_html


@click.group("campaign")
def campaign_group() -> None:
    """Register campaigns, personalize them, record deliveries."""


def _read_part(path: Path) -> str:
    data = path.read_bytes()
    text, _encoding = decode_html(data)
    return text


def _parse_variant_files(specs: tuple[str, ...], option: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "A", spec
        found[name] = Path(path)
    return found


@campaign_group.command("create")
@click.argument("name")
@click.option(
    "--html",
    "html_specs",
    multiple=True,
    required=True,
    help="VARIANT=FILE (or just FILE for variant A); repeat per variant.",
)
@click.option("--amp", "amp_specs", multiple=True, help="VARIANT=FILE with the AMP part.")
@click.option("--utm", "utm_specs", multiple=True, help="utm_NAME=VALUE appended at redirect.")
@click.option(
    "--opens/--no-opens",
    default=True,
    help="Put the open pixel in personalized emails (default: on).",
)
@click.option(
    "--click-param",
    default=None,
    metavar="NAME",
    help="Hand each click's id to the destination as ?NAME=<id>, for conversions.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
@with_appcontext
def campaign_create(
    name: str,
    html_specs: tuple[str, ...],
    amp_specs: tuple[str, ...],
    utm_specs: tuple[str, ...],
    opens: bool,
    click_param: str | None,
    as_json: bool,
) -> None:
    """Register a campaign from its email files and print the link catalog."""
    from app.ingest.campaigns import link_rules

    htmls = _parse_variant_files(html_specs, "--html")
    amps = _parse_variant_files(amp_specs, "--amp")
    unknown = set(amps) - set(htmls)
    if unknown:
        raise click.UsageError(f"--amp for variant(s) without --html: {', '.join(sorted(unknown))}")
    try:
        variants = [
            campaigns.VariantInput(v, _read_part(p), _read_part(amps[v]) if v in amps else None)
            for v, p in htmls.items()
        ]
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from exc
    utm = dict(spec.partition("=")[::2] for spec in utm_specs) or None
    session = get_session()
    try:
        created = campaigns.create_campaign(
            session,
            name,
            variants,
            rules=link_rules(current_app),
            max_part_bytes=current_app.config["MAX_PART_BYTES"],
            utm=utm,
            track_opens=opens,
            click_param=click_param,
        )
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    session.commit()
    result = campaigns.catalog(created.campaign)
    for warning in created.warnings:
        click.echo(f"warning: {warning}", err=True)
    _print_catalog(result, as_json)


@campaign_group.command("settings")
@click.argument("campaign_id", type=int)
@click.option(
    "--opens",
    type=click.Choice(["on", "off"]),
    default=None,
    help="The open pixel in emails personalized from now on.",
)
@click.option(
    "--click-param",
    default=None,
    metavar="NAME",
    help="Hand each click's id to the destination as ?NAME=<id> ('' switches it off).",
)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def campaign_settings(
    campaign_id: int, opens: str | None, click_param: str | None, as_json: bool
) -> None:
    """Switch a campaign's open pixel and click-id parameter; print its catalog."""
    session = get_session()
    try:
        campaign = campaigns.get_campaign(session, campaign_id)
        if click_param is None:
            campaigns.update_settings(
                campaign, track_opens=None if opens is None else opens == "on"
            )
        else:
            campaigns.update_settings(
                campaign,
                track_opens=None if opens is None else opens == "on",
                click_param=click_param or None,
            )
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    session.commit()
    _print_catalog(campaigns.catalog(campaign), as_json)


def _print_catalog(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(f"campaign {result['id']}: {result['name']}")
    click.echo(
        f"  open pixel {'on' if result['track_opens'] else 'off'}; click id parameter "
        f"{result['click_param'] or 'off'}"
    )
    for variant in result["variants"]:
        links = variant["links"]
        tracked = sum(1 for link in links if link["tracked"])
        click.echo(
            f"  variant {variant['name']} ({'+'.join(variant['parts'])}): "
            f"{tracked} tracked, {len(links) - tracked} skipped"
        )
        for link in links:
            status = "tracked" if link["tracked"] else f"skipped: {link['skip_reason']}"
            shown = link["destination"] or link["href"]
            click.echo(
                f"    {link['part']:4} #{link['position']:<3} {link['kind']:4} {status:22} {shown}"
            )


@campaign_group.command("show")
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def campaign_show(campaign_id: int, as_json: bool) -> None:
    """Print a campaign's link catalog."""
    try:
        campaign = campaigns.get_campaign(get_session(), campaign_id)
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    _print_catalog(campaigns.catalog(campaign), as_json)


def _recipient_ids(stream: TextIO) -> list[str]:
    """Recipient ids from a CSV: the ``recipient`` column if there is a header, else column 1."""
    rows = list(csv.reader(stream))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    column = 0
    for name in ("recipient", "recipient_id", "id", "email"):
        if name in header:
            column = header.index(name)
            rows = rows[1:]
            break
    return [row[column].strip() for row in rows if len(row) > column and row[column].strip()]


def _progress(items: list[str], label: str) -> Iterator[list[str]]:
    """Batches of ``items``, with a progress bar on stderr when it is a terminal."""
    batches = [items[i : i + 500] for i in range(0, len(items), 500)]
    if not sys.stderr.isatty():
        yield from batches
        return
    with click.progressbar(length=len(items), label=label, file=sys.stderr) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))


@campaign_group.command("personalize")
@click.argument("campaign_id", type=int)
@click.argument("recipients", type=click.File("r", encoding="utf-8-sig"))
@click.option("--variant", default="A", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="JSON Lines output (default: stdout).",
)
@with_appcontext
def campaign_personalize(
    campaign_id: int, recipients: TextIO, variant: str, output: TextIO
) -> None:
    """Write each recipient's email as one JSON line: {recipient, variant, html, amp}."""
    from app.ingest.campaigns import personalizer

    ids = _recipient_ids(recipients)
    session = get_session()
    try:
        campaign = campaigns.get_campaign(session, campaign_id)
        chosen = campaigns.get_variant(campaign, variant)
        engine = personalizer(current_app)
        for batch in _progress(ids, "personalizing"):
            for email in engine.personalize(session, chosen, batch):
                output.write(json.dumps(email, ensure_ascii=False) + "\n")
            session.commit()
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    output.flush()


@campaign_group.command("deliveries")
@click.argument("campaign_id", type=int)
@click.argument("recipients", type=click.File("r", encoding="utf-8-sig"))
@click.option("--variant", default="A", show_default=True)
@with_appcontext
def campaign_deliveries(campaign_id: int, recipients: TextIO, variant: str) -> None:
    """Record that the recipients in the CSV were sent this variant (idempotent)."""
    ids = _recipient_ids(recipients)
    session = get_session()
    added = 0
    try:
        campaign = campaigns.get_campaign(session, campaign_id)
        for batch in _progress(ids, "recording"):
            added += campaigns.record_deliveries(session, campaign, variant, batch)
            session.commit()
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    click.echo(f"{len(set(ids))} deliveries recorded for variant {variant} ({added} new)")
