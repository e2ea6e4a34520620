"""Runs the API under uvicorn (uvloop, httptools) on a socket bound up front.

One worker serves in this process. Several (``API_WORKERS``) are uvicorn's worker processes
sharing the bound socket, each following the topics into its own snapshot; Prometheus then
runs in multiprocess mode over a fresh directory, so /metrics adds up every worker.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from api.app import create_app
from api.settings import ApiSettings
from schemas.errors import ConfigError

#: Seconds open requests (event streams above all) get to finish when the server stops.
GRACEFUL_S = 2


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so a taken port is one clear error naming API_PORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"API_PORT={port}: {host}:{port} is already in use; choose another API_PORT"
            ) from None
        raise ConfigError(f"API_HOST={host!r}: cannot listen there ({exc.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app: Any, settings: ApiSettings, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        access_log=settings.api_access_log,
        log_config=None,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_S,
        **extra,
    )


def serve(settings: ApiSettings, sock: socket.socket, worker_factory: str) -> None:
    """Serve on an already bound socket until SIGINT/SIGTERM.

    ``worker_factory`` (``module:function``) builds the app in each worker process when
    ``API_WORKERS`` > 1: workers are spawned, so they load their settings themselves.
    """
    if settings.api_workers == 1:
        uvicorn.Server(_config(create_app(settings), settings)).run(sockets=[sock])
        return
    metrics_dir = tempfile.mkdtemp(prefix="rates-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        config = _config(worker_factory, settings, factory=True, workers=settings.api_workers)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
