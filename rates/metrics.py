"""Prometheus metrics of the `rates up` supervisor: its children's restarts, the broker's RSS."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from rates.supervisor import AGE, CAP, DIED, Restarted

#: The child name of the embedded broker in the plan of `rates up`.
BROKER = "kafka"

RESTARTS = Counter(
    "rates_stack_restarts_total",
    "Children restarted by the supervisor, by child and reason (died, cap, age)",
    ["child", "reason"],
)
BROKER_RECYCLES = Counter(
    "rates_stack_broker_recycles_total",
    "Times the embedded broker was replaced by a new one on the same port: reason cap (its "
    "RSS reached RATES_BROKER_MAX_MB), age (it ran RATES_BROKER_MAX_AGE_MIN) or died (it "
    "exited)",
    ["reason"],
)
BROKER_RSS = Gauge(
    "rates_stack_broker_rss_bytes", "Resident memory of the embedded broker, read every 2 s"
)
BROKER_MAX_RSS = Gauge(
    "rates_stack_broker_max_rss_bytes", "RSS at which the embedded broker is recycled"
)

for _reason in (CAP, AGE, DIED):
    BROKER_RECYCLES.labels(_reason)


def restarted(event: Restarted) -> None:
    """The supervisor's listener: count a restart (and a broker recycle)."""
    RESTARTS.labels(event.name, event.reason).inc()
    if event.name == BROKER:
        BROKER_RECYCLES.labels(event.reason).inc()


def rss(name: str, value: int) -> None:
    """The supervisor's listener for RSS reads of capped children."""
    if name == BROKER:
        BROKER_RSS.set(value)
