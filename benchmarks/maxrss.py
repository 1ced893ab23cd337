"""``python -m benchmarks.maxrss COMMAND…``: run it, then report its peak memory and CPU.

The last line on stderr is ``maxrss <KiB> <cpu seconds>``: the largest resident
set of any process in the command's tree that was waited for (``ru_maxrss`` of
``RUSAGE_CHILDREN``) and their user + system time. The exit code is the command's.
"""

from __future__ import annotations

import resource
import subprocess
import sys


def main(argv: list[str]) -> int:
    returncode = subprocess.run(argv, check=False).returncode
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    print(f"maxrss {usage.ru_maxrss} {cpu:.3f}", file=sys.stderr)
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
