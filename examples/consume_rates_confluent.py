"""Follow rates.normalized with confluent-kafka (librdkafka): every quote, as it arrives."""

import json
import os
import sys
from decimal import Decimal

from confluent_kafka import Consumer


def main() -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": "my-rdkafka-service",  # your own group: each quote reaches you once
            "auto.offset.reset": "latest",
            # The embedded broker holds every group join for half the session timeout:
            # librdkafka's default (45 s) would keep you waiting ~23 s, 6 s waits ~3 s.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            # It answers a fetch within half this wait (it polls): 500 ms by default.
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe([os.environ.get("RATES_TOPIC_PREFIX", "") + "rates.normalized"])
    try:
        while True:
            record = consumer.poll(1.0)
            if record is None:
                continue
            if record.error():
                print(record.error(), file=sys.stderr, flush=True)
                continue
            quote = json.loads(record.value())  # schemas/json/quote.json
            value = Decimal(quote["value"])  # full precision: never parse it as a float
            print(quote["direction"], quote["venue"], value, quote["ts"], flush=True)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
