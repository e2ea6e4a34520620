"""Runs the Faust app as a worker process (``rates worker``)."""

from __future__ import annotations

import logging
import time

import faust

from pipeline import metrics
from pipeline.app import create_app
from pipeline.settings import WorkerSettings

log = logging.getLogger(__name__)


class Worker(faust.Worker):
    """A Faust worker that reports how long it took to become ready."""

    launched_at: float = 0.0

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        elapsed = time.monotonic() - self.launched_at
        metrics.READY.set(1)
        metrics.STARTUP_SECONDS.set(elapsed)
        log.info("worker ready in %.1f s", elapsed)


def run(settings: WorkerSettings) -> None:
    """Run the worker until SIGTERM/SIGINT; Faust sets up logging at the configured level."""
    app = create_app(settings)
    app.conf.datadir.mkdir(parents=True, exist_ok=True)
    worker = Worker(app, loglevel=logging.getLevelName(settings.log_level), quiet=True)
    worker.launched_at = time.monotonic()
    worker.execute_from_commandline()
