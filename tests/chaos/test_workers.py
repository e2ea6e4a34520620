"""Worker faults on the shared stack: kill -9 one of the two workers, then a new one joins.

Rates.latest is followed throughout: for each direction, the longest time between two
records carrying a newer quote is its longest stall. The issue's bound: no direction stops
updating for more than 10 s when one of two workers dies (its partitions move to the other
after the group's session timeout, WORKER_SESSION_TIMEOUT_S, 4 s by default). The only
worker killed under `rates up`'s supervisor is in tests/integration/test_up.py.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from devtools.waiting import wait_until
from schemas.settings import DEFAULT_DIRECTIONS
from tests.chaos.stack import Stack
from tests.integration.harness import LatestWatcher
from tests.reliability import Row

MAX_STALL_S = 10.0


@pytest.fixture
def watcher(chaos: Stack) -> Iterator[LatestWatcher]:
    follower = LatestWatcher(chaos.kafka, chaos.topics.latest)
    wait_until(lambda: follower.records_since(0), 30, "rates.latest to be followed")
    yield follower
    follower.stop()


def stalls(watcher: LatestWatcher, since: float, until: float) -> dict[str, float]:
    """Per direction, the longest wait for a newer quote in [since, until] (monotonic)."""
    last: dict[str, tuple[float, object]] = {}
    longest = dict.fromkeys(DEFAULT_DIRECTIONS, 0.0)
    for at, record in watcher.records_since(since):
        if at > until or record.direction not in longest or record.stale:
            continue
        seen = last.get(record.direction)
        if seen is None or seen[1] != record.received_at:
            began = seen[0] if seen is not None else since
            longest[record.direction] = max(longest[record.direction], at - began)
            last[record.direction] = (at, record.received_at)
    for direction in longest:
        at = last[direction][0] if direction in last else since
        longest[direction] = max(longest[direction], until - at)
    return longest


def test_kill_one_of_two_workers(chaos: Stack, watcher: LatestWatcher) -> None:
    victim = next(p for p in chaos.procs.started if p.name == "worker2")
    time.sleep(2)
    killed = time.monotonic()
    chaos.marks["worker killed"] = time.time()
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(10)

    def all_updated() -> bool:
        now = time.monotonic()
        if now - killed < 3:
            return False
        newest = stalls(watcher, now - 2, now)  # each direction's wait in the last 2 s
        return max(newest.values()) < 2

    wait_until(all_updated, 3 * MAX_STALL_S, "every direction to update after the kill")
    time.sleep(1)
    measured = stalls(watcher, killed - 1, time.monotonic())
    worst = max(measured.values())
    assert worst <= MAX_STALL_S, measured

    # A new worker joins: the partitions are split again.
    env = {**chaos.env, "WORKER_METRICS_PORT": chaos.worker_metrics[1].rsplit(":", 1)[1][:-1]}
    joined = time.monotonic()
    chaos.procs.started.remove(victim)
    replacement = chaos.procs.start("worker3", ["worker"], env)
    replacement.wait_for("owning partitions", 60)
    time.sleep(3)
    rejoin = stalls(watcher, joined, time.monotonic())
    chaos.alive()
    chaos.report.add(
        Row(
            "kill -9 one of two workers",
            "worker",
            f"the other took its partitions; longest stall of a direction {worst:.1f} s "
            f"(bound {MAX_STALL_S:g} s); a new worker joined with a stall of "
            f"{max(rejoin.values()):.1f} s",
            round(worst, 1),
        )
    )
