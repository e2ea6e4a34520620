"""Record and replay on real processes: the same frames give the same quotes again."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until
from pipeline.replay.recording import Recording
from rates.embedded import free_port
from schemas.records import Quote, RawFrame, format_time
from schemas.topics import Topics
from tests.integration.harness import SimHandle, courses, produce, read_topics, unique_prefix

SAMPLE = Path(__file__).resolve().parents[2] / "recordings" / "sample.jsonl.gz"


def direct_quotes(messages: list[Any]) -> list[Quote]:
    quotes = [Quote.from_json(m.value) for m in messages]
    return [q for q in quotes if q.derived_from is None]


def test_a_replay_at_max_speed_gives_the_quotes_of_the_original_run(
    kafka: str, simulator: SimHandle, procs: Procs
) -> None:
    live, again = Topics(unique_prefix()), Topics(unique_prefix())
    path = procs.directory / "ticks.jsonl.gz"
    base = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        RATES_STATE_DIR=str(procs.directory / "state"),
        RATES_VENUES="binance",
        **simulator.env,
    )
    live_env = {**base, "RATES_TOPIC_PREFIX": live.prefix}
    replay_env = {**base, "RATES_TOPIC_PREFIX": again.prefix}
    procs.start("connect", ["connect"], live_env)
    procs.start("worker", ["worker"], live_env).wait_for("worker ready in", 60)
    # The replay's worker joins its group meanwhile.
    replay_worker = procs.start("replay-worker", ["worker"], replay_env)
    record = procs.start("record", ["record", str(path), "--duration", "5"], live_env)
    assert record.popen.wait(60) == 0, record.output()
    recording = Recording(path)
    recorded = list(recording.entries())
    recording.close()
    assert len(recorded) > 20
    assert recording.header.venues == ("binance",)
    received = [e.raw.received_at for e in recorded]
    assert received == sorted(received)
    assert received[-1] - received[0] > timedelta(seconds=3)

    # The original run's quotes of exactly the recorded frames.
    recorded_at = set(received)

    def original() -> list[Quote] | None:
        quotes = direct_quotes(read_topics(kafka, [live.normalized]))
        if max(q.received_at for q in quotes) < received[-1]:
            return None
        return [q for q in quotes if q.received_at in recorded_at]

    before = wait_until(original, 30, "the live worker to normalize every recorded frame")
    assert before

    replay_worker.wait_for("worker ready in", 60)
    replay_started = datetime.now(UTC)
    replay = procs.start(
        "replay", ["replay", str(path), "--speed", "max", "--topic-prefix", again.prefix], base
    )
    assert replay.popen.wait(60) == 0, replay.output()
    assert f"replayed {len(recorded)} frames" in replay.output()

    def replayed() -> list[Quote] | None:
        quotes = direct_quotes(read_topics(kafka, [again.normalized]))
        return quotes if len({q.id for q in quotes}) >= len({q.id for q in before}) else None

    after = wait_until(replayed, 60, "the replay's quotes")

    def essence(quotes: list[Quote]) -> set[tuple[str, str, object, datetime, str]]:
        return {(q.venue, q.direction, q.value, q.ts, q.id) for q in quotes}

    assert essence(after) == essence(before)
    # Fresh receive times: freshness works as live.
    assert all(q.received_at >= replay_started for q in after)
    # The replayed frames carry the original receive time.
    frames = [RawFrame.from_json(m.value) for m in read_topics(kafka, [again.raw("binance")])]
    assert sorted(f.recorded_at for f in frames if f.recorded_at) == received
    # And the live topics got nothing from the replay.
    live_frames = [RawFrame.from_json(m.value) for m in read_topics(kafka, [live.raw("binance")])]
    assert all(f.recorded_at is None for f in live_frames)


def frame(at: datetime, n: int) -> RawFrame:
    return RawFrame("binance", at, f'{{"n": {n}}}', "c1")


def test_replay_from_the_broker_by_time(kafka: str, procs: Procs) -> None:
    """offsets_for_times on Tansu: broker append time, and offset 0 for a future time."""
    source, target = Topics(unique_prefix()), Topics(unique_prefix())
    env = clean_env(KAFKA_BOOTSTRAP_SERVERS=kafka, RATES_TOPIC_PREFIX=source.prefix)
    bursts: list[list[RawFrame]] = []
    marks: list[datetime] = []
    for burst in range(3):
        if burst:
            time.sleep(1.2)  # separate broker batches
            marks.append(datetime.now(UTC))
            time.sleep(0.3)
        frames = [frame(datetime.now(UTC), burst * 10 + i) for i in range(5)]
        produce(
            kafka, [(source.raw("binance"), b"k%d" % i, f.to_json()) for i, f in enumerate(frames)]
        )
        bursts.append(frames)

    def replay(name: str, since: datetime, until: datetime, prefix: str) -> list[RawFrame]:
        args = ["replay", "--from-kafka", "--since", format_time(since), "--until"]
        proc = procs.start(
            name, [*args, format_time(until), "--speed", "max", "--topic-prefix", prefix], env
        )
        assert proc.popen.wait(60) == 0, proc.output()
        return [
            RawFrame.from_json(m.value) for m in read_topics(kafka, [Topics(prefix).raw("binance")])
        ]

    middle = replay("middle", marks[0], marks[1], target.prefix)
    assert sorted(f.frame for f in middle) == sorted(f.frame for f in bursts[1])
    assert sorted(f.recorded_at for f in middle if f.recorded_at) == [
        f.received_at for f in bursts[1]
    ]

    def refused(name: str, since: datetime, until: datetime) -> str:
        """A window with nothing to replay: exit 2, one clear line, nothing published."""
        prefix = unique_prefix()
        args = ["replay", "--from-kafka", "--since", format_time(since), "--until"]
        proc = procs.start(name, [*args, format_time(until), "--topic-prefix", prefix], env)
        assert proc.popen.wait(60) == 2, proc.output()
        assert read_topics(kafka, [Topics(prefix).raw("binance")], timeout_s=2) == []
        return proc.output()

    # A window after the last record: Tansu answers offset 0, which must not mean "from the
    # start"; a window in the future, or before the oldest frame the broker holds (it started
    # or was recycled after it), replays nothing and says why.
    future = datetime.now(UTC) + timedelta(minutes=5)
    assert "is in the future" in refused("future", future, future + timedelta(minutes=1))
    after = bursts[-1][-1].received_at + timedelta(milliseconds=1)
    assert "none was received then" in refused("after", after, datetime.now(UTC))
    oldest = bursts[0][0].received_at
    before = refused("before", oldest - timedelta(hours=2), oldest - timedelta(hours=1))
    assert f"the broker's oldest frame was received at {format_time(oldest)}" in before

    # From before the first record to the future: everything, nothing twice.
    everything = Topics(unique_prefix())
    got = replay("all", bursts[0][0].received_at - timedelta(minutes=1), future, everything.prefix)
    assert sorted(f.recorded_at for f in got if f.recorded_at) == [
        f.received_at for b in bursts for f in b
    ]


def test_replay_refuses_bad_arguments_clearly(tmp_path: Path, kafka: str) -> None:
    def rates(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rates", *args],
            env=clean_env(KAFKA_BOOTSTRAP_SERVERS=kafka),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    cases = [
        (["replay"], "give a recording PATH"),
        (["replay", "missing.jsonl.gz"], "missing.jsonl.gz: No such file"),
        (["replay", "--from-kafka", "--since", "2026-01-01T00:00:00Z"], "--since and --until"),
        (["up", "--source", "replay"], "a recording PATH goes with --source replay"),
        (["record", str(SAMPLE)], "exists"),
        (["record", "x.gz", "--venues", "mtgox"], "unknown venue 'mtgox'"),
    ]
    for args, message in cases:
        result = rates(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    result = rates("replay", "--speed", "fast", str(SAMPLE))
    assert result.returncode == 2 and "positive number or 'max'" in result.stderr
    result = rates("replay", "--from-kafka", "--since", "yesterday", "--until", "today")
    assert result.returncode == 2 and "RFC 3339" in result.stderr


def test_up_runs_the_whole_stack_on_the_shipped_recording(state_dir: Path, procs: Procs) -> None:
    recording = Recording(SAMPLE)
    assert recording.header.venues, "the shipped recording names its venues"
    recording.close()
    api, history_metrics = free_port(), free_port()
    env = clean_env(
        RATES_STATE_DIR=str(state_dir),
        API_PORT=str(api),
        HISTORY_METRICS_PORT=str(history_metrics),
    )
    # --speed 4: rates are fresh while frames flow; the replay then ends, venues down.
    started = procs.start("up", ["up", "--source", "replay", str(SAMPLE), "--speed", "4"], env)
    up, log = started.popen, started.log

    def serving() -> dict[str, Any] | None:
        status, body = courses(f"http://127.0.0.1:{api}")
        return body if status == 200 and body["courses"] else None

    body = wait_until(serving, 90, "the stack to serve the replayed rates")
    assert body["exchanger"] in recording.header.venues
    children = {
        c.cmdline()[3]
        for c in psutil.Process(up.pid).children()
        if c.cmdline()[1:3] == ["-m", "rates"]
    }
    assert {"worker", "history", "api", "replay"} <= children
    assert "connect" not in children and "simulate" not in children

    def stored() -> float | None:
        text = httpx.get(f"http://127.0.0.1:{history_metrics}", timeout=5).text
        for line in text.splitlines():
            if line.startswith('rates_history_rows_total{table="quotes"}'):
                rows = float(line.split()[-1])
                return rows if rows > 0 else None
        return None

    wait_until(stored, 60, "the history writer to store the replayed quotes")

    def stale() -> int | None:
        status, _ = courses(f"http://127.0.0.1:{api}")
        return status if status == 503 else None

    # After the last frame the replayer reports its venues down: nothing is fresh then,
    # and the API says so rather than serve the last values as current.
    wait_until(stale, 90, "the API to report the rates as stale after the replay")
    assert "replay finished; holding until stopped" in log.read_text()
    started.stop(timeout_s=60)
    assert up.returncode == 0
