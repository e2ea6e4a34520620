"""Hostile frames for every venue parser: only the project's frame errors may come out.

Hypothesis builds frames three ways: any text, any JSON, and the venues' own golden frames
with values swapped for hostile ones (prices that are zero, negative, NaN, Infinity, 1e400,
exponent notation, huge or tiny). ``classify()`` must never raise; ``parse()`` returns
sane quotes or raises FrameError (UnknownSymbol is one). Then each simulated venue's real
frames with a hostile price text go through its parser: every one is a FrameError.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import registry
from connectors.simulator.market import Market
from connectors.simulator.server import SIMULATED
from connectors.venues.base import MAX_PRICE, MIN_PRICE, MarketQuote, Venue
from schemas.errors import FrameError

GOLDEN = Path(__file__).parent.parent / "golden" / "frames"
RECEIVED_AT = datetime(2026, 11, 24, 16, tzinfo=UTC)
#: Bounded: the whole module runs in a few seconds.
BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOSTILE_PRICES = ["0", "-1", "NaN", "-Infinity", "Infinity", "1e400", "1E-400", "6.5E4",
                  "0.0", "1" * 80, "1e12000", "", " ", "0x10", "١٢٣"]  # fmt: skip

VENUES = list(registry.VENUES)


def golden(venue: str) -> list[str]:
    lines = (GOLDEN / f"{venue}.jsonl").read_text().splitlines()
    return [json.loads(line)["frame"] for line in lines]


def check(venue: Venue, frame: str) -> None:
    """The contract every parser keeps, whatever the frame."""
    venue.classify(frame)  # never raises
    try:
        quotes = venue.parse(frame, RECEIVED_AT)
    except FrameError:
        return
    for quote in quotes:
        assert isinstance(quote, MarketQuote)
        assert quote.value.is_finite() and MIN_PRICE <= quote.value <= MAX_PRICE, quote
        # Any listed market may be configured (connectors/venues/naming.py): its name is
        # two asset codes.
        base, _, asset = quote.market.partition("-")
        assert quote.ts.tzinfo is not None and base and asset, quote


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE_PRICES),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("name", VENUES)
@BOUNDED
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_text(name: str, text: str) -> None:
    check(registry.VENUES[name], text)


@pytest.mark.parametrize("name", VENUES)
@BOUNDED
@given(value=json_values)
def test_any_json(name: str, value: Any) -> None:
    check(registry.VENUES[name], json.dumps(value))


def _mutate(value: Any, rng: random.Random, hostile: Any) -> Any:
    """``value`` with one leaf (string or number) replaced by ``hostile``."""
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        return {**value, key: _mutate(value[key], rng, hostile)}
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate(value[index], rng, hostile), *value[index + 1 :]]
    return hostile


@pytest.mark.parametrize("name", [v for v in VENUES if v != "cbr"])  # cbr: XML, below
@BOUNDED
@given(data=st.data(), hostile=json_values, seed=st.integers(0, 2**32))
def test_golden_frames_with_a_hostile_value(
    name: str, data: st.DataObject, hostile: Any, seed: int
) -> None:
    frames = golden(name)
    frame = data.draw(st.sampled_from(frames))
    try:
        parsed = json.loads(frame)
    except json.JSONDecodeError:
        parsed = frame
    check(registry.VENUES[name], json.dumps(_mutate(parsed, random.Random(seed), hostile)))


@BOUNDED
@given(data=st.data(), hostile=st.sampled_from(HOSTILE_PRICES) | st.text(max_size=30))
def test_cbr_documents_with_a_hostile_value(data: st.DataObject, hostile: str) -> None:
    frame = data.draw(st.sampled_from(golden("cbr")))
    cut = data.draw(st.integers(0, len(frame)))
    check(registry.VENUES["cbr"], frame[:cut] + hostile + frame[cut:])
    check(registry.VENUES["cbr"], frame[:cut])  # truncated


@pytest.mark.parametrize("name", VENUES)
@pytest.mark.parametrize(
    "text", ["0", "-1", "NaN", "Infinity", "1e400", "1E+400", "1e-30", "99999999999999999"]
)
def test_every_simulated_venue_frame_with_a_bad_price_is_a_frame_error(
    name: str, text: str
) -> None:
    """The simulator's ``price_text`` fault, through the venue's own parser (1e400 today)."""
    sim = SIMULATED[name](Market(random.Random(3)))
    sim.faults.update({"price_text": text})
    frames = [sim._maybe_malformed(f) for f in sim.data_frames_for(sim.subscribe_all(), 0)]
    assert frames and all(text in frame for frame in frames), frames
    for frame in frames:
        with pytest.raises(FrameError):
            registry.VENUES[name].parse(frame, RECEIVED_AT)


@pytest.mark.parametrize("name", VENUES)
def test_exponent_notation_within_bounds_is_read_exactly(name: str) -> None:
    sim = SIMULATED[name](Market(random.Random(3)))
    sim.faults.update({"price_text": "6.5E4"})
    frames = [sim._maybe_malformed(f) for f in sim.data_frames_for(sim.subscribe_all(), 0)]
    quotes = [q for f in frames for q in registry.VENUES[name].parse(f, RECEIVED_AT)]
    assert quotes and {q.value for q in quotes} <= {Decimal(65000), Decimal(65000) / 100}, quotes
