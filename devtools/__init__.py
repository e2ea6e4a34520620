"""Launch code the tests and the benchmarks share (a development tool, not installed).

Clean environments (environment.py), waiting (waiting.py), `rates` and other processes
with their logs (processes.py), the embedded broker and database (embedded.py), and the API
on a synthetic feed (apiserver.py).
"""
