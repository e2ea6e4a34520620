"""Bad configuration gives one clear line naming the setting, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devtools.environment import clean_env
from rates.embedded import free_port


def rates(
    args: list[str], cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rates", *args],
        env=clean_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", [["up"], ["connect"], ["worker"], ["api"]])
def test_unknown_venue(tmp_path: Path, command: list[str]) -> None:
    result = rates(command, tmp_path, RATES_VENUES="binance,nosuch")
    assert result.returncode == 2
    line = error_line(result)
    assert "RATES_VENUES" in line and "nosuch" in line and "binance" in line


def test_unknown_venue_argument(tmp_path: Path) -> None:
    result = rates(["connect", "nosuch"], tmp_path)
    assert result.returncode == 2
    assert "unknown venue 'nosuch' (known: binance, kraken, okx, bybit" in error_line(result)


@pytest.mark.parametrize("command", [["up"], ["connect"], ["worker"], ["api"]])
def test_unreachable_broker(tmp_path: Path, command: list[str]) -> None:
    result = rates(
        command,
        tmp_path,
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        KAFKA_CONNECT_TIMEOUT_S="1",
        API_PORT=str(free_port()),
    )
    assert result.returncode == 1
    line = error_line(result)
    assert "KAFKA_BOOTSTRAP_SERVERS" in line and "within 1 s" in line


@pytest.mark.parametrize("url", ["garbage", "postgresql://u@h:notaport/db", "mysql://u@h/db"])
def test_malformed_database_url(tmp_path: Path, url: str) -> None:
    for command in (["up"], ["migrate"]):
        result = rates(command, tmp_path, DATABASE_URL=url)
        assert result.returncode == 2
        assert "DATABASE_URL" in error_line(result)


def test_unreachable_database(tmp_path: Path) -> None:
    result = rates(["migrate"], tmp_path, DATABASE_URL=f"postgresql://u@127.0.0.1:{free_port()}/db")
    assert result.returncode == 1
    assert "DATABASE_URL: cannot connect to PostgreSQL" in error_line(result)


@pytest.mark.parametrize("command", [["up"], ["api"]])
def test_port_in_use(tmp_path: Path, taken_port: int, command: list[str]) -> None:
    result = rates(command, tmp_path, API_PORT=str(taken_port), KAFKA_CONNECT_TIMEOUT_S="1")
    assert result.returncode == 2
    line = error_line(result)
    assert f"API_PORT={taken_port}" in line
    assert "in use" in line or "not available" in line


def test_metrics_port_in_use(tmp_path: Path, taken_port: int, kafka: str) -> None:
    result = rates(
        ["connect"], tmp_path, KAFKA_BOOTSTRAP_SERVERS=kafka, CONNECTOR_METRICS_PORT=str(taken_port)
    )
    assert result.returncode == 2
    assert f"CONNECTOR_METRICS_PORT={taken_port}" in error_line(result)


def test_bad_arguments(tmp_path: Path) -> None:
    result = rates(["up", "--source", "nowhere"], tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'nowhere'" in result.stderr
    result = rates(["frobnicate"], tmp_path)
    assert result.returncode == 2


def test_migrate_applies_once(tmp_path: Path, postgres: str) -> None:
    first = rates(["migrate"], tmp_path, DATABASE_URL=postgres)
    assert first.returncode == 0, first.stderr
    again = rates(["migrate"], tmp_path, DATABASE_URL=postgres)
    assert again.returncode == 0 and "applied 0 migration(s)" in again.stdout
    with psycopg.connect(postgres) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "select table_name from information_schema.tables where table_schema='public'"
            )
        }
    assert {"quotes", "switches"} <= tables
