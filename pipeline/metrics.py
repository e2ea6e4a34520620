"""Every Prometheus metric of the pipeline."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

# -- the history writer (rates history) ------------------------------------------------------

HISTORY_ROWS = Counter(
    "rates_history_rows_total",
    "Rows stored in PostgreSQL (rows already there are not counted)",
    ["table"],
)
HISTORY_DUPLICATES = Counter(
    "rates_history_duplicates_total",
    "Records already stored (redelivered after a restart or rebalance)",
    ["table"],
)
HISTORY_BATCHES = Counter("rates_history_batches_total", "Transactions committed")
HISTORY_WRITE_SECONDS = Histogram(
    "rates_history_write_seconds", "Time to write and commit one batch"
)
HISTORY_WRITE_ERRORS = Counter(
    "rates_history_write_errors_total",
    "Failed batch writes, by reason (unavailable, error)",
    ["reason"],
)
HISTORY_BAD_RECORDS = Counter(
    "rates_history_bad_records_total",
    "Records skipped: undecodable (by topic) or refused by PostgreSQL (by table)",
    ["source"],
)
HISTORY_DATABASE_UP = Gauge(
    "rates_history_database_up", "1 while PostgreSQL accepts writes, 0 while it does not"
)
HISTORY_PAUSED = Gauge(
    "rates_history_consumer_paused", "1 while consumption is paused until PostgreSQL is back"
)
HISTORY_PENDING = Gauge(
    "rates_history_pending_records", "Records held in memory, not yet durable in PostgreSQL"
)
HISTORY_NEWEST = Gauge(
    "rates_history_newest_quote_received_seconds",
    "received_at (unix seconds) of the newest quote stored",
)
HISTORY_RETENTION_DELETED = Counter(
    "rates_history_retention_deleted_total", "Rows deleted by the retention", ["table"]
)
HISTORY_PARTITIONS = Counter(
    "rates_history_partitions_total",
    "Partitions created (ahead, or for a batch) and dropped (retention), by table",
    ["table", "action"],
)
