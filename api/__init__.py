"""The HTTP API: serves rates.latest from memory."""
