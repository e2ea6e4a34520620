"""The README's downstream consumer example runs against the real pipeline."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from devtools.processes import Procs
from devtools.waiting import wait_until
from tests.integration.harness import SimHandle, pipeline_env

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consume_rates.py"
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_shows_the_example_verbatim() -> None:
    assert EXAMPLE.read_text().strip() in README.read_text()


def test_the_example_prints_quotes(kafka: str, simulator: SimHandle, procs: Procs) -> None:
    env = pipeline_env(
        kafka,
        procs,
        **simulator.env,
    )
    procs.start("connect", ["connect", "binance"], env)
    procs.start("worker", ["worker"], env)
    out = procs.directory / "example.out"
    with open(out, "wb") as sink:
        example = subprocess.Popen(
            [sys.executable, str(EXAMPLE)], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        lines = wait_until(
            lambda: [line for line in out.read_text().splitlines() if line] or None,
            60,
            "the example to print a quote",
        )
    finally:
        example.terminate()
        example.wait(10)
    direction, venue, value, ts = lines[0].split()
    assert venue == "binance"
    assert direction in {"BTC-USD", "ETH-USD", "USDTTRC-USD", "USDTERC-USD"}
    assert Decimal(value) > 0
    assert ts.endswith("Z")
