"""Runs `rates up --source simulator` (the `make demo` stack) in a scratch directory."""

from __future__ import annotations

import json
import re
import signal
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.environment import clean_env
from devtools.processes import RATES, running
from devtools.waiting import wait_until
from rates.embedded import free_port


@dataclass
class Stack:
    base: str
    control: str
    log: Path
    started: float
    serving_after_s: float
    pid: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def logged_seconds(self, pattern: str) -> float | None:
        """The first number matched by ``pattern`` (a regex with one group) in the output."""
        found = re.search(pattern, self.output())
        return float(found.group(1)) if found else None


@contextmanager
def demo_stack(env: Mapping[str, str] | None = None, timeout_s: float = 90) -> Iterator[Stack]:
    """The demo stack on free ports; yields once /api/v1/courses answers 200."""
    with tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp:
        directory = Path(tmp)
        port = free_port()
        full_env = clean_env(
            RATES_STATE_DIR=str(directory / "state"), API_PORT=str(port), **(env or {})
        )
        log = directory / "up.log"
        started = time.monotonic()
        argv = [*RATES, "up", "--source", "simulator"]
        with running(
            "up", argv, full_env, log, cwd=directory, stop_signal=signal.SIGINT, timeout_s=60
        ) as up:
            base = f"http://127.0.0.1:{port}"

            def serving() -> bool:
                if up.popen.poll() is not None:
                    raise RuntimeError(f"rates up exited:\n{up.output()[-3000:]}")
                return httpx.get(f"{base}/api/v1/courses", timeout=1).status_code == 200

            wait_until(serving, timeout_s, "rates up to serve")
            serving_after = time.monotonic() - started
            ports = json.loads((directory / "state" / "simulator.json").read_text())
            yield Stack(base, ports["control"], log, started, serving_after, up.popen.pid)
