"""The recording file: gzip-compressed JSON lines, a header then one frame per line.

The header is ``{"recording": 1, "venues": [...], "started_at": ..., "note": ...}``; each
following line is ``{"key": ..., "raw": {RawFrame}}`` (the Kafka key the frame was published
with), in ``received_at`` order.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import orjson

from schemas.errors import ConfigError, RecordError
from schemas.records import RawFrame, format_time, parse_time

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded frame and the Kafka key it was published with."""

    key: str
    raw: RawFrame


@dataclass(frozen=True, slots=True)
class Header:
    """The first line of a recording."""

    venues: tuple[str, ...]
    started_at: datetime
    note: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "recording": FORMAT_VERSION,
                "venues": list(self.venues),
                "started_at": format_time(self.started_at),
                "note": self.note,
            }
        )


def encode_entry(entry: Entry) -> bytes:
    return orjson.dumps({"key": entry.key, "raw": entry.raw.to_dict()})


def decode_header(line: bytes | str) -> Header:
    try:
        data = orjson.loads(line)
        if not isinstance(data, dict) or data.get("recording") != FORMAT_VERSION:
            raise ValueError(f"not a recording header (expected recording={FORMAT_VERSION})")
        venues = data["venues"]
        if not isinstance(venues, list) or not all(isinstance(v, str) for v in venues):
            raise ValueError("venues: expected a list of names")
        return Header(tuple(venues), parse_time(data["started_at"]), str(data.get("note", "")))
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"line 1: {exc}") from None


def decode_entry(line: bytes | str, number: int) -> Entry:
    try:
        data = orjson.loads(line)
        if not isinstance(data, dict) or not isinstance(data.get("key"), str):
            raise RecordError('expected {"key": ..., "raw": {...}}')
        return Entry(data["key"], RawFrame.from_json(data["raw"]))
    except (orjson.JSONDecodeError, RecordError, KeyError) as exc:
        raise RecordError(f"line {number}: {exc}") from None


class Recording:
    """Reads a recording: its header, then its entries in order (with the bytes read so far)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise ConfigError(f"recording {path}: {exc.strerror}") from None
        #: The compressed size: progress is measured in compressed bytes read.
        self.size = path.stat().st_size
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="rb")
        try:
            first = self._gz.readline()
        except (OSError, EOFError) as exc:
            self.close()
            raise ConfigError(f"recording {path}: not a gzip file ({exc})") from None
        try:
            self.header = decode_header(first)
        except RecordError as exc:
            self.close()
            raise ConfigError(f"recording {path}: {exc}") from None
        self.truncated = False

    def position(self) -> int:
        """Compressed bytes read so far (``size`` at the end)."""
        return min(self.size, self._raw.tell())

    def progress(self) -> float:
        return self.position() / max(1, self.size)

    def entries(self) -> Iterator[Entry]:
        number = 1
        while True:
            try:
                line = self._gz.readline()
            except (EOFError, OSError) as exc:  # a recorder killed mid-write
                self.truncated = True
                log.warning("recording %s ends abruptly after line %d (%s)", self.path, number, exc)
                return
            if not line:
                return
            number += 1
            if line.strip():
                yield decode_entry(line, number)

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


class RecordingWriter:
    """Writes a recording (gzip JSON lines); refuses to overwrite an existing file."""

    def __init__(self, path: Path, header: Header) -> None:
        try:
            self._file = gzip.open(path, "xb")  # noqa: SIM115 - closed by close()
        except FileExistsError:
            raise ConfigError(f"{path} exists: choose another PATH or remove it") from None
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
        self._file.write(header.to_json() + b"\n")
        self.count = 0

    def write(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self._file.write(encode_entry(entry) + b"\n")
            self.count += 1

    def close(self) -> None:
        self._file.close()
