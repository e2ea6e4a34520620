"""Where the published JSON Schema of each topic's records lives (schemas/json/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.topics import LATEST, NORMALIZED, RAW, REFERENCE, VENUES_STATUS

DIRECTORY = Path(__file__).resolve().parent / "json"

#: Topic name (without prefix; ``ticks.raw.`` stands for every venue) -> schema file.
BY_TOPIC: dict[str, str] = {
    RAW: "raw_frame.json",
    NORMALIZED: "quote.json",
    REFERENCE: "quote.json",
    LATEST: "latest.json",
    VENUES_STATUS: "venue_status.json",
}


def for_topic(topic: str, prefix: str = "") -> dict[str, Any]:
    """The JSON Schema of the records of ``topic`` (a full topic name, with its prefix)."""
    name = topic.removeprefix(prefix)
    key = RAW if name.startswith(RAW) else name
    schema: dict[str, Any] = json.loads((DIRECTORY / BY_TOPIC[key]).read_text())
    return schema
