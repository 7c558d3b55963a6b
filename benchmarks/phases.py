"""Time the phases of one plan in a fresh process, and print them as JSON.

Usage: ``python benchmarks/phases.py --url URL --organization N --links FILE
PATHS…``. The phases are the ones ``reconciler plan`` runs: importing the
package, loading and validating the manifests (which normalizes them), reading
the link table, reading MyNotary, computing the plan and rendering it as text.
Each gets its wall time and the CPU time of the process, in seconds;
``maxRssMb`` is the peak resident memory of the process. Run in a new process,
every cache starts cold.
"""

from __future__ import annotations

import time

_STARTED = (time.perf_counter(), time.process_time())

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from typing import TypeVar  # noqa: E402

from reconciler.cli import GC_THRESHOLDS  # noqa: E402
from reconciler.links import LinkTable  # noqa: E402
from reconciler.links import TargetIdentity  # noqa: E402
from reconciler.manifest import load_manifests  # noqa: E402
from reconciler.mynotary.client import MyNotaryClient  # noqa: E402
from reconciler.plan import compute_plan  # noqa: E402
from reconciler.remote import RemoteState  # noqa: E402
from reconciler.remote import read_remote_state  # noqa: E402
from reconciler.render.text import render_plan  # noqa: E402

_T = TypeVar("_T")


def _timed(phases: dict[str, Any], name: str, step: Callable[[], _T]) -> _T:
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    phases[name] = {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
    }
    return result


def _read(
    url: str, organization: int, parallelism: int, programmes: Any, links: LinkTable
) -> RemoteState:
    states: list[RemoteState] = []

    # The state leaves through a list, not as the main task's result: asyncio.run
    # formats the result when it ends (as the reconciler's commands avoid, too).
    async def read() -> None:
        async with MyNotaryClient(
            url,
            organization_id=organization,
            creator_id=1,
            max_in_flight=parallelism,
            rate_limit=None,
        ) as client:
            states.append(await read_remote_state(client, programmes, links))

    asyncio.run(read())
    return states[0]


def main() -> None:
    """Run the phases of a plan and print their times as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--organization", type=int, required=True)
    parser.add_argument("--links", type=Path, required=True)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("paths", type=Path, nargs="+")
    options = parser.parse_args()
    # As the command line sets it.
    gc.set_threshold(*GC_THRESHOLDS)

    phases: dict[str, Any] = {
        "import": {
            "wall": time.perf_counter() - _STARTED[0],
            "cpu": time.process_time() - _STARTED[1],
        }
    }
    target = TargetIdentity(options.url, options.organization)

    loaded = _timed(phases, "load", lambda: load_manifests(options.paths))
    links = _timed(phases, "links", lambda: LinkTable.load(options.links, target))
    remote = _timed(
        phases,
        "read",
        lambda: _read(
            options.url,
            options.organization,
            options.parallelism,
            loaded.programmes,
            links,
        ),
    )
    plan = _timed(
        phases, "plan", lambda: compute_plan(loaded.programmes, links, remote)
    )
    _timed(phases, "render", lambda: render_plan(plan))

    result = {
        "phases": phases,
        "lots": sum(len(programme.lots) for programme in loaded.programmes),
        "changes": len(plan.changes),
        "problems": len(plan.problems),
        "maxRssMb": _peak_memory_mb(),
    }
    print(json.dumps(result))


def _peak_memory_mb() -> float:
    """Return the peak resident memory of this process, in megabytes.

    Linux's VmHWM belongs to this program alone, whereas ``ru_maxrss`` also counts
    the memory of the process that started it (see ``benchmarks/rusage.py``).
    """
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        # NOTE: read as kilobytes, as Linux and the BSDs report it; macOS reports
        # bytes, so the value would be 1,024 times too large there.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


if __name__ == "__main__":
    main()
