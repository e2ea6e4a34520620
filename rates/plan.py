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
    #: Recycled (with what depends on it) when its RSS exceeds this (the embedded broker).
    max_rss_bytes: int | None = None
    #: Recycled the same way once it has run this long (seconds; the embedded broker).
    max_age_s: float | None = None
    #: Frozen while one of these restarts, until it is ready (the connector, for the broker).
    frozen_with: tuple[str, ...] = ()


#: A step of the start: a child, or a configured service to wait for before going on.
Step = Child | BrokerUp | Migrated


@dataclass(frozen=True)
class Addresses:
    """Where the state lives, and the ports of the embedded broker, database and simulator."""

    state_dir: Path
    #: None: the configured KAFKA_BOOTSTRAP_SERVERS is used.
    kafka_port: int | None = None
    #: None: the configured DATABASE_URL is used.
    postgres_port: int | None = None
    #: The simulator's first port; 0: free ports.
    simulator_port: int = 0


#: Ports the simulator takes from RATES_SIMULATOR_PORT up: one per venue, then its control API.
SIMULATOR_PORTS = 8


def service_ports(settings: StackSettings, simulator: bool) -> list[tuple[int, str]]:
    """The fixed ports of the embedded broker, database and simulator that will run."""
    found = []
    if not settings.kafka_bootstrap_servers:
        found.append((settings.rates_broker_port, "RATES_BROKER_PORT"))
    if not settings.database_url:
        found.append((settings.rates_postgres_port, "RATES_POSTGRES_PORT"))
    if simulator and settings.rates_simulator_port:
        first = settings.rates_simulator_port
        found += [(first + i, "RATES_SIMULATOR_PORT") for i in range(SIMULATOR_PORTS)]
    return [(port, setting) for port, setting in found if port]


def ports(settings: StackSettings, source: Source) -> list[tuple[int, str]]:
    """Every fixed port ``rates up`` listens on, with the setting that names it (0s left out).

    The embedded broker's and database's only when they are embedded; one metrics port per
    worker (WORKER_METRICS_PORT, then up).
    """
    found = [(settings.api_port, "API_PORT"), *service_ports(settings, source == "simulator")]
    if source != "replay":
        found.append((settings.connector_metrics_port, "CONNECTOR_METRICS_PORT"))
    if settings.worker_metrics_port:
        found += [
            (settings.worker_metrics_port + i, "WORKER_METRICS_PORT" + (f"+{i}" if i else ""))
            for i in range(settings.rates_workers)
        ]
    found.append((settings.history_metrics_port, "HISTORY_METRICS_PORT"))
    found.append((settings.stack_metrics_port, "STACK_METRICS_PORT"))
    return [(port, setting) for port, setting in found if port]


def clashes(found: Sequence[tuple[int, str]]) -> str | None:
    """One line naming the settings that give the same port, or None."""
    by_port: dict[int, list[str]] = {}
    for port, setting in found:
        by_port.setdefault(port, []).append(setting)
    clashing = [
        f"{' and '.join(dict.fromkeys(names))} give the same port {port}"
        for port, names in by_port.items()
        if len(set(names)) > 1
    ]
    return "; ".join(clashing) + ": give each its own port" if clashing else None


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
    max_age_min = settings.rates_broker_max_age_min
    age_limit = f" or after {max_age_min:g} min (RATES_BROKER_MAX_AGE_MIN)" if max_age_min else ""
    child = Child(
        "kafka",
        tuple(embedded.tansu_argv(port)),
        env,
        ready=BrokerUp(bootstrap, topics, settings.rates_partitions, 20.0),
        # Memory only: nothing to flush, and a recycle or a restart starts it empty anyway.
        stop_signal=signal.SIGKILL,
        grace_s=2.0,
        announce=f"starting the embedded broker (Tansu, memory only) on {bootstrap}; "
        f"recycled at {settings.rates_broker_max_mb} MB (RATES_BROKER_MAX_MB){age_limit}",
        max_rss_bytes=settings.rates_broker_max_mb << 20,
        max_age_s=settings.rates_broker_max_age_min * 60 or None,
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
        written = addresses.state_dir / "simulator.json"
        argv = (
            *RATES,
            "simulate",
            "--ports-file",
            str(written),
            "--base-port",
            str(addresses.simulator_port),
            "--tick-interval",
            f"{settings.rates_simulator_tick_s:g}",
            # Every configured direction's market, whether set in the environment or .env.
            "--directions",
            ",".join(settings.rates_directions),
        )
        steps.append(Child("simulator", argv, env, ready=PortsWritten(written), grace_s=5.0))
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
    # The connector and the API outlive a restart of the broker: the connector holds what it
    # could not publish and sends its recent records again, the API serves the last rates.
    # The connector is frozen while the broker restarts: a record reaching the new broker
    # before its topics exist makes Tansu start the partition over when they are created.
    # Faust workers never recover from a broker restart, so they restart with it.
    if source != "replay":
        connect = (*RATES, "connect", *venues)
        steps.append(Child("connect", connect, env, grace_s=5.0, frozen_with=kafka))
    steps += _workers(settings, env, kafka)
    steps.append(Child("history", (*RATES, "history"), env, kafka + found.database, grace_s=10.0))
    api = f"http://{settings.api_host}:{settings.api_port}"
    ready = Answers(f"{api}/healthz", "API")
    steps.append(Child("api", (*RATES, "api"), env, ready=ready, grace_s=5.0))
    if recording is not None:
        # Last, so that the API serves from the first replayed frame on.
        steps.append(_replayer(settings, recording, speed, env, kafka))
    return Plan(tuple(steps), found.bootstrap, found.database_url, api)
