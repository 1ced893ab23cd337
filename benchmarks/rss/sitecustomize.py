"""Put on ``PYTHONPATH`` by the real-scale bench: each Python process logs its own peak.

With ``PTC_BENCH_RSS_LOG`` set, every process appends ``<pid> <argv[0]> <ru_maxrss KiB>``
at exit, so Poetry's own peak can be told from that of the pip it starts.
"""

import atexit
import os
import resource
import sys


def _log() -> None:
    from pathlib import Path

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Path(os.environ["PTC_BENCH_RSS_LOG"]).open("a") as log:
        log.write(f"{os.getpid()} {sys.argv[0] if sys.argv else '?'} {peak}\n")


if os.environ.get("PTC_BENCH_RSS_LOG"):
    atexit.register(_log)
