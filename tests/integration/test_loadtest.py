"""The locustfile of `make loadtest` runs its whole task mix against a real API, briefly."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from devtools.apiserver import PRICES, latest_records, republishing, run_api
from devtools.load import DIRECTIONS, EXCHANGER_DIRECTIONS, EXCHANGERS
from tests.integration.harness import unique_prefix

LOCUSTFILE = Path(__file__).parents[1] / "load" / "locustfile.py"
#: Request names of the locustfile's tasks (the bad requests apart).
TASKS = (
    "v1 no parameters",
    "v1 one direction",
    "v1 several directions",
    "v1 with exchanger",
    "v2 courses",
    "v2 venues",
    "v2 stream (session)",
)
#: Every venue the locustfile names with `exchanger` (binance: latest_records' own venue)
#: quotes what it asks for.
OTHERS = {venue: {d: PRICES[d] for d in EXCHANGER_DIRECTIONS} for venue in EXCHANGERS[1:]}


def test_task_mix_runs_against_the_api(kafka: str, tmp_path: Path) -> None:
    prefix = unique_prefix()
    records = latest_records(DIRECTIONS, others=OTHERS)
    with (
        republishing(kafka, prefix, records),
        run_api(kafka, prefix, tmp_path / "api.log") as api,
    ):
        run = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
             "--host", api.base, "--offered-rps", "200", "--fixed-s", "5", "--steps", "0",
             "--stream-users", "1", "--stream-session-s", "2", "--csv", str(tmp_path / "smoke"),
             "--summary-json", str(tmp_path / "summary.json"), "--only-summary",
             "--loglevel", "WARNING"],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    # locust exits 1 when any request failed, a 422 of the bad requests included.
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with (tmp_path / "smoke_stats.csv").open() as table:
        stats = {row["Name"]: row for row in csv.DictReader(table)}
    assert stats["Aggregated"]["Failure Count"] == "0"
    for name in TASKS:
        assert int(stats[name]["Request Count"]) > 0, name
    # The bad requests are the rarest task (3 in 100): with hundreds of requests, one came.
    bad = [row for name, row in stats.items() if name.endswith("(422)")]
    assert sum(int(row["Request Count"]) for row in bad) > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    (fixed,) = summary["phases"]
    assert fixed["phase"] == "fixed"
    assert fixed["offered_rps"] == 200
    assert fixed["requests"] > 0
    assert fixed["failures"] == 0
