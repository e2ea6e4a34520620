"""Recorded venue frames through every parser, against golden quotes.

Each venue has ``frames/<venue>.jsonl``: verbatim frames from the documented formats
(shared/exchanges.md), each with the frame kind the connection loop must see and either
the quotes ``parse()`` must return or the error it must raise.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors import registry
from connectors.simulator.base import Subscription
from connectors.simulator.market import Market
from connectors.simulator.server import SIMULATED
from connectors.venues.base import FrameKind
from schemas import errors
from schemas.records import parse_time

FRAMES = Path(__file__).parent / "frames"


def cases() -> list[Any]:
    found = []
    for venue in registry.VENUES:
        path = FRAMES / f"{venue}.jsonl"
        for number, line in enumerate(path.read_text().splitlines(), 1):
            case = json.loads(line)
            found.append(pytest.param(venue, case, id=f"{venue}:{number}:{case['note']}"))
    return found


def test_every_venue_has_recorded_frames() -> None:
    for venue in registry.VENUES:
        assert (FRAMES / f"{venue}.jsonl").exists(), venue


@pytest.mark.parametrize(("venue_name", "case"), cases())
def test_recorded_frame(venue_name: str, case: dict[str, Any]) -> None:
    venue = registry.VENUES[venue_name]
    assert venue.classify(case["frame"]).kind is FrameKind(case["kind"])
    received_at = parse_time(case["received_at"])
    if "error" in case:
        with pytest.raises(getattr(errors, case["error"])):
            venue.parse(case["frame"], received_at)
        return
    quotes = [q.to_dict() for q in venue.parse(case["frame"], received_at)]
    for q in quotes:
        q.pop("v")
    assert quotes == case["quotes"]


@pytest.mark.parametrize("venue_name", list(SIMULATED))
def test_simulator_output_passes_the_same_parsers(venue_name: str) -> None:
    """The simulator cannot drift from the venue: its frames parse to its market's prices."""
    market = Market(random.Random(5))
    sim = SIMULATED[venue_name](market)
    venue = registry.VENUES[venue_name]
    for market_name in market.markets:
        market.step(market_name)
    received_at = datetime(2026, 11, 24, 16, tzinfo=UTC)
    frames = sim.data_frames_for(sim.subscribe_all(), 1795536000123)
    assert len(frames) == len(venue.markets)
    seen = {}
    for frame in frames:
        assert venue.classify(frame).kind is FrameKind.DATA
        (quote,) = venue.parse(frame, received_at)
        seen[quote.direction] = quote.value
    assert seen == {m: sim.venue_price(m) for m in venue.markets.values()}


@pytest.mark.parametrize("venue_name", list(SIMULATED))
def test_simulator_faults_are_what_the_parser_rejects(venue_name: str) -> None:
    sim = SIMULATED[venue_name](Market(random.Random(5)))
    venue = registry.VENUES[venue_name]
    received_at = datetime(2026, 11, 24, 16, tzinfo=UTC)
    with pytest.raises(errors.FrameError):
        venue.parse(sim.malformed_frame(), received_at)
    sim.faults.update({"unknown_symbols": True})
    frames = sim.data_frames_for(Subscription(), 1795536000123)
    assert frames
    for frame in frames:
        with pytest.raises(errors.UnknownSymbol):
            venue.parse(frame, received_at)
