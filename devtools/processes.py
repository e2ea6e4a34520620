"""Processes with their output in a log file: `rates` subcommands and anything else."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devtools.waiting import wait_until

#: How to run the `rates` command with this interpreter.
RATES = (sys.executable, "-m", "rates")


def spawn(
    argv: Sequence[str], env: Mapping[str, str] | None, log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output (stdout and stderr) appended to ``log``."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(popen: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
    """Send ``sig`` unless it has exited, wait, SIGKILL after ``timeout_s``; its exit code."""
    if popen.poll() is None:
        popen.send_signal(sig)
        try:
            popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
    return popen.returncode


@dataclass
class Proc:
    """A process started here, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, text: str, timeout_s: float) -> str:
        """The output once it contains ``text``; fails at once if the process exits first."""

        def found() -> str | None:
            if self.popen.poll() is not None and text not in self.output():
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}) before logging {text!r}:\n"
                    + self.output()[-3000:]
                )
            out = self.output()
            return out if text in out else None

        return wait_until(found, timeout_s, f"{self.name} to log {text!r}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        return stop(self.popen, sig, timeout_s)


@contextmanager
def running(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    log: Path,
    *,
    cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
    timeout_s: float = 20.0,
) -> Iterator[Proc]:
    """``argv`` running for the block; stopped with ``stop_signal`` (SIGKILL after timeout)."""
    proc = Proc(name, spawn(argv, env, log, cwd), log)
    try:
        yield proc
    finally:
        proc.stop(stop_signal, timeout_s)


@dataclass
class Procs:
    """`rates` subcommands started together, logs in one directory; stopped together."""

    directory: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> Proc:
        log = self.directory / f"{name}.log"
        proc = Proc(name, spawn([*RATES, *args], env, log, self.directory), log)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()

    def dump(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.output()[-4000:]}" for p in self.started)
