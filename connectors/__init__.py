"""Venue connectors: one supervised connection per venue, raw frames published to Kafka."""
