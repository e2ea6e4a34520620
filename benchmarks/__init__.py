"""Benchmarks run by `make bench`: each measures one target on this machine and reports it."""
