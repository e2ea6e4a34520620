"""Venue state: connecting -> up on data, silent without data, down on disconnect, republished."""

from __future__ import annotations

import pytest

from common.throttle import Throttled
from connectors.connection import RateLimiter
from connectors.status import REPUBLISH_S, VenueTracker
from connectors.venues.base import FrameKind
from tests.conftest import Clock


def state(tracker: VenueTracker) -> str:
    return tracker.state


def test_state_follows_frames_and_silence(clock: Clock) -> None:
    tracker = VenueTracker("binance", silence_limit_s=3.0, now=clock())
    assert state(tracker) == "connecting"
    tracker.frame(FrameKind.CONTROL, clock.advance(0.5))
    assert state(tracker) == "connecting"  # an ack proves the socket, not the feed
    up_at = clock.advance(0.5)
    tracker.frame(FrameKind.DATA, up_at)
    assert (state(tracker), tracker.since, tracker.last_frame_at) == ("up", up_at, up_at)
    tracker.tick(clock.advance(3.0))
    assert state(tracker) == "up"
    tracker.frame(FrameKind.HEARTBEAT, clock.advance(0.5))
    tracker.tick(clock())
    assert state(tracker) == "silent"
    tracker.frame(FrameKind.DATA, clock.advance(0.1))
    assert state(tracker) == "up"
    tracker.down(clock.advance(1), "connection refused")
    assert (state(tracker), tracker.detail) == ("down", "connection refused")
    tracker.connecting(clock.advance(1), "connecting")
    assert state(tracker) == "connecting"


def test_status_is_due_on_change_and_every_five_seconds(clock: Clock) -> None:
    tracker = VenueTracker("binance", silence_limit_s=3.0, now=clock())
    first = tracker.due(clock())
    assert first is not None and first.state == "connecting"
    assert tracker.due(clock.advance(1)) is None
    tracker.frame(FrameKind.DATA, clock.advance(1))
    changed = tracker.due(clock())
    assert changed is not None and changed.state == "up"
    assert tracker.due(clock.advance(REPUBLISH_S - 1)) is None
    again = tracker.due(clock.advance(1))
    assert again is not None and again.last_frame_at is not None


def test_rate_limiter_spaces_messages() -> None:
    now = [100.0]
    limiter = RateLimiter(per_second=5, clock=lambda: now[0])
    assert [limiter.wait_s() for _ in range(3)] == pytest.approx([0.0, 0.2, 0.4])
    now[0] += 10
    assert limiter.wait_s() == 0.0


def test_rate_limiter_allows_bursts_then_spaces() -> None:
    now = [0.0]
    limiter = RateLimiter(per_second=3, burst=3, clock=lambda: now[0])
    assert [limiter.wait_s() for _ in range(5)] == pytest.approx([0, 0, 0, 1 / 3, 2 / 3])
    now[0] += 10
    assert [limiter.wait_s() for _ in range(3)] == pytest.approx([0, 0, 0])


def test_throttled_logging_counts_what_it_holds_back() -> None:
    now = [0.0]
    throttled = Throttled(every_s=10, clock=lambda: now[0])
    assert throttled.ready() == 0
    assert throttled.ready() is None
    assert throttled.ready() is None
    now[0] = 11
    assert throttled.ready() == 2
