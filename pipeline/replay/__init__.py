"""Record raw frames to a file and replay them, from a file or from the broker by time.

recording.py    the file format (gzip JSON lines: a header, then key + RawFrame per line)
timing.py       pure: the recorder's reorder window, ``--speed``, the Pacer
raw_topics.py   reading ticks.raw.<venue> without a consumer group
record.py       ``rates record``
publisher.py    the Replayer (fresh receive times, pacing, venue states), the progress bar
from_file.py    ``rates replay PATH``
from_broker.py  ``rates replay --from-kafka``: a time window read with offsets_for_times
"""
