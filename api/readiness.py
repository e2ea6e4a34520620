"""Readiness (``/readyz``): the broker answers, the snapshot is loaded and still current, and
v1 without parameters answers rates (not a 503)."""

from __future__ import annotations

from dataclasses import dataclass

from api.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str


def readiness(
    snapshot: Snapshot,
    broker_error: str | None = None,
    max_age_s: float = 5.0,
    away: str | None = None,
    v1_error: str | None = None,
) -> Readiness:
    """Ready when the broker answers, the snapshot is loaded, records keep coming and v1
    without parameters answers 200 (``v1_error``: why it does not)."""
    if broker_error is not None:
        return Readiness(False, f"Kafka broker unreachable: {broker_error}")
    if away is not None:
        return Readiness(False, f"{away}; serving the last rates until the pipeline is back")
    if not snapshot.loaded and (v1_error is None or not snapshot.latest):
        return Readiness(False, "snapshot not loaded: no active venue on rates.latest yet")
    age = snapshot.age_s()
    if age is not None and age > max_age_s:
        return Readiness(False, f"no record from rates.latest for {age:.0f} s (pipeline down?)")
    if v1_error is not None:
        return Readiness(False, f"GET /api/v1/courses answers 503: {v1_error}")
    return Readiness(True, "ok")
