"""Every Prometheus metric of the connectors, per venue."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FRAMES = Counter(
    "rates_connector_frames_total", "Frames received from a venue, by kind", ["venue", "kind"]
)
MALFORMED = Counter(
    "rates_connector_malformed_frames_total",
    "Frames a venue sent that its module does not recognise",
    ["venue"],
)
VENUE_ERRORS = Counter(
    "rates_connector_venue_errors_total", "Error frames sent by a venue", ["venue"]
)
RECONNECTS = Counter(
    "rates_connector_reconnects_total",
    "Connections ended and retried, or handed over, by reason "
    "(error, closed, silent, limited; rotated, requested)",
    ["venue", "reason"],
)
STATE = Gauge(
    "rates_connector_state",
    "1 for the venue's current connection state, 0 for the others",
    ["venue", "state"],
)
LAST_FRAME = Gauge(
    "rates_connector_last_frame_timestamp_seconds",
    "Unix time of the last data frame from the venue",
    ["venue"],
)
SECONDS_SINCE_FRAME = Gauge(
    "rates_connector_seconds_since_last_frame",
    "Seconds since the last data frame from the venue (-1 before the first)",
    ["venue"],
)
PUBLISHED = Counter(
    "rates_connector_published_total", "Records Kafka confirmed, by topic kind", ["kind"]
)
PUBLISH_ERRORS = Counter(
    "rates_connector_publish_errors_total", "Records Kafka did not accept (retried)", ["kind"]
)
INFLIGHT = Gauge("rates_connector_inflight", "Records handed to Kafka, not yet confirmed")
WINDOW_RECORDS = Gauge(
    "rates_connector_window_records",
    "Records delivered within CONNECTOR_WINDOW_S, kept to be sent again if the broker is replaced",
)
WINDOW_BYTES = Gauge("rates_connector_window_bytes", "Key and value bytes of those records")
BROKER_REPLACED = Counter(
    "rates_connector_broker_replaced_total",
    "Times a delivery showed a replaced broker (a partition's offsets started over)",
)
REPUBLISHED = Counter(
    "rates_connector_republished_total",
    "Records sent again because the broker that had them was replaced",
)
DROPPED = Counter(
    "rates_connector_dropped_total",
    "Records dropped because the publish buffer was full (broker down too long)",
    ["kind"],
)
BUFFERED = Gauge("rates_connector_buffered", "Records waiting to be published")
SYMBOLS_MISSING = Gauge(
    "rates_connector_symbols_missing",
    "Configured symbols the venue does not list, trade or quote, seen at start (-1: not checked)",
    ["venue"],
)
