"""API speed: requests/s of GET /api/v1/courses against a bare ASGI app, and latency at 1500/s.

Everything runs in one go with one load generator (h2load, HTTP/1.1 keep-alive, one thread)
and one core split: the servers on core 1, the load generator and the Tansu broker on
core 0. Servers, all one uvicorn worker with uvloop and httptools and no access log:

- ``rates api`` as `make demo` runs it, fed a synthetic rates.latest (api/ fast path on);
- the same with ``API_FAST_PATH=false`` (the FastAPI route: the "before");
- a bare ASGI app returning the API's exact bytes (the machine's limit here).

Throughput is measured in alternating rounds (noise from other work on the machine hits
every server alike) and reported as medians; the ratio is of the medians. Each round also
counts the server's CPU time after the warm-up: requests per CPU-second do not depend on
how often other work preempted the server, so their ratio is the steadier comparison. Latency at a
fixed rate (h2load --rps: 10 connections, 150 requests/s each, request start to end of
response) is measured the same way, in alternating rounds, for the API and, as the
machine's own floor, for the bare app; the medians of the rounds' percentiles are reported.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from devtools.apiserver import latest_records, republishing, run_api
from devtools.embedded import start_tansu
from devtools.processes import running
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas.settings import DEFAULT_DIRECTIONS

QUERY = "/api/v1/courses?direction=BTC-USD,ETH-USD"
SERVER_CPU = 1
CLIENT_CPU = 0
ROUNDS = 5
DURATION_S = 4
WARMUP_S = 1
CLIENTS = 32
RATE = 1500
RATE_CLIENTS = 10
RATE_DURATION_S = 5
PREFIX = "bench-api."


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def h2load(*args: str, server: psutil.Process | None = None) -> tuple[str, float]:
    """h2load's report, and the CPU seconds ``server`` used after the warm-up."""
    if shutil.which("h2load") is None:
        raise RuntimeError("h2load is missing: `apt-get install nghttp2-client` (make bench does)")
    argv = ["taskset", "-c", str(CLIENT_CPU), "h2load", "--h1", "-t", "1", *args]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        used = 0.0
        if server is not None:
            time.sleep(WARMUP_S)
            used = -_cpu_s(server)
        out, err = run.communicate(timeout=120)
        if server is not None:
            used += _cpu_s(server)
    if run.returncode != 0:
        raise RuntimeError(f"h2load failed: {out}\n{err}")
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if codes is None or int(codes.group(1)) == 0 or any(int(n) for n in codes.groups()[1:]):
        raise RuntimeError(f"h2load saw answers other than 200:\n{out}")
    return out, used


def throughput(url: str, server: psutil.Process) -> tuple[float, float]:
    """Requests/s, and requests per second of the server's CPU time (immune to preemption)."""
    out, cpu_s = h2load(
        "-c", str(CLIENTS), "-D", str(DURATION_S), "--warm-up-time", str(WARMUP_S), url,
        server=server,
    )  # fmt: skip
    found = re.search(r"finished in [0-9.]+s, ([0-9.]+) req/s", out)
    if found is None:
        raise RuntimeError(f"no req/s in h2load's output:\n{out}")
    rps = float(found.group(1))
    return rps, rps * DURATION_S / cpu_s


def fixed_rate(url: str, log: Path) -> list[float]:
    """Latencies (ms, request start to end of response) at RATE requests/s."""
    per_client = RATE // RATE_CLIENTS
    log.unlink(missing_ok=True)  # h2load appends
    h2load("-c", str(RATE_CLIENTS), "--rps", str(per_client), "-D", str(RATE_DURATION_S),
           "--log-file", str(log), url)  # fmt: skip
    return [int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def bare_app(body: bytes, directory: Path) -> Iterator[tuple[str, int]]:
    """benchmarks/bare.py under uvicorn, configured as api/server.py configures the API."""
    port = free_port()
    body_file = directory / "body.json"
    body_file.write_bytes(body)
    argv = ["taskset", "-c", str(SERVER_CPU), sys.executable, "-m", "uvicorn",
            "benchmarks.bare:app", "--port", str(port), "--loop", "uvloop", "--http",
            "httptools", "--no-access-log", "--lifespan", "off", "--no-server-header",
            "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    base = f"http://127.0.0.1:{port}"
    with running("bare", argv, env, directory / "bare.log", timeout_s=15) as bare:
        wait_until(lambda: httpx.get(base, timeout=1).content == body, 30, "the bare app")
        yield base, bare.popen.pid  # taskset execs: the server's own process


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cp-bench-api-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        tansu = start_tansu(log=directory / "tansu.log")
        stack.callback(tansu.stop)
        os.sched_setaffinity(tansu.popen.pid, {CLIENT_CPU})
        # Republished every second, as the pipeline does: unchanged, so no cache is cleared.
        stack.enter_context(republishing(tansu.address, PREFIX, latest_records(DEFAULT_DIRECTIONS)))
        fast = stack.enter_context(
            run_api(tansu.address, PREFIX, directory / "api.log", cpu=SERVER_CPU)
        )
        slow_stack = stack.enter_context(ExitStack())  # closed before the latency rounds
        slow = slow_stack.enter_context(
            run_api(
                tansu.address,
                PREFIX,
                directory / "api-fastapi.log",
                cpu=SERVER_CPU,
                API_FAST_PATH="false",
            )
        )

        def answer(base: str) -> bytes | None:
            response = httpx.get(base + QUERY, timeout=2)
            return response.content if response.status_code == 200 else None

        body = wait_until(lambda: answer(fast.base), 30, "the API to serve the synthetic feed")
        assert wait_until(lambda: answer(slow.base), 30, "the FastAPI route") == body
        bare, bare_pid = stack.enter_context(bare_app(body, directory))

        servers = {
            "bare": (bare, psutil.Process(bare_pid)),
            "api": (fast.base, psutil.Process(fast.popen.pid)),
            "fastapi": (slow.base, psutil.Process(slow.popen.pid)),
        }
        rates: dict[str, list[float]] = {name: [] for name in servers}
        per_cpu: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(ROUNDS):
            for name, (base, process) in servers.items():
                rps, rps_cpu = throughput(base + QUERY, process)
                rates[name].append(rps)
                per_cpu[name].append(rps_cpu)
        slow_stack.close()  # an idle server still polls Kafka: not on the measured core
        # Alternating rounds again; each round's percentiles, then their medians.
        tails: dict[str, list[tuple[float, float, float]]] = {"api": [], "bare": []}
        for _ in range(ROUNDS):
            for name, base in (("api", fast.base), ("bare", bare)):
                got = fixed_rate(base + QUERY, directory / f"rate-{name}.log")
                tails[name].append((statistics.median(got), percentile(got, 0.99), max(got)))
        load = os.getloadavg()[0]

    median = {name: statistics.median(values) for name, values in rates.items()}
    cpu = {name: statistics.median(values) for name, values in per_cpu.items()}
    return {
        "query": QUERY,
        "body_bytes": len(body),
        "load_generator": f"h2load --h1 -t 1 -c {CLIENTS}, {DURATION_S} s per round "
        f"after {WARMUP_S} s warm-up, {ROUNDS} alternating rounds",
        "core_split": f"servers on core {SERVER_CPU}; h2load and Tansu on core {CLIENT_CPU}",
        "rounds_rps": {name: [round(v) for v in values] for name, values in rates.items()},
        "api_rps": round(median["api"]),
        "bare_rps": round(median["bare"]),
        "fastapi_rps": round(median["fastapi"]),
        "ratio": round(median["api"] / median["bare"], 3),
        "fastapi_ratio": round(median["fastapi"] / median["bare"], 3),
        "per_cpu_second": {name: round(value) for name, value in cpu.items()},
        "cpu_ratio": round(cpu["api"] / cpu["bare"], 3),
        "fastapi_cpu_ratio": round(cpu["fastapi"] / cpu["bare"], 3),
        "fixed_rate_rps": RATE,
        "fixed_rate_rounds_p99_ms": {k: [round(t[1], 3) for t in v] for k, v in tails.items()},
        "p50_ms": round(statistics.median(t[0] for t in tails["api"]), 3),
        "p99_ms": round(statistics.median(t[1] for t in tails["api"]), 3),
        "max_ms": round(max(t[2] for t in tails["api"]), 3),
        "bare_p50_ms": round(statistics.median(t[0] for t in tails["bare"]), 3),
        "bare_p99_ms": round(statistics.median(t[1] for t in tails["bare"]), 3),
        "load_average_1m": round(load, 2),
        "targets": {"ratio": 0.5, "p99_ms": 5.0},
    }


def report(result: dict[str, Any]) -> str:
    t = result["targets"]
    rounds = result["rounds_rps"]
    rows = [
        ("API (fast path)", result["api_rps"], rounds["api"]),
        ("bare ASGI, same bytes", result["bare_rps"], rounds["bare"]),
        ("FastAPI route", result["fastapi_rps"], rounds["fastapi"]),
    ]
    return "\n".join(
        [
            f"## API: GET {result['query']} on one worker ({result['body_bytes']} bytes)",
            f"{result['load_generator']}; {result['core_split']}",
            *(f"{name:<22} {rps:>7} req/s (rounds {each})" for name, rps, each in rows),
            f"ratio API / bare: {result['ratio']} (target >= {t['ratio']}); "
            f"FastAPI route / bare: {result['fastapi_ratio']}",
            "per second of server CPU (immune to preemption by other work): "
            + ", ".join(f"{k} {v}" for k, v in result["per_cpu_second"].items())
            + f"; API / bare {result['cpu_ratio']}, FastAPI route / bare "
            f"{result['fastapi_cpu_ratio']}",
            f"at a fixed {result['fixed_rate_rps']} req/s ({RATE_DURATION_S} s rounds, medians): "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (target < {t['p99_ms']}; "
            f"rounds {result['fixed_rate_rounds_p99_ms']['api']}), max {result['max_ms']} ms",
            f"the bare app at the same rate: p50 {result['bare_p50_ms']} ms, p99 "
            f"{result['bare_p99_ms']} ms (rounds {result['fixed_rate_rounds_p99_ms']['bare']})",
            f"machine load average (1 min) at the end: {result['load_average_1m']} "
            "(other work on the machine shows in the tails of both)",
        ]
    )
