"""bench/bots_traces.py: the traces are the same for a seed, and their truth is what the
generator's docstrings say, so the bench cannot silently lose what it measures against."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from app.clicks import scanners
from app.clicks.devices import truncate_ip

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_traces() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bots_traces", BENCH / "bots_traces.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bots_traces", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


traces = load_traces()
LISTED = [str(e.network) for e in scanners.shipped_networks().entries if e.network.version == 4]

# What each behaviour is, as the generator's docstrings describe it.
PEOPLE = {"person", "fast_person", "power_user", "person_on_gateway_net",
          "person_on_listed_gateway_net"}  # fmt: skip
MACHINE_PREFIXES = ("sweep_", "rescan", "click_time_check_", "link_preview", "prefetch",
                    "outlook_head_probe")  # fmt: skip


def build(name: str, seed: int = 7, **kwargs: object) -> object:
    options: dict[str, object] = {"recipients": 60, "listed_networks": LISTED, **kwargs}
    return traces.build(name, seed, **options)


@pytest.mark.parametrize("name", traces.TRACES)
def test_a_seed_gives_the_same_trace(name: str) -> None:
    first = build(name)
    assert first.events == build(name).events
    assert first.events != build(name, seed=8).events


@pytest.mark.parametrize("name", traces.TRACES)
def test_the_truth_follows_the_behaviour(name: str) -> None:
    events = build(name, honeypot=True, honeypot_index=3).events
    assert events
    for e in events:
        if e.behaviour in PEOPLE:
            assert e.actor == traces.PERSON, e
        else:
            assert e.behaviour.startswith(MACHINE_PREFIXES), e
            assert e.actor == traces.MACHINE, e
        # Nobody navigates with HEAD, asks speculatively, or sees the hidden link.
        if e.method == "HEAD" or e.purpose or e.link == traces.HONEYPOT:
            assert not e.human, e


def test_the_traces_hold_whom_they_say() -> None:
    assert not any(e.human for e in build("scanners").events)
    assert all(e.human for e in build("people").events)
    for name in ("hard_fast_person", "hard_power_user"):
        assert all(e.human for e in build(name).events)
    first: dict[int, float] = {}
    for e in build("hard_fast_person").events:
        first.setdefault(e.recipient, e.at)
    assert all(2.0 <= at <= 20.0 for at in first.values())


def test_the_mixed_trace_has_the_cited_share_of_machines() -> None:
    trace = build("mixed", recipients=3000)
    assert trace.share_machine() == pytest.approx(traces.MACHINE_SHARE, abs=0.03)
    assert {e.behaviour for e in trace.events} >= {"person", "outlook_head_probe", "power_user"}


def test_sweeps_walk_every_link_and_the_honeypot_in_document_order() -> None:
    trace = build("hard_person_on_gateway_net", links=5, honeypot=True, honeypot_index=2)
    first = trace.events[0].recipient
    walk = [e.link for e in trace.events if e.recipient == first and not e.human]
    assert walk == [0, 1, traces.HONEYPOT, 2, 3, 4]


def test_only_the_listed_gateway_is_on_the_shipped_list() -> None:
    table = scanners.shipped_networks()
    builder = traces.Builder(1, 20, False, 0, LISTED)
    assert all(table.match(n) for n in builder.listed.networks)
    unlisted = [n for g in traces.UNLISTED_GATEWAYS for n in g.networks]
    others = [*unlisted, *traces.MICROSOFT_CLOUD, *traces.PREVIEW_CLOUDS]
    assert not any(table.match(n) for n in others)
    people = [builder.home_address() for _ in range(500)]
    assert not any(table.match(truncate_ip(a)) for a in people)
