"""Runs `rates up --source simulator` (the `make demo` stack) in a scratch directory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

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
        venues = ("BINANCE_", "KRAKEN_", "OKX_", "BYBIT_", "COINBASE_", "COINGECKO_", "CBR_")
        own = (
            "RATES_",
            "KAFKA_",
            "API_",
            "DATABASE_",
            "CONNECTOR_",
            "WORKER_",
            "HISTORY_",
            *venues,
        )
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        full_env.update(
            RATES_STATE_DIR=str(directory / "state"),
            API_PORT=str(port),
            CONNECTOR_METRICS_PORT="0",
            WORKER_METRICS_PORT="0",
            HISTORY_METRICS_PORT="0",
            LOG_LEVEL="INFO",
            **(env or {}),
        )
        log = directory / "up.log"
        started = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rates", "up", "--source", "simulator"],
                env=full_env,
                cwd=directory,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"rates up exited:\n{log.read_text()[-3000:]}")
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"rates up not serving after {timeout_s} s")
                try:
                    if httpx.get(f"{base}/api/v1/courses", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            serving = time.monotonic() - started
            ports = json.loads((directory / "state" / "simulator.json").read_text())
            yield Stack(base, ports["control"], log, started, serving, proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
