"""How the cost grows with the work: a table of row kinds, each measured at a few levels.

Each row is measured in one run, as the median of ROUNDS rounds. Row kinds (KINDS):

- ``directions``: the same figures as ``tick_rate`` at the default rate with 8 (the
  defaults), 64 and 256 configured directions (BTC-USD and synthetic assets every simulated
  venue lists, devtools/directions.py): `RATES_DIRECTIONS` and `rates simulate --directions`.
- ``tick_rate``: the whole pipeline (`rates up` with the simulator's URLs, a Tansu broker of
  its own, the embedded PostgreSQL) on the simulator ticking at 1x, 4x and 16x its default
  rate (`rates simulate --tick-interval`, 0.25 s). Each round watches the running stack for
  WINDOW_S: CPU seconds per 1,000 frames of each process (frames: raw frames the connector
  published), the frames per second, and how fast the worker falls behind (the growth of
  published minus normalized frames, per second: 0 while it keeps up); then samples the
  tick -> API latency (benchmarks/latency.py) for its p99. RSS at the end of each round.
- ``stream_clients``: one `rates api` process (pinned to core 1) with 100, 1,000 and 5,000
  open `/api/v2/courses/stream` clients (benchmarks/sse_clients.py, one process on core 0,
  with Tansu): CHANGES changes of BTC-USD per round, one a second, published to
  rates.latest; the delay from each publish to its arrival at each client (p50, p99), the
  share of (client, change) pairs delivered (a stream coalesces changes it had no time to
  send), and the API process's RSS and CPU.

A further kind adds a ``Kind`` to KINDS: the table, the JSON and the chart
(devtools/charts.py, told the kinds) take every kind alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaProducer

from benchmarks.latency import percentile, tick_latencies
from benchmarks.sse_clients import MARKER
from devtools.apiserver import latest_records, publish, run_api
from devtools.charts import Figure, kinds_json, scaling_chart
from devtools.directions import synthetic_directions
from devtools.embedded import start_tansu
from devtools.environment import clean_env
from devtools.processes import RATES, running
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.topics import Topics

ROUNDS = 3
#: `rates simulate --tick-interval` default: the 1x of the tick-rate rows.
DEFAULT_TICK_S = 0.25
WINDOW_S = 10.0
WARMUP_S = 5.0
LATENCY_SAMPLES = 100
CHANGES = 8
CHANGE_EVERY_S = 1.0
#: Longest wait for the last change to reach every stream client.
DRAIN_S = 15.0
#: Seconds of the API with its streams open and nothing to send (its idle CPU).
IDLE_S = 3.0
SERVER_CPU = 1
CLIENT_CPU = 0
PREFIX = "bench-scaling."
CHART = Path("docs/load/scaling.png")
#: The result the README shows; a run of some kinds only (BENCH_SCALING_KINDS) keeps the rest.
KEPT = Path("docs/load/scaling.json")
MIB = 2**20


@dataclass(frozen=True)
class Kind:
    """A row kind of the scaling table: what varies, its levels, what is measured, and how."""

    name: str
    varies: str
    levels: tuple[int, ...]
    figures: tuple[Figure, ...]
    measure: Callable[[int, Path], dict[str, Any]]


# -- tick rate ------------------------------------------------------------------------------


def _cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _rss_mib(process: psutil.Process) -> float:
    try:
        return float(process.memory_info().rss / MIB)
    except psutil.Error:
        return 0.0


def pipeline_processes(
    up: psutil.Process, extra: dict[str, psutil.Process]
) -> dict[str, list[psutil.Process]]:
    """The stack's processes by role (PostgreSQL: the server and its backends)."""
    roles: dict[str, list[psutil.Process]] = {name: [p] for name, p in extra.items()}
    for child in up.children(recursive=True):
        try:
            argv = child.cmdline()
            name = child.name()
        except psutil.Error:
            continue
        if name == "postgres":
            roles.setdefault("postgres", []).append(child)
        elif argv[1:3] == ["-m", "rates"] and len(argv) > 3:  # `python -m rates worker`
            roles.setdefault(argv[3], []).append(child)
    return roles


def _metric_sum(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def frames_and_lag(client: httpx.Client, connector: str, worker: str) -> tuple[float, float]:
    """Raw frames published so far, and how many of them the worker has not normalized yet."""
    published = _metric_sum(
        client.get(connector).text, "rates_connector_published_total", kind="raw"
    )
    text = client.get(worker).text
    normalized = _metric_sum(text, "rates_pipeline_frames_total") + _metric_sum(
        text, "rates_pipeline_bad_frames_total", reason="bad_record"
    )
    return published, published - normalized


def sample_ticks(
    client: httpx.Client, base: str, control: str, rng: random.Random
) -> tuple[list[float], int]:
    """LATENCY_SAMPLES tick -> API latencies in batches; a tick not served within 10 s (the
    worker behind, or the venue judged silent) loses its batch and counts as missed."""
    latencies: list[float] = []
    missed = 0
    for _ in range(LATENCY_SAMPLES // 10):
        try:
            latencies += tick_latencies(client, base, control, 10, rng)
        except RuntimeError:
            missed += 1
    return latencies, missed


def tick_rate(level: int, directory: Path) -> dict[str, Any]:
    """The pipeline on the simulator at ``level`` x its default tick rate."""
    row = pipeline_row(directory, DEFAULT_TICK_S / level, DEFAULT_DIRECTIONS)
    row["tick_interval_s"] = DEFAULT_TICK_S / level
    return row


def directions(level: int, directory: Path) -> dict[str, Any]:
    """The pipeline on the simulator with ``level`` configured directions at the default
    tick rate: the eight defaults, or BTC-USD (the latency probe) and synthetic assets that
    every simulated venue lists (devtools/directions.py, as the integration tests do)."""
    configured = (
        DEFAULT_DIRECTIONS
        if level == len(DEFAULT_DIRECTIONS)
        else ("BTC-USD", *synthetic_directions(level - 1))
    )
    row = pipeline_row(directory, DEFAULT_TICK_S, configured)
    row["directions"] = len(configured)
    return row


def pipeline_row(directory: Path, tick_s: float, configured: Sequence[str]) -> dict[str, Any]:
    """Frames/s, CPU per 1,000 frames, worker lag, tick -> API latency and RSS of the stack
    (`rates up --source live` on a simulator ticking every ``tick_s``), medians of ROUNDS."""
    joined = ",".join(configured)
    with ExitStack() as stack:
        tansu = start_tansu(log=directory / "tansu.log")
        stack.callback(tansu.stop)
        ports = directory / "simulator.json"
        sim = stack.enter_context(running(
            "simulator", [*RATES, "simulate", "--ports-file", str(ports),
                          "--tick-interval", str(tick_s), "--directions", joined],
            clean_env(LOG_LEVEL="WARNING"), directory / "simulator.log",
            stop_signal=signal.SIGINT, timeout_s=60))  # fmt: skip
        found = wait_until(lambda: json.loads(ports.read_text()), 30, "the simulator's ports")
        api_port, connector_port, worker_port = (free_port() for _ in range(3))
        env = clean_env(
            **found["env"], KAFKA_BOOTSTRAP_SERVERS=tansu.address, API_PORT=str(api_port),
            RATES_STATE_DIR=str(directory / "state"), CONNECTOR_METRICS_PORT=str(connector_port),
            WORKER_METRICS_PORT=str(worker_port), RATES_DIRECTIONS=joined,
        )  # fmt: skip
        up = stack.enter_context(running(
            "up", [*RATES, "up", "--source", "live"], env, directory / "up.log",
            stop_signal=signal.SIGINT, timeout_s=60))  # fmt: skip
        base = f"http://127.0.0.1:{api_port}"
        client = stack.enter_context(httpx.Client(timeout=5))

        def serving() -> bool:
            if up.popen.poll() is not None:
                raise RuntimeError(f"rates up exited:\n{up.output()[-3000:]}")
            return client.get(f"{base}/api/v1/courses").status_code == 200

        wait_until(serving, 120, "rates up to serve")
        time.sleep(WARMUP_S)
        connector = f"http://127.0.0.1:{connector_port}/metrics"
        worker = f"http://127.0.0.1:{worker_port}/metrics"
        extra = {
            "simulator": psutil.Process(sim.popen.pid),
            "kafka": psutil.Process(tansu.popen.pid),
        }
        rng = random.Random(len(configured))
        rounds: list[dict[str, Any]] = []
        for _ in range(ROUNDS):
            roles = pipeline_processes(psutil.Process(up.popen.pid), extra)
            cpu0 = {role: sum(map(_cpu_s, ps)) for role, ps in roles.items()}
            frames0, lag0 = frames_and_lag(client, connector, worker)
            started = time.monotonic()
            time.sleep(WINDOW_S)
            frames1, lag1 = frames_and_lag(client, connector, worker)
            seconds = time.monotonic() - started
            cpu1 = {role: sum(map(_cpu_s, ps)) for role, ps in roles.items()}
            frames = max(frames1 - frames0, 1.0)
            latencies, missed = sample_ticks(client, base, found["control"], rng)
            rounds.append({
                "frames_per_s": frames / seconds,
                "cpu_s_per_1000_frames": {r: (cpu1[r] - cpu0[r]) / frames * 1000 for r in roles},
                "lag_growth_per_s": (lag1 - lag0) / seconds,
                "lag_end": lag1,
                "tick_api_p50_ms": statistics.median(latencies) if latencies else None,
                "tick_api_p99_ms": percentile(latencies, 0.99) if latencies else None,
                "ticks_missed": missed,
                "rss_mib": {r: sum(map(_rss_mib, ps)) for r, ps in roles.items()},
            })  # fmt: skip
    row = medians(rounds)
    row["falls_behind"] = row["lag_growth_per_s"] > 0.01 * row["frames_per_s"]
    return row


# -- stream clients -------------------------------------------------------------------------


async def _publish_changes(bootstrap: str, markers: list[str]) -> dict[str, float]:
    """Each marker as a new BTC-USD value on rates.latest, CHANGE_EVERY_S apart: send times."""
    topic = Topics(PREFIX).latest
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    sent: dict[str, float] = {}
    try:
        for marker in markers:
            value = MARKER.decode() + marker
            record = latest_records(["BTC-USD"], prices={"BTC-USD": value})[0]
            sent[marker] = time.time()
            await producer.send_and_wait(topic, record.to_json(), key=b"BTC-USD")
            await asyncio.sleep(CHANGE_EVERY_S)
    finally:
        await producer.stop()
    return sent


def stream_clients(level: int, directory: Path) -> dict[str, Any]:
    """``level`` event-stream clients on one API process, and changes fanned out to them."""
    with ExitStack() as stack:
        tansu = start_tansu(log=directory / "tansu.log")
        stack.callback(tansu.stop)
        os.sched_setaffinity(tansu.popen.pid, {CLIENT_CPU})
        publish(
            tansu.address, PREFIX, latest_records(DEFAULT_DIRECTIONS, prices={"BTC-USD": "77777.0"})
        )
        api = stack.enter_context(run_api(tansu.address, PREFIX, directory / "api.log",
                                          cpu=SERVER_CPU, API_STREAM_MAX_S="36000",
                                          # every client a stream: past the default cap
                                          API_MAX_STREAMS=str(2 * level)))  # fmt: skip
        wait_until(lambda: httpx.get(f"{api.base}/api/v2/courses").status_code == 200, 30,
                   "the API to load its snapshot")  # fmt: skip
        clients = stack.enter_context(subprocess.Popen(
            ["taskset", "-c", str(CLIENT_CPU), sys.executable, "-m", "benchmarks.sse_clients",
             f"{api.base}/api/v2/courses/stream?direction=BTC-USD", str(level)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))  # fmt: skip
        stack.callback(clients.kill)
        assert clients.stdin is not None
        assert clients.stdout is not None
        if clients.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {level} stream clients did not all connect")
        server = psutil.Process(api.popen.pid)

        def dump() -> dict[str, list[float]]:
            assert clients.stdin is not None
            assert clients.stdout is not None
            clients.stdin.write("dump\n")
            clients.stdin.flush()
            return dict(json.loads(clients.stdout.readline()))

        # What the process costs with its streams open and nothing to send (Kafka polling).
        cpu0, started = _cpu_s(server), time.monotonic()
        time.sleep(IDLE_S)
        idle_share = (_cpu_s(server) - cpu0) / (time.monotonic() - started)
        rounds: list[dict[str, Any]] = []
        for number in range(ROUNDS):
            cpu0, started = _cpu_s(server), time.monotonic()
            markers = [f"{number:02d}{k:04d}1" for k in range(CHANGES)]
            sent = asyncio.run(_publish_changes(tansu.address, markers))
            arrivals: dict[str, list[float]] = {m: [] for m in markers}
            # Until every client has the last change (or a stream coalesced it away).
            deadline = time.monotonic() + DRAIN_S
            while len(arrivals[markers[-1]]) < level and time.monotonic() < deadline:
                time.sleep(0.25)
                for marker, times in dump().items():
                    arrivals.setdefault(marker, []).extend(times)
            cpu_s, seconds = _cpu_s(server) - cpu0, time.monotonic() - started
            delays = sorted(
                (at - sent[m]) * 1000 for m, ats in arrivals.items() if m in sent for at in ats
            )
            rounds.append({
                "delay_p50_ms": percentile(delays, 0.50) if delays else None,
                "delay_p99_ms": percentile(delays, 0.99) if delays else None,
                "delivered_share": len(delays) / (level * CHANGES),
                "api_cpu_share": cpu_s / seconds,
                "api_cpu_us_per_event": (cpu_s - idle_share * seconds) / max(len(delays), 1) * 1e6,
                "api_rss_mib": _rss_mib(server),
            })  # fmt: skip
        clients.stdin.write("quit\n")
        clients.stdin.flush()
        clients.wait(30)
    return medians(rounds)


# -- the table ------------------------------------------------------------------------------

KIND_LIST: tuple[Kind, ...] = (
    Kind(
        "directions",
        "configured directions",
        (8, 64, 256),
        (
            Figure("cpu_s_per_1000_frames", "CPU s per 1,000 frames"),
            Figure("frames_per_s", "frames/s"),
            Figure("tick_api_p99_ms", "tick -> API p99 (ms)"),
            Figure("rss_mib", "RSS (MiB)"),
            Figure("lag_growth_per_s", "worker lag growth (frames/s)"),
        ),
        directions,
    ),
    Kind(
        "tick_rate",
        "simulator tick rate (x default)",
        (1, 4, 16),
        (
            Figure("cpu_s_per_1000_frames", "CPU s per 1,000 frames"),
            Figure("frames_per_s", "frames/s"),
            Figure("tick_api_p99_ms", "tick -> API p99 (ms)"),
            Figure("rss_mib", "RSS (MiB)"),
            Figure("lag_growth_per_s", "worker lag growth (frames/s)"),
        ),
        tick_rate,
    ),
    Kind(
        "stream_clients",
        "concurrent /api/v2/courses/stream clients",
        (100, 1000, 5000),
        (
            Figure("delay_p50_ms", "change -> client p50 (ms)"),
            Figure("delay_p99_ms", "change -> client p99 (ms)"),
            Figure("delivered_share", "changes delivered (share)"),
            Figure("api_rss_mib", "API RSS (MiB)"),
            Figure("api_cpu_share", "API CPU (cores, 1 change/s)"),
            Figure("api_cpu_us_per_event", "API CPU per event delivered (us)"),
        ),
        stream_clients,
    ),
)
#: For devtools/charts.py: kind -> (what varies, figures).
KINDS = {kind.name: (kind.varies, kind.figures) for kind in KIND_LIST}


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over the rounds (per process for mappings), rounded for reading."""
    row: dict[str, Any] = {"rounds": len(rounds)}
    for key, first in rounds[0].items():
        if isinstance(first, dict):
            row[key] = {
                name: _round(statistics.median(r[key][name] for r in rounds if name in r[key]))
                for name in first
            }
        else:
            values = [r[key] for r in rounds if r[key] is not None]
            row[key] = _round(statistics.median(values)) if values else None
    return row


def _round(value: float) -> float:
    return round(value, 3 if abs(value) < 10 else 1)


def raise_fd_limit(needed: int) -> None:
    """Enough open files for the stream clients and the API (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < needed:
        with contextlib.suppress(ValueError, OSError):  # raising the hard limit needs root
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, needed)), hard))


def run() -> dict[str, Any]:
    raise_fd_limit(2 * max(k.levels[-1] for k in KIND_LIST) + 1024)
    only = [name for name in os.environ.get("BENCH_SCALING_KINDS", "").split(",") if name]
    rows: list[dict[str, Any]] = []
    for kind in KIND_LIST:
        if only and kind.name not in only:
            continue
        for level in kind.levels:
            with tempfile.TemporaryDirectory(prefix=f"cp-bench-{kind.name}-") as tmp:
                started = time.monotonic()
                try:
                    row = kind.measure(level, Path(tmp))
                except Exception as exc:  # noqa: BLE001 (one level's failure must not hide the others)
                    row = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            row.update(kind=kind.name, level=level, seconds=round(time.monotonic() - started),
                       measured_at=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                       load_average_1m=round(os.getloadavg()[0], 2))  # fmt: skip
            print(f"  {kind.name} {level}: {json.dumps(row)}", flush=True)
            rows.append(row)
    if only and KEPT.exists():
        # Some kinds only: the other kinds' rows of the kept result stay (each says its date).
        kept = json.loads(KEPT.read_text())["rows"]
        rows = [row for row in kept if row["kind"] not in only] + rows
    CHART.parent.mkdir(parents=True, exist_ok=True)
    scaling_chart(KINDS, rows, CHART)
    # The kinds travel with the rows: `python -m devtools.charts scaling` draws them again.
    return {"rounds": ROUNDS, "rows": rows, "kinds": kinds_json(KINDS), "chart": str(CHART),
            "load_average_1m": round(os.getloadavg()[0], 2)}  # fmt: skip


def _what(row: dict[str, Any]) -> str:
    if row["kind"] == "directions":
        return f"{row['level']} directions"
    return f"tick rate {row['level']}x"


def _ms(value: float | None) -> str:
    return "not served within 10 s" if value is None else f"{value} ms"


def report(result: dict[str, Any]) -> str:
    lines = [f"## scaling (medians of {result['rounds']} rounds per row; chart {result['chart']})"]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"{row['kind']} {row['level']}: FAILED: {row['error']}")
        elif row["kind"] in ("tick_rate", "directions"):
            cpu = ", ".join(f"{k} {v}" for k, v in row["cpu_s_per_1000_frames"].items())
            rss = ", ".join(f"{k} {v:.0f}" for k, v in row["rss_mib"].items())
            lines.append(
                f"{_what(row)} ({row['frames_per_s']} frames/s): CPU s per 1,000 "
                f"frames: {cpu}; tick -> API p50 {_ms(row['tick_api_p50_ms'])}, p99 "
                f"{_ms(row['tick_api_p99_ms'])}; worker lag growth {row['lag_growth_per_s']} "
                f"frames/s{' (falls behind)' if row['falls_behind'] else ''}; ticks not served "
                f"within 10 s: {row.get('ticks_missed')}; RSS MiB: {rss}"
            )
        elif row["kind"] == "stream_clients":
            lines.append(
                f"{row['level']} stream clients: change -> client p50 {row['delay_p50_ms']} ms, "
                f"p99 {row['delay_p99_ms']} ms, delivered {row['delivered_share']}; API RSS "
                f"{row['api_rss_mib']} MiB, CPU {row['api_cpu_share']} cores "
                f"({row['api_cpu_us_per_event']} us per event)"
            )
    lines.append(f"machine load average (1 min) at the end: {result['load_average_1m']}")
    return "\n".join(lines)
