"""Recording files, pacing, the progress bar and the pure helpers of record/replay."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.structs import OffsetAndTimestamp

from pipeline.replay.from_broker import clamp_start
from pipeline.replay.publisher import advance, progress_bar, replayed
from pipeline.replay.recording import Entry, Header, Recording, RecordingWriter
from pipeline.replay.timing import Pacer, Reorder, parse_speed
from schemas.errors import ConfigError, RecordError
from schemas.records import RawFrame

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def entry(seconds: float, key: str = "btcusdt@trade") -> Entry:
    at = T + timedelta(seconds=seconds)
    return Entry(key, RawFrame("binance", at, f'{{"at": {seconds}}}', "c1"))


def test_a_recording_reads_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    written = [entry(0), entry(0.5, "ethusdt@trade"), entry(1.25)]
    writer = RecordingWriter(path, Header(("binance",), T, "test"))
    writer.write(written)
    writer.close()
    recording = Recording(path)
    assert recording.header == Header(("binance",), T, "test")
    assert list(recording.entries()) == written
    assert recording.progress() == 1.0
    assert recording.position() == recording.size == path.stat().st_size
    assert not recording.truncated
    recording.close()
    with pytest.raises(ConfigError, match="exists"):
        RecordingWriter(path, Header(("binance",), T))


def test_a_truncated_recording_replays_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    writer = RecordingWriter(path, Header(("binance",), T))
    writer.write(entry(n) for n in range(200))
    writer.close()
    data = path.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])  # as if the recorder was killed
    recording = Recording(cut)
    got = list(recording.entries())
    assert 0 < len(got) < 200
    assert got == [entry(n) for n in range(len(got))]
    assert recording.truncated
    recording.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not gzip at all", "not a gzip file"),
        (gzip.compress(b'{"hello": 1}\n'), "not a recording header"),
        (gzip.compress(b""), "line 1"),
    ],
)
def test_bad_recordings_are_refused_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        Recording(path)
    with pytest.raises(ConfigError, match="No such file"):
        Recording(tmp_path / "missing.gz")


def test_a_bad_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    header = Header(("binance",), T).to_json()
    path.write_bytes(gzip.compress(header + b'\n{"key": "k", "raw": {"v": 1}}\n'))
    recording = Recording(path)
    with pytest.raises(RecordError, match=r"line 2: RawFrame.venue: missing"):
        list(recording.entries())
    recording.close()


def test_reorder_releases_frames_in_time_order_after_the_window() -> None:
    reorder = Reorder(window_s=1.0)
    assert reorder.push(entry(0.3)) == []
    assert reorder.push(entry(0.1)) == []  # another partition, a little behind
    assert reorder.push(entry(1.2)) == [entry(0.1)]
    assert reorder.push(entry(2.0)) == [entry(0.3)]
    assert reorder.drain() == [entry(1.2), entry(2.0)]


def test_speed() -> None:
    assert parse_speed("max") is None
    assert parse_speed("MAX") is None
    assert parse_speed("1") == 1.0
    assert parse_speed("2.5") == 2.5
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(ValueError, match="positive number or 'max'"):
            parse_speed(bad)


def test_pacer_scales_the_original_gaps() -> None:
    now = [100.0]
    pacer = Pacer(4.0, clock=lambda: now[0])
    assert pacer.delay(T) == 0.0
    assert pacer.delay(T + timedelta(seconds=2)) == 0.5  # 2 s at 4x
    now[0] = 100.4
    assert pacer.delay(T + timedelta(seconds=2)) == pytest.approx(0.1)
    now[0] = 103.0  # behind schedule: no waiting, never negative
    assert pacer.delay(T + timedelta(seconds=4)) == 0.0
    assert Pacer(None).delay(T + timedelta(hours=1)) == 0.0


def test_a_replayed_frame_is_fresh_and_keeps_the_first_original_time() -> None:
    live = entry(0).raw
    now = T + timedelta(days=2)
    once = replayed(live, now)
    assert (once.received_at, once.recorded_at, once.frame) == (now, live.received_at, live.frame)
    twice = replayed(once, now + timedelta(days=1))
    assert twice.recorded_at == live.received_at


def test_offsets_for_times_are_clamped() -> None:
    assert clamp_start(OffsetAndTimestamp(7, 1_795_536_000_000)) == 7
    assert clamp_start(None) is None  # Kafka: nothing after that time
    assert clamp_start(OffsetAndTimestamp(0, -1)) is None  # Tansu's answer for the same


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_is_shown_on_a_terminal_only() -> None:
    for stream in (Terminal(), io.StringIO()):
        with progress_bar(2000, "B", stream) as bar:
            advance(bar, 500, 7)
            advance(bar, 2000, 9)
        if stream.isatty():
            last = stream.getvalue().rstrip("\n").split("\r")[-1]
            assert last.startswith("replay: 100%")
            assert "2.00k/2.00k" in last and last.endswith("B/s, 9 frames]")
        else:
            assert stream.getvalue() == ""
