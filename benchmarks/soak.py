"""`make soak`: the demo stack for hours, sampled (``python -m benchmarks.soak --duration 2h``).

Runs `rates up --source simulator` on free ports with a state directory of its own, asks
``GET /api/v1/courses`` every second (status, answer time, whether the values moved) and
every few seconds samples the memory of each process of the tree, the state directory's
disk use and the broker recycles. It writes ``soak.csv`` as it goes, then ``summary.md``,
``summary.json`` and ``soak.png`` (devtools/soak.py), and prints the summary in the README's
Markdown. Settings of the project set in the caller's environment (``RATES_BROKER_MAX_MB``,
``RATES_WORKERS``, ...) are passed on, except the addresses and the state directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from benchmarks.__main__ import machine
from devtools.environment import SETTINGS, clean_env
from devtools.processes import RATES, running
from devtools.soak import CsvWriter, Sample, child_name, parse_duration, recycle_count, report
from rates.embedded import free_port

RESULTS = Path("soak-results")
MB = 2**20

#: Ports the soak chooses (free ones), so that it runs beside a `make demo`. The embedded
#: broker's and database's port settings, and the supervisor's metrics port, are set even
#: where this version has no such setting (a process ignores what it does not read).
PORTS = (
    "API_PORT",
    "CONNECTOR_METRICS_PORT",
    "WORKER_METRICS_PORT",
    "HISTORY_METRICS_PORT",
    "STACK_METRICS_PORT",
    "RATES_BROKER_PORT",
    "RATES_POSTGRES_PORT",
)
#: Settings the soak decides: its addresses, its state, and an embedded broker and database.
OWNED = frozenset(
    {*PORTS, "RATES_SIMULATOR_PORT", "RATES_STATE_DIR", "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
)


def passed_settings() -> dict[str, str]:
    """The project's settings in the caller's environment that the soak passes on."""
    return {
        name.upper(): value
        for name, value in os.environ.items()
        if name.upper() in SETTINGS and name.upper() not in OWNED
    }


@dataclass
class Stack:
    """Where the soak's stack answers, and what it was started with."""

    env: dict[str, str]
    state_dir: Path

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}/api/v1/courses"

    @property
    def v2(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}/api/v2/courses"

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.env['STACK_METRICS_PORT']}/metrics"


def stack(directory: Path, passed: dict[str, str]) -> Stack:
    state = directory / "state"
    ports = {name: str(free_port()) for name in PORTS}
    # The simulator takes several consecutive ports: 0 lets it choose free ones.
    env = clean_env(RATES_STATE_DIR=str(state), RATES_SIMULATOR_PORT="0", **ports, **passed)
    return Stack(env, state)


# -- sampling -------------------------------------------------------------------------------


def _pss_mb(process: psutil.Process) -> float:
    """Proportional set size (shared pages split between the processes that map them)."""
    try:
        return float(process.memory_full_info().pss) / MB
    except psutil.AccessDenied:
        return float(process.memory_info().rss) / MB


@dataclass
class Usage:
    """Per child of `rates up` (by name, summed over its processes): MB (PSS) and CPU
    seconds so far; and the broker's RSS."""

    memory_mb: dict[str, float]
    cpu_s: dict[str, float]
    broker_rss_mb: float | None = None


def usage(root: psutil.Process) -> Usage:
    found = Usage({}, {})
    try:
        children = root.children()
        found.memory_mb["up"] = _pss_mb(root)
        found.cpu_s["up"] = _cpu_s(root)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            name = child_name(child.cmdline())
            processes = [child, *child.children(recursive=True)]
            mb, cpu = sum(_pss_mb(p) for p in processes), sum(_cpu_s(p) for p in processes)
            if name == "tansu":
                found.broker_rss_mb = float(child.memory_info().rss) / MB
        except psutil.NoSuchProcess:  # restarting: counted at the next sample
            continue
        found.memory_mb[name] = found.memory_mb.get(name, 0.0) + mb
        found.cpu_s[name] = found.cpu_s.get(name, 0.0) + cpu
    return found


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def disk_mb(path: Path) -> float | None:
    """Disk blocks used by the files under ``path`` (files that vanish meanwhile skipped)."""
    if not path.exists():
        return None
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total / MB


def scrape(url: str) -> str | None:
    try:
        answer = httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None


def ask_v1(client: httpx.Client, url: str) -> tuple[int, float, Any]:
    """(status, ms, the body) of one v1 answer; status 0 when nothing answered."""
    started = time.perf_counter()
    try:
        answer = client.get(url)
    except httpx.HTTPError:
        return 0, (time.perf_counter() - started) * 1000, None
    ms = (time.perf_counter() - started) * 1000
    return answer.status_code, ms, orjson.loads(answer.content) if answer.is_success else None


def served_rates(client: httpx.Client, url: str) -> tuple[float | None, int | None]:
    """The median age of the rates ``/api/v2/courses`` serves, and how many are stale."""
    try:
        answer = client.get(url)
    except httpx.HTTPError:
        return None, None
    if not answer.is_success:
        return None, None
    courses = orjson.loads(answer.content)["courses"]
    ages = [c["age_ms"] for c in courses if c["age_ms"] is not None]
    return (statistics.median(ages) if ages else None), sum(1 for c in courses if c["stale"])


def soak(directory: Path, duration_s: float, every_s: int, note: str | None = None) -> None:
    """Run and sample the stack for ``duration_s`` (Ctrl-C ends it early, figures kept)."""
    passed = passed_settings()
    target = stack(directory, passed)
    log = directory / "up.log"
    settings = "".join(f"{name}={value} " for name, value in passed.items())
    meta: dict[str, object] = {
        "command": f"{settings}make soak SOAK_DURATION={_duration_text(duration_s)}",
        "machine": machine(),
        "started": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "duration_s": duration_s,
        "settings": passed,
        "ports": {name: target.env[name] for name in PORTS},
        "load": f"load average {os.getloadavg()[0]:.1f} at the start",
        "note": note,
    }
    (directory / "soak.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"soak for {_duration_text(duration_s)} into {directory}", flush=True)
    if passed:
        print("settings passed on: " + " ".join(f"{k}={v}" for k, v in passed.items()))
    writer = CsvWriter(directory / "soak.csv")
    argv = [*RATES, "up", "--source", "simulator"]
    try:
        with (
            running(
                "up", argv, target.env, log, cwd=directory, stop_signal=signal.SIGINT, timeout_s=90
            ) as up,
            httpx.Client(timeout=2) as client,
        ):
            root = psutil.Process(up.popen.pid)
            started = time.monotonic()
            tick = 0
            previous: object = None
            while (elapsed := time.monotonic() - started) < duration_s:
                if up.popen.poll() is not None:
                    print(f"rates up exited ({up.popen.returncode}); see {log}", flush=True)
                    break
                sample = Sample(round(elapsed, 3), datetime.now(UTC).isoformat(timespec="seconds"))
                status, ms, body = ask_v1(client, target.v1)
                sample.v1_status, sample.v1_ms = status, round(ms, 3)
                if status == 200:
                    courses = body.get("courses")
                    sample.v1_moved = None if previous is None else courses != previous
                    sample.v1_venue, previous = body.get("exchanger"), courses
                if tick % every_s == 0:
                    used = usage(root)
                    sample.memory_mb, sample.cpu_s = used.memory_mb, used.cpu_s
                    sample.broker_rss_mb = used.broker_rss_mb
                    sample.state_mb = disk_mb(target.state_dir)
                    sample.postgres_mb = disk_mb(target.state_dir / "postgres")
                    text = log.read_text(errors="replace") if log.exists() else ""
                    sample.recycles = recycle_count(text, scrape(target.metrics))
                    sample.rate_age_ms, sample.stale = served_rates(client, target.v2)
                if tick % 60 == 0:
                    _progress(sample)
                writer.write(sample)
                tick += 1
                # One answer a second on the clock; a slow answer skips, never bunches up.
                time.sleep(max(0.0, started + tick - time.monotonic()))
                tick = max(tick, int(time.monotonic() - started))
    except KeyboardInterrupt:
        print("stopped early: the figures cover what was sampled", flush=True)
    finally:
        writer.close()
        meta["load"] = f"{meta['load']}, {os.getloadavg()[0]:.1f} at the end"
        (directory / "soak.json").write_text(json.dumps(meta, indent=2) + "\n")


def _progress(sample: Sample) -> None:
    broker = "n/a" if sample.broker_rss_mb is None else f"{sample.broker_rss_mb:.0f} MB"
    print(
        f"{sample.at}  +{sample.elapsed_s / 60:5.1f} min  v1 {sample.v1_status}  "
        f"broker RSS {broker}  recycles {sample.recycles}",
        flush=True,
    )


def _duration_text(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--duration", default="2h", help="how long: 2h (default), 90m, 600 ...")
    parser.add_argument(
        "--every", type=int, default=5, help="seconds between resource samples (default 5)"
    )
    parser.add_argument("--out", type=Path, help="directory for the results (default: new one)")
    parser.add_argument("--keep-state", action="store_true", help="keep the PostgreSQL data")
    parser.add_argument("--readme", type=Path, help="also put the summary table in this README")
    parser.add_argument("--note", help="a remark shown with the table (e.g. why this run)")
    args = parser.parse_args()
    try:
        duration_s = parse_duration(args.duration)
    except ValueError as exc:
        parser.error(str(exc))
    if args.every < 1:
        parser.error("--every must be at least 1 (seconds)")
    directory = args.out or RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    try:
        soak(directory, duration_s, args.every, args.note)
    finally:
        if not args.keep_state:
            shutil.rmtree(directory / "state", ignore_errors=True)
    print(report(directory / "soak.csv", args.readme), end="")
    print(f"(CSV, chart and summary in {directory})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
