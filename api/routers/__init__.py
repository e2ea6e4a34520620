"""One router per API version, plus health and metrics."""
