"""`rates up --source simulator` (what `make demo` runs): the whole tree, embedded."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until
from rates.embedded import check_port_free, free_port
from rates.plan import SIMULATOR_PORTS
from schemas.errors import ConfigError
from schemas.records import parse_time
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.venues import EXCHANGERS
from tests.integration.harness import courses
from tests.reliability import REPORT, Row


def children_named(parent: psutil.Process) -> dict[str, psutil.Process]:
    found = {}
    for child in parent.children(recursive=False):
        cmd = child.cmdline()
        if not cmd:  # a child that exited and is not yet reaped
            continue
        name = cmd[3] if len(cmd) > 3 and cmd[1:3] == ["-m", "rates"] else Path(cmd[0]).name
        found[name] = child
    return found


def free_block(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(100):
        first = free_port()
        try:
            for port in range(first, first + count):
                check_port_free("127.0.0.1", port, "RATES_SIMULATOR_PORT")
        except ConfigError:
            continue
        return first
    raise AssertionError(f"no {count} consecutive free ports")


def listening(process: psutil.Process) -> set[int]:
    return {c.laddr.port for c in process.net_connections() if c.status == psutil.CONN_LISTEN}


def addresses(up: psutil.Process, state_dir: Path) -> dict[str, Any]:
    """Where the broker, PostgreSQL and the simulator of a running `rates up` listen."""
    tree = children_named(up)
    return {
        "kafka": listening(tree["tansu"]),
        "postgres": listening(tree["postgres"]),
        "simulator": json.loads((state_dir / "simulator.json").read_text()),
    }


def quotes_stored(database: str) -> int:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM quotes").fetchone()
    return int(row[0]) if row else 0


def fresh_since(base: str, moment: float) -> bool:
    """Every direction served fresh by v2 with a value received after ``moment``."""
    served = httpx.get(f"{base}/api/v2/courses", timeout=5).json()["courses"]
    fresh = {
        c["direction"]
        for c in served
        if not c["stale"] and c["received_at"] and parse_time(c["received_at"]).timestamp() > moment
    }
    return fresh == set(DEFAULT_DIRECTIONS)


def test_up_serves_restarts_stops_and_starts_again_at_the_same_addresses(
    state_dir: Path, procs: Procs
) -> None:
    api, connector_metrics, worker_metrics = free_port(), free_port(), free_port()
    kafka, postgres, stack_metrics = free_port(), free_port(), free_port()
    simulator = free_block(SIMULATOR_PORTS)
    base = f"http://127.0.0.1:{api}"
    # Fixed ports, as the defaults are (tests give free ones: other stacks may run).
    env = clean_env(
        RATES_STATE_DIR=str(state_dir),
        API_PORT=str(api),
        CONNECTOR_METRICS_PORT=str(connector_metrics),
        WORKER_METRICS_PORT=str(worker_metrics),
        RATES_BROKER_PORT=str(kafka),
        RATES_POSTGRES_PORT=str(postgres),
        RATES_SIMULATOR_PORT=str(simulator),
        STACK_METRICS_PORT=str(stack_metrics),
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

    # The only worker killed: the supervisor restarts it and every direction is fresh again.
    worker = children_named(psutil.Process(up.pid))["worker"]
    killed_at = time.time()
    worker.kill()
    wait_until(
        lambda: "worker exited with code -9; restarting it" in log.read_text(),
        30,
        "the supervisor to report the dead worker",
    )
    wait_until(lambda: fresh_since(base, killed_at), 60, "fresh rates after the worker's restart")
    back_s = time.time() - killed_at
    REPORT.add(
        Row(
            "kill -9 the only worker (`rates up`)",
            "worker",
            "the supervisor restarted it; every direction fresh again",
            round(back_s, 1),
            lost="not checked here (see the two-worker row)",
        )
    )

    # Every address is the configured one; the supervisor serves its own metrics.
    before = addresses(psutil.Process(up.pid), state_dir)
    assert before["kafka"] == {kafka} and before["postgres"] == {postgres}
    ports = sorted(
        int(url.rsplit(":", 1)[1].split("/")[0]) for url in before["simulator"]["env"].values()
    )
    assert set(ports) == set(range(simulator, simulator + SIMULATOR_PORTS - 1))
    assert before["simulator"]["control"] == f"http://127.0.0.1:{simulator + SIMULATOR_PORTS - 1}"
    assert "rates_stack_broker_rss_bytes" in httpx.get(f"http://127.0.0.1:{stack_metrics}").text
    database = f"postgresql://postgres@127.0.0.1:{postgres}/postgres"
    wait_until(lambda: quotes_stored(database) > 0, 30, "quotes in PostgreSQL")

    # Ctrl-C stops every child and exits 0.
    stored = quotes_stored(database)
    everything = psutil.Process(up.pid).children(recursive=True)
    up.send_signal(signal.SIGINT)
    assert up.wait(60) == 0
    _, alive = psutil.wait_procs(everything, timeout=10)
    assert not alive, alive

    # Started again (as `make demo` is): every address is the same, the history is kept.
    again = procs.start("up-again", ["up", "--source", "simulator"], env)
    wait_until(serving, 60, "rates up to serve again")
    assert addresses(psutil.Process(again.popen.pid), state_dir) == before
    kept = quotes_stored(database)
    assert kept >= stored
    wait_until(lambda: quotes_stored(database) > kept, 30, "new quotes stored after the old")
    again.popen.send_signal(signal.SIGINT)
    assert again.popen.wait(60) == 0
