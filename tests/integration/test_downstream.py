"""Downstream consumers that are not the pipeline's own: the README's examples on the real
pipeline (aiokafka, and confluent-kafka in a consumer group), confluent-kafka without a group,
and Debian's kcat with the options the README gives."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from devtools.processes import Procs
from devtools.waiting import wait_until
from rates.kafka import ensure_topics
from schemas.records import Leg, Quote
from tests.integration.harness import SimHandle, pipeline_env, produce, unique_prefix

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "aiokafka": ROOT / "examples" / "consume_rates.py",
    "confluent-kafka": ROOT / "examples" / "consume_rates_confluent.py",
}
README = ROOT / "README.md"
PARTITIONS = 4
#: What kcat 1.7.1 (librdkafka 2.0.2) needs to talk to the embedded broker at all: no
#: ApiVersions request (it cannot parse Tansu's v3 answer), and the 0.9 protocol set.
KCAT_OPTIONS = ("-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0")


@pytest.fixture(scope="module")
def binance_pipeline(
    kafka: str, simulator: SimHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], Procs]]:
    """A connector (Binance) and a worker filling rates.normalized, for every example."""
    procs = Procs(tmp_path_factory.mktemp("downstream"))
    env = pipeline_env(kafka, procs, **simulator.env)
    procs.start("connect", ["connect", "binance"], env)
    procs.start("worker", ["worker"], env)
    yield env, procs
    procs.stop_all()


@pytest.mark.parametrize("client", sorted(EXAMPLES))
def test_the_readme_shows_the_example_verbatim(client: str) -> None:
    assert EXAMPLES[client].read_text().strip() in README.read_text()


@pytest.mark.parametrize("client", sorted(EXAMPLES))
def test_the_example_prints_quotes(
    client: str, binance_pipeline: tuple[dict[str, str], Procs]
) -> None:
    env, procs = binance_pipeline
    out = procs.directory / f"example-{client}.out"
    with open(out, "wb") as sink:
        example = subprocess.Popen(
            [sys.executable, str(EXAMPLES[client])],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        lines = wait_until(
            lambda: [line for line in out.read_text().splitlines() if line] or None,
            60,
            f"the {client} example to print a quote:\n{procs.dump()}",
        )
    finally:
        example.terminate()
        example.wait(10)
    direction, venue, value, ts = lines[0].split()
    assert venue == "binance"
    assert direction in {"BTC-USD", "ETH-USD", "USDTTRC-USD", "USDTERC-USD"}
    assert Decimal(value) > 0
    assert ts.endswith("Z")


def _quotes(count: int) -> list[Quote]:
    """Quotes in the project's record format, with the digits and legs a venue would give."""
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    usd_rub = Leg("cbr", "USD-RUB", Decimal("81.5046"), at)
    quotes = []
    for i in range(count):
        ts = at + timedelta(milliseconds=250 * i)
        usd = Decimal("94936.03000000") + Decimal(i) / 100
        if i % 2:
            rub = (usd * usd_rub.value).quantize(Decimal("1E-8"))
            legs = (Leg("kraken", "BTC-USD", usd, ts), usd_rub)
            quotes.append(Quote("kraken", "BTC-RUB", rub, ts, ts, f"q{i}", legs))
        else:
            quotes.append(Quote("kraken", "BTC-USD", usd, ts, ts, f"q{i}"))
    return quotes


@pytest.fixture
def produced(kafka: str) -> tuple[str, list[Quote]]:
    """A topic of its own holding quotes keyed by direction, as rates.normalized holds them."""
    topic = unique_prefix() + "rates.normalized"
    asyncio.run(ensure_topics(kafka, [topic], PARTITIONS))
    quotes = _quotes(40)
    produce(kafka, [(topic, q.direction.encode(), q.to_json()) for q in quotes])
    return topic, quotes


def test_confluent_kafka_reads_without_a_group(
    kafka: str, produced: tuple[str, list[Quote]]
) -> None:
    topic, quotes = produced
    # confluent-kafka's Consumer wants a group.id even for assign(); without subscribe() and
    # with commits off it never joins the group.
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        found: list[tuple[bytes | None, bytes | None]] = []

        def read_all() -> bool:
            record = consumer.poll(0.5)
            if record is not None:
                assert record.error() is None, record.error()
                found.append((record.key(), record.value()))
            return len(found) >= len(quotes)

        wait_until(read_all, 30, f"confluent-kafka to read {len(quotes)} quotes", every_s=0)
    finally:
        consumer.close()
    # The bytes as produced: every digit of every price, the legs, the keys.
    assert sorted(found) == sorted((q.direction.encode(), q.to_json()) for q in quotes)


@pytest.fixture(scope="module")
def kcat() -> str:
    # Debian's kcat (CI starts on a clean machine).
    subprocess.run(["make", "-s", "downstream-tools"], cwd=ROOT, check=True, timeout=900)
    return "kcat"


def _kcat(
    kcat: str, kafka: str, *args: str, options: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [kcat, "-b", kafka, *(KCAT_OPTIONS if options else ()), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, input="")


def test_kcat_lists_and_reads_partitions_from_an_offset(
    kcat: str, kafka: str, produced: tuple[str, list[Quote]]
) -> None:
    topic, quotes = produced
    listing = _kcat(kcat, kafka, "-L", "-t", topic)
    assert listing.returncode == 0, listing.stderr
    assert f'topic "{topic}" with {PARTITIONS} partitions' in listing.stdout

    # Every partition from offset 0 (a number: "beginning", "end" and times need ListOffsets,
    # whose v0 answer kcat cannot parse), to the end (-e).
    read = _kcat(kcat, kafka, "-C", "-t", topic, "-o", "0", "-e", "-f", "%k\t%s\n")
    assert read.returncode == 0, read.stderr
    found = [tuple(line.split("\t")) for line in read.stdout.splitlines()]
    assert sorted(found) == sorted((q.direction, q.to_json().decode()) for q in quotes)


def test_kcat_limits_are_as_the_readme_says(
    kcat: str, kafka: str, produced: tuple[str, list[Quote]]
) -> None:
    topic, _ = produced
    # Without the options: its ApiVersions v3 request fails, so nothing works.
    bare = _kcat(kcat, kafka, "-L", "-m", "3", options=False)
    assert "Read underflow" in bare.stderr
    assert "Failed to acquire metadata" in bare.stderr
    # With them, a logical offset (a new consumer group's reset too) cannot be resolved ...
    beginning = _kcat(kcat, kafka, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e")
    assert "Failed to query logical offset" in beginning.stderr
    # ... and it produces in the old message format, which the broker refuses.
    sent = subprocess.run(
        [kcat, "-b", kafka, *KCAT_OPTIONS, "-P", "-t", topic, "-p", "0"],
        input="not stored\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert sent.returncode != 0
    assert "Disconnected" in sent.stderr
