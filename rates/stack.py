"""``rates up``: the whole pipeline as one supervised process tree."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal

from pipeline.replay.recording import Recording
from rates import embedded, migrate
from rates.kafka import ensure_topics, wait_for_broker
from rates.settings import StackSettings
from rates.supervisor import ChildSpec, Supervisor
from schemas.errors import ConfigError, DatabaseUnavailable, RatesError
from schemas.venues import VENUES

log = logging.getLogger(__name__)

Source = Literal["live", "simulator", "replay"]

RATES = (sys.executable, "-m", "rates")


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


async def _broker(
    sup: Supervisor, settings: StackSettings, env: dict[str, str], venues: Sequence[str]
) -> str:
    topics = settings.topics.all(venues)
    if settings.kafka_bootstrap_servers:
        bootstrap = settings.kafka_bootstrap_servers
        await wait_for_broker(bootstrap, settings.kafka_connect_timeout_s)
        await ensure_topics(bootstrap, topics, settings.rates_partitions)
        return bootstrap
    port = embedded.free_port()
    bootstrap = f"127.0.0.1:{port}"

    async def ready() -> None:
        # Also after a restart: Tansu keeps nothing, so the topics are created again.
        await wait_for_broker(bootstrap, 20.0)
        await ensure_topics(bootstrap, topics, settings.rates_partitions)

    log.info("starting the embedded broker (Tansu, memory only) on %s", bootstrap)
    await sup.start(
        ChildSpec("kafka", tuple(embedded.tansu_argv(port)), env=env, ready=ready, grace_s=5.0)
    )
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    return bootstrap


async def _database(sup: Supervisor, settings: StackSettings, env: dict[str, str]) -> None:
    if settings.database_url:
        try:
            await asyncio.to_thread(migrate.apply, settings.database_url, 5.0)
        except DatabaseUnavailable as exc:
            log.warning("%s; history is not written until it is reachable", exc)
        return
    pgdata = settings.rates_state_dir.resolve() / "postgres"
    user = await asyncio.to_thread(embedded.prepare_pgdata, pgdata)
    port = embedded.free_port()
    url = embedded.postgres_url(port)

    async def ready() -> None:
        await asyncio.to_thread(embedded.wait_postgres, url, 30.0)
        await asyncio.to_thread(migrate.apply, url)

    log.info("starting the embedded PostgreSQL (data in %s) on 127.0.0.1:%d", pgdata, port)
    await sup.start(
        ChildSpec(
            "postgres",
            tuple(embedded.postgres_argv(pgdata, port)),
            env=env,
            user=user,
            stop_signal=signal.SIGINT,
            ready=ready,
        )
    )
    env["DATABASE_URL"] = url


async def _simulator(sup: Supervisor, settings: StackSettings, env: dict[str, str]) -> None:
    ports_file = settings.rates_state_dir.resolve() / "simulator.json"
    ports_file.unlink(missing_ok=True)

    async def ready() -> None:
        await _poll(ports_file.exists, "simulator", 30.0)

    await sup.start(
        ChildSpec(
            "simulator",
            (*RATES, "simulate", "--ports-file", str(ports_file)),
            env=env,
            ready=ready,
            grace_s=5.0,
        )
    )
    found = json.loads(ports_file.read_text())
    env.update(found["env"])
    log.info("venue simulator control API at %s", found["control"])


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
    state_dir = settings.rates_state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["RATES_STATE_DIR"] = str(state_dir)
    env["RATES_VENUES"] = ",".join(venues)
    sup = Supervisor()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.request_stop)
    try:
        await _run_step(sup, _broker(sup, settings, env, venues))
        await _run_step(sup, _database(sup, settings, env))
        if source == "simulator":
            await _run_step(sup, _simulator(sup, settings, env))
        kafka_deps = ("kafka",) if "kafka" in sup.children else ()
        postgres_deps = ("postgres",) if "postgres" in sup.children else ()
        if source != "replay":
            await _run_step(
                sup,
                sup.start(
                    ChildSpec(
                        "connect",
                        (*RATES, "connect", *venues),
                        env=env,
                        depends_on=kafka_deps,
                        grace_s=5.0,
                    )
                ),
            )
        for index in range(settings.rates_workers):
            name = "worker" if settings.rates_workers == 1 else f"worker{index + 1}"
            worker_env = env
            if settings.worker_metrics_port:
                port = settings.worker_metrics_port + index
                worker_env = {**env, "WORKER_METRICS_PORT": str(port)}
            spec = ChildSpec(name, (*RATES, "worker"), env=worker_env, depends_on=kafka_deps)
            await _run_step(sup, sup.start(spec))
        await _run_step(
            sup,
            sup.start(
                ChildSpec(
                    "history",
                    (*RATES, "history"),
                    env=env,
                    depends_on=kafka_deps + postgres_deps,
                    grace_s=10.0,
                )
            ),
        )
        base = f"http://{settings.api_host}:{settings.api_port}"

        async def api_ready() -> None:
            await _poll(lambda: _http_ok(f"{base}/healthz"), "API", 60.0)

        await _run_step(
            sup,
            sup.start(
                ChildSpec(
                    "api",
                    (*RATES, "api"),
                    env=env,
                    depends_on=kafka_deps,
                    ready=api_ready,
                    grace_s=5.0,
                )
            ),
        )
        if recording is not None:
            # Last, so that the API serves from the first replayed frame on.
            speed_arg = "max" if speed is None else f"{speed:g}"
            argv = (*RATES, "replay", str(recording), "--speed", speed_arg, "--hold")
            await _run_step(
                sup,
                sup.start(
                    ChildSpec(
                        "replay",
                        (*argv, "--topic-prefix", settings.rates_topic_prefix),
                        env=env,
                        depends_on=kafka_deps,
                        grace_s=5.0,
                    )
                ),
            )
    except _Stopped:
        await sup.stop_all()
        return 0
    except (RatesError, OSError):
        await sup.stop_all()
        raise
    log.info(
        "serving %s/api/v1/courses  (Kafka at %s, PostgreSQL at %s; Ctrl-C stops everything)",
        base,
        env["KAFKA_BOOTSTRAP_SERVERS"],
        env.get("DATABASE_URL", "(none)"),
    )
    code = await sup.run()
    if sup.failure:
        raise RatesError(sup.failure)
    return code


class _Stopped(Exception):
    """Ctrl-C arrived while the stack was starting."""


async def _run_step(sup: Supervisor, step: Coroutine[Any, Any, Any]) -> None:
    """Run one start-up step, abandoning it if a stop is requested meanwhile."""
    task = asyncio.ensure_future(step)
    stop = asyncio.ensure_future(sup.stop_requested())
    try:
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task not in done:
        task.cancel()
        raise _Stopped
    task.result()
