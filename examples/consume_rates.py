"""Follow rates.normalized as a downstream service: every quote of every venue, as it arrives."""

import asyncio
import json
import os
from decimal import Decimal

from aiokafka import AIOKafkaConsumer


async def main() -> None:
    consumer = AIOKafkaConsumer(
        os.environ.get("RATES_TOPIC_PREFIX", "") + "rates.normalized",
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        group_id="my-service",  # your own group: each quote reaches you once
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            quote = json.loads(record.value)  # schemas/json/quote.json
            value = Decimal(quote["value"])  # full precision: never parse it as a float
            print(quote["direction"], quote["venue"], value, quote["ts"], flush=True)
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main())
