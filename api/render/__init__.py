"""Answer bodies rendered from the snapshot: one module per API version (pure functions)."""
