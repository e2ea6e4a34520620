"""Replay throughput at max speed: quotes/s into rates.normalized, Faust worker vs plain loop.

Both paths run on the same embedded Tansu, on the shipped recording repeated to a few tens
of thousands of frames, in the same run. Each consumer is started and ready first; then the
recording is replayed at max speed into its topics, and the throughput is the number of
quotes divided by the time from the replay's start to the broker timestamp of the last quote.

- Faust: ``rates worker`` as deployed (the ``normalize_frames`` agent, with ``track_latest``
  consuming its output in the same process); and the same app without ``track_latest``,
  which is what the normalize agent reaches on its own.
- Plain: one aiokafka loop: consume a batch, the same pure parsers
  (``pipeline.normalize.normalize``), a dict of latest quotes, produce, commit after flush.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from connectors import registry
from devtools.embedded import start_tansu
from devtools.environment import clean_env
from devtools.processes import RATES, running
from pipeline.normalize import Conversion, Normalizer
from pipeline.replay.recording import Entry, Header, Recording, RecordingWriter
from pipeline.settings import WorkerSettings
from rates.kafka import ensure_topics
from schemas.records import Quote, RawFrame
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.topics import Topics

SAMPLE = Path(__file__).resolve().parent.parent / "recordings" / "sample.jsonl.gz"
#: Frames replayed per path: the recording, repeated.
FRAMES = 60_000
TARGET_RATIO = 0.2


def load_frames() -> list[Entry]:
    recording = Recording(SAMPLE)
    try:
        entries = list(recording.entries())
    finally:
        recording.close()
    repeats = -(-FRAMES // len(entries))
    return (entries * repeats)[:FRAMES]


def normalizer(venues: list[str]) -> Normalizer:
    """The worker's normalization with the default settings."""
    known = {v: registry.get(v) for v in venues}
    return Normalizer(known, Conversion(DEFAULT_DIRECTIONS), WorkerSettings().policy())


def expected_quotes(entries: list[Entry], venues: list[str]) -> int:
    """Quotes the recording yields that do not depend on a reference (RUB ones do: how
    many there are depends on when each worker first sees a reference)."""
    normalize = normalizer(venues)
    return sum(
        not q.direction.endswith("-RUB")
        for e in entries
        for q in normalize(e.raw, e.raw.received_at).quotes
    )


async def timestamps(
    bootstrap: str, topics: list[str], expected: int, idle_s: float = 3.0
) -> tuple[float, float, int]:
    """Broker timestamps (s) of the first and the last record in ``topics``, and their count.

    Reads until at least ``expected`` records arrived and then none for ``idle_s``.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, first, last = 0, float("inf"), 0
        deadline = time.monotonic() + 300
        quiet_since = time.monotonic()
        while seen < expected or time.monotonic() - quiet_since < idle_s:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {seen} of {expected} records in {topics}")
            for messages in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                seen += len(messages)
                first = min(first, min(m.timestamp for m in messages))
                last = max(last, max(m.timestamp for m in messages))
                quiet_since = time.monotonic()
        return first / 1000, last / 1000, seen
    finally:
        await consumer.stop()


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[None]:
    """A child process, once it logged ``ready``; stopped on exit."""
    with running(argv[3], argv, env, log, timeout_s=30) as proc:
        proc.wait_for(ready, 60)
        yield


def measure(
    consumer: list[str],
    ready: str,
    name: str,
    bootstrap: str,
    recording: Path,
    n: int,
    tmp: Path,
    copies: int = 1,
) -> float:
    """Quotes/s from the first replayed frame to the last quote, through ``consumer``.

    With ``copies`` > 1, that many consumer processes run in one group (each then owns a
    share of the partitions), as `RATES_WORKERS` does.
    """
    topics = Topics(f"bench-{name}.")
    venues = list(Recording(recording).header.venues)
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        RATES_TOPIC_PREFIX=topics.prefix,
        RATES_VENUES=",".join(venues),
        RATES_STATE_DIR=str(tmp / "state"),
    )
    asyncio.run(ensure_topics(bootstrap, topics.all(venues), 4))
    with ExitStack() as running:
        for index in range(copies):
            log = tmp / f"{name}-{index}.log"
            running.enter_context(process(consumer, env, log, ready))
        if copies > 1:
            time.sleep(10)  # each join rebalances the group (half a session timeout on Tansu)
        replay = [
            *RATES,
            "replay",
            str(recording),
            "--speed",
            "max",
            "--topic-prefix",
            topics.prefix,
        ]
        subprocess.run(replay, env=env, check=True, capture_output=True)
        first, _, _ = asyncio.run(
            timestamps(bootstrap, [topics.raw(v) for v in venues], 1, idle_s=0)
        )
        _, last, quotes = asyncio.run(timestamps(bootstrap, [topics.normalized], n))
    return quotes / (last - first)


# -- the plain aiokafka loop ----------------------------------------------------------------


async def plain_loop(bootstrap: str, topics: Topics, venues: list[str]) -> None:
    normalize = normalizer(venues)
    consumer = AIOKafkaConsumer(
        *(topics.raw(v) for v in venues),
        bootstrap_servers=bootstrap,
        group_id=f"{topics.prefix}plain",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    latest: dict[tuple[str, str], Quote] = {}
    announced = False
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            if not announced and consumer.assignment():
                print("plain loop ready", flush=True)
                announced = True
            for messages in batch.values():
                for message in messages:
                    raw = RawFrame.from_json(message.value)
                    for quote in normalize(raw, raw.received_at).quotes:
                        latest[quote.direction, quote.venue] = quote
                        await producer.send(
                            topics.normalized, key=quote.direction.encode(), value=quote.to_json()
                        )
            if batch:
                await producer.flush()
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def run() -> dict[str, Any]:
    entries = load_frames()
    venues = sorted({e.raw.venue for e in entries} & set(registry.VENUES))
    n = expected_quotes(entries, venues)
    with tempfile.TemporaryDirectory(prefix="cp-bench-") as name:
        tmp = Path(name)
        recording = tmp / "frames.jsonl.gz"
        writer = RecordingWriter(recording, Header(tuple(venues), entries[0].raw.received_at))
        writer.write(entries)
        writer.close()
        tansu = start_tansu(log=tmp / "tansu.log")
        try:
            bootstrap = tansu.address
            plain_argv = [sys.executable, "-m", "benchmarks.replay", "plain"]
            plain = measure(plain_argv, "plain loop ready", "plain", bootstrap, recording, n, tmp)
            worker = [*RATES, "worker"]
            faust = measure(worker, "worker ready in", "faust", bootstrap, recording, n, tmp)
            two = measure(worker, "worker ready in", "two", bootstrap, recording, n, tmp, 2)
            alone = [sys.executable, "-m", "benchmarks.replay", "normalize-only"]
            agent = measure(alone, "worker ready in", "agent", bootstrap, recording, n, tmp)
        finally:
            tansu.stop()
    return {
        "frames": len(entries),
        "quotes": n,
        "venues": venues,
        "faust_quotes_per_s": round(faust),
        "two_workers_quotes_per_s": round(two),
        "normalize_agent_alone_quotes_per_s": round(agent),
        "plain_quotes_per_s": round(plain),
        "ratio": round(faust / plain, 3),
        "ratio_two_workers": round(two / plain, 3),
        "ratio_normalize_agent_alone": round(agent / plain, 3),
        "targets": {"ratio": TARGET_RATIO},
    }


def report(result: dict[str, Any]) -> str:
    r = result
    return "\n".join(
        [
            "## replay throughput at max speed into rates.normalized",
            f"{r['frames']} frames -> {r['quotes']} quotes ({', '.join(r['venues'])})",
            f"Faust worker (normalize agent; track_latest alongside): "
            f"{r['faust_quotes_per_s']} quotes/s",
            f"two Faust workers in one group (RATES_WORKERS=2: one per core): "
            f"{r['two_workers_quotes_per_s']} quotes/s",
            f"the normalize agent alone (worker without track_latest): "
            f"{r['normalize_agent_alone_quotes_per_s']} quotes/s",
            f"plain aiokafka consume-normalize-produce loop: {r['plain_quotes_per_s']} quotes/s",
            f"ratio {r['ratio']} (target >= {r['targets']['ratio']}); two workers: "
            f"{r['ratio_two_workers']}; the normalize agent alone: "
            f"{r['ratio_normalize_agent_alone']}",
        ]
    )


def normalize_only_worker() -> None:
    """The worker without ``track_latest``: what the normalize agent reaches on its own."""
    from pipeline import worker
    from pipeline.app import create_app
    from pipeline.settings import WorkerSettings

    settings = WorkerSettings()
    app = create_app(settings)
    for name in [n for n in app.agents if n.endswith("track_latest")]:
        del app.agents[name]
    app.conf.datadir.mkdir(parents=True, exist_ok=True)
    runner = worker.Worker(app, loglevel="INFO", quiet=True)
    runner.launched_at = time.monotonic()
    runner.execute_from_commandline()


if __name__ == "__main__" and sys.argv[1:] == ["plain"]:
    # The plain loop as its own process, like the worker: settings from the environment.
    from schemas.settings import CommonSettings

    settings = CommonSettings()
    asyncio.run(plain_loop(settings.bootstrap, settings.topics, list(settings.rates_venues)))
elif __name__ == "__main__" and sys.argv[1:] == ["normalize-only"]:
    normalize_only_worker()
