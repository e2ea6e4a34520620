"""Every Prometheus metric of the API."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("rates_api_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram(
    "rates_api_request_seconds",
    "Time to answer a request",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
SNAPSHOT_AGE = Gauge(
    "rates_api_snapshot_age_seconds", "Seconds since the snapshot last received a record"
)
RECORDS = Counter("rates_api_latest_records_total", "rates.latest records applied")
BAD_RECORDS = Counter("rates_api_bad_records_total", "rates.latest records that did not decode")
