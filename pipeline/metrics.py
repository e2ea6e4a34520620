"""Every Prometheus metric of the pipeline."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FRAMES = Counter("rates_pipeline_frames_total", "Raw frames normalized", ["venue"])
QUOTES = Counter(
    "rates_pipeline_quotes_total", "Quotes published to rates.normalized", ["venue", "direction"]
)
BAD_FRAMES = Counter(
    "rates_pipeline_bad_frames_total",
    "Raw frames skipped, by reason (malformed, unknown_symbol, bad_record)",
    ["venue", "reason"],
)
BAD_RECORDS = Counter(
    "rates_pipeline_bad_records_total",
    "Records of the pipeline's own topics that did not decode, by topic kind",
    ["kind"],
)
REFERENCES = Counter(
    "rates_pipeline_references_total", "Reference quotes published", ["venue", "market"]
)
LATEST_PUBLISHED = Counter(
    "rates_pipeline_latest_published_total",
    "Records published to rates.latest, by trigger (change, timer)",
    ["trigger"],
)
SWITCHES = Counter(
    "rates_pipeline_switches_total", "Changes of the chosen venue", ["direction", "to"]
)
OUTLIERS = Counter(
    "rates_pipeline_outliers_total",
    "Times a venue's quote was excluded as too far from the median of the others",
    ["direction", "venue"],
)
OWNED_PARTITIONS = Gauge(
    "rates_pipeline_owned_partitions", "Partitions of rates.normalized this worker owns"
)
READY = Gauge("rates_pipeline_worker_ready", "1 once the worker finished starting")
STARTUP_SECONDS = Gauge("rates_pipeline_worker_startup_seconds", "Seconds from start to ready")
