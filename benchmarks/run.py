"""Benchmark plans and applies at the scale of a national promoter.

Usage: ``python benchmarks/run.py [--programmes 500 --lots 100 --latency 0.02
--rate 50 --parallelism 10] [--quick] [--output-dir docs]``.

In a temporary folder, the script writes a deterministic estate: ``--programmes``
generated programmes of ``--lots`` lots, plus the example manifests built from DVF
sales. It seeds a sandbox so that MyNotary matches the estate, and serves the
sandbox in another process, with ``--latency`` seconds added to every response and
a write quota of ``--rate`` per second. Then it measures:

- plans with no change, with 1 % of the lots changed, and of a new estate;
- applies of ``updates`` updates and of ``creates`` creates, writes limited to
  ``--rate`` per second by the client, reads not limited;
- two references for the no-change plan: reading each record by id
  ``--parallelism`` at a time (a Terraform refresh), and the network lower bound;
- the local work and memory of the no-change plan at three estate sizes.

It writes ``benchmarks.md`` and ``benchmarks.png`` into ``--output-dir``.
``--quick`` runs a tiny estate with a short latency, in seconds, for the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, the folder on sys.path is benchmarks/, not the repository.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.estate import Reprice  # noqa: E402
from benchmarks.estate import programme_up_id  # noqa: E402
from benchmarks.estate import write_estate  # noqa: E402
from benchmarks.measure import Measurement  # noqa: E402
from benchmarks.measure import Sandbox  # noqa: E402
from benchmarks.measure import measure_command  # noqa: E402
from benchmarks.measure import measure_per_record_reads  # noqa: E402
from benchmarks.measure import measure_phases  # noqa: E402
from benchmarks.measure import served_sandbox  # noqa: E402
from benchmarks.report import CurvePoint  # noqa: E402
from benchmarks.report import Results  # noqa: E402
from benchmarks.report import Row  # noqa: E402
from benchmarks.report import network_lower_bound  # noqa: E402
from benchmarks.report import write_plot  # noqa: E402
from benchmarks.report import write_report  # noqa: E402
from benchmarks.seed import SeededEstate  # noqa: E402
from benchmarks.seed import insert_seeded  # noqa: E402
from benchmarks.seed import seed_matching  # noqa: E402
from reconciler.links import TargetIdentity  # noqa: E402
from reconciler.manifest import load_manifests  # noqa: E402

EXAMPLES = ROOT / "manifests"

# Organizations of the sandbox: the seeded estate, an empty one for the plan of a
# new estate, and an empty one for the apply of creates.
SEEDED_ORGANIZATION = 1
NEW_ORGANIZATION = 2
CREATES_ORGANIZATION = 3


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run: the estate, the network, and the applies.

    ``latency`` is in seconds and ``rate`` in writes per second. The apply of
    creates runs on ``create_programmes`` programmes of ``create_lots`` lots each;
    ``curve`` lists the numbers of generated programmes of the size curve.
    ``repeats`` is the number of runs of the no-change plan, of which the median
    is reported.
    """

    programmes: int = 500
    lots: int = 100
    latency: float = 0.02
    rate: float = 50.0
    parallelism: int = 10
    updates: int = 1000
    create_programmes: int = 100
    create_lots: int = 99
    curve: tuple[int, ...] = (50, 200, 500)
    repeats: int = 3

    @property
    def creates(self) -> int:
        return self.create_programmes * (self.create_lots + 1)


QUICK = Sizes(
    programmes=4,
    lots=10,
    latency=0.002,
    rate=200.0,
    updates=20,
    create_programmes=2,
    create_lots=9,
    curve=(1, 2, 4),
    repeats=1,
)


def parse_arguments(argv: Sequence[str] | None) -> tuple[Sizes, Path, Path | None]:
    """Return the sizes to measure, the folder the report goes to, and the work
    folder to keep, if any."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
    )
    defaults = Sizes()
    parser.add_argument("--programmes", type=int, default=defaults.programmes)
    parser.add_argument("--lots", type=int, default=defaults.lots)
    parser.add_argument(
        "--latency", type=float, default=defaults.latency, help="seconds"
    )
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="writes per second"
    )
    parser.add_argument("--parallelism", type=int, default=defaults.parallelism)
    parser.add_argument(
        "--quick", action="store_true", help="a tiny estate, for the smoke test"
    )
    parser.add_argument("--output-dir", type=Path, default=ROOT / "docs")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the estates, outputs and sandbox here instead of a temporary"
        " folder (it must not exist yet)",
    )
    options = parser.parse_args(argv)

    if options.quick:
        return QUICK, options.output_dir, options.work_dir
    sizes = replace(
        defaults,
        programmes=options.programmes,
        lots=options.lots,
        latency=options.latency,
        rate=options.rate,
        parallelism=options.parallelism,
    )
    return _fit_to_estate(sizes), options.output_dir, options.work_dir


def _fit_to_estate(sizes: Sizes) -> Sizes:
    """Keep the curve and the updates within the generated estate."""
    curve = tuple(sorted({min(count, sizes.programmes) for count in sizes.curve}))
    updates = min(sizes.updates, sizes.programmes * sizes.lots)
    return replace(sizes, curve=curve, updates=updates)


class Bench:
    """The folder, the estates and the sandbox of one benchmark run."""

    def __init__(self, folder: Path, sizes: Sizes) -> None:
        self.folder = folder
        self.sizes = sizes
        self.estate = folder / "estate"
        self.generated = self.estate / "generated"
        self.seeded: SeededEstate | None = None

    # Set-up

    def write_estates(self) -> None:
        """Write the estate, its changed copies, and the estate to create."""
        sizes = self.sizes
        step = max(1, sizes.programmes * sizes.lots // sizes.updates)
        estates: dict[str, Reprice | None] = {
            "estate": None,
            "estate-1pct": lambda programme, lot: (
                (programme * sizes.lots + lot) % 100 == 0
            ),
            "estate-updates": lambda programme, lot: (
                (programme * sizes.lots + lot) % step == 0
            ),
        }
        for name, reprice in estates.items():
            folder = self.folder / name
            write_estate(folder / "generated", sizes.programmes, sizes.lots, reprice)
            shutil.copytree(EXAMPLES, folder / "examples")

        write_estate(
            self.folder / "estate-creates", sizes.create_programmes, sizes.create_lots
        )

    def seed(self) -> SeededEstate:
        """Seed the sandbox database with records that match the estate."""
        loaded = load_manifests([self.estate])
        seeded = seed_matching(loaded.programmes, SEEDED_ORGANIZATION)
        insert_seeded(seeded, self.folder / ".reconciler" / "sandbox.db")
        self.seeded = seeded
        return seeded

    def write_links(self, sandbox: Sandbox) -> None:
        """Write the link tables of the estate and of each size of the curve."""
        assert self.seeded is not None
        target = TargetIdentity(sandbox.url, SEEDED_ORGANIZATION)
        self.seeded.write_links(self.links("estate"), target, self.seeded.links)
        for count in self.sizes.curve:
            programmes = [programme_up_id(index) for index in range(count)]
            self.seeded.write_links(self.links(f"curve-{count}"), target, programmes)

    def links(self, name: str) -> Path:
        return self.folder / "state" / f"{name}.yaml"

    # Command lines

    def target_arguments(
        self, sandbox: Sandbox, organization: int, links: str
    ) -> list[str]:
        return [
            "--url",
            sandbox.url,
            "--organization",
            str(organization),
            "--user",
            "1",
            "--links",
            str(self.links(links)),
            "--parallelism",
            str(self.sizes.parallelism),
        ]

    def plan_arguments(
        self, sandbox: Sandbox, paths: Sequence[str], organization: int, links: str
    ) -> list[str]:
        return [
            "plan",
            *paths,
            *self.target_arguments(sandbox, organization, links),
            "--rate-limit",
            "0",
            "--detailed-exitcode",
        ]

    def apply_arguments(
        self, sandbox: Sandbox, path: str, organization: int, links: str
    ) -> list[str]:
        return [
            "apply",
            path,
            *self.target_arguments(sandbox, organization, links),
            "--auto-approve",
            "--rate-limit",
            "0",
            "--write-rate-limit",
            f"{self.sizes.rate:g}",
        ]

    def curve_paths(self, count: int) -> list[str]:
        return [f"estate/generated/bench-{index:04d}.yaml" for index in range(count)]


@contextlib.contextmanager
def _work_folder(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        work_dir.mkdir(parents=True)
        yield work_dir.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as name:
        yield Path(name)


def run(sizes: Sizes, output_dir: Path, work_dir: Path | None = None) -> Results:
    """Run every measurement and write the report; return the results."""
    with _work_folder(work_dir) as folder:
        bench = Bench(folder, sizes)
        _say("writing the estates")
        bench.write_estates()
        _say("seeding the sandbox")
        seeded = bench.seed()
        log_path = bench.folder / "sandbox.log"
        with (
            log_path.open("w") as log,
            served_sandbox(bench.folder, sizes.latency, sizes.rate, log) as sandbox,
        ):
            bench.write_links(sandbox)
            results = _measure(bench, sandbox, seeded)

    output_dir.mkdir(parents=True, exist_ok=True)
    has_plot = write_plot(results, output_dir / "benchmarks.png")
    write_report(
        results, output_dir / "benchmarks.md", _command_line(sizes), has_plot=has_plot
    )
    return results


def _measure(bench: Bench, sandbox: Sandbox, seeded: SeededEstate) -> Results:
    sizes = bench.sizes
    results = Results(
        sizes=sizes,
        lots=sum(seeded.lot_counts),
        programmes=seeded.programme_count,
        lower_bound=network_lower_bound(
            seeded.lot_counts, sizes.parallelism, sizes.latency
        ),
    )

    _say("plan with no changes")
    no_change = [
        _plan(bench, sandbox, "no-change", ["estate"], SEEDED_ORGANIZATION, "estate")
        for _ in range(sizes.repeats)
    ]
    results.rows.append(_median_row("Plan, no changes", no_change, expected=0))
    _say("phases of the plan with no changes")
    phases = [
        measure_phases(
            _phase_arguments(bench, sandbox, "estate", ["estate"]),
            bench.folder,
            sandbox,
        )
        for _ in range(sizes.repeats)
    ]
    results.phases = _median_phases(phases)

    _say("plan with 1 % of the lots changed")
    results.rows.append(
        Row(
            "Plan, 1 % of lots changed",
            _plan(
                bench, sandbox, "1pct", ["estate-1pct"], SEEDED_ORGANIZATION, "estate"
            ),
            expected_exit=2,
        )
    )
    _say("plan of a new estate")
    results.rows.append(
        Row(
            "Plan, new estate (all creates)",
            _plan(bench, sandbox, "new", ["estate/generated"], NEW_ORGANIZATION, "new"),
            expected_exit=2,
        )
    )

    _say("size curve")
    for count in sizes.curve:
        results.curve.append(_curve_point(bench, sandbox, count))

    _say(f"per-record reads of {len(_record_ids(seeded))} records")
    results.reference = measure_per_record_reads(
        sandbox, _record_ids(seeded), sizes.parallelism
    )

    _say(f"apply of {sizes.updates} updates")
    results.rows.append(
        Row(
            f"Apply, {sizes.updates:,} updates",
            _apply(
                bench,
                sandbox,
                "updates",
                "estate-updates",
                SEEDED_ORGANIZATION,
                "estate",
            ),
            expected_exit=0,
            writes=sizes.updates,
        )
    )
    _say(f"apply of {sizes.creates} creates")
    results.rows.append(
        Row(
            f"Apply, {sizes.creates:,} creates",
            _apply(
                bench,
                sandbox,
                "creates",
                "estate-creates",
                CREATES_ORGANIZATION,
                "creates",
            ),
            expected_exit=0,
            writes=sizes.creates,
        )
    )
    return results


def _plan(
    bench: Bench,
    sandbox: Sandbox,
    name: str,
    paths: list[str],
    organization: int,
    links: str,
) -> Measurement:
    arguments = bench.plan_arguments(sandbox, paths, organization, links)
    output = bench.folder / f"plan-{name}.txt"
    return measure_command(arguments, bench.folder, sandbox, output)


def _apply(
    bench: Bench,
    sandbox: Sandbox,
    name: str,
    path: str,
    organization: int,
    links: str,
) -> Measurement:
    arguments = bench.apply_arguments(sandbox, path, organization, links)
    output = bench.folder / f"apply-{name}.txt"
    return measure_command(arguments, bench.folder, sandbox, output)


def _phase_arguments(
    bench: Bench, sandbox: Sandbox, links: str, paths: list[str]
) -> list[str]:
    return [
        "--url",
        sandbox.url,
        "--organization",
        str(SEEDED_ORGANIZATION),
        "--links",
        str(bench.links(links)),
        "--parallelism",
        str(bench.sizes.parallelism),
        *paths,
    ]


def _curve_point(bench: Bench, sandbox: Sandbox, count: int) -> CurvePoint:
    paths = bench.curve_paths(count)
    links = f"curve-{count}"
    command = _plan(bench, sandbox, f"curve-{count}", paths, SEEDED_ORGANIZATION, links)
    phases = measure_phases(
        _phase_arguments(bench, sandbox, links, paths), bench.folder, sandbox
    )
    return CurvePoint(lots=phases["lots"], command=command, phases=phases)


def _record_ids(seeded: SeededEstate) -> list[int]:
    return [
        link.mynotary_id
        for links in seeded.links.values()
        for link in links
        if link.mynotary_id is not None
    ]


def _median_row(label: str, runs: list[Measurement], expected: int) -> Row:
    walls = [run.wall for run in runs]
    median = runs[walls.index(statistics.median_low(walls))]
    return Row(label, median, expected_exit=expected, runs=len(runs))


def _median_phases(runs: list[dict[str, Any]]) -> dict[str, Any]:
    totals = [sum(phase["wall"] for phase in run["phases"].values()) for run in runs]
    return runs[totals.index(statistics.median_low(totals))]


def _command_line(sizes: Sizes) -> str:
    if sizes == QUICK:
        return "python benchmarks/run.py --quick"
    return (
        f"python benchmarks/run.py --programmes {sizes.programmes} --lots {sizes.lots}"
        f" --latency {sizes.latency:g} --rate {sizes.rate:g}"
        f" --parallelism {sizes.parallelism}"
    )


def _say(step: str) -> None:
    print(f"benchmark: {step}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a command's exit code was not the expected one."""
    sizes, output_dir, work_dir = parse_arguments(argv)
    results = run(sizes, output_dir, work_dir)
    failures = results.failures()
    for failure in failures:
        print(f"benchmark: {failure}", file=sys.stderr)
    print(f"benchmark: report written to {output_dir / 'benchmarks.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
