"""The process tree of ``rates up``: start children in order, restart the ones that die, stop all.

Children run in their own sessions, so Ctrl-C reaches only the supervisor, which then stops
them in reverse start order (the signal each one wants, SIGKILL after its grace period).
Each child also gets a parent-death signal, so none outlives a supervisor that was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from common.backoff import Backoff
from rates.embedded import run_as
from schemas.errors import RatesError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent(sig: int) -> Callable[[], None]:
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


class StartError(RatesError):
    """A child exited, or did not become ready in time, while starting."""


@dataclass(frozen=True)
class ChildSpec:
    """How to run one child of the tree."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    grace_s: float = 10.0
    #: Children restarted whenever one of these is restarted (e.g. everything on the broker).
    depends_on: tuple[str, ...] = ()
    #: Awaited after every (re)start; the child counts as started when it returns.
    ready: Callable[[], Coroutine[Any, Any, None]] | None = None
    ready_timeout_s: float = 60.0
    #: Recycled (stopped and started again, with its dependents) when its RSS exceeds this.
    max_rss_bytes: int | None = None
    #: Recycled the same way once it has run this long (seconds).
    max_age_s: float | None = None
    #: Frozen (SIGSTOP) while one of these restarts, until it is ready again (SIGCONT): a
    #: producer that outlives the broker must not write to the new one before its topics
    #: exist (Tansu starts such a partition over when the topic is then created).
    frozen_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, cap_s=10.0))
    #: How long a dependent gets to stop when what it depends on restarts (then SIGKILL): a
    #: Faust worker whose broker died never stops by itself.
    dependent_grace_s: float = 1.0
    #: How often the RSS of a child with a memory cap is read.
    memory_every_s: float = 2.0


#: Why a child restarts: it exited, it reached its memory cap, or its age limit.
Reason = str
DIED: Reason = "died"
CAP: Reason = "cap"
AGE: Reason = "age"


def rss_bytes(pid: int) -> int | None:
    """The resident set size of a process (VmRSS in /proc/<pid>/status), None if gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclass(frozen=True)
class Restarted:
    """What the supervisor tells its listener when a child restarts."""

    name: str
    reason: Reason
    #: The child's RSS when it was recycled for its cap.
    rss_bytes: int | None = None


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    restarts: deque[float] = field(default_factory=deque)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: bool = False


class Supervisor:
    """Starts, watches, restarts and stops the children of one tree."""

    def __init__(
        self,
        out: TextIO = sys.stderr,
        policy: RestartPolicy | None = None,
        on_restart: Callable[[Restarted], None] | None = None,
        on_rss: Callable[[str, int], None] | None = None,
    ) -> None:
        self.out = out
        self.policy = policy or RestartPolicy()
        self.children: dict[str, _Child] = {}
        self.failure: str | None = None
        #: Told of every restart (a metric); ``on_rss`` of every RSS read of a capped child.
        self.on_restart = on_restart
        self.on_rss = on_rss
        self._stop = asyncio.Event()
        #: (child, exit code or None for a planned recycle, reason, RSS at the recycle)
        self._exits: asyncio.Queue[tuple[str, int | None, Reason, int | None]] = asyncio.Queue()
        self._stop_requests = 0

    # -- starting -------------------------------------------------------------------------

    async def start(self, spec: ChildSpec) -> None:
        """Start a child and wait until it is ready; StartError if it dies first."""
        child = _Child(spec)
        self.children[spec.name] = child
        await self._spawn(child)

    async def _spawn(self, child: _Child) -> None:
        spec = child.spec
        child.stopping = False
        creds = run_as(spec.user)
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=dict(spec.env) if spec.env is not None else None,
            user=creds.user,
            group=creds.group,
            extra_groups=creds.extra_groups,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(spec.stop_signal),
        )
        child.proc = proc
        pump = asyncio.create_task(self._pump(child, proc), name=f"{spec.name}-output")
        child.tasks = [pump, asyncio.create_task(self._watch(child, proc, pump))]
        if spec.max_rss_bytes is not None or spec.max_age_s is not None:
            child.tasks.append(asyncio.create_task(self._watch_limits(child, proc)))
        if spec.ready is None:
            return
        ready = asyncio.create_task(spec.ready())
        exited = asyncio.create_task(proc.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, exited}, timeout=spec.ready_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (ready, exited):
                task.cancel()
        if ready in done and ready.exception() is None:
            return
        if exited in done:
            await asyncio.sleep(0.1)  # let the pump catch the last lines
            why = f"exited with code {proc.returncode}"
        elif ready in done:
            why = f"failed its readiness check: {ready.exception()}"
        else:
            why = f"was not ready within {spec.ready_timeout_s:g} s"
        await self._stop_child(child)
        raise StartError(f"{spec.name} {why}{self._tail(child)}")

    async def _pump(self, child: _Child, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        prefix = f"{child.spec.name:<9}| "
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            child.tail.append(line)
            self.out.write(prefix + line + "\n")
            self.out.flush()

    async def _watch(
        self, child: _Child, proc: asyncio.subprocess.Process, pump: asyncio.Task[None]
    ) -> None:
        code = await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pump, 2.0)
        if not child.stopping and child.proc is proc:
            self._exits.put_nowait((child.spec.name, code, DIED, None))

    async def _watch_limits(self, child: _Child, proc: asyncio.subprocess.Process) -> None:
        """Every few seconds: read the child's RSS and age; ask for a recycle at a limit."""
        cap = child.spec.max_rss_bytes
        max_age_s = child.spec.max_age_s
        started = time.monotonic()
        while proc.returncode is None and not child.stopping:
            rss = rss_bytes(proc.pid)
            if rss is not None:
                if self.on_rss is not None:
                    self.on_rss(child.spec.name, rss)
                if cap is not None and rss > cap:
                    self._exits.put_nowait((child.spec.name, None, CAP, rss))
                    return
            if max_age_s is not None and time.monotonic() - started >= max_age_s:
                self._exits.put_nowait((child.spec.name, None, AGE, rss))
                return
            await asyncio.sleep(self.policy.memory_every_s)

    @staticmethod
    def _tail(child: _Child, lines: int = 8) -> str:
        tail = list(child.tail)[-lines:]
        return "" if not tail else "; last output:\n    " + "\n    ".join(tail)

    # -- running --------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: stop cleanly. Second call: kill every child now."""
        self._stop_requests += 1
        if self._stop_requests == 1:
            log.info("stopping (again to kill at once)")
            self._stop.set()
        else:
            for child in self.children.values():
                if child.proc is not None and child.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.kill()

    async def stop_requested(self) -> None:
        """Return once a stop was requested."""
        await self._stop.wait()

    async def run(self) -> int:
        """Watch the tree until asked to stop or a child keeps failing; then stop everything."""
        stop = asyncio.create_task(self._stop.wait())
        try:
            while not self._stop.is_set():
                exit_ = asyncio.create_task(self._exits.get())
                done, _ = await asyncio.wait({stop, exit_}, return_when=asyncio.FIRST_COMPLETED)
                if exit_ not in done:
                    exit_.cancel()
                    break
                name, code, reason, rss = exit_.result()
                if not await self._restart(name, code, reason, rss):
                    break
        finally:
            stop.cancel()
            await self.stop_all()
        return 1 if self.failure else 0

    def _dependents(self, name: str) -> list[_Child]:
        found: list[_Child] = []
        names = {name}
        for child in self.children.values():  # start order: dependencies come first
            if names & set(child.spec.depends_on):
                found.append(child)
                names.add(child.spec.name)
        return found

    async def _restart(
        self, name: str, code: int | None, reason: Reason = DIED, rss: int | None = None
    ) -> bool:
        """Restart a child that died or reached its memory cap (and what depends on it);
        False to stop the tree. A child that keeps dying stops the tree; recycles do not count.
        """
        child = self.children[name]
        delay = 0.0
        if reason == AGE:
            log.warning(
                "%s has run for %.0f min, its age limit: recycling it (and %s)",
                name,
                (child.spec.max_age_s or 0) / 60,
                ", ".join(c.spec.name for c in self._dependents(name)) or "nothing else",
            )
        elif reason == CAP:
            cap = child.spec.max_rss_bytes or 0
            log.warning(
                "%s uses %.1f MB, over its cap of %d MB: recycling it (and %s)",
                name,
                (rss or 0) / 2**20,
                cap >> 20,
                ", ".join(c.spec.name for c in self._dependents(name)) or "nothing else",
            )
        else:
            now = time.monotonic()
            child.restarts.append(now)
            while child.restarts and now - child.restarts[0] > self.policy.window_s:
                child.restarts.popleft()
            count = len(child.restarts)
            if count > self.policy.max_restarts:
                self.failure = (
                    f"{name} exited {count} times within {self.policy.window_s:g} s; "
                    f"stopping everything{self._tail(child)}"
                )
                log.error(self.failure)
                return False
            delay = self.policy.backoff.delay(count)
            log.error(
                "%s exited with code %s; restarting it in %.1f s%s",
                name,
                code,
                delay,
                self._tail(child),
            )
        if self.on_restart is not None:
            self.on_restart(Restarted(name, reason, rss))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
            return False
        frozen = self._freeze(name)
        try:
            # The child first (a recycled one still runs): its dependents are restarted
            # because they cannot outlive it, so they get only a short grace.
            await self._stop_child(child)
            dependents = self._dependents(name)
            await asyncio.gather(
                *(self._stop_child(d, self.policy.dependent_grace_s) for d in reversed(dependents))
            )
            await self._spawn(child)
        except StartError as exc:
            log.error("%s", exc)
            self._exits.put_nowait((name, -1, DIED, None))
            return True
        finally:
            self._signal(frozen, signal.SIGCONT)
        try:
            for dependent in dependents:
                log.info("restarting %s (it depends on %s)", dependent.spec.name, name)
                await self._spawn(dependent)
        except StartError as exc:
            log.error("%s", exc)
            self._exits.put_nowait((name, -1, DIED, None))
        return True

    def _freeze(self, name: str) -> list[_Child]:
        """SIGSTOP the running children frozen while ``name`` restarts; returns them."""
        frozen = [
            c
            for c in self.children.values()
            if name in c.spec.frozen_with and c.proc is not None and c.proc.returncode is None
        ]
        if frozen:
            log.info("freezing %s until %s is back", ", ".join(c.spec.name for c in frozen), name)
        self._signal(frozen, signal.SIGSTOP)
        return frozen

    @staticmethod
    def _signal(children: list[_Child], sig: int) -> None:
        for child in children:
            if child.proc is not None and child.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(sig)

    # -- stopping -------------------------------------------------------------------------

    async def _stop_child(self, child: _Child, grace_s: float | None = None) -> None:
        child.stopping = True
        proc = child.proc
        grace = child.spec.grace_s if grace_s is None else min(grace_s, child.spec.grace_s)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a frozen child acts on no other signal
                proc.send_signal(child.spec.stop_signal)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                log.warning("%s did not stop within %g s; killing it", child.spec.name, grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in child.tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 2.0)

    async def stop_all(self) -> None:
        """Stop every child, last started first."""
        for child in reversed(list(self.children.values())):
            await self._stop_child(child)
