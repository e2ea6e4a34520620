"""`make production-local`: the production topology, through Debian's nginx and Prometheus.

One stack for the module (`rates production-local`: nginx and Prometheus with the files of
compose/, two API processes, two workers, the connector on the simulator, the history writer,
embedded Tansu and PostgreSQL). nginx balances over both API processes, caches for a second,
streams events and rides out a dead API process; Prometheus scrapes every process and answers
every query of the Grafana dashboard.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.environment import clean_env
from devtools.waiting import wait_until
from rates.embedded import free_port
from tests.integration.harness import SimHandle

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "compose" / "grafana" / "dashboards" / "currency-pairs.json"
V1 = "/api/v1/courses"
#: "A handful": requests a dead API process may cost while nginx notices it is gone.
HANDFUL = 5


@dataclass
class Production:
    """The running `rates production-local`, and where its parts are."""

    popen: subprocess.Popen[bytes]
    log: Path
    where: dict[str, Any] = field(default_factory=dict)

    @property
    def nginx(self) -> str:
        return str(self.where["nginx"])

    @property
    def prometheus(self) -> str:
        return str(self.where["prometheus"])

    @property
    def apis(self) -> list[str]:
        return list(self.where["api"])

    @property
    def sim(self) -> SimHandle:
        return SimHandle(env={}, control=self.where["simulator"])

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def requests_served_by_all(self) -> float:
        """Every API process's count of requests to v1, summed."""
        return sum(self.requests_served(api) for api in self.apis)

    def requests_served(self, api: str, route: str = V1) -> float:
        """The API process's own count of requests to ``route`` (0 when it does not answer)."""
        try:
            text = httpx.get(f"{api}/metrics", timeout=5).text
        except httpx.HTTPError:
            return 0.0
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "rates_api_requests_total" and sample.labels["route"] == route
        )

    def query(self, expr: str) -> list[Any]:
        answer = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        answer.raise_for_status()
        result: list[Any] = answer.json()["data"]["result"]
        return result


def unique_v1(tag: str) -> str:
    """A v1 URL nobody asked before: the microcache cannot answer it (extra parameters are
    ignored by the API)."""
    return f"{V1}?direction=BTC-USD,ETH-USD&n={tag}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def production(request: pytest.FixtureRequest) -> Iterator[Production]:
    # What `make production-local` needs from Debian (CI starts on a clean machine).
    subprocess.run(["make", "-s", "production-tools"], cwd=ROOT, check=True, timeout=900)
    # Not under pytest's temporary root: every pytest session (anyone's) makes that 0700
    # again, and nginx's workers (nobody, when we are root) must keep reaching the cache.
    directory = Path(tempfile.mkdtemp(prefix="cp-prod-"))
    env = clean_env(
        RATES_STATE_DIR=str(directory / "state"),
        PRODUCTION_NGINX_PORT=str(free_port()),
        PRODUCTION_PROMETHEUS_PORT=str(free_port()),
        PRODUCTION_API_REPLICAS="2",
        PRODUCTION_WORKERS="2",
    )
    log = directory / "production-local.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "rates", "production-local"],
            env=env,
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = Production(popen, log)
    failed_before = request.session.testsfailed
    where = directory / "state" / "production" / "production.json"
    try:

        def started() -> bool:
            if popen.poll() is not None:
                raise AssertionError(f"production-local exited:\n{stack.output()[-4000:]}")
            return where.exists()

        wait_until(started, 120, "every process of production-local to be healthy")
        stack.where = json.loads(where.read_text())
        wait_until(
            lambda: httpx.get(f"{stack.nginx}{V1}", timeout=5).status_code == 200,
            60,
            "rates through nginx",
        )
        yield stack
    finally:
        popen.send_signal(signal.SIGINT)
        try:
            code = popen.wait(60)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
            raise
        output = stack.output()
        if request.session.testsfailed == failed_before:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print(f"production-local's log and state kept in {directory}")
        # Ctrl-C stops everything, cleanly.
        assert code == 0, output[-4000:]
        assert "Traceback" not in output, output[-4000:]


def test_a_non_editable_install_finds_its_migrations(tmp_path: Path) -> None:
    """What the Dockerfile builds and installs: the wheel of what its builder stage copies."""
    builder = (ROOT / "compose" / "Dockerfile").read_text().split("\nFROM ")[1]
    source = tmp_path / "src"
    for line in re.findall(r"^COPY (.+)$", builder, re.MULTILINE):
        *names, destination = line.split()
        for name in names:
            into = source / destination
            if destination.endswith("/"):
                into = into / name
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, into, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / name, into)
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob("currency_pairs-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import rates.migrate as m; "
        "print(m.__file__); print(*sorted(p.name for p in m.MIGRATIONS.glob('*.sql')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe, str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert shown[0].startswith(str(site)), shown
    checkout = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    assert shown[1].split() == checkout


def test_nginx_balances_requests_over_both_api_processes(production: Production) -> None:
    before = [production.requests_served(api) for api in production.apis]
    count = 40
    with httpx.Client(base_url=production.nginx, timeout=10) as client:
        for _ in range(count):
            answer = client.get(unique_v1("balance"))
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-cache"] == "MISS"
    apis = production.apis
    served = [production.requests_served(api) - b for api, b in zip(apis, before, strict=True)]
    print(f"requests served by each API process: {served}")
    assert sum(served) >= count
    assert min(served) >= count // 4, served


def test_a_repeated_request_is_a_cache_hit_within_a_second(production: Production) -> None:
    with httpx.Client(base_url=production.nginx, timeout=10) as client:
        for _ in range(5):  # a loaded machine may take a second between two requests
            url = unique_v1("cache")
            before = production.requests_served_by_all()
            started = time.monotonic()
            first, second = client.get(url), client.get(url)
            elapsed = time.monotonic() - started
            if elapsed < 1.0:
                break
        assert elapsed < 1.0
        assert first.status_code == second.status_code == 200
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
        assert second.content == first.content
        # Only the first reached an API process. The answer is fetched again soon after: nginx
        # counts max-age=1 in whole seconds of its clock, so an entry lives from 1 to 2 s.
        assert production.requests_served_by_all() - before == 1
        time.sleep(2.1)
        third = client.get(url)
        assert third.headers["x-cache"] in ("EXPIRED", "MISS"), third.headers


def test_identical_bad_requests_at_once_reach_one_api_process_once(
    production: Production,
) -> None:
    # A no-store 422 made nginx's cache lock queue each identical request behind the one
    # before it; cached for a second like a 200, the 422 is fetched once and shared.
    count = 10
    for _ in range(5):  # a loaded machine may take more than a second for the batch
        url = f"{V1}?direction=NOPE-USD&n=bad-{uuid.uuid4().hex[:8]}"
        before = production.requests_served_by_all()
        started = time.monotonic()
        with (
            httpx.Client(base_url=production.nginx, timeout=10) as client,
            ThreadPoolExecutor(count) as pool,
        ):
            answers = list(pool.map(client.get, [url] * count))
        elapsed = time.monotonic() - started
        if elapsed < 1.0:
            break
    assert [answer.status_code for answer in answers] == [422] * count
    assert "unknown direction NOPE-USD" in answers[0].json()["detail"]
    assert production.requests_served_by_all() - before == 1
    # An unknown path's 404 (Starlette's, no Cache-Control) is shared the same way.
    with httpx.Client(base_url=production.nginx, timeout=10) as client:
        for _ in range(5):
            unknown = f"/api/v1/nowhere-{uuid.uuid4().hex[:8]}"
            started = time.monotonic()
            first, second = client.get(unknown), client.get(unknown)
            if time.monotonic() - started < 1.0:
                break
    assert first.status_code == second.status_code == 404
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")


def test_events_stream_through_nginx_unbuffered(production: Production) -> None:
    arrivals: list[tuple[float, str, dict[str, Any]]] = []
    with httpx.stream("GET", f"{production.nginx}/api/v2/courses/stream", timeout=10) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "x-cache" not in stream.headers
        started = time.monotonic()
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                arrivals.append((time.monotonic() - started, name, data))
            if time.monotonic() - started > 5:
                break
    courses = [data for _, name, data in arrivals if name == "course"]
    assert {"active", "course"} <= {name for _, name, _ in arrivals}
    assert {c["direction"] for c in courses} >= {"BTC-USD", "ETH-USD"}
    # Changes keep arriving one by one as they happen, not held back until a buffer fills.
    later = [t for t, _, _ in arrivals if t > 1.0]
    assert len(later) >= 3, [round(t, 2) for t, _, _ in arrivals]


def test_rates_healthcheck_tells_each_live_process(production: Production) -> None:
    setting = {
        "connect": "CONNECTOR_METRICS_PORT",
        "worker": "WORKER_METRICS_PORT",
        "history": "HISTORY_METRICS_PORT",
        "api": "API_PORT",
    }
    asked = [
        (process, address.rsplit(":", 1)[1], f"{process}: healthy\n", 0)
        for process, addresses in production.where["targets"].items()
        for address in addresses
    ]
    asked.append(("api", str(free_port()), "api: unhealthy: ", 1))  # nobody listens there
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "rates", "healthcheck", process],
            env=clean_env(**{setting[process]: port}),
            stdout=subprocess.PIPE,
            text=True,
        )
        for process, port, _, _ in asked
    ]
    for (process, port, said, code), proc in zip(asked, running, strict=True):
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == code, (process, port, out)
        assert out.startswith(said), (process, port, out)


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def test_prometheus_scrapes_every_process_and_every_panel_has_data(
    production: Production,
) -> None:
    expected = {
        (job, address)
        for job, addresses in production.where["targets"].items()
        for address in addresses
    }
    assert len(expected) == 6  # connect, 2 workers, history, 2 APIs

    def targets_up() -> bool:
        answer = httpx.get(f"{production.prometheus}/api/v1/targets", timeout=10).json()
        active = answer["data"]["activeTargets"]
        seen = {(t["labels"]["job"], t["labels"]["instance"]) for t in active}
        return seen == expected and all(t["health"] == "up" for t in active)

    wait_until(targets_up, 30, "Prometheus to scrape every process")

    # The panels of rare events need events: a silent venue (reconnects, switches), frames of
    # an unknown symbol (skipped frames), one venue's price far from the others (outliers).
    sim = production.sim
    market = "BTC-USDT"
    price = Decimal(sim.state()["prices"][market])
    sim.faults("binance", silent=True)
    sim.faults("okx", unknown_symbols=True)
    try:
        # 5 % off, from one venue only; then back, before the others send it.
        far = str((price * Decimal("1.05")).quantize(Decimal("0.01")))
        body = {"value": far, "send": True, "venues": ["bybit"]}
        httpx.post(f"{sim.control}/_sim/price/{market}", json=body, timeout=5).raise_for_status()
        sim.pin(market, str(price))
        sim.release(market)

        def empty_panels() -> list[str]:
            return [title for title, expr in dashboard_queries() if not production.query(expr)]

        missing: list[str] = []

        def every_panel_has_data() -> bool:
            missing[:] = empty_panels()
            return not missing

        try:
            wait_until(every_panel_has_data, 60, "a series for every panel's query")
        except AssertionError:
            raise AssertionError(f"panels without data: {missing}") from None
    finally:
        sim.faults("binance", silent=False)
        sim.faults("okx", unknown_symbols=False)
        sim.release(market)
    assert len(dashboard_queries()) >= 10


def listening_process(port: int) -> psutil.Process:
    for conn in psutil.net_connections(kind="tcp"):
        listening = conn.status == psutil.CONN_LISTEN and conn.pid is not None
        if listening and getattr(conn.laddr, "port", None) == port:
            return psutil.Process(conn.pid)
    raise AssertionError(f"nothing listens on port {port}")


def test_a_dead_api_process_costs_a_handful_of_requests(production: Production) -> None:
    victim_api, survivor_api = production.apis
    victim = listening_process(int(victim_api.rsplit(":", 1)[1]))
    survivor_before = production.requests_served(survivor_api)
    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=production.nginx, timeout=10) as client:
            while not stop.is_set():
                try:
                    status = client.get(unique_v1("failover")).status_code
                except httpx.HTTPError:
                    status = 0
                results.append((time.monotonic(), status))

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        victim.kill()
        victim.wait(10)
        time.sleep(3.0)
    finally:
        stop.set()
        loader.join(15)
    failed = [status for _, status in results if status != 200]
    after_kill = [status for t, status in results if t > killed_at and status == 200]
    # The supervisor restarts the dead process: what it served since counts from zero.
    reborn = production.requests_served(victim_api)
    survivor = production.requests_served(survivor_api) - survivor_before
    print(
        f"{len(results)} requests, {len(failed)} failed; {len(after_kill)} answered after "
        f"the kill; the survivor served {survivor:g}, the restarted process {reborn:g}"
    )
    assert len(failed) <= HANDFUL, failed
    assert len(after_kill) >= 10
    assert survivor + reborn >= len(after_kill)
    assert survivor >= len(after_kill) - reborn

    wait_until(
        lambda: "exited with code -9; restarting it" in production.output(),
        30,
        "the supervisor to restart the dead API process",
    )
    wait_until(
        lambda: httpx.get(f"{victim_api}/healthz", timeout=2).status_code == 200,
        60,
        "the restarted API process to answer",
    )
