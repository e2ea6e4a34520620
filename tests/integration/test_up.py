"""`rates up --source simulator` (what `make demo` runs): the whole tree, embedded."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.venues import EXCHANGERS
from tests.integration.harness import courses


def children_named(parent: psutil.Process) -> dict[str, psutil.Process]:
    found = {}
    for child in parent.children(recursive=False):
        cmd = child.cmdline()
        if not cmd:  # a child that exited and is not yet reaped
            continue
        name = cmd[3] if len(cmd) > 3 and cmd[1:3] == ["-m", "rates"] else Path(cmd[0]).name
        found[name] = child
    return found


def test_up_serves_restarts_and_stops_cleanly(state_dir: Path, procs: Procs) -> None:
    api, connector_metrics, worker_metrics = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{api}"
    env = clean_env(
        RATES_STATE_DIR=str(state_dir),
        API_PORT=str(api),
        CONNECTOR_METRICS_PORT=str(connector_metrics),
        WORKER_METRICS_PORT=str(worker_metrics),
    )
    started_up = procs.start("up", ["up", "--source", "simulator"], env)
    up, log = started_up.popen, started_up.log
    started = time.monotonic()

    def serving() -> dict[str, Any] | None:
        status, body = courses(base)
        return body if status == 200 and body["courses"] else None

    body = wait_until(serving, 60, "rates up to serve /api/v1/courses")
    elapsed = time.monotonic() - started
    print(f"serving {len(body['courses'])} directions {elapsed:.1f} s after start")
    assert body["exchanger"] in EXCHANGERS
    assert {c["direction"] for c in body["courses"]} <= set(DEFAULT_DIRECTIONS)

    # Every process serves its metrics; the embedded PostgreSQL was migrated.
    assert "rates_connector_frames_total" in httpx.get(f"http://127.0.0.1:{connector_metrics}").text
    assert "rates_pipeline_quotes_total" in httpx.get(f"http://127.0.0.1:{worker_metrics}").text
    assert "applied migrations: 0001_history" in log.read_text()

    # A child that dies is reported and restarted.
    tree = children_named(psutil.Process(up.pid))
    assert {"tansu", "postgres", "simulate", "connect", "worker", "history", "api"} <= set(tree)
    tree["connect"].kill()
    wait_until(
        lambda: "connect exited with code -9; restarting it" in log.read_text(),
        30,
        "the supervisor to report the dead connector",
    )
    wait_until(
        lambda: (
            "connect" in children_named(psutil.Process(up.pid))
            and children_named(psutil.Process(up.pid))["connect"].pid != tree["connect"].pid
        ),
        30,
        "a new connector",
    )
    wait_until(serving, 30, "rates after the restart")

    # Ctrl-C stops every child and exits 0.
    everything = psutil.Process(up.pid).children(recursive=True)
    up.send_signal(signal.SIGINT)
    assert up.wait(60) == 0
    _, alive = psutil.wait_procs(everything, timeout=10)
    assert not alive, alive
