"""Readiness (``/readyz``): the broker answers, the snapshot is loaded and still current."""

from __future__ import annotations

from dataclasses import dataclass

from api.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str


def readiness(
    snapshot: Snapshot, broker_error: str | None = None, max_age_s: float = 5.0
) -> Readiness:
    """Ready when the broker answers, the snapshot is loaded and records keep coming."""
    if broker_error is not None:
        return Readiness(False, f"Kafka broker unreachable: {broker_error}")
    if not snapshot.loaded:
        return Readiness(False, "snapshot not loaded: no active venue on rates.latest yet")
    age = snapshot.age_s()
    if age is not None and age > max_age_s:
        return Readiness(False, f"no record from rates.latest for {age:.0f} s (pipeline down?)")
    return Readiness(True, "ok")
