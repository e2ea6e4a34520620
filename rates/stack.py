"""``rates up``: the whole pipeline as one supervised process tree.

The plan (rates/plan.py) says which children start, in which order and with what; this
module chooses the addresses of the embedded services, takes the plan's steps one by one
under the supervisor (each child ready before the next starts) and then watches the tree.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from pipeline.replay.recording import Recording
from rates import embedded, metrics, migrate
from rates.embedded import free_port
from rates.kafka import ensure_topics, wait_for_broker
from rates.plan import (
    Addresses,
    Answers,
    BrokerUp,
    Child,
    Migrated,
    PortsWritten,
    Ready,
    Source,
    Step,
    clashes,
    plan,
    ports,
)
from rates.settings import StackSettings
from rates.supervisor import ChildSpec, Supervisor
from schemas.errors import ConfigError, DatabaseUnavailable, RatesError
from schemas.venues import VENUES

log = logging.getLogger(__name__)


def choose_addresses(settings: StackSettings) -> Addresses:
    """The absolute state directory, and the ports of the embedded services: the configured
    ones (the same at every start), or free ones for those set to 0."""
    return Addresses(
        settings.rates_state_dir.resolve(),
        None if settings.kafka_bootstrap_servers else settings.rates_broker_port or free_port(),
        None if settings.database_url else settings.rates_postgres_port or free_port(),
        settings.rates_simulator_port,
    )


def check_ports(found: Sequence[tuple[int, str]], api_host: str = "127.0.0.1") -> None:
    """ConfigError naming the setting when two settings give one port, or a port is taken."""
    clash = clashes(found)
    if clash:
        raise ConfigError(clash)
    for port, setting in found:
        host = api_host if setting == "API_PORT" else "127.0.0.1"
        embedded.check_port_free(host, port, setting)


def serve_metrics(settings: StackSettings) -> None:
    """The supervisor's own metrics (restarts, the broker's RSS) on STACK_METRICS_PORT."""
    if not settings.kafka_bootstrap_servers:
        metrics.BROKER_MAX_RSS.set(settings.rates_broker_max_mb << 20)
    port = settings.stack_metrics_port
    if not port:
        return
    try:
        start_http_server(port, addr=settings.metrics_host)
    except OSError as exc:
        raise ConfigError(
            f"STACK_METRICS_PORT={port}: cannot serve metrics on {settings.metrics_host}:{port} "
            f"({exc.strerror}); choose another STACK_METRICS_PORT, or 0 to turn metrics off"
        ) from None


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


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def readiness(url: str) -> tuple[bool, str]:
    """The API's ``/readyz``: whether v1 serves rates, and what is missing when it does not."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200), "ok"
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                reason = str(json.loads(exc.read()).get("reason", ""))
            except (ValueError, AttributeError):
                reason = ""
        return False, reason or f"HTTP {exc.code}"
    except OSError as exc:
        return False, f"the API does not answer ({exc})"


async def announce(
    api: str,
    patience_s: float = 10.0,
    every_s: float = 0.5,
    check: Callable[[str], tuple[bool, str]] = readiness,
) -> None:
    """Say "serving" once v1 serves rates (``/readyz`` is 200), and what is missing instead
    when it does not within ``patience_s`` of the start, or stops serving later."""
    serving: bool | None = None
    deadline = time.monotonic() + patience_s
    while True:
        ready, reason = await asyncio.to_thread(check, f"{api}/readyz")
        if ready and serving is not True:
            log.info("serving %s/api/v1/courses", api)
            serving = True
        elif not ready and (serving or (serving is None and time.monotonic() >= deadline)):
            log.warning("not serving rates at %s/api/v1/courses: %s", api, reason)
            serving = False
        await asyncio.sleep(every_s)


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
            await _poll(functools.partial(http_ok, url), what, timeout_s)


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
        max_rss_bytes=child.max_rss_bytes,
        max_age_s=child.max_age_s,
        frozen_with=child.frozen_with,
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
    check_ports(ports(settings, source), settings.api_host)
    venues = list(settings.rates_venues)
    if source == "replay":
        assert recording is not None
        venues = _recorded_venues(recording)
    addresses = choose_addresses(settings)
    addresses.state_dir.mkdir(parents=True, exist_ok=True)
    stack = plan(settings, source, venues, addresses, recording, speed)
    serve_metrics(settings)
    sup = Supervisor(on_restart=metrics.restarted, on_rss=metrics.rss)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.request_stop)
    try:
        await unless_stopped(sup, start(sup, stack.steps))
    except Stopped:
        await sup.stop_all()
        return 0
    except (RatesError, OSError):
        await sup.stop_all()
        raise
    log.info(
        "started: API at %s (Kafka at %s, PostgreSQL at %s; Ctrl-C stops everything)",
        stack.api,
        stack.bootstrap,
        stack.database_url,
    )
    served = [f"{name} {port}" for port, name in ports(settings, source) if "METRICS" in name]
    if served:
        log.info("Prometheus metrics on %s: %s", settings.metrics_host, ", ".join(served))
    telling = asyncio.create_task(announce(stack.api))
    try:
        code = await sup.run()
    finally:
        telling.cancel()
    if sup.failure:
        raise RatesError(sup.failure)
    return code


class Stopped(Exception):
    """Ctrl-C arrived while the stack was starting."""


async def unless_stopped(sup: Supervisor, starting: Coroutine[Any, Any, None]) -> None:
    """Run the start-up, abandoning it if a stop is requested meanwhile."""
    task = asyncio.ensure_future(starting)
    stop = asyncio.ensure_future(sup.stop_requested())
    try:
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task not in done:
        task.cancel()
        raise Stopped
    task.result()
