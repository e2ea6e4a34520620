"""The Faust pipeline: normalization, the failover-aware latest-rate table, history."""
