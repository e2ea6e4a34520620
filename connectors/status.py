"""Pure per-venue connection state (connecting, up, silent, down) with the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from connectors.venues.base import FrameKind
from schemas.records import VenueState, VenueStatus

#: venues.status is republished at least this often even without a change.
REPUBLISH_S = 5.0


@dataclass(slots=True)
class VenueTracker:
    """What the connector knows about one venue; turns events into VenueStatus records."""

    venue: str
    silence_limit_s: float
    now: datetime
    state: VenueState = "connecting"
    detail: str = "starting"
    since: datetime = field(init=False)
    last_frame_at: datetime | None = None
    ever_up: bool = False
    #: Configured direction -> the venue market serving it; direction -> why not.
    serves: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    _published_at: datetime | None = None
    _published_state: VenueState | None = None

    def __post_init__(self) -> None:
        self.since = self.now

    def _set(self, state: VenueState, now: datetime, detail: str) -> None:
        if state != self.state:
            self.state = state
            self.since = now
        self.detail = detail

    def connecting(self, now: datetime, detail: str) -> None:
        # A venue that is up stays up while a rotation or reconnect is in progress.
        if self.state != "up":
            self._set("connecting", now, detail)

    def frame(self, kind: FrameKind, now: datetime) -> None:
        if kind is FrameKind.DATA:
            self.last_frame_at = now
            self.ever_up = True
            self._set("up", now, "receiving data")

    def down(self, now: datetime, detail: str) -> None:
        self._set("down", now, detail)

    def tick(self, now: datetime) -> None:
        """Mark the venue silent when connected but no data frame came within the limit."""
        if (
            self.state == "up"
            and self.last_frame_at is not None
            and (now - self.last_frame_at).total_seconds() > self.silence_limit_s
        ):
            self._set("silent", now, f"no data for more than {self.silence_limit_s:g} s")

    def status(self) -> VenueStatus:
        return VenueStatus(
            venue=self.venue,
            state=self.state,
            since=self.since,
            last_frame_at=self.last_frame_at,
            detail=self.detail,
            serves=self.serves,
            missing=self.missing,
        )

    def due(self, now: datetime) -> VenueStatus | None:
        """The status to publish now (on a change, or every REPUBLISH_S), else None."""
        if (
            self._published_at is None
            or self._published_state != self.state
            or (now - self._published_at).total_seconds() >= REPUBLISH_S
        ):
            self._published_at = now
            self._published_state = self.state
            return self.status()
        return None
