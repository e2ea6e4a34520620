"""`rates healthcheck`: the verdict on each process's answer; the process a container runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from rates import healthcheck
from rates.embedded import free_port


def exposition(name: str, value: float | None, labels: dict[str, str] | None = None) -> str:
    """What a process's /metrics says when the gauge is ``value`` (None: never set)."""
    registry = CollectorRegistry()
    if value is not None:
        gauge = Gauge(name, "test", list(labels or {}), registry=registry)
        (gauge.labels(**labels) if labels else gauge).set(value)
    return generate_latest(registry).decode()


def test_the_worker_is_healthy_once_faust_finished_starting() -> None:
    assert healthcheck.worker_verdict(exposition("rates_pipeline_worker_ready", 1)) is None
    assert "not finished starting" in str(
        healthcheck.worker_verdict(exposition("rates_pipeline_worker_ready", 0))
    )
    assert healthcheck.worker_verdict(exposition("rates_pipeline_worker_ready", None))


def test_the_history_writer_is_healthy_while_postgresql_accepts_its_writes() -> None:
    assert healthcheck.history_verdict(exposition("rates_history_database_up", 1)) is None
    assert "PostgreSQL" in str(
        healthcheck.history_verdict(exposition("rates_history_database_up", 0))
    )


def test_the_connector_is_healthy_once_its_venue_loops_run() -> None:
    running = exposition("rates_connector_state", 1, {"venue": "okx", "state": "up"})
    assert healthcheck.connector_verdict(running) is None
    assert healthcheck.connector_verdict(exposition("rates_connector_state", None))


def test_the_api_is_healthy_when_healthz_says_ok() -> None:
    assert healthcheck.api_verdict('{"status":"ok"}') is None
    assert healthcheck.api_verdict("<html>") is not None


@pytest.mark.parametrize(
    ("cmdline", "process"),
    [
        (["/opt/rates/bin/rates", "worker"], "worker"),
        (["/opt/rates/bin/rates", "api"], "api"),
        (["/opt/rates/bin/rates", "up", "--source", "simulator"], "api"),
        (["/opt/rates/bin/rates", "migrate", "--wait", "60"], None),
        (["/opt/rates/bin/rates", "--help"], None),
    ],
)
def test_the_process_checked_is_the_one_the_container_runs(
    cmdline: list[str], process: str | None, tmp_path: Path
) -> None:
    proc = tmp_path / "cmdline"
    proc.write_bytes(b"\0".join(w.encode() for w in ["/opt/rates/bin/python", *cmdline]) + b"\0")
    assert healthcheck.container_process(proc) == process


def test_a_process_that_does_not_answer_is_unhealthy() -> None:
    check = healthcheck.check("worker", "0.0.0.0", free_port())
    assert check.url.startswith("http://127.0.0.1:")
    assert "did not answer" in str(healthcheck.probe(check, timeout_s=1))
    assert "port is 0" in str(healthcheck.probe(healthcheck.check("api", "127.0.0.1", 0)))
