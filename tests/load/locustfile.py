"""Locust load test of the API: the requests its users send, at a fixed offered rate, then more.

Run by `make loadtest` (benchmarks/loadtest.py), or by hand:

    locust -f tests/load/locustfile.py --headless --host http://127.0.0.1:8000

The offered rate is controlled, not left to how fast the server answers: each `CoursesUser`
paces itself with ``constant_throughput(USER_RPS)`` (one request every 1/USER_RPS s, however
long the previous answer took, with no catch-up burst), and the load shape sets the number of
users, so the offered rate is users x USER_RPS for as long as an answer takes less than
1/USER_RPS (100 ms). When the server (or locust itself) cannot keep up, the achieved rate
falls below the offered one: that shortfall is what the report shows at the top steps.

Phases: ``--offered-rps`` for ``--fixed-s`` seconds, then ``--step-rps`` more every
``--step-s`` seconds, for at most ``--steps`` steps, stopping early once two steps in a row
achieved less than ``SATURATED`` of what they offered (the maximum is behind). Each phase's
achieved rate and exact percentiles (not locust's 10 s sliding window; both leaving out its
first SETTLE_S), requests and failures (all of them) are written to ``--summary-json``.

A few ``StreamUser`` s hold `/api/v2/courses/stream` open meanwhile: each session is one
request in locust's statistics (time to the response headers), and the delay from each
change (its event id is the change's Kafka time, ms) to its arrival goes to the summary,
not to locust's request counts.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, constant, constant_throughput, events, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment

from devtools.load import DIRECTIONS, EXCHANGER_DIRECTIONS, EXCHANGERS

#: Requests per second each CoursesUser offers.
USER_RPS = 10
#: A phase achieving less than this share of its offered rate is saturated.
SATURATED = 0.9
#: Seconds at the start of a phase left out of its figures (users spawning, queues settling).
SETTLE_S = 2.0
#: Request names of the bad requests, which must be answered 422.
BAD_REQUESTS = {
    "v1 unknown direction (422)": "/api/v1/courses?direction=BTC-XYZ",
    "v1 unknown exchanger (422)": "/api/v1/courses?exchanger=nosuchvenue",
}


@dataclass(frozen=True)
class Phase:
    """A stretch of the test at one offered rate."""

    name: str
    offered_rps: int
    duration_s: float


def plan(offered_rps: int, fixed_s: float, step_rps: int, step_s: float, steps: int) -> list[Phase]:
    """The fixed phase, then the steps up (the shape may stop early, once saturated)."""
    phases = [Phase("fixed", offered_rps, fixed_s)]
    phases += [Phase(f"step {n}", offered_rps + n * step_rps, step_s) for n in range(1, steps + 1)]
    return phases


@dataclass
class PhaseRecord:
    """What happened during one phase, kept exactly (locust's own percentiles are windowed)."""

    phase: Phase
    started: float
    ended: float | None = None
    #: (perf_counter at completion, response time ms, failed) of every HTTP request.
    requests: list[tuple[float, float, bool]] = field(default_factory=list)
    #: Delay (ms) from each streamed change to its arrival.
    stream_delays_ms: list[float] = field(default_factory=list)
    cpu_start: float = 0.0
    cpu_end: float | None = None

    def summary(self) -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.perf_counter()
        window = (self.started + SETTLE_S, end)
        kept = [r for r in self.requests if window[0] <= r[0] <= window[1]]
        seconds = max(window[1] - window[0], 1e-9)
        times = sorted(r[1] for r in kept)
        cpu = (self.cpu_end if self.cpu_end is not None else time.process_time()) - self.cpu_start
        return {
            "phase": self.phase.name,
            "offered_rps": self.phase.offered_rps,
            "seconds": round(seconds, 1),
            "requests": len(self.requests),
            "achieved_rps": round(len(kept) / seconds, 1),
            # Over the whole phase, its first seconds included.
            "failures": sum(1 for r in self.requests if r[2]),
            "p50_ms": percentile(times, 0.50),
            "p95_ms": percentile(times, 0.95),
            "p99_ms": percentile(times, 0.99),
            "max_ms": round(times[-1], 2) if times else None,
            "stream_changes": len(self.stream_delays_ms),
            "stream_delay_p50_ms": percentile(sorted(self.stream_delays_ms), 0.50),
            "stream_delay_p99_ms": percentile(sorted(self.stream_delays_ms), 0.99),
            "locust_cpu_share": round(cpu / (end - self.started), 2),
        }


def percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


class Recorder:
    """Every request's outcome, filed under the phase the shape was in when it completed."""

    def __init__(self) -> None:
        self.records: list[PhaseRecord] = []

    @property
    def current(self) -> PhaseRecord | None:
        return self.records[-1] if self.records else None

    def enter(self, phase: Phase) -> None:
        self.finish()
        self.records.append(PhaseRecord(phase, time.perf_counter(), cpu_start=time.process_time()))

    def finish(self) -> None:
        if self.current is not None and self.current.ended is None:
            self.current.ended = time.perf_counter()
            self.current.cpu_end = time.process_time()

    def saturated(self, last: int) -> bool:
        """Whether the last ``last`` completed steps each achieved too little of their offer."""
        done = [r for r in self.records[1:] if r.ended is not None][-last:]  # not the fixed one
        return len(done) == last and all(
            r.summary()["achieved_rps"] < SATURATED * r.phase.offered_rps for r in done
        )


RECORDER = Recorder()


@events.init_command_line_parser.add_listener
def _options(parser: LocustArgumentParser) -> None:
    group = parser.add_argument_group("currency-pairs load shape")
    group.add_argument("--offered-rps", type=int, default=1500, help="rate of the fixed phase")
    group.add_argument("--fixed-s", type=float, default=60, help="length of the fixed phase")
    group.add_argument("--step-rps", type=int, default=1500, help="offered rate added per step")
    group.add_argument("--step-s", type=float, default=15, help="length of each step")
    group.add_argument("--steps", type=int, default=8, help="most steps after the fixed phase")
    group.add_argument("--stream-users", type=int, default=5, help="users holding a stream")
    group.add_argument("--stream-session-s", type=float, default=10, help="length of a stream")
    group.add_argument("--summary-json", default="", help="write each phase's figures here")


@events.init.add_listener
def _configure(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None:
        StreamUser.fixed_count = options.stream_users


@events.request.add_listener
def _record(
    request_type: str, response_time: float, exception: BaseException | None, **_: Any
) -> None:
    current = RECORDER.current
    if current is not None and request_type != "SSE":
        current.requests.append((time.perf_counter(), response_time, exception is not None))


@events.quitting.add_listener
def _write_summary(environment: Environment, **_: Any) -> None:
    RECORDER.finish()
    options = environment.parsed_options
    if options is None or not options.summary_json:
        return
    summary = {
        "user_rps": USER_RPS,
        "settle_s": SETTLE_S,
        "stream_users": options.stream_users,
        "phases": [record.summary() for record in RECORDER.records],
    }
    Path(options.summary_json).write_text(json.dumps(summary, indent=2) + "\n")


class OfferedRate(LoadTestShape):
    """The planned phases, as users x USER_RPS; stops after the last or once saturated."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        assert options is not None
        phases = plan(
            options.offered_rps, options.fixed_s, options.step_rps, options.step_s, options.steps
        )
        elapsed = self.get_run_time()
        for phase in phases:
            if elapsed < phase.duration_s:
                break
            elapsed -= phase.duration_s
        else:
            return None
        if RECORDER.current is None or RECORDER.current.phase != phase:
            RECORDER.finish()
            if RECORDER.saturated(2):
                return None
            RECORDER.enter(phase)
        users = -(-phase.offered_rps // USER_RPS)
        # Each step's new users start within a second.
        return users + options.stream_users, max(float(options.step_rps // USER_RPS), 1.0)


class CoursesUser(FastHttpUser):
    """A client of the rates API: mostly v1, as the original contract's users call it."""

    wait_time = constant_throughput(USER_RPS)

    @task(30)
    def v1_all(self) -> None:
        self.client.get("/api/v1/courses", name="v1 no parameters")

    @task(25)
    def v1_one_direction(self) -> None:
        direction = random.choice(DIRECTIONS)
        self.client.get(f"/api/v1/courses?direction={direction}", name="v1 one direction")

    @task(15)
    def v1_several_directions(self) -> None:
        chosen = ",".join(random.sample(DIRECTIONS, random.randint(2, 4)))
        self.client.get(f"/api/v1/courses?direction={chosen}", name="v1 several directions")

    @task(10)
    def v1_exchanger(self) -> None:
        venue = random.choice(EXCHANGERS)
        direction = random.choice(EXCHANGER_DIRECTIONS)
        self.client.get(
            f"/api/v1/courses?exchanger={venue}&direction={direction}", name="v1 with exchanger"
        )

    @task(12)
    def v2_courses(self) -> None:
        direction = random.choice(DIRECTIONS)
        self.client.get(f"/api/v2/courses?direction={direction}", name="v2 courses")

    @task(5)
    def v2_venues(self) -> None:
        self.client.get("/api/v2/venues", name="v2 venues")

    @task(3)
    def bad_request(self) -> None:
        """A mistyped query: a success only when it is the documented 422."""
        name, url = random.choice(list(BAD_REQUESTS.items()))
        with self.client.get(url, name=name, catch_response=True) as response:
            if response.status_code == 422:
                response.success()
            else:
                response.failure(f"expected 422, got {response.status_code}")


class StreamUser(FastHttpUser):
    """Holds `/api/v2/courses/stream` open for a session, then reconnects, as a browser would."""

    fixed_count = 5
    wait_time = constant(0.5)

    @task
    def stream(self) -> None:
        options = self.environment.parsed_options
        session_s = options.stream_session_s if options is not None else 10.0
        opened_ms = time.time() * 1000
        response = self.client.get(
            "/api/v2/courses/stream?direction=BTC-USD,ETH-USD",
            name="v2 stream (session)",
            stream=True,
        )
        raw = response._response
        if raw is None or response.status_code != 200:
            return
        # A stream may stay quiet for up to 15 s (its keep-alive): the session's end is timed.
        with gevent.Timeout(session_s, False):
            try:
                while line := raw.readline(b"\n"):
                    stamp = _event_id(line)
                    # Changes made after the connection opened; older ones are the catch-up.
                    if stamp is not None and stamp >= opened_ms and RECORDER.current is not None:
                        delay = max(time.time() * 1000 - stamp, 0.0)
                        RECORDER.current.stream_delays_ms.append(delay)
            finally:
                raw.release()  # an unfinished body: the connection is closed, not reused


def _event_id(line: bytes) -> int | None:
    """The id of an SSE ``id:`` line (a change's time in ms), else None."""
    value = line.removeprefix(b"id: ").strip()
    return int(value) if line.startswith(b"id: ") and value.isdigit() else None
