"""One module per venue: what differs (URLs, subscribe messages, heartbeat) and a pure parse()."""
