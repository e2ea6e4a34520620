"""Every Prometheus metric of the API.

With several API processes (``API_WORKERS``) prometheus-client runs in multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by api/server.py before any worker starts): counters and
histograms add up over the processes, and the gauges report the worst live process.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("rates_api_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram(
    "rates_api_request_seconds",
    "Time from a request's arrival to its response headers",
    ["route"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
SNAPSHOT_AGE = Gauge(
    "rates_api_snapshot_age_seconds",
    "Seconds since the snapshot last received a rates.latest record (-1: never)",
    multiprocess_mode="livemax",
)
RECORDS = Counter("rates_api_latest_records_total", "rates.latest records applied")
BAD_RECORDS = Counter("rates_api_bad_records_total", "topic records that did not decode", ["topic"])
CHANGES = Counter("rates_api_snapshot_changes_total", "records that changed the snapshot")
STREAMS = Gauge("rates_api_streams", "open event streams", multiprocess_mode="livesum")
HISTORY_ERRORS = Counter(
    "rates_api_history_errors_total", "history requests that PostgreSQL did not answer"
)

#: The route label of requests that matched no route (keeps the label set bounded).
UNMATCHED = "unmatched"


def exposition() -> tuple[bytes, str]:
    """The text of /metrics: this process's registry, or every process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def process_exited() -> None:
    """Drop this process's live gauges (multiprocess mode), keeping its counts."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
