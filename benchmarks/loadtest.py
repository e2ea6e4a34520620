"""`make loadtest`: locust against the demo stack (or LOADTEST_URL), its report under docs/load/.

    make loadtest                                           # own `rates up --source simulator`
    make loadtest LOADTEST_URL=http://127.0.0.1:8080 LOADTEST_NAME=nginx
    make loadtest LOADTEST_ARGS="--fixed-s 10 --steps 2"    # a short run while developing

Writes to docs/load/NAME/ (NAME: ``api`` for the own stack): locust's HTML report and CSV
statistics (with the per-second history), summary.json (each phase's offered and achieved
rate, failures, exact p50/p95/p99; see tests/load/locustfile.py), the charts made from the
CSV by devtools/charts.py, the CPU of locust and of the API process over time (own stack
only) and report.png, the HTML report as headless Chromium renders it.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil

from devtools.charts import CSV_PREFIX, load_charts
from devtools.load import EXCHANGER_DIRECTIONS, EXCHANGERS
from devtools.waiting import wait_until

LOCUSTFILE = Path("tests/load/locustfile.py")
OUT = Path("docs/load")
#: Seconds locust may run beyond its planned phases before it is stopped.
SLACK_S = 60
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


def raise_fd_limit() -> int:
    """Lift the soft limit on open files to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _answers(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


@contextmanager
def target() -> Iterator[tuple[str, psutil.Process | None]]:
    """LOADTEST_URL, or the demo stack on free ports: the base URL and the API process."""
    url = os.environ.get("LOADTEST_URL", "").rstrip("/")
    if url:
        yield url, None
        return
    from benchmarks.stack import demo_stack

    with demo_stack() as stack:
        # Serving is not yet warm: every venue the locustfile names must have fresh rates.
        directions = ",".join(EXCHANGER_DIRECTIONS)
        for venue in EXCHANGERS:
            url = f"{stack.base}/api/v1/courses?exchanger={venue}&direction={directions}"
            wait_until(partial(_answers, url), 60, f"{venue} rates at the API")
        tree = psutil.Process(stack.pid).children(recursive=True)
        api = next(p for p in tree if p.cmdline()[-2:] == ["rates", "api"])
        yield stack.base, api


def sample_cpu(
    processes: dict[str, psutil.Process], path: Path, stop: threading.Event
) -> threading.Thread:
    """Each second, the CPU share (1 = one core) of each process, to ``path`` as CSV."""

    def run() -> None:
        start = time.monotonic()
        last = {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["seconds", *processes])
            while not stop.wait(1.0):
                row: list[object] = [round(time.monotonic() - start)]
                for name, process in processes.items():
                    try:
                        used = sum(process.cpu_times()[:2])
                    except psutil.Error:
                        used = last[name]
                    row.append(round(used - last[name], 3))
                    last[name] = used
                writer.writerow(row)

    thread = threading.Thread(target=run, name="cpu-sampler", daemon=True)
    thread.start()
    return thread


def screenshot(html: Path, png: Path) -> None:
    """The report page as headless Chromium renders it (its charts are drawn by scripts)."""
    browser = shutil.which("chromium")
    if browser is None:
        raise RuntimeError("chromium is missing: `apt-get install chromium` (make loadtest does)")
    with tempfile.TemporaryDirectory(prefix="cp-chromium-") as profile:
        subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,2600",
             "--virtual-time-budget=10000", f"--screenshot={png.resolve()}",
             html.resolve().as_uri()],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip


def planned_s(args: list[str]) -> float:
    """The longest the locustfile's phases can last with these arguments."""
    options = {"--fixed-s": 60.0, "--step-s": 15.0, "--steps": 8.0}
    for flag in options:
        if flag in args:
            options[flag] = float(args[args.index(flag) + 1])
    return options["--fixed-s"] + options["--step-s"] * options["--steps"]


def table_rows(name: str, summary: dict[str, Any]) -> list[str]:
    """Markdown rows for the README: the fixed phase and the step that achieved the most."""
    phases = summary["phases"]
    fixed = phases[0]
    top = max(phases, key=lambda p: p["achieved_rps"])
    rows = []
    for label, phase in ((f"{fixed['seconds'] + summary['settle_s']:g} s fixed", fixed),
                         (f"maximum ({top['phase']})", top)):  # fmt: skip
        rows.append(
            f"| {name} | {label} | {phase['offered_rps']:,} | {phase['achieved_rps']:,.0f} | "
            f"{phase['failures']} of {phase['requests']:,} | {phase['p50_ms']} / "
            f"{phase['p95_ms']} / {phase['p99_ms']} ms | {phase['locust_cpu_share']} |"
        )
    return rows


def main() -> int:
    url = os.environ.get("LOADTEST_URL")
    name = os.environ.get("LOADTEST_NAME") or ("external" if url else "api")
    extra = shlex.split(os.environ.get("LOADTEST_ARGS", ""))
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    raise_fd_limit()
    started = datetime.now(UTC)
    with target() as (base, api):
        print(f"# loadtest of {base} ({started:%Y-%m-%d %H:%M} UTC), report in {out}/", flush=True)
        argv = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", base,
            "--html", str(out / "report.html"), "--csv", str(out / CSV_PREFIX),
            "--csv-full-history", "--summary-json", str(out / "summary.json"),
            "--loglevel", "WARNING", "--only-summary", *extra,
        ]  # fmt: skip
        locust = subprocess.Popen(argv)
        watched = {"locust": psutil.Process(locust.pid)}
        if api is not None:
            watched["api"] = api
        stop = threading.Event()
        sampler = sample_cpu(watched, out / "cpu.csv", stop)
        try:
            code = locust.wait(planned_s(extra) + SLACK_S)
        except subprocess.TimeoutExpired:
            locust.terminate()
            code = locust.wait(30)
        finally:
            stop.set()
            sampler.join(5)
    summary = json.loads((out / "summary.json").read_text())
    summary.update(target=base, name=name, started=started.isoformat(timespec="seconds"),
                   locust_exit_code=code)  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for path in load_charts(out, summary["user_rps"], summary["stream_users"]):
        print(f"wrote {path}")
    screenshot(out / "report.html", out / "report.png")
    print(f"wrote {out / 'report.png'}")
    print("| target | phase | offered req/s | achieved req/s | failures | p50 / p95 / p99 | "
          "locust CPU |")  # fmt: skip
    print("\n".join(table_rows(name, summary)))
    for phase in summary["phases"]:
        print(json.dumps(phase))
    if code not in (0, 1):  # 1: some request failed, which the report shows
        return code
    # The promise is the fixed phase: no failure there (the steps beyond may saturate).
    return 1 if summary["phases"][0]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
