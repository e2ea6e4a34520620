"""The embedded broker and database as plain processes, for tests, benchmarks and scripts.

`rates up` runs the same commands under its supervisor (rates/stack.py); here each is a
handle that returns once the component accepts connections, and stops it on request.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.processes import stop
from rates.embedded import (
    free_port,
    postgres_argv,
    postgres_url,
    prepare_pgdata,
    run_as,
    tansu_argv,
    wait_postgres,
)
from schemas.errors import RatesError


@dataclass
class Process:
    """A started component: its process and how to reach it."""

    popen: subprocess.Popen[bytes]
    address: str
    stop_signal: int = signal.SIGTERM

    def stop(self, grace_s: float = 10.0) -> None:
        stop(self.popen, self.stop_signal, grace_s)


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _wait_listening(proc: Process, what: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RatesError(f"{what} exited with code {proc.popen.returncode} while starting")
        if port_open("127.0.0.1", port):
            return
        time.sleep(0.05)
    proc.stop()
    raise RatesError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:g} s")


def _popen(argv: list[str], log: Path | None, user: str | None = None) -> subprocess.Popen[bytes]:
    creds = run_as(user)
    with open(log or os.devnull, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=creds.user,
            group=creds.group,
            extra_groups=creds.extra_groups,
        )


def start_tansu(port: int | None = None, log: Path | None = None) -> Process:
    """Start Tansu on a loopback port; returns once the port accepts connections."""
    port = port or free_port()
    popen = _popen(tansu_argv(port), log)
    proc = Process(popen, f"127.0.0.1:{port}")
    _wait_listening(proc, "tansu", port, 10.0)
    return proc


def start_postgres(pgdata: Path, port: int | None = None, log: Path | None = None) -> Process:
    """Start PostgreSQL (initdb first if needed); returns once it accepts TCP connections."""
    user = prepare_pgdata(pgdata)
    port = port or free_port()
    popen = _popen(postgres_argv(pgdata, port), log, user=user)
    # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for clients to leave.
    proc = Process(popen, postgres_url(port), stop_signal=signal.SIGINT)
    _wait_listening(proc, "postgres", port, 20.0)
    wait_postgres(proc.address, 20.0)
    return proc
