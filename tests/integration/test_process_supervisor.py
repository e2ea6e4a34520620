"""The process supervisor of `rates up`, on real (tiny) child processes."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from common.backoff import Backoff
from rates.supervisor import AGE, CAP, ChildSpec, Restarted, RestartPolicy, StartError, Supervisor

FAST = RestartPolicy(max_restarts=3, window_s=60, backoff=Backoff(base_s=0.001, cap_s=0.002))


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


SLEEPER = py("import time\nprint('up', flush=True)\ntime.sleep(60)")


async def test_a_dead_child_and_its_dependents_are_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    out = io.StringIO()
    sup = Supervisor(out=out, policy=FAST)
    counter = tmp_path / "starts"
    code = (
        f"import pathlib, time\np = pathlib.Path({str(counter)!r})\n"
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        "time.sleep(0.3 if len(p.read_text()) == 1 else 60)"
    )
    await sup.start(ChildSpec("flaky", py(code)))
    await sup.start(ChildSpec("dependent", SLEEPER, depends_on=("flaky",)))
    first_dependent = sup.children["dependent"].proc
    runner = asyncio.create_task(sup.run())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if (
            counter.exists()
            and counter.read_text() == "xx"
            and out.getvalue().count("dependent| up") == 2
        ):
            break
    assert counter.read_text() == "xx"
    assert first_dependent is not None and first_dependent.returncode is not None
    assert sup.children["dependent"].proc is not first_dependent
    sup.request_stop()
    assert await runner == 0
    assert all(c.proc is not None and c.proc.returncode is not None for c in sup.children.values())
    assert "flaky exited with code 0; restarting it" in caplog.text
    assert "restarting dependent (it depends on flaky)" in caplog.text
    assert out.getvalue().count("dependent| up") == 2


async def test_a_child_that_keeps_dying_stops_the_tree(caplog: pytest.LogCaptureFixture) -> None:
    sup = Supervisor(out=io.StringIO(), policy=FAST)
    await sup.start(ChildSpec("crasher", py("import sys; print('boom'); sys.exit(3)")))
    await sup.start(ChildSpec("bystander", SLEEPER))
    assert await asyncio.wait_for(sup.run(), 30) == 1
    assert sup.failure is not None
    assert "crasher exited 4 times within 60 s; stopping everything" in sup.failure
    assert "boom" in sup.failure
    bystander = sup.children["bystander"].proc
    assert bystander is not None and bystander.returncode is not None


async def test_a_child_ignoring_sigterm_is_killed_after_its_grace() -> None:
    sup = Supervisor(out=io.StringIO(), policy=FAST)
    stubborn = py(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)"
    )
    await sup.start(ChildSpec("stubborn", stubborn, grace_s=0.5))
    await asyncio.sleep(0.5)
    await asyncio.wait_for(sup.stop_all(), 10)
    proc = sup.children["stubborn"].proc
    assert proc is not None and proc.returncode == -signal.SIGKILL


async def test_readiness_failures_are_reported_with_the_output() -> None:
    sup = Supervisor(out=io.StringIO(), policy=FAST)

    async def never() -> None:
        await asyncio.sleep(60)

    early = ChildSpec("early", py("print('bye'); raise SystemExit(2)"), ready=never)
    with pytest.raises(StartError, match=r"early exited with code 2; last output:\n    bye"):
        await sup.start(early)
    slow = ChildSpec("slow", SLEEPER, ready=never, ready_timeout_s=0.2)
    with pytest.raises(StartError, match=r"slow was not ready within 0\.2 s"):
        await sup.start(slow)
    await sup.stop_all()


async def test_a_child_over_its_memory_cap_is_recycled_with_its_dependents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    events: list[Restarted] = []
    reads: list[int] = []
    # No restart allowed for a death: a recycle must not count as one.
    policy = RestartPolicy(
        max_restarts=0, backoff=FAST.backoff, dependent_grace_s=0.5, memory_every_s=0.1
    )
    sup = Supervisor(
        out=io.StringIO(),
        policy=policy,
        on_restart=events.append,
        on_rss=lambda name, rss: reads.append(rss),
    )
    # 64 MB of touched memory once started: over a 48 MB cap, every time.
    hog = py("import time\nx = bytearray(64 << 20)\nprint('up', flush=True)\ntime.sleep(60)")
    await sup.start(ChildSpec("hog", hog, max_rss_bytes=48 << 20))
    await sup.start(ChildSpec("dependent", SLEEPER, depends_on=("hog",)))
    first = (sup.children["hog"].proc, sup.children["dependent"].proc)
    runner = asyncio.create_task(sup.run())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if events:
            break
    await asyncio.sleep(0.5)
    sup.request_stop()
    assert await asyncio.wait_for(runner, 30) == 0  # the tree did not stop: no "death"
    assert events and events[0] == Restarted("hog", CAP, events[0].rss_bytes)
    assert (events[0].rss_bytes or 0) > 48 << 20 and max(reads) > 48 << 20
    assert all(p is not None and p.returncode is not None for p in first)
    assert sup.children["hog"].proc is not first[0]
    assert sup.children["dependent"].proc is not first[1]
    assert re.search(
        r"hog uses [\d.]+ MB, over its cap of 48 MB: recycling it \(and dependent\)", caplog.text
    )
    assert sup.failure is None


async def test_a_child_at_its_age_limit_is_recycled_with_its_dependents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    events: list[Restarted] = []
    policy = RestartPolicy(
        max_restarts=0, backoff=FAST.backoff, dependent_grace_s=0.5, memory_every_s=0.1
    )
    recycled_after: list[float] = []
    started = time.monotonic()

    def restarted(event: Restarted) -> None:
        recycled_after.append(time.monotonic() - started)
        events.append(event)

    sup = Supervisor(out=io.StringIO(), policy=policy, on_restart=restarted)
    await sup.start(ChildSpec("old", SLEEPER, max_age_s=0.6))
    await sup.start(ChildSpec("dependent", SLEEPER, depends_on=("old",)))
    first = (sup.children["old"].proc, sup.children["dependent"].proc)
    runner = asyncio.create_task(sup.run())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if events:
            break
    await asyncio.sleep(0.3)
    sup.request_stop()
    assert await asyncio.wait_for(runner, 30) == 0  # a recycle is not a death
    assert events and events[0].name == "old" and events[0].reason == AGE
    assert recycled_after[0] >= 0.6  # not before its age
    assert len(events) <= 2  # once per age, not in a loop
    assert all(p is not None and p.returncode is not None for p in first)
    assert sup.children["old"].proc is not first[0]
    assert sup.children["dependent"].proc is not first[1]
    assert "old has run for 0 min, its age limit: recycling it (and dependent)" in caplog.text
    assert sup.failure is None


async def test_children_frozen_with_a_restarting_child_wait_until_it_is_ready() -> None:
    statuses: list[str] = []
    ready_calls = 0

    async def ready() -> None:
        nonlocal ready_calls
        ready_calls += 1
        if ready_calls > 1:  # the restart: look at the frozen child meanwhile
            for _ in range(5):
                statuses.append(psutil.Process(frozen_pid()).status())
                await asyncio.sleep(0.05)

    sup = Supervisor(out=io.StringIO(), policy=FAST)
    await sup.start(ChildSpec("broker", SLEEPER, ready=ready))
    await sup.start(ChildSpec("producer", SLEEPER, frozen_with=("broker",)))

    def frozen_pid() -> int:
        proc = sup.children["producer"].proc
        assert proc is not None
        return proc.pid

    producer = frozen_pid()
    runner = asyncio.create_task(sup.run())
    broker = sup.children["broker"].proc
    assert broker is not None
    broker.kill()
    for _ in range(100):
        await asyncio.sleep(0.05)
        if ready_calls > 1 and len(statuses) == 5:
            break
    await asyncio.sleep(0.2)
    assert statuses == [psutil.STATUS_STOPPED] * 5  # frozen while the broker came back
    assert psutil.Process(producer).status() != psutil.STATUS_STOPPED  # and thawed after
    assert frozen_pid() == producer  # not restarted
    sup.request_stop()
    assert await asyncio.wait_for(runner, 30) == 0
