"""The plan of ``rates up``: which children start, in which order, with what (pure).

:func:`plan` decides it from the settings, the source, the venues and the addresses chosen
for the embedded services, as plain data: each child's command, environment, dependencies
and what "ready" means for it. rates/stack.py carries it out.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rates import embedded
from rates.settings import StackSettings

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


@dataclass(frozen=True)
class Services:
    """The broker, the database and (on the simulator) the simulator: steps and addresses."""

    steps: tuple[Step, ...]
    #: What every later child gets on top of the inherited environment.
    env: Mapping[str, str]
    bootstrap: str
    database_url: str
    #: The children whose restart restarts the pipeline's consumers (the embedded broker).
    kafka: tuple[str, ...]
    #: The children whose restart restarts the history writer (the embedded PostgreSQL).
    database: tuple[str, ...]


def services(
    settings: StackSettings, venues: Sequence[str], addresses: Addresses, simulator: bool
) -> Services:
    """The steps every stack starts with, before its own processes."""
    base = {"RATES_STATE_DIR": str(addresses.state_dir), "RATES_VENUES": ",".join(venues)}
    broker = _broker(settings, venues, addresses.kafka_port, base)
    with_broker = {**base, "KAFKA_BOOTSTRAP_SERVERS": broker.address}
    database = _database(settings, addresses, with_broker)
    env = {**with_broker, "DATABASE_URL": database.address}
    steps: list[Step] = [*broker.steps, *database.steps]
    if simulator:
        ports = addresses.state_dir / "simulator.json"
        argv = (*RATES, "simulate", "--ports-file", str(ports))
        steps.append(Child("simulator", argv, env, ready=PortsWritten(ports), grace_s=5.0))
    return Services(
        tuple(steps), env, broker.address, database.address, broker.depends, database.depends
    )


def plan(
    settings: StackSettings,
    source: Source,
    venues: Sequence[str],
    addresses: Addresses,
    recording: Path | None = None,
    speed: float | None = 1.0,
) -> Plan:
    """The steps of ``rates up`` in start order (each child ready before the next starts)."""
    found = services(settings, venues, addresses, simulator=source == "simulator")
    env, kafka = found.env, found.kafka
    steps: list[Step] = list(found.steps)
    if source != "replay":
        steps.append(Child("connect", (*RATES, "connect", *venues), env, kafka, grace_s=5.0))
    steps += _workers(settings, env, kafka)
    steps.append(Child("history", (*RATES, "history"), env, kafka + found.database, grace_s=10.0))
    api = f"http://{settings.api_host}:{settings.api_port}"
    ready = Answers(f"{api}/healthz", "API")
    steps.append(Child("api", (*RATES, "api"), env, kafka, ready=ready, grace_s=5.0))
    if recording is not None:
        # Last, so that the API serves from the first replayed frame on.
        steps.append(_replayer(settings, recording, speed, env, kafka))
    return Plan(tuple(steps), found.bootstrap, found.database_url, api)
