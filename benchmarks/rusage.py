"""Run a command and write its wall time, CPU time and peak memory as JSON.

Usage: ``python benchmarks/rusage.py RESULT_FILE COMMAND…``. The command's output
and exit code pass through; RESULT_FILE gets ``{"wall": s, "cpu": s, "maxRssMb":
MB, "exitCode": n}``.

The benchmark starts commands through this small process because Linux counts the
memory of the process that called exec in the peak (``ru_maxrss``) of the program
it runs. A command started by the benchmark, which keeps a whole estate in memory,
would report the benchmark's peak; started from here, it reports its own (and at
least this interpreter's few megabytes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    """Run the command of ``sys.argv``; write its measurements; return its code."""
    result_path = Path(sys.argv[1])
    command = sys.argv[2:]

    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started

    exit_code = os.waitstatus_to_exitcode(status)
    result = {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        # Linux reports ru_maxrss in kilobytes.
        "maxRssMb": usage.ru_maxrss / 1024,
        "exitCode": exit_code,
    }
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return exit_code if exit_code >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
