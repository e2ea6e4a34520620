"""The `rates` command: entry points of every process, the supervisor, embedded components."""
