"""A local venue simulator that speaks each venue's protocol on 127.0.0.1 (offline runs, tests)."""
