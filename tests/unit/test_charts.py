"""The load report's charts are drawn from locust's CSV history, and the scaling chart from rows."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.charts import (
    CSV_PREFIX,
    Figure,
    kinds_from_json,
    kinds_json,
    load_charts,
    read_history,
    scaling_chart,
)

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)


def history_csv(directory: Path) -> Path:
    rows = [HEADER]
    totals = [0, 900, 2400, 3900, 5300]
    for second, total in enumerate(totals):
        p50, p99 = ("N/A", "N/A") if second == 0 else ("2", "9")
        rows.append(
            f"{1000 + second},155,,Aggregated,777,0.0,{p50},3,3,4,5,6,7,{p99},12,12,12,"
            f"{total},0,2,2.5,1,12,400"
        )
        # Per-name rows (--csv-full-history) are not the aggregate and are left out.
        rows.append(f"{1000 + second},155,GET,v2 venues,5,0,2,3,3,4,5,6,7,9,12,12,12,1,0,2,2,1,2,9")
    path = directory / f"{CSV_PREFIX}_stats_history.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_rates_per_second_come_from_the_running_totals(tmp_path: Path) -> None:
    history = read_history(history_csv(tmp_path))
    assert history.seconds == [0, 1, 2, 3, 4]
    assert history.rps == [0.0, 900.0, 1500.0, 1500.0, 1400.0]
    assert history.percentiles["99%"] == [None, 9.0, 9.0, 9.0, 9.0]


def test_load_charts_are_written(tmp_path: Path) -> None:
    history_csv(tmp_path)
    (tmp_path / "cpu.csv").write_text("seconds,locust,api\n1,0.4,0.2\n2,0.5,0.3\n")
    written = load_charts(tmp_path, user_rps=10, stream_users=5)
    names = [p.name for p in written]
    assert names == ["requests.png", "latency.png", "failures.png", "cpu.png"]
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG")


def test_scaling_chart_takes_any_row_kind(tmp_path: Path) -> None:
    kinds = {
        "tick_rate": ("x default", (Figure("cpu", "CPU"), Figure("p99", "p99"))),
        "future": ("directions", (Figure("rss", "RSS"),)),
    }
    rows = [
        {"kind": "tick_rate", "level": 1, "cpu": {"worker": 5.0, "api": 1.0}, "p99": 140.0},
        {"kind": "tick_rate", "level": 4, "cpu": {"worker": 4.0, "api": 0.8}, "p99": None},
        {"kind": "future", "level": 8, "rss": 60.0},
    ]
    path = scaling_chart(kinds, rows, tmp_path / "scaling.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_a_result_carries_its_kinds_for_drawing_it_again() -> None:
    kinds = {"tick_rate": ("x default", [Figure("cpu", "CPU"), Figure("p99", "p99")])}
    carried = json.loads(json.dumps(kinds_json(kinds)))
    figures = {"cpu": "CPU", "p99": "p99"}
    assert carried == {"tick_rate": {"varies": "x default", "figures": figures}}
    assert kinds_from_json(carried) == kinds
