"""PNG charts of a locust run (from its CSV history) and of the scaling benchmark's rows.

    python -m devtools.charts load docs/load/api          # the locust run's charts again
    python -m devtools.charts scaling docs/load/scaling.json docs/load/scaling.png

Reporting code that `make loadtest`, `make bench` and the tests share. It knows no
benchmark: the scaling chart is told its row kinds (by the caller, or by the ``kinds`` the
result JSON carries).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt

#: locust's CSV prefix under a run's directory (stats, stats_history, failures, exceptions).
CSV_PREFIX = "locust"
PERCENTILES = ("50%", "95%", "99%")


@dataclass
class History:
    """locust's per-second aggregated history: seconds from start, and each column."""

    seconds: list[float]
    users: list[int]
    rps: list[float]
    failures: list[float]
    percentiles: dict[str, list[float | None]]


def read_history(path: Path) -> History:
    """The ``Aggregated`` rows of a ``*_stats_history.csv`` (locust writes them every second)."""
    with path.open() as table:
        rows = [r for r in csv.DictReader(table) if r["Name"] == "Aggregated"]
    if not rows:
        raise ValueError(f"{path}: no Aggregated rows")
    start = int(rows[0]["Timestamp"])

    def number(text: str) -> float | None:
        # 0 before the first answer: no percentile yet (and nothing to draw on a log scale).
        return None if text in ("N/A", "", "0") else float(text)

    # Per-second rates from the running totals (locust's own Requests/s is a rolling mean).
    stamps = [int(r["Timestamp"]) for r in rows]
    totals = [int(r["Total Request Count"]) for r in rows]
    rps = [0.0] + [
        (totals[i] - totals[i - 1]) / max(stamps[i] - stamps[i - 1], 1) for i in range(1, len(rows))
    ]
    return History(
        seconds=[stamp - start for stamp in stamps],
        users=[int(r["User Count"]) for r in rows],
        rps=rps,
        failures=[float(r["Failures/s"]) for r in rows],
        percentiles={p: [number(r[p]) for r in rows] for p in PERCENTILES},
    )


def load_charts(directory: Path, user_rps: int, stream_users: int) -> list[Path]:
    """requests.png, latency.png and failures.png from the run's CSV history."""
    history = read_history(directory / f"{CSV_PREFIX}_stats_history.csv")
    offered = [max(u - stream_users, 0) * user_rps for u in history.users]
    written = []

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(history.seconds, offered, label="offered (users x per-user rate)", linestyle="--")
    ax.plot(history.seconds, history.rps, label="achieved (answers completed each second)")
    ax.set(xlabel="seconds", ylabel="requests/s", title="Requests per second")
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(_save(fig, directory / "requests.png"))

    fig, ax = plt.subplots(figsize=(9, 4))
    for name, values in history.percentiles.items():
        ax.plot(history.seconds, [v if v is not None else float("nan") for v in values],
                label=f"p{name.rstrip('%')}")  # fmt: skip
    ax.set(xlabel="seconds", ylabel="ms (log scale)", yscale="log",
           title="Response time percentiles (locust's 10 s window)")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    written.append(_save(fig, directory / "latency.png"))

    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(history.seconds, history.failures, color="tab:red")
    ax.set(xlabel="seconds", ylabel="failures/s", ylim=(0, max([1.0, *history.failures]) * 1.2),
           title="Failures per second (the intended 422s count as successes)")  # fmt: skip
    ax.grid(alpha=0.3)
    written.append(_save(fig, directory / "failures.png"))

    cpu = directory / "cpu.csv"
    if cpu.exists():
        with cpu.open() as table:
            rows = list(csv.DictReader(table))
        fig, ax = plt.subplots(figsize=(9, 3))
        for name in [c for c in rows[0] if c != "seconds"] if rows else []:
            ax.plot([float(r["seconds"]) for r in rows], [float(r[name]) for r in rows], label=name)
        ax.set(xlabel="seconds", ylabel="cores", title="CPU of each process (1 = one core)")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, directory / "cpu.png"))
    return written


@dataclass(frozen=True)
class Figure:
    """One panel of the scaling chart: a measured figure against a row kind's level."""

    key: str
    label: str


#: Row kind -> (what varies: the x-axis label, the figures drawn against it).
Kinds = Mapping[str, tuple[str, Sequence[Figure]]]


def kinds_json(kinds: Kinds) -> dict[str, Any]:
    """The kinds as a result JSON carries them, so that its chart can be drawn again."""
    return {
        name: {"varies": varies, "figures": {f.key: f.label for f in figures}}
        for name, (varies, figures) in kinds.items()
    }


def kinds_from_json(data: Mapping[str, Any]) -> Kinds:
    return {
        name: (kind["varies"], [Figure(key, label) for key, label in kind["figures"].items()])
        for name, kind in data.items()
    }


def scaling_chart(
    kinds: Kinds,
    rows: Sequence[Mapping[str, Any]],
    path: Path,
) -> Path:
    """One line of panels per row kind (x: its level), one panel per figure of that kind.

    ``kinds`` maps a kind to (x-axis label, figures); ``rows`` carry ``kind``, ``level`` and
    the figures' keys. A figure whose value is a mapping (per process) draws a line each.
    """
    present = [k for k in kinds if any(r["kind"] == k for r in rows)]
    columns = max((len(kinds[k][1]) for k in present), default=1)
    fig, axes = plt.subplots(len(present), columns, figsize=(4.2 * columns, 3.4 * len(present)),
                             squeeze=False)  # fmt: skip
    for line, kind in enumerate(present):
        xlabel, figures = kinds[kind]
        own = sorted((r for r in rows if r["kind"] == kind and "error" not in r),
                     key=lambda r: r["level"])  # fmt: skip
        levels = [r["level"] for r in own]
        for column in range(columns):
            ax = axes[line][column]
            if column >= len(figures):
                ax.axis("off")
                continue
            figure = figures[column]
            values = [r.get(figure.key) for r in own]
            if values and isinstance(values[0], Mapping):
                for name in values[0]:
                    per = [_nan((v or {}).get(name)) for v in values]
                    ax.plot(levels, per, marker="o", label=name)
                ax.legend(fontsize="x-small")
            else:
                ax.plot(levels, [_nan(v) for v in values], marker="o")
            ax.set(xscale="log", xlabel=xlabel, title=figure.label)
            ax.minorticks_off()
            ax.set_xticks(levels, [f"{v:g}" for v in levels])
            ax.grid(alpha=0.3)
    return _save(fig, path)


def _nan(value: float | None) -> float:
    """A missing figure (e.g. never measured at that level) as a gap in the line."""
    return float("nan") if value is None else value


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.charts")
    sub = parser.add_subparsers(dest="what", required=True)
    load = sub.add_parser("load", help="charts of a `make loadtest` run directory")
    load.add_argument("directory", type=Path)
    scaling = sub.add_parser("scaling", help="the chart of a scaling result (its JSON)")
    scaling.add_argument("result", type=Path)
    scaling.add_argument("png", type=Path)
    args = parser.parse_args()
    if args.what == "load":
        summary = json.loads((args.directory / "summary.json").read_text())
        paths = load_charts(args.directory, summary["user_rps"], summary["stream_users"])
    else:
        result = json.loads(args.result.read_text())
        paths = [scaling_chart(kinds_from_json(result["kinds"]), result["rows"], args.png)]
    for path in paths:
        print(f"wrote {path} ({datetime.now(UTC):%H:%M:%S} UTC)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
