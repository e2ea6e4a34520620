"""The reliability tier: every test here is marked ``chaos``; one stack serves them all."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import httpx
import pytest

from devtools.embedded import start_tansu
from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.topics import Topics
from tests.chaos.stack import ALL, MAX_STREAMS, SECRET, Stack, Watch
from tests.integration.harness import read_ports_file, unique_prefix
from tests.reliability import REPORT, Report


def chaos_item(item: pytest.Item | None) -> bool:
    return item is not None and "tests/chaos" in str(item.path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if chaos_item(item):
            item.add_marker(pytest.mark.chaos)


#: Stops the shared stack (set while it runs).
_CLOSERS: list[Callable[[], None]] = []


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The stack stops after the tier's last test, not at the end of the whole session: the
    tiers after this one run without its load."""
    if chaos_item(item) and not chaos_item(nextitem):
        while _CLOSERS:
            _CLOSERS.pop()()


@pytest.fixture(scope="session")
def report() -> Report:
    """The rows of the README's reliability table (tests/reliability.py)."""
    return REPORT


@pytest.fixture(scope="session")
def stack(report: Report) -> Iterator[Stack]:
    """Simulator, connector (every venue), two workers and the API, all logging at DEBUG with
    a CoinGecko key set, on a Tansu broker of their own."""
    directory = Path(tempfile.mkdtemp(prefix="cp-chaos-"))
    procs = Procs(directory)
    tansu = start_tansu(log=directory / "tansu.log")
    watch: Watch | None = None

    def close() -> None:
        if watch is not None:
            watch.stop()
        procs.stop_all()
        tansu.stop(grace_s=5)
        shutil.rmtree(directory, ignore_errors=True)

    _CLOSERS.append(close)
    try:
        ports = directory / "simulator.json"
        args = ["--tick-interval", "0.4", "--ping-interval", "1", "--pong-timeout", "3"]
        procs.start("simulate", ["simulate", "--ports-file", str(ports), *args], clean_env())
        wait_until(ports.exists, 30, "the simulator to listen")
        sim = read_ports_file(ports)
        connector_port, api_port = free_port(), free_port()
        worker_ports = [free_port(), free_port()]
        env = clean_env(
            KAFKA_BOOTSTRAP_SERVERS=tansu.address,
            RATES_TOPIC_PREFIX=unique_prefix(),
            RATES_STATE_DIR=str(directory / "state"),
            LOG_LEVEL="DEBUG",
            API_PORT=str(api_port),
            CONNECTOR_METRICS_PORT=str(connector_port),
            CONNECTOR_BACKOFF_BASE_S="0.05",
            CONNECTOR_BACKOFF_CAP_S="0.5",
            COINGECKO_POLL_INTERVAL_S="1",
            CBR_POLL_INTERVAL_S="1",
            COINGECKO_PLAN="demo",
            COINGECKO_API_KEY=SECRET,
            RATES_HYSTERESIS_S="1",
            API_MAX_STREAMS=str(MAX_STREAMS),
            **sim.env,
        )
        procs.start("connect", ["connect"], env)
        for index, port in enumerate(worker_ports, 1):
            procs.start(f"worker{index}", ["worker"], {**env, "WORKER_METRICS_PORT": str(port)})
        procs.start("api", ["api"], env)
        api = f"http://127.0.0.1:{api_port}"

        def serving() -> bool:
            response = httpx.get(f"{api}/api/v1/courses", timeout=5)
            body = response.json() if response.status_code == 200 else {}
            return body.get("exchanger") == "binance" and len(body["courses"]) == len(
                DEFAULT_DIRECTIONS
            )

        wait_until(serving, 120, "the API to serve every direction from binance")
        watch = Watch(api).start()
        stack = Stack(
            sim=sim,
            procs=procs,
            env=env,
            api=api,
            connector_metrics=f"http://127.0.0.1:{connector_port}/",
            worker_metrics=[f"http://127.0.0.1:{port}/" for port in worker_ports],
            topics=Topics(env["RATES_TOPIC_PREFIX"]),
            kafka=tansu.address,
            watch=watch,
            report=report,
        )
        stack.recovered(ALL, timeout_s=60)
        yield stack
    finally:
        if close in _CLOSERS:
            _CLOSERS.remove(close)
            close()


@pytest.fixture
def chaos(request: pytest.FixtureRequest, stack: Stack) -> Iterator[Stack]:
    """The shared stack for one test: every fault cleared after it, the logs shown if it
    failed, and every process still alive."""
    yield stack
    for venue in ALL:
        stack.sim.faults(venue, **CLEAR)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.procs.dump())


CLEAR = {
    "silent": False,
    "refuse": False,
    "malformed_every": 0,
    "truncated_every": 0,
    "unknown_symbols": False,
    "delay_s": 0.0,
    "http_429": False,
    "retry_after": True,
    "clock_skew_s": 0.0,
    "price_text": "",
    "price_factor": 1.0,
    "price_markets": "",
}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
