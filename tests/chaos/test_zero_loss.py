"""Nothing lost: read after every fault of the tier (this module sorts last).

Every quote of every well-formed frame the connector published, through silence, storms,
refusals, rate limits, bad frames and a killed worker, reached rates.normalized.
"""

from __future__ import annotations

import time

from connectors import registry
from connectors.venues.base import MarketQuote
from pipeline.normalize import Conversion
from schemas.errors import FrameError
from schemas.records import Quote, RawFrame
from schemas.settings import DEFAULT_DIRECTIONS
from tests.chaos.stack import Stack
from tests.integration.harness import read_topics
from tests.reliability import Row


def test_nothing_published_was_lost(chaos: Stack) -> None:
    """Every quote of every well-formed frame the connector published reached the pipeline
    (three venues' topics are read back: one of each kind of protocol and failover role)."""
    time.sleep(3)  # the last frames through the workers
    conversion = Conversion(DEFAULT_DIRECTIONS)
    topics = [chaos.topics.raw(v) for v in ("binance", "kraken", "coinbase")]
    expected: set[str] = set()
    frames = errors = 0
    started = time.time()
    for record in read_topics(chaos.kafka, topics, timeout_s=60):
        raw = RawFrame.from_json(record.value)
        if raw.received_at.timestamp() > started - 3:
            continue  # maybe still on its way
        venue = registry.VENUES[raw.venue]
        plan = conversion.plan(frozenset(venue.markets.values()))
        frames += 1
        try:
            quotes: list[MarketQuote] = venue.parse(raw.frame, raw.received_at)
        except FrameError:
            errors += 1
            continue
        expected |= {f"{q.id}/" for q in quotes if q.market in plan}
    normalized = {
        Quote.from_json(r.value).id.rsplit("/", 1)[0] + "/"
        for r in read_topics(chaos.kafka, [chaos.topics.normalized], timeout_s=60)
    }
    missing = expected - normalized
    assert expected and not missing, f"{len(missing)} of {len(expected)}: {sorted(missing)[:10]}"
    assert chaos.watch.answers > 100
    assert not chaos.watch.absurd, chaos.watch.absurd[:10]
    chaos.report.add(
        Row(
            "all the faults above, one after the other",
            "binance, kraken, coinbase topics read back",
            f"{frames} frames published ({errors} refused as frame errors): every one of their "
            f"{len(expected)} quotes is in rates.normalized",
            None,
        )
    )
