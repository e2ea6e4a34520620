"""The soak's figures: its samples as CSV, their summary (growth per hour of each process,
broker recycles, v1 answers, disk per day), the summary as Markdown, and the chart.

`make soak` (benchmarks/soak.py) samples a running demo stack and writes them; the unit
tests check the maths. From a soak's CSV (and the soak.json beside it) they are made again:

    python -m devtools.soak soak-results/<run>/soak.csv                    # print the table
    python -m devtools.soak soak-results/<run>/soak.csv --readme README.md # and put it there
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import re
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

#: The children of `rates up` by what they run (the names the soak reports), then the
#: supervisor itself, then anything not recognised.
PROCESSES = ("tansu", "postgres", "simulate", "connect", "worker", "history", "api", "up", "other")

#: A line of `rates up`'s output that says the broker was replaced: today the supervisor's
#: "kafka exited with code N; restarting it"; a planned recycle is logged at WARNING with
#: "recycl..." in it. Adapt this (or :func:`recycle_count`) when the supervisor's words change.
BROKER_REPLACED = re.compile(r"kafka exited with code|WARNING.*\brecycl", re.IGNORECASE)

#: A Prometheus counter of broker recycles, whatever its exact name (summed over its labels).
RECYCLE_COUNTER = re.compile(r"^(\w*recycle\w*_total)(\{[^}]*\})?\s+([0-9.eE+-]+)$", re.MULTILINE)

README_BEGIN = "<!-- soak:begin (python -m devtools.soak CSV --readme README.md) -->"
README_END = "<!-- soak:end -->"


def recycle_count(log_text: str, metrics_text: str | None = None) -> int:
    """How many times the broker was replaced: the supervisor's counter when it serves one
    (``metrics_text``: its Prometheus text), else the lines of its output that say so."""
    if metrics_text is not None:
        found = RECYCLE_COUNTER.findall(metrics_text)
        if found:
            return round(sum(float(value) for _, _, value in found))
    return sum(1 for line in log_text.splitlines() if BROKER_REPLACED.search(line))


def child_name(cmdline: Sequence[str]) -> str:
    """The soak's name of a child of `rates up`, from its command line."""
    if not cmdline:
        return "other"
    program = Path(cmdline[0]).name
    if program in ("tansu", "postgres"):
        return program
    if program in ("initdb", "pg_ctl"):  # the database's first start
        return "postgres"
    # python -m rates SUBCOMMAND ..., or the installed script: .venv/bin/rates SUBCOMMAND ...
    for index, word in enumerate(cmdline[:3]):
        if Path(word).name == "rates" and index + 1 < len(cmdline):
            subcommand = cmdline[index + 1]
            return subcommand if subcommand in PROCESSES else "other"
    return "other"


def parse_duration(text: str) -> float:
    """Seconds in ``2h``, ``90m``, ``1h30m``, ``45s`` or a plain number of seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"not a duration: {text!r} (e.g. 2h, 90m, 1h30m, 600)")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"not a duration: {text!r} (must be more than 0)")
    return seconds


# -- samples --------------------------------------------------------------------------------


@dataclass
class Sample:
    """One second of the soak: the v1 answer, and (every few seconds) the resources."""

    elapsed_s: float
    at: str
    #: HTTP status of GET /api/v1/courses; 0: no answer (refused, timed out).
    v1_status: int | None = None
    v1_ms: float | None = None
    #: Whether the courses differ from the previous 200 answer's.
    v1_moved: bool | None = None
    #: The venue v1 answered from (its ``exchanger``).
    v1_venue: str | None = None
    recycles: int | None = None
    #: The median age of the rates v2 serves (``age_ms``: since the pipeline received it),
    #: over the directions; and how many directions it marks stale.
    rate_age_ms: float | None = None
    stale: int | None = None
    #: Disk use of the whole state directory and of its PostgreSQL data.
    state_mb: float | None = None
    postgres_mb: float | None = None
    #: The broker's VmRSS, as a memory cap would read it.
    broker_rss_mb: float | None = None
    #: Per process name: PSS summed over the child's processes (shared pages counted once).
    memory_mb: dict[str, float] = field(default_factory=dict)
    #: Per process name: CPU seconds used so far (user + system) by the child's processes.
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def has_resources(self) -> bool:
        return bool(self.memory_mb) or self.state_mb is not None


COLUMNS = (
    "elapsed_s",
    "at",
    "v1_status",
    "v1_ms",
    "v1_moved",
    "v1_venue",
    "recycles",
    "rate_age_ms",
    "stale",
    "state_mb",
    "postgres_mb",
    "broker_rss_mb",
    *(f"mb_{name}" for name in PROCESSES),
    *(f"cpu_{name}" for name in PROCESSES),
)


def _cell(value: float | int | bool | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def row(sample: Sample) -> list[str]:
    """The sample as a CSV row of :data:`COLUMNS` (empty cells: not sampled that second)."""
    cells = [
        _cell(sample.elapsed_s),
        sample.at,
        _cell(sample.v1_status),
        _cell(sample.v1_ms),
        _cell(sample.v1_moved),
        _cell(sample.v1_venue),
        _cell(sample.recycles),
        _cell(sample.rate_age_ms),
        _cell(sample.stale),
        _cell(sample.state_mb),
        _cell(sample.postgres_mb),
        _cell(sample.broker_rss_mb),
    ]
    return [
        *cells,
        *(_cell(sample.memory_mb.get(name)) for name in PROCESSES),
        *(_cell(sample.cpu_s.get(name)) for name in PROCESSES),
    ]


class CsvWriter:
    """Appends samples to a CSV as they come (a soak cut short still leaves its data)."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)

    def write(self, sample: Sample) -> None:
        self._csv.writerow(row(sample))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_csv(path: Path) -> list[Sample]:
    def number(text: str) -> float | None:
        return float(text) if text else None

    samples = []
    with path.open(newline="") as table:
        for cells in csv.DictReader(table):
            status, recycles = number(cells["v1_status"]), number(cells["recycles"])
            stale = number(cells.get("stale", ""))
            memory, cpu = ({
                name: float(cells[f"{kind}_{name}"])
                for name in PROCESSES
                if cells.get(f"{kind}_{name}")
            } for kind in ("mb", "cpu"))  # fmt: skip
            samples.append(
                Sample(
                    elapsed_s=float(cells["elapsed_s"]),
                    at=cells["at"],
                    v1_status=None if status is None else int(status),
                    v1_ms=number(cells["v1_ms"]),
                    v1_moved=None if not cells["v1_moved"] else cells["v1_moved"] == "1",
                    v1_venue=cells.get("v1_venue") or None,
                    recycles=None if recycles is None else int(recycles),
                    rate_age_ms=number(cells.get("rate_age_ms", "")),
                    stale=None if stale is None else int(stale),
                    state_mb=number(cells["state_mb"]),
                    postgres_mb=number(cells["postgres_mb"]),
                    broker_rss_mb=number(cells["broker_rss_mb"]),
                    memory_mb=memory,
                    cpu_s=cpu,
                )
            )
    return samples


# -- the summary ----------------------------------------------------------------------------

Points = Sequence[tuple[float, float]]


def slope(points: Points) -> float | None:
    """Least-squares slope of (x, y) points; None when there are fewer than two x values."""
    if len({x for x, _ in points}) < 2:
        return None
    return statistics.linear_regression([x for x, _ in points], [y for _, y in points]).slope


def second_half(points: Points) -> list[tuple[float, float]]:
    """The points of the second half of the time they cover (start-up and warm-up left out)."""
    if not points:
        return []
    middle = (points[0][0] + points[-1][0]) / 2
    return [(x, y) for x, y in points if x >= middle]


def growth(points: Points, per_s: float) -> float | None:
    """Growth per ``per_s`` seconds (3600: per hour): the slope of a linear fit over the
    second half of the run, so that start-up and caches filling do not count as a leak."""
    found = slope(second_half(points))
    return None if found is None else found * per_s


def cpu_cores(samples: Iterable[Sample], name: str) -> list[tuple[float, float]]:
    """Cores a process used between successive samples (1.0: one core busy all the time),
    at the later sample's time; an interval in which it restarted is left out."""
    found = []
    previous: tuple[float, float] | None = None
    for sample in samples:
        used = sample.cpu_s.get(name)
        if used is None:
            continue
        if previous is not None and sample.elapsed_s > previous[0] and used >= previous[1]:
            found.append(
                (sample.elapsed_s, (used - previous[1]) / (sample.elapsed_s - previous[0]))
            )
        previous = (sample.elapsed_s, used)
    return found


def early_and_late(points: Points, fraction: float = 0.2) -> tuple[float | None, float | None]:
    """Mean of the points in the first and in the last ``fraction`` of the time they cover."""
    if not points:
        return None, None
    first, last = points[0][0], points[-1][0]
    span = (last - first) * fraction
    early = [y for x, y in points if x <= first + span]
    late = [y for x, y in points if x >= last - span]
    return statistics.fmean(early), statistics.fmean(late)


@dataclass(frozen=True)
class Figures:
    """One series of the soak: where it started and ended, its peak, its growth."""

    start: float
    peak: float
    end: float
    per_hour: float | None

    @classmethod
    def of(cls, points: Points) -> Figures | None:
        if not points:
            return None
        return cls(points[0][1], max(y for _, y in points), points[-1][1], growth(points, 3600))


@dataclass(frozen=True)
class Summary:
    duration_s: float
    memory: dict[str, Figures]
    #: Per process: cores used on average in the first and in the last fifth of the run.
    cpu: dict[str, tuple[float | None, float | None]]
    broker_rss: Figures | None
    recycles: int
    answers: int
    #: Seconds from the start to the first 200 (None: never).
    first_200_s: float | None
    #: Answers other than 200 after the first 200 (0: no answer at all counts too).
    non_200: int
    non_200_by_status: dict[int, int]
    #: The longest time between two answers whose values moved, after the first 200.
    longest_unchanged_s: float | None
    v1_p50_ms: float | None
    v1_p99_ms: float | None
    #: Seconds v1 answered from each venue, and how often that venue changed.
    venues: dict[str, int]
    venue_changes: int
    rate_age_p50_ms: float | None
    rate_age_max_ms: float | None
    #: The most directions v2 marked stale at one sample.
    stale_max: int | None
    state: Figures | None
    postgres: Figures | None

    def per_day(self, figures: Figures | None) -> float | None:
        return None if figures is None or figures.per_hour is None else figures.per_hour * 24


def _series(samples: Iterable[Sample], value: Any) -> list[tuple[float, float]]:
    return [(s.elapsed_s, v) for s in samples if (v := value(s)) is not None]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` 0.99: p99); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def summarize(samples: Sequence[Sample]) -> Summary:
    """The soak's figures from its samples (in time order)."""
    answered = [s for s in samples if s.v1_status is not None]
    first = next((s for s in answered if s.v1_status == 200), None)
    after = [s for s in answered if first is not None and s.elapsed_s >= first.elapsed_s]
    failed = [s for s in after if s.v1_status != 200]
    by_status: dict[int, int] = {}
    for s in failed:
        assert s.v1_status is not None
        by_status[s.v1_status] = by_status.get(s.v1_status, 0) + 1
    moves = [s.elapsed_s for s in after if s.v1_moved]
    longest = None
    if first is not None and after:
        marks = [first.elapsed_s, *moves, after[-1].elapsed_s]
        longest = max(b - a for a, b in itertools.pairwise(marks))
    latencies = [s.v1_ms for s in after if s.v1_status == 200 and s.v1_ms is not None]
    # Memory and disk from the first 200 on: start-up's transients are not what a soak is for.
    serving = [s for s in samples if first is None or s.elapsed_s >= first.elapsed_s]
    memory = {
        name: figures
        for name in PROCESSES
        if (figures := Figures.of(_series(serving, lambda s, n=name: s.memory_mb.get(n))))
    }
    recycles = [s.recycles for s in samples if s.recycles is not None]
    served = [s.v1_venue for s in after if s.v1_status == 200 and s.v1_venue]
    ages = [s.rate_age_ms for s in after if s.rate_age_ms is not None]
    return Summary(
        duration_s=samples[-1].elapsed_s - samples[0].elapsed_s if samples else 0.0,
        memory=memory,
        cpu={name: early_and_late(cpu_cores(serving, name)) for name in memory},
        broker_rss=Figures.of(_series(serving, lambda s: s.broker_rss_mb)),
        recycles=recycles[-1] - recycles[0] if recycles else 0,
        answers=len(answered),
        first_200_s=None if first is None else first.elapsed_s,
        non_200=len(failed),
        non_200_by_status=dict(sorted(by_status.items())),
        longest_unchanged_s=longest,
        v1_p50_ms=percentile(latencies, 0.5),
        v1_p99_ms=percentile(latencies, 0.99),
        venues={venue: served.count(venue) for venue in sorted(set(served))},
        venue_changes=sum(1 for a, b in itertools.pairwise(served) if a != b),
        rate_age_p50_ms=percentile(ages, 0.5),
        rate_age_max_ms=max(ages, default=None),
        stale_max=max((s.stale for s in after if s.stale is not None), default=None),
        state=Figures.of(_series(serving, lambda s: s.state_mb)),
        postgres=Figures.of(_series(serving, lambda s: s.postgres_mb)),
    )


# -- Markdown ---------------------------------------------------------------------------------

LABELS = {
    "tansu": "`tansu` (the embedded broker)",
    "postgres": "`postgres` (all its processes)",
    "simulate": "`rates simulate` (the venue simulator)",
    "connect": "`rates connect`",
    "worker": "`rates worker`",
    "history": "`rates history`",
    "api": "`rates api`",
    "up": "`rates up` (the supervisor)",
    "other": "other",
}


def _mb(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+,.1f}" if signed else f"{value:,.1f}"


def _cores(early_late: tuple[float | None, float | None]) -> str:
    return " / ".join("n/a" if v is None else f"{v:.2f}" for v in early_late)


def _span(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def markdown(summary: Summary, meta: Mapping[str, Any]) -> str:
    """The summary as the README shows it: how it was made, then the two tables."""
    lines = [
        f"`{meta.get('command', 'make soak')}` on {meta.get('machine', 'this machine')}, "
        f"{meta.get('started', '?')}, {_span(summary.duration_s)}"
        + "".join(f"; {meta[key]}" for key in ("load", "note") if meta.get(key))
        + ":",
        "",
        "| process | MB when serving | peak | at end | MB per hour (fit over the second half) "
        "| CPU, cores: first fifth / last fifth |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in summary.memory.items():
        lines.append(
            f"| {LABELS[name]} | {_mb(figures.start)} | {_mb(figures.peak)} | "
            f"{_mb(figures.end)} | {_mb(figures.per_hour, signed=True)} | "
            f"{_cores(summary.cpu.get(name, (None, None)))} |"
        )
    statuses = ", ".join(
        f"{n} x {code or 'no answer'}" for code, n in summary.non_200_by_status.items()
    )
    rss = summary.broker_rss
    lines += [
        "",
        "| what | measured |",
        "|---|---|",
        f"| broker recycles | {summary.recycles} |",
        "| broker RSS (what a memory cap reads): when serving, peak, at end | "
        + ("n/a" if rss is None else f"{_mb(rss.start)}, {_mb(rss.peak)}, {_mb(rss.end)} MB")
        + " |",
        f"| `/api/v1/courses` answers (one a second) | {summary.answers:,}, the first 200 after "
        + ("never" if summary.first_200_s is None else f"{summary.first_200_s:.0f} s")
        + " |",
        f"| answers other than 200 after the first 200 | {summary.non_200}"
        + (f" ({statuses})" if statuses else "")
        + " |",
        "| longest time the v1 values did not move | "
        + ("n/a" if summary.longest_unchanged_s is None else f"{summary.longest_unchanged_s:.0f} s")
        + " |",
        f"| v1 answer time, p50 / p99 | {_mb(summary.v1_p50_ms)} / {_mb(summary.v1_p99_ms)} ms |",
        "| venues v1 answered from (seconds); changes of venue | "
        + (", ".join(f"{v} {n:,}" for v, n in summary.venues.items()) or "none")
        + f"; {summary.venue_changes} |",
        "| age of the rates served (`/api/v2/courses`, median over the directions), p50 / max | "
        + f"{_mb(summary.rate_age_p50_ms)} / {_mb(summary.rate_age_max_ms)} ms |",
        "| directions v2 marked stale (the most at once) | "
        + ("n/a" if summary.stale_max is None else str(summary.stale_max))
        + " |",
        _disk_line("state directory on disk", summary.state, summary.per_day(summary.state)),
        _disk_line("of which PostgreSQL data", summary.postgres, summary.per_day(summary.postgres)),
    ]
    return "\n".join(lines) + "\n"


def _disk_line(what: str, figures: Figures | None, per_day: float | None) -> str:
    if figures is None:
        return f"| {what} | n/a |"
    return (
        f"| {what}: when serving, at end; per day (extrapolated) | {_mb(figures.start)} MB, "
        f"{_mb(figures.end)} MB; {_mb(per_day, signed=True)} MB |"
    )


def replace_readme_block(text: str, block: str) -> str:
    """``text`` with what stands between the soak's markers replaced by ``block``."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"no {README_BEGIN} ... {README_END} block")
    return text[: start + len(README_BEGIN)] + "\n" + block + text[end:]


# -- the chart ------------------------------------------------------------------------------


def chart(samples: Sequence[Sample], path: Path, title: str = "soak") -> Path:
    """Memory per process, disk, and the v1 answers over time; recycles as dotted lines."""
    hours = bool(samples) and samples[-1].elapsed_s > 3 * 3600
    scale, unit = (3600.0, "hours") if hours else (60.0, "minutes")
    fig, (memory, cpu, disk, answers) = plt.subplots(4, 1, figsize=(10, 12), sharex=True)
    for name in PROCESSES:
        series = _series(samples, lambda s, n=name: s.memory_mb.get(n))
        if series:
            memory.plot([x / scale for x, _ in series], [y for _, y in series], label=name)
    memory.set(ylabel="MB (PSS)", title=f"{title}: memory of each process")
    memory.legend(fontsize="small", ncol=3)
    for name in PROCESSES:
        series = cpu_cores(samples, name)
        if series:
            cpu.plot(
                [x / scale for x, _ in series], [y for _, y in series], label=name, linewidth=1
            )
    cpu.set(ylabel="cores", title="CPU of each process (1 = one core)")
    if cpu.lines:
        cpu.legend(fontsize="small", ncol=3)
    for label, value in (("state dir", "state_mb"), ("PostgreSQL data", "postgres_mb")):
        series = _series(samples, lambda s, v=value: getattr(s, v))
        if series:
            disk.plot([x / scale for x, _ in series], [y for _, y in series], label=label)
    disk.set(ylabel="MB on disk", title="disk")
    disk.legend(fontsize="small")
    first = next((s.elapsed_s for s in samples if s.v1_status == 200), None)
    ok = [(s.elapsed_s / scale, s.v1_ms) for s in samples if s.v1_status == 200 and s.v1_ms]
    top = max((y for _, y in ok), default=1.0)  # where the failures are marked
    ages = _series(samples, lambda s: s.rate_age_ms)
    if ages:
        answers.plot([x / scale for x, _ in ages], [y for _, y in ages], color="tab:orange",
                     linewidth=1, label="age of the rates served (v2, median)")  # fmt: skip
    if ok or ages:
        if ok:
            answers.plot([x for x, _ in ok], [y for _, y in ok], ".", markersize=2,
                         label="v1 answer time")  # fmt: skip
        answers.set_yscale("log")
        answers.yaxis.set_major_formatter(ScalarFormatter())
        answers.yaxis.set_minor_formatter(NullFormatter())
    for label, color, before in (
        ("not 200, starting", "tab:grey", True),
        ("not 200", "tab:red", False),
    ):
        bad = [
            s.elapsed_s / scale
            for s in samples
            if s.v1_status not in (None, 200) and (first is None or s.elapsed_s < first) == before
        ]
        if bad:
            answers.plot(bad, [top] * len(bad), "v", color=color, label=label)
    answers.set(xlabel=unit, ylabel="ms", title="GET /api/v1/courses, every second")
    if answers.lines:
        answers.legend(fontsize="small")
    previous = None
    for s in samples:
        if s.recycles is None:
            continue
        if previous is not None and s.recycles > previous:
            for ax in (memory, cpu, disk, answers):
                ax.axvline(s.elapsed_s / scale, color="grey", linestyle=":")
        previous = s.recycles
    for ax in (memory, cpu, disk, answers):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- the command ----------------------------------------------------------------------------


def report(csv_path: Path, readme: Path | None = None) -> str:
    """summary.md, summary.json and soak.png beside the CSV; the Markdown (also in ``readme``)."""
    samples = read_csv(csv_path)
    if not samples:
        raise ValueError(f"{csv_path}: no samples")
    meta_path = csv_path.with_name("soak.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    summary = summarize(samples)
    text = markdown(summary, meta)
    csv_path.with_name("summary.md").write_text(text)
    figures = {
        "duration_s": summary.duration_s,
        "recycles": summary.recycles,
        "non_200": summary.non_200,
        "memory_mb_per_hour": {n: f.per_hour for n, f in summary.memory.items()},
        "postgres_mb_per_day": summary.per_day(summary.postgres),
        "state_mb_per_day": summary.per_day(summary.state),
    }
    csv_path.with_name("summary.json").write_text(json.dumps({**meta, **figures}, indent=2) + "\n")
    chart(samples, csv_path.with_name("soak.png"), meta.get("command", "soak"))
    if readme is not None:
        readme.write_text(replace_readme_block(readme.read_text(), text))
    return text


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.soak", description=__doc__)
    parser.add_argument("csv", type=Path, help="a soak's soak.csv")
    parser.add_argument("--readme", type=Path, help="replace the README's soak table with it")
    args = parser.parse_args()
    print(report(args.csv, args.readme), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
