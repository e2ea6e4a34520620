"""The chaos tier's one stack and its instruments: processes, an API watcher, the report rows.

One simulator, one connector (every venue), two workers and one API run for the whole tier
(a session fixture): each fault case switches faults on, watches, switches them off and
measures the recovery, so the cases cost seconds, not a stack start each.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from devtools.processes import Proc, Procs
from devtools.waiting import wait_until
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.topics import Topics
from tests.integration.harness import SimHandle, metric_values
from tests.reliability import Report

WEBSOCKET = ("binance", "kraken", "okx", "bybit", "coinbase")
POLLED = ("coingecko", "cbr")
ALL = WEBSOCKET + POLLED
#: Reasons a connection ends on a failure (rotations and requested handovers are not).
FAILURES = ("error", "closed", "silent", "limited")
#: A served value this far from the direction's first value is absurd (the simulator's walk
#: stays within a fraction of a percent over the tier's minutes).
ABSURD = 0.5
SECRET = "CG-chaos-fake-key-0123456789abcdef"
#: The stack API's cap on event streams (API_MAX_STREAMS), small enough to reach in a test.
MAX_STREAMS = 20


class Metrics:
    """One scrape of a Prometheus endpoint, summed over the labels not asked for."""

    def __init__(self, *urls: str) -> None:
        self._values = [metric_values(httpx.get(url, timeout=5).text) for url in urls]

    def get(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(
            v
            for values in self._values
            for (n, ls), v in values.items()
            if n == name and wanted <= ls
        )


@dataclass
class Watch:
    """Asks v1 and v2 every 0.2 s in a thread: statuses, the active venue, and every served
    value that is absurd (off by more than ABSURD from the direction's first value)."""

    base: str
    baseline: dict[str, float] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    absurd: list[str] = field(default_factory=list)
    active: list[tuple[float, str | None]] = field(default_factory=list)
    answers: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    #: Set while a test loads the API on purpose (its own probes measure then, from a
    #: process of their own: this one's load generator would starve the watcher's thread).
    paused: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Watch:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _check(self, where: str, direction: str, value: float | None) -> None:
        if value is None:
            return
        first = self.baseline.setdefault(direction, value)
        if not (1 - ABSURD) * first <= value <= (1 + ABSURD) * first:
            self.absurd.append(f"{where} {direction}={value} (first {first})")

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while not self._stop.wait(0.2):
                if self.paused.is_set():
                    continue
                try:
                    v1 = client.get("/api/v1/courses")
                    v2 = client.get("/api/v2/courses")
                except httpx.HTTPError:
                    self.statuses[-1] += 1
                    continue
                self.answers += 1
                self.statuses[v1.status_code] += 1
                if v1.status_code == 200:
                    for course in v1.json()["courses"]:
                        self._check("v1", course["direction"], course["value"])
                if v2.status_code == 200:
                    body = v2.json()
                    active = body["active"]["venue"] if body["active"] else None
                    self.active.append((time.monotonic(), active))
                    for course in body["courses"]:
                        self._check(f"v2 {course['venue']}", course["direction"], course["value"])

    def venue(self) -> str | None:
        return self.active[-1][1] if self.active else None

    def active_during(self, since: float) -> str:
        """The venues v1 answered for since ``since`` (monotonic), other than binance."""
        seen = dict.fromkeys(v for at, v in self.active if at >= since and v != "binance")
        return ", ".join(str(v) for v in seen) or "none"


@dataclass
class Stack:
    sim: SimHandle
    procs: Procs
    env: dict[str, str]
    api: str
    connector_metrics: str
    worker_metrics: list[str]
    topics: Topics
    kafka: str
    watch: Watch
    report: Report
    #: Unix times of what the tests did (``worker killed``), for the nothing-lost check.
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def connector(self) -> Proc:
        return next(p for p in self.procs.started if p.name == "connect")

    def connector_scrape(self) -> Metrics:
        return Metrics(self.connector_metrics)

    def worker_scrape(self) -> Metrics:
        return Metrics(*self.worker_metrics)

    def faults(self, venues: tuple[str, ...] | list[str], **changes: Any) -> None:
        for venue in venues:
            self.sim.faults(venue, **changes)

    def actions(self, venues: tuple[str, ...] | list[str], name: str) -> None:
        for venue in venues:
            self.sim.action(venue, name)

    def failures(self, metrics: Metrics, venue: str) -> float:
        return sum(
            metrics.get("rates_connector_reconnects_total", venue=venue, reason=reason)
            for reason in FAILURES
        )

    def fresh_since(self, moment: float) -> set[str]:
        """Directions v2 serves fresh with a value received after ``moment`` (Unix time)."""
        courses = httpx.get(f"{self.api}/api/v2/courses", timeout=5).json()["courses"]
        return {
            c["direction"]
            for c in courses
            if not c["stale"]
            and c["received_at"] is not None
            and datetime.fromisoformat(c["received_at"]).timestamp() > moment
        }

    def recovered(self, venues: tuple[str, ...] | list[str], timeout_s: float = 60) -> float:
        """Seconds until each venue is up with fresh data, every direction is served fresh
        with a value received since now, and v1 answers for the first venue by priority."""
        began, wall = time.monotonic(), time.time()
        before = self.connector_scrape()
        pending = ["?"]

        def back() -> bool:
            metrics = self.connector_scrape()
            for venue in venues:
                data = metrics.get("rates_connector_frames_total", venue=venue, kind="data")
                up = metrics.get("rates_connector_state", venue=venue, state="up") == 1
                was = before.get("rates_connector_frames_total", venue=venue, kind="data")
                if not up or data < was + 2:
                    pending[0] = f"{venue} up={up}, {data - was:g} data frames"
                    return False
            fresh = self.fresh_since(wall)
            if len(fresh) < len(DEFAULT_DIRECTIONS):
                pending[0] = f"fresh: {sorted(fresh)}"
                return False
            pending[0] = f"v1 answers for {self.watch.venue()}"
            return self.watch.venue() == "binance"

        try:
            wait_until(back, timeout_s, f"{', '.join(venues)} to recover", every_s=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {pending[0]}") from None
        return round(time.monotonic() - began, 1)

    def wait_active(self, allowed: set[str], timeout_s: float, what: str) -> float:
        """Seconds until v1 answers for one of ``allowed``."""
        began = time.monotonic()
        wait_until(lambda: self.watch.venue() in allowed, timeout_s, what, every_s=0.1)
        return round(time.monotonic() - began, 1)

    def alive(self) -> None:
        for proc in self.procs.started:
            assert proc.popen.poll() is None, f"{proc.name} exited:\n{proc.output()[-3000:]}"
