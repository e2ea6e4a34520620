"""The ``rates`` command: one entry point per process, each loading its settings once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from rates import logs
from rates.healthcheck import PROCESSES
from rates.kafka import ensure_topics, wait_for_broker
from schemas.errors import ConfigError, RatesError
from schemas.records import parse_time
from schemas.settings import CommonSettings, check_venues, load
from schemas.topics import REPLAY_PREFIX, Topics

# Stage packages are imported inside their subcommand, so that each process loads only its
# own stage (the API never imports Faust, the connector never imports FastAPI).

log = logging.getLogger("rates")


def _serve_metrics(port: int, setting: str, host: str = "127.0.0.1") -> None:
    if not port:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigError(
            f"{setting}={port}: cannot serve metrics on {host}:{port} ({exc.strerror}); "
            f"choose another {setting}, or 0 to turn metrics off"
        ) from None


def _run(main: Coroutine[Any, Any, None]) -> int:
    """Run a coroutine until it ends or SIGINT/SIGTERM cancels it (a clean stop: exit 0)."""

    async def wrapper() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await main
        except asyncio.CancelledError:
            log.info("stopped")
        return 0

    return asyncio.run(wrapper())


async def _broker_ready(
    bootstrap: str, timeout_s: float, topics: Sequence[str], partitions: int
) -> None:
    await wait_for_broker(bootstrap, timeout_s)
    await ensure_topics(bootstrap, topics, partitions)


# -- subcommands --------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from rates import stack
    from rates.settings import StackSettings

    if (args.source == "replay") != (args.recording is not None):
        raise ConfigError("a recording PATH goes with --source replay, and only with it")
    settings = load(StackSettings)
    logs.configure(settings.log_level)
    recording = Path(args.recording).resolve() if args.recording else None
    return asyncio.run(stack.up(settings, args.source, recording, args.speed))


def cmd_connect(args: argparse.Namespace) -> int:
    from connectors import registry, service
    from connectors.settings import ConnectorSettings

    settings = load(ConnectorSettings)
    names = list(dict.fromkeys(args.venues)) or list(settings.rates_venues)
    for name in names:
        registry.get(name)
    logs.configure(settings.log_level)
    _serve_metrics(settings.connector_metrics_port, "CONNECTOR_METRICS_PORT", settings.metrics_host)

    async def main() -> None:
        await _broker_ready(
            settings.bootstrap,
            settings.kafka_connect_timeout_s,
            settings.topics.all(names),
            settings.rates_partitions,
        )
        await service.run(settings, names)

    return _run(main())


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline import worker
    from pipeline.settings import WorkerSettings

    settings = load(WorkerSettings)
    logs.configure(settings.log_level)
    asyncio.run(
        _broker_ready(
            settings.bootstrap,
            settings.kafka_connect_timeout_s,
            settings.topics.all(settings.rates_venues),
            settings.rates_partitions,
        )
    )
    _serve_metrics(settings.worker_metrics_port, "WORKER_METRICS_PORT", settings.metrics_host)
    # Faust runs its own event loop; give it a fresh one after asyncio.run closed ours.
    asyncio.set_event_loop(asyncio.new_event_loop())
    worker.run(settings)
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from api import server
    from api.settings import ApiSettings

    settings = load(ApiSettings)
    logs.configure(settings.log_level)
    sock = server.bind(settings.api_host, settings.api_port)
    topics = [settings.topics.latest, settings.topics.venues_status]
    asyncio.run(
        _broker_ready(
            settings.bootstrap, settings.kafka_connect_timeout_s, topics, settings.rates_partitions
        )
    )
    log.info(
        "API on http://%s:%d (%d worker%s)",
        settings.api_host,
        settings.api_port,
        settings.api_workers,
        "" if settings.api_workers == 1 else "s",
    )
    server.serve(settings, sock, worker_factory="rates.cli:api_worker_app")
    return 0


def api_worker_app() -> Any:
    """The app of one spawned API worker (``API_WORKERS`` > 1), with its own settings."""
    from api.app import create_app
    from api.settings import ApiSettings

    settings = load(ApiSettings)
    logs.configure(settings.log_level)
    return create_app(settings)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _sim_directions(given: str | None) -> tuple[str, ...]:
    """The directions to price: --directions, else RATES_DIRECTIONS, else the defaults."""
    from schemas.directions import check_directions
    from schemas.settings import DEFAULT_DIRECTIONS, split_commas

    text = given if given is not None else os.environ.get("RATES_DIRECTIONS", "")
    names = split_commas(text)
    try:
        return check_directions(names) if names else DEFAULT_DIRECTIONS
    except ValueError as exc:
        raise ConfigError(f"simulate --directions: {exc}") from None


def cmd_simulate(args: argparse.Namespace) -> int:
    from connectors.simulator.market import Recording
    from connectors.simulator.server import Simulator

    logs.configure(args.log_level)
    try:
        recording = Recording.load(Path(args.recording)) if args.recording else None
        sim = Simulator(
            args.venues or None,
            seed=args.seed,
            tick_interval_s=args.tick_interval,
            ping_interval_s=args.ping_interval,
            pong_timeout_s=args.pong_timeout,
            recording=recording,
            directions=_sim_directions(args.directions),
            unlisted=[a.upper() for a in args.unlisted or ()],
        )
    except OSError as exc:
        raise ConfigError(f"--recording {args.recording}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def main() -> None:
        try:
            await sim.start(args.base_port)
        except OSError as exc:
            raise ConfigError(f"--base-port {args.base_port}: {exc.strerror}") from None
        try:
            for name, value in sim.env.items():
                print(f"{name}={value}", flush=True)
            print(f"# control API: {sim.control_url}/_sim/state", flush=True)
            if args.ports_file:
                _write_atomically(
                    Path(args.ports_file), json.dumps({"env": sim.env, "control": sim.control_url})
                )
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    return _run(main())


def cmd_history(args: argparse.Namespace) -> int:
    from pipeline import history
    from pipeline.settings import HistorySettings
    from rates import migrate

    settings = load(HistorySettings)
    database = settings.database
    logs.configure(settings.log_level)
    _serve_metrics(settings.history_metrics_port, "HISTORY_METRICS_PORT", settings.metrics_host)

    async def main() -> None:
        topics = settings.topics
        await _broker_ready(
            settings.bootstrap,
            settings.kafka_connect_timeout_s,
            [topics.normalized, topics.latest],
            settings.rates_partitions,
        )
        # Migrations run (under yoyo's lock) once PostgreSQL answers, before the first write.
        await history.run(settings, prepare=functools.partial(migrate.apply, database))

    return _run(main())


def _venues(names: Sequence[str], option: str) -> list[str]:
    try:
        return list(check_venues(tuple(dict.fromkeys(names)), option))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def cmd_record(args: argparse.Namespace) -> int:
    from pipeline.replay.record import record

    settings = load(CommonSettings)
    venues = _venues(args.venues or settings.rates_venues, "--venues")
    path = Path(args.path)
    if path.exists():
        raise ConfigError(f"{path} exists: choose another PATH or remove it")
    logs.configure(settings.log_level)

    async def main() -> None:
        await _broker_ready(
            settings.bootstrap,
            settings.kafka_connect_timeout_s,
            settings.topics.all(venues),
            settings.rates_partitions,
        )
        await record(settings, path, venues, args.duration)

    return _run(main())


def cmd_replay(args: argparse.Namespace) -> int:
    from pipeline.replay.from_broker import replay_broker
    from pipeline.replay.from_file import replay_file
    from pipeline.replay.recording import Recording

    settings = load(CommonSettings)
    prefix = (
        args.topic_prefix
        if args.topic_prefix is not None
        else f"{settings.rates_topic_prefix}{REPLAY_PREFIX}"
    )
    target = Topics(prefix)
    if args.from_kafka:
        if args.path or args.since is None or args.until is None:
            raise ConfigError("--from-kafka takes --since and --until, and no PATH")
        if args.until <= args.since:
            raise ConfigError("--until must be after --since")
        venues = list(settings.rates_venues)
        recording = None
    else:
        if args.path is None or args.since or args.until:
            raise ConfigError("give a recording PATH, or --from-kafka with --since and --until")
        recording = Recording(Path(args.path))
        venues = _venues(recording.header.venues, f"the venues of {args.path}")
    logs.configure(settings.log_level)

    async def main() -> None:
        await _broker_ready(
            settings.bootstrap,
            settings.kafka_connect_timeout_s,
            target.all(venues),
            settings.rates_partitions,
        )
        log.info(
            "replaying into %s (a worker reads them with RATES_TOPIC_PREFIX=%s)",
            target.raw("*"),
            prefix,
        )
        if recording is None:
            await replay_broker(settings, venues, args.since, args.until, prefix, args.speed)
        else:
            try:
                await replay_file(settings, recording, prefix, args.speed)
            finally:
                recording.close()
        if args.hold:
            log.info("replay finished; holding until stopped")
            await asyncio.Event().wait()

    return _run(main())


def _speed(text: str) -> float | None:
    from pipeline.replay.timing import parse_speed

    try:
        return parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an RFC 3339 time with offset: {exc}") from None


def cmd_production_local(args: argparse.Namespace) -> int:
    from rates import production
    from rates.settings import ProductionSettings

    settings = load(ProductionSettings)
    logs.configure(settings.log_level)
    return asyncio.run(production.run(settings))


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from rates import healthcheck

    process = args.process or healthcheck.container_process()
    if process is None:
        print("nothing to check: PID 1 runs none of " + ", ".join(healthcheck.PROCESSES))
        return 0
    why = healthcheck.probe(healthcheck.check_for(process))
    print(f"{process}: " + ("healthy" if why is None else f"unhealthy: {why}"))
    return 0 if why is None else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from rates import migrate

    settings = load(CommonSettings)
    logs.configure(settings.log_level)
    applied = migrate.apply(settings.database, timeout_s=args.wait)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rates",
        description="Live crypto exchange rates: venues -> Kafka -> Faust -> HTTP API.",
        epilog="Settings come from the environment and .env (see .env.example).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole pipeline as one supervised process tree")
    up.add_argument(
        "--source",
        choices=("live", "simulator", "replay"),
        default="live",
        help="live: the venues at their configured URLs (default); "
        "simulator: start the local venue simulator and connect to it; "
        "replay: no connector, replay the recording PATH into ticks.raw.*",
    )
    up.add_argument("recording", nargs="?", metavar="PATH", help="the recording (--source replay)")
    up.add_argument("--speed", default="1", type=_speed, help="replay speed: 1 (default), N or max")
    up.set_defaults(handler=cmd_up)

    connect = sub.add_parser("connect", help="connect to venues, publish their frames to Kafka")
    connect.add_argument("venues", nargs="*", metavar="VENUE", help="default: RATES_VENUES")
    connect.set_defaults(handler=cmd_connect)

    sub.add_parser(
        "worker", help="run the Faust worker (normalize, latest-rate table)"
    ).set_defaults(handler=cmd_worker)
    sub.add_parser("api", help="serve the HTTP API").set_defaults(handler=cmd_api)

    simulate = sub.add_parser("simulate", help="serve every venue's protocol on 127.0.0.1")
    simulate.add_argument("--venues", nargs="*", metavar="VENUE", help="default: all")
    simulate.add_argument(
        "--base-port", type=int, default=0, help="first port (venues, then control); 0: free ports"
    )
    simulate.add_argument("--ports-file", help="write the URLs as JSON here once listening")
    simulate.add_argument("--tick-interval", type=float, default=0.25, help="seconds per tick")
    simulate.add_argument("--ping-interval", type=float, default=20.0, help="server ping seconds")
    simulate.add_argument(
        "--pong-timeout",
        type=float,
        default=60.0,
        help="close a client that leaves a ping unanswered this long (seconds)",
    )
    simulate.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    simulate.add_argument(
        "--directions",
        help="directions whose markets every venue lists and prices, comma-separated "
        "(default: RATES_DIRECTIONS, else the default directions)",
    )
    simulate.add_argument(
        "--unlisted",
        nargs="*",
        metavar="ASSET",
        help="assets no simulated venue lists (shows a direction nobody serves)",
    )
    simulate.add_argument(
        "--recording",
        metavar="FILE",
        help='play back recorded prices (JSON lines {"t": s, "market": "BTC-USDT", "value": "..."})'
        " in a loop instead of the random walk for the markets it holds",
    )
    simulate.add_argument(
        "--log-level", default="INFO", choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
    )
    simulate.set_defaults(handler=cmd_simulate)

    sub.add_parser(
        "history", help="write rates.normalized and venue switches to PostgreSQL"
    ).set_defaults(handler=cmd_history)

    record = sub.add_parser("record", help="record the frames of ticks.raw.* to a gzip JSONL file")
    record.add_argument("path", metavar="PATH", help="the file to write (must not exist)")
    record.add_argument(
        "--duration", type=float, default=None, help="seconds to record (default: until stopped)"
    )
    record.add_argument("--venues", nargs="*", metavar="VENUE", help="default: RATES_VENUES")
    record.set_defaults(handler=cmd_record)

    replay = sub.add_parser(
        "replay",
        help="publish recorded frames back to ticks.raw.* (from a file, or the broker by time)",
    )
    replay.add_argument("path", nargs="?", metavar="PATH", help="a recording (`rates record`)")
    replay.add_argument(
        "--speed", default="1", type=_speed, help="1 (as recorded, default), N (N times), max"
    )
    replay.add_argument(
        "--topic-prefix",
        default=None,
        help=f"prefix of the topics written (default: RATES_TOPIC_PREFIX + {REPLAY_PREFIX!r}, "
        "so a replay never mixes with live data; give the live prefix to feed a stack)",
    )
    replay.add_argument(
        "--from-kafka",
        action="store_true",
        help="re-publish the frames of ticks.raw.* (RATES_TOPIC_PREFIX) received in a window",
    )
    replay.add_argument("--since", type=_time, help="RFC 3339 start of the window (--from-kafka)")
    replay.add_argument("--until", type=_time, help="RFC 3339 end of the window (--from-kafka)")
    replay.add_argument("--hold", action="store_true", help="keep running after the last frame")
    replay.set_defaults(handler=cmd_replay)

    migrate = sub.add_parser("migrate", help="apply the database migrations (DATABASE_URL)")
    migrate.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for PostgreSQL to answer"
    )
    migrate.set_defaults(handler=cmd_migrate)

    sub.add_parser(
        "production-local",
        help="the production topology here: nginx and Prometheus (Debian's) in front of "
        "two APIs, two workers, the connector on the simulator, history, embedded Kafka and "
        "PostgreSQL",
    ).set_defaults(handler=cmd_production_local)

    health = sub.add_parser(
        "healthcheck", help="exit 0 when a process of the stack serves and is ready (Docker)"
    )
    health.add_argument(
        "process",
        nargs="?",
        choices=PROCESSES,
        help="default: the one this container runs (PID 1)",
    )
    health.set_defaults(handler=cmd_healthcheck)
    return parser


def _first_rates_error(exc: BaseException) -> BaseException | None:

    if isinstance(exc, RatesError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_rates_error(inner)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except (Exception, BaseExceptionGroup) as exc:
        error = _first_rates_error(exc)
        if error is None:
            raise
        print(f"rates {args.command}: error: {error}", file=sys.stderr)
        with contextlib.suppress(Exception):
            logging.shutdown()
        return 2 if isinstance(error, ConfigError) else 1
