"""Two workers in one consumer group: partitions split, and one takes over from the other."""

from __future__ import annotations

import re
import signal
import time
from datetime import UTC, datetime

import httpx

from devtools.processes import Proc, Procs
from devtools.waiting import wait_until
from schemas.topics import Topics
from tests.integration.harness import LatestWatcher, SimHandle, api_base, courses, pipeline_env

USD = {"BTC-USD", "ETH-USD", "USDTTRC-USD", "USDTERC-USD"}


def owned(worker: Proc) -> set[int] | None:
    """The partitions of the worker's last assignment (None before the first)."""
    found = re.findall(r"owning partitions \[([0-9, ]*)\]", worker.output())
    return None if not found else {int(p) for p in found[-1].split(",") if p.strip()}


def test_two_workers_split_and_take_over(kafka: str, simulator: SimHandle, procs: Procs) -> None:
    env = pipeline_env(kafka, procs, **simulator.env)
    base = api_base(env)
    topics = Topics(env["RATES_TOPIC_PREFIX"])
    procs.start("connect", ["connect", "binance"], env)
    first = procs.start("worker1", ["worker"], env)
    second = procs.start("worker2", ["worker"], env)
    procs.start("api", ["api"], env)
    watcher = LatestWatcher(kafka, topics.latest)
    try:

        def split() -> tuple[set[int], set[int]] | None:
            a, b = owned(first), owned(second)
            if a and b and not a & b and a | b == {0, 1, 2, 3}:
                return a, b
            return None

        a, b = wait_until(split, 90, "the two workers to split the partitions")
        print(f"worker1 owns {sorted(a)}, worker2 owns {sorted(b)}")

        def serving() -> bool:
            status, body = courses(base)
            return status == 200 and {c["direction"] for c in body["courses"]} == USD

        wait_until(serving, 60, "the API to serve every USD direction")

        killed_at = time.monotonic()
        killed_wall = datetime.now(UTC)
        first.popen.send_signal(signal.SIGKILL)
        answered = 0

        def all_updated() -> bool:
            nonlocal answered
            response = httpx.get(f"{base}/api/v1/courses", timeout=5)
            assert response.status_code == 200, response.text  # last values meanwhile
            answered += 1
            fresh = {
                r.direction
                for r in watcher.since(killed_at)
                if r.received_at is not None and r.received_at > killed_wall and not r.stale
            }
            return fresh >= USD

        wait_until(all_updated, 60, "every direction to update after the kill", every_s=0.2)
        took = time.monotonic() - killed_at
        print(f"every direction updated again {took:.1f} s after the kill ({answered} answers)")
        assert owned(second) == {0, 1, 2, 3}
    finally:
        watcher.stop()
