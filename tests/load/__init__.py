"""Load tests (locust); `make loadtest` runs them, not pytest."""
