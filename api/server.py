"""Runs the API under uvicorn (uvloop, httptools, no access log) on a socket bound up front."""

from __future__ import annotations

import errno
import socket

import uvicorn

from api.app import create_app
from api.settings import ApiSettings
from schemas.errors import ConfigError


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


def serve(settings: ApiSettings, sock: socket.socket) -> None:
    """Serve on an already bound socket until SIGINT/SIGTERM."""
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])
