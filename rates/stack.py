"""``rates up``: the whole pipeline as one supervised process tree.

:func:`plan` decides which children start, in which order, with which environment and
dependencies, from the settings, the source, the venues and the addresses chosen for the
embedded services: a pure function over plain data. :func:`up` starts its steps one by one
under the supervisor (each ready before the next) and then watches the tree.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.replay import Recording
from rates import embedded, migrate
from rates.kafka import ensure_topics, wait_for_broker
from rates.settings import StackSettings
from rates.supervisor import ChildSpec, Supervisor
from schemas.errors import ConfigError, DatabaseUnavailable, RatesError
from schemas.venues import VENUES

log = logging.getLogger(__name__)

Source = Literal["live", "simulator", "replay"]

RATES = (sys.executable, "-m", "rates")

# -- what "ready" means, as data ------------------------------------------------------------


@dataclass(frozen=True)
class BrokerUp:
    """The broker answers and every topic exists (again after a restart: Tansu keeps nothing)."""

    bootstrap: str
    topics: tuple[str, ...]
    partitions: int
    timeout_s: float


@dataclass(frozen=True)
class Migrated:
    """PostgreSQL accepts a session and the migrations are applied."""

    url: str
    timeout_s: float
    #: A configured database may be away at start: a warning, and history waits for it.
    optional: bool = False


@dataclass(frozen=True)
class PortsWritten:
    """The simulator wrote its ports file; the settings in it go to every later child."""

    path: Path
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Answers:
    """An HTTP endpoint answers 200."""

    url: str
    what: str
    timeout_s: float = 60.0


Ready = BrokerUp | Migrated | PortsWritten | Answers


# -- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Child:
    """One child of the tree, as the plan decides it."""

    name: str
    argv: tuple[str, ...]
    #: Set on top of the environment ``rates up`` inherited.
    env: Mapping[str, str]
    #: Restarted whenever one of these is restarted.
    depends_on: tuple[str, ...] = ()
    #: Awaited after every (re)start; None: started is ready.
    ready: Ready | None = None
    grace_s: float = 10.0
    stop_signal: int = signal.SIGTERM
    #: PostgreSQL's data directory: initialised (and its owner chosen) before the start.
    pgdata: Path | None = None
    #: Logged before the start.
    announce: str | None = None


#: A step of the start: a child, or a configured service to wait for before going on.
Step = Child | BrokerUp | Migrated


@dataclass(frozen=True)
class Addresses:
    """Where the state lives, and the ports chosen for the embedded broker and database."""

    state_dir: Path
    #: None: the configured KAFKA_BOOTSTRAP_SERVERS is used.
    kafka_port: int | None = None
    #: None: the configured DATABASE_URL is used.
    postgres_port: int | None = None


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    bootstrap: str
    database_url: str
    api: str


@dataclass(frozen=True)
class _Service:
    """How a broker or database comes to be: its steps, its address, who depends on it."""

    steps: tuple[Step, ...]
    address: str
    depends: tuple[str, ...]


def choose_addresses(settings: StackSettings) -> Addresses:
    """The absolute state directory, and free ports for the services not configured."""
    return Addresses(
        settings.rates_state_dir.resolve(),
        None if settings.kafka_bootstrap_servers else embedded.free_port(),
        None if settings.database_url else embedded.free_port(),
    )


def _broker(
    settings: StackSettings, venues: Sequence[str], port: int | None, env: Mapping[str, str]
) -> _Service:
    topics = tuple(settings.topics.all(venues))
    if port is None:
        assert settings.kafka_bootstrap_servers is not None
        bootstrap = settings.kafka_bootstrap_servers
        check = BrokerUp(
            bootstrap, topics, settings.rates_partitions, settings.kafka_connect_timeout_s
        )
        return _Service((check,), bootstrap, ())
    bootstrap = f"127.0.0.1:{port}"
    child = Child(
        "kafka",
        tuple(embedded.tansu_argv(port)),
        env,
        ready=BrokerUp(bootstrap, topics, settings.rates_partitions, 20.0),
        grace_s=5.0,
        announce=f"starting the embedded broker (Tansu, memory only) on {bootstrap}",
    )
    return _Service((child,), bootstrap, ("kafka",))


def _database(settings: StackSettings, addresses: Addresses, env: Mapping[str, str]) -> _Service:
    port = addresses.postgres_port
    if port is None:
        assert settings.database_url is not None
        return _Service(
            (Migrated(settings.database_url, 5.0, optional=True),), settings.database_url, ()
        )
    pgdata = addresses.state_dir / "postgres"
    url = embedded.postgres_url(port)
    child = Child(
        "postgres",
        tuple(embedded.postgres_argv(pgdata, port)),
        env,
        ready=Migrated(url, 30.0),
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for clients to leave.
        stop_signal=signal.SIGINT,
        pgdata=pgdata,
        announce=f"starting the embedded PostgreSQL (data in {pgdata}) on 127.0.0.1:{port}",
    )
    return _Service((child,), url, ("postgres",))


def _workers(settings: StackSettings, env: Mapping[str, str], deps: tuple[str, ...]) -> list[Child]:
    """``RATES_WORKERS`` workers; each on its own metrics port from WORKER_METRICS_PORT up."""
    workers = []
    for index in range(settings.rates_workers):
        name = "worker" if settings.rates_workers == 1 else f"worker{index + 1}"
        worker_env = dict(env)
        if settings.worker_metrics_port:
            worker_env["WORKER_METRICS_PORT"] = str(settings.worker_metrics_port + index)
        workers.append(Child(name, (*RATES, "worker"), worker_env, deps))
    return workers


def _replayer(
    settings: StackSettings,
    recording: Path,
    speed: float | None,
    env: Mapping[str, str],
    deps: tuple[str, ...],
) -> Child:
    """Publishes the recording into the stack's topics, then holds (so it is not restarted)."""
    speed_arg = "max" if speed is None else f"{speed:g}"
    prefix = settings.rates_topic_prefix
    argv = (
        *RATES,
        "replay",
        str(recording),
        "--speed",
        speed_arg,
        "--hold",
        "--topic-prefix",
        prefix,
    )
    return Child("replay", argv, env, deps, grace_s=5.0)


def plan(
    settings: StackSettings,
    source: Source,
    venues: Sequence[str],
    addresses: Addresses,
    recording: Path | None = None,
    speed: float | None = 1.0,
) -> Plan:
    """The steps of ``rates up`` in start order (each child ready before the next starts)."""
    base = {"RATES_STATE_DIR": str(addresses.state_dir), "RATES_VENUES": ",".join(venues)}
    broker = _broker(settings, venues, addresses.kafka_port, base)
    with_broker = {**base, "KAFKA_BOOTSTRAP_SERVERS": broker.address}
    database = _database(settings, addresses, with_broker)
    env = {**with_broker, "DATABASE_URL": database.address}
    kafka = broker.depends
    steps: list[Step] = [*broker.steps, *database.steps]
    if source == "simulator":
        ports = addresses.state_dir / "simulator.json"
        argv = (*RATES, "simulate", "--ports-file", str(ports))
        steps.append(Child("simulator", argv, env, ready=PortsWritten(ports), grace_s=5.0))
    if source != "replay":
        steps.append(Child("connect", (*RATES, "connect", *venues), env, kafka, grace_s=5.0))
    steps += _workers(settings, env, kafka)
    steps.append(Child("history", (*RATES, "history"), env, kafka + database.depends, grace_s=10.0))
    api = f"http://{settings.api_host}:{settings.api_port}"
    ready = Answers(f"{api}/healthz", "API")
    steps.append(Child("api", (*RATES, "api"), env, kafka, ready=ready, grace_s=5.0))
    if recording is not None:
        # Last, so that the API serves from the first replayed frame on.
        steps.append(_replayer(settings, recording, speed, env, kafka))
    return Plan(tuple(steps), broker.address, database.address, api)


# -- running it -----------------------------------------------------------------------------


def _check_ports(settings: StackSettings) -> None:
    embedded.check_port_free(settings.api_host, settings.api_port, "API_PORT")
    ports = [
        (settings.connector_metrics_port, "CONNECTOR_METRICS_PORT"),
        (settings.history_metrics_port, "HISTORY_METRICS_PORT"),
    ]
    if settings.worker_metrics_port:
        ports += [
            (settings.worker_metrics_port + i, "WORKER_METRICS_PORT")
            for i in range(settings.rates_workers)
        ]
    for port, name in ports:
        if port:
            embedded.check_port_free("127.0.0.1", port, name)


def _recorded_venues(recording: Path) -> list[str]:
    """The venues of a recording that this build knows (ConfigError when none)."""
    opened = Recording(recording)
    opened.close()
    known = [v for v in opened.header.venues if v in VENUES]
    unknown = sorted(set(opened.header.venues) - set(known))
    if unknown:
        log.warning("%s has frames of unknown venues, not replayed: %s", recording, unknown)
    if not known:
        raise ConfigError(f"recording {recording} has no frames of a known venue")
    return known


async def _poll(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise RatesError(f"{what} not ready within {timeout_s:g} s")
        await asyncio.sleep(0.2)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def wait_ready(ready: Ready) -> None:
    """Return once ``ready`` holds; RatesError (or a subclass) when it does not in time."""
    match ready:
        case BrokerUp(bootstrap, topics, partitions, timeout_s):
            await wait_for_broker(bootstrap, timeout_s)
            await ensure_topics(bootstrap, topics, partitions)
        case Migrated(url, timeout_s, optional=True):
            try:
                await asyncio.to_thread(migrate.apply, url, timeout_s)
            except DatabaseUnavailable as exc:
                log.warning("%s; history is not written until it is reachable", exc)
        case Migrated(url, timeout_s):
            await asyncio.to_thread(embedded.wait_postgres, url, timeout_s)
            await asyncio.to_thread(migrate.apply, url)
        case PortsWritten(path, timeout_s):
            await _poll(path.exists, "simulator", timeout_s)
        case Answers(url, what, timeout_s):
            await _poll(functools.partial(_http_ok, url), what, timeout_s)


async def _start(sup: Supervisor, child: Child, exported: dict[str, str]) -> None:
    """Start one child and wait until it is ready; collect what it exports for later ones."""
    user = None
    if child.pgdata is not None:
        user = await asyncio.to_thread(embedded.prepare_pgdata, child.pgdata)
    if isinstance(child.ready, PortsWritten):
        child.ready.path.unlink(missing_ok=True)
    if child.announce:
        log.info("%s", child.announce)
    spec = ChildSpec(
        child.name,
        child.argv,
        env={**os.environ, **exported, **child.env},
        user=user,
        stop_signal=child.stop_signal,
        grace_s=child.grace_s,
        depends_on=child.depends_on,
        ready=None if child.ready is None else functools.partial(wait_ready, child.ready),
    )
    await sup.start(spec)
    if isinstance(child.ready, PortsWritten):
        found = json.loads(child.ready.path.read_text())
        exported.update(found["env"])
        log.info("venue simulator control API at %s", found["control"])


async def start(sup: Supervisor, steps: Sequence[Step]) -> None:
    """Take the steps in order: start each child, wait for each configured service."""
    exported: dict[str, str] = {}
    for step in steps:
        if isinstance(step, Child):
            await _start(sup, step, exported)
        else:
            await wait_ready(step)


async def up(
    settings: StackSettings,
    source: Source,
    recording: Path | None = None,
    speed: float | None = 1.0,
) -> int:
    """Run the stack until Ctrl-C / SIGTERM (0) or until a child keeps failing (1)."""
    _check_ports(settings)
    venues = list(settings.rates_venues)
    if source == "replay":
        assert recording is not None
        venues = _recorded_venues(recording)
    addresses = choose_addresses(settings)
    addresses.state_dir.mkdir(parents=True, exist_ok=True)
    stack = plan(settings, source, venues, addresses, recording, speed)
    sup = Supervisor()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.request_stop)
    try:
        await _unless_stopped(sup, start(sup, stack.steps))
    except _Stopped:
        await sup.stop_all()
        return 0
    except (RatesError, OSError):
        await sup.stop_all()
        raise
    log.info(
        "serving %s/api/v1/courses  (Kafka at %s, PostgreSQL at %s; Ctrl-C stops everything)",
        stack.api,
        stack.bootstrap,
        stack.database_url,
    )
    code = await sup.run()
    if sup.failure:
        raise RatesError(sup.failure)
    return code


class _Stopped(Exception):
    """Ctrl-C arrived while the stack was starting."""


async def _unless_stopped(sup: Supervisor, starting: Coroutine[Any, Any, None]) -> None:
    """Run the start-up, abandoning it if a stop is requested meanwhile."""
    task = asyncio.ensure_future(starting)
    stop = asyncio.ensure_future(sup.stop_requested())
    try:
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task not in done:
        task.cancel()
        raise _Stopped
    task.result()
