"""The benchmark's results, the targets they are checked against, and the report.

``write_report`` writes the Markdown page (tables of times and ratios, the
command, the machine and the date) and ``write_plot`` the size curve as a PNG,
with matplotlib (the ``bench`` extra); without matplotlib the report names the
command that installs it.
"""

from __future__ import annotations

import datetime
import itertools
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement

# The API contract's largest page.
PAGE_SIZE = 100

# Targets at 50,000 lots, 500 programmes and 20 ms of latency.
TARGET_LOTS = 50_000
MIN_SPEEDUP = 20.0
MAX_NETWORK_RATIO = 1.5
MAX_LOCAL_CPU = 3.0
MAX_RSS_MB = 400.0
MAX_APPLY_RATIO = 1.1
# A later segment of the size curve may cost this much more per lot than the
# first one and still count as linear: measurement noise, not growth.
LINEAR_TOLERANCE = 1.25

LOCAL_PHASES = ("load", "plan", "render")


@dataclass(frozen=True)
class LowerBound:
    """The fewest requests the API contract allows, and the time they take."""

    requests: int
    seconds: float


def network_lower_bound(
    lot_counts: Sequence[int], parallelism: int, latency: float
) -> LowerBound:
    """Return the requests a no-change plan needs at least, and their time.

    One list of the programmes and one list of each programme's lots, in pages of
    at most ``PAGE_SIZE`` records (a list with no record still takes a request),
    with ``parallelism`` requests in flight, each taking ``latency`` seconds.
    """
    requests = _pages(len(lot_counts)) + sum(_pages(count) for count in lot_counts)
    return LowerBound(requests, requests / parallelism * latency)


def _pages(records: int) -> int:
    return max(1, math.ceil(records / PAGE_SIZE))


@dataclass
class Row:
    """One measured command; ``writes`` is the number of writes of an apply."""

    label: str
    measurement: Measurement
    expected_exit: int
    writes: int = 0
    runs: int = 1


@dataclass
class CurvePoint:
    """The no-change plan of one estate size: the command and its phases."""

    lots: int
    command: Measurement
    phases: dict[str, Any]

    @property
    def local_cpu(self) -> float:
        return local_cpu(self.phases)


def local_cpu(phases: dict[str, Any]) -> float:
    """Return the CPU seconds of loading, comparing and rendering."""
    return float(sum(phases["phases"][name]["cpu"] for name in LOCAL_PHASES))


@dataclass
class Results:
    """Everything one benchmark run measured."""

    sizes: Any
    lots: int
    programmes: int
    lower_bound: LowerBound
    rows: list[Row] = field(default_factory=list)
    phases: dict[str, Any] = field(default_factory=dict)
    curve: list[CurvePoint] = field(default_factory=list)
    reference: Measurement | None = None

    def row(self, prefix: str) -> Row:
        return next(row for row in self.rows if row.label.startswith(prefix))

    def failures(self) -> list[str]:
        """Return a line per command whose exit code was not the expected one."""
        return [
            f"{row.label}: exit code {row.measurement.exit_code},"
            f" expected {row.expected_exit}"
            for row in self.rows
            if row.measurement.exit_code != row.expected_exit
        ]


@dataclass(frozen=True)
class Check:
    """One target: what it requires, what was measured, and whether it is met."""

    target: str
    measured: str
    is_met: bool


def check_targets(results: Results) -> list[Check]:
    """Return each target of the benchmark with its measured value."""
    checks = [
        _speedup_check(results),
        _network_check(results),
        _local_cpu_check(results),
        _memory_check(results),
        _requests_check(results),
    ]
    checks += _apply_checks(results)
    checks += _curve_checks(results)
    return checks


def _speedup_check(results: Results) -> Check:
    plan = results.row("Plan, no changes").measurement
    assert results.reference is not None
    speedup = results.reference.wall / plan.wall
    return Check(
        f"no-change plan at least {MIN_SPEEDUP:g}× faster than per-record reads",
        f"{speedup:.1f}× ({results.reference.wall:.2f} s / {plan.wall:.2f} s)",
        speedup >= MIN_SPEEDUP,
    )


def _network_check(results: Results) -> Check:
    read = results.phases["phases"]["read"]["wall"]
    ratio = read / results.lower_bound.seconds
    return Check(
        f"network phase within {MAX_NETWORK_RATIO:g}× of the network lower bound",
        f"{ratio:.2f}× ({read:.2f} s / {results.lower_bound.seconds:.2f} s)",
        ratio <= MAX_NETWORK_RATIO,
    )


def _local_cpu_check(results: Results) -> Check:
    cpu = local_cpu(results.phases)
    phases = results.phases["phases"]
    return Check(
        f"local work at most {MAX_LOCAL_CPU:g} s of CPU, caches cold",
        f"{cpu:.2f} s (plus {phases['import']['cpu']:.2f} s to import the package"
        f" and {phases['links']['cpu']:.2f} s to read the link table)",
        cpu <= MAX_LOCAL_CPU,
    )


def _memory_check(results: Results) -> Check:
    rss = results.row("Plan, no changes").measurement.max_rss_mb or 0.0
    return Check(
        f"peak memory of the no-change plan at most {MAX_RSS_MB:g} MB",
        f"{rss:.0f} MB",
        rss <= MAX_RSS_MB,
    )


def _requests_check(results: Results) -> Check:
    requests = results.row("Plan, no changes").measurement.requests
    needed = results.lower_bound.requests
    return Check(
        "requests of the no-change plan: the pages and programmes needed",
        f"{requests} requests, {needed} needed, for {results.lots:,} lots",
        requests <= needed,
    )


def _apply_checks(results: Results) -> list[Check]:
    applies = [row for row in results.rows if row.label.startswith("Apply")]
    if not applies:
        return []
    row = applies[0]
    rate = results.sizes.rate
    ideal = row.writes / rate
    command = row.measurement.wall / ideal
    writes = row.measurement.write_seconds / ideal
    throttled = sum(apply.measurement.throttled for apply in applies)
    return [
        Check(
            f"apply of {row.writes:,} updates within {MAX_APPLY_RATIO:g}× of"
            f" {row.writes:,} / R = {ideal:.1f} s: whole command, plan included",
            f"{command:.2f}× ({row.measurement.wall:.2f} s)",
            command <= MAX_APPLY_RATIO,
        ),
        Check(
            "the same, from the first write to the last",
            f"{writes:.2f}× ({row.measurement.write_seconds:.2f} s)",
            writes <= MAX_APPLY_RATIO,
        ),
        Check(
            "no 429 from the sandbox during the applies", f"{throttled}", not throttled
        ),
    ]


def _curve_checks(results: Results) -> list[Check]:
    if len(results.curve) < 3:
        return []
    memory = _slopes([(p.lots, p.command.max_rss_mb or 0.0) for p in results.curve])
    cpu = _slopes([(p.lots, p.local_cpu) for p in results.curve])
    return [
        Check(
            "memory grows linearly with lots (MB per 10,000 lots, by segment)",
            ", ".join(f"{slope * 10_000:.1f}" for slope in memory),
            _is_at_most_linear(memory),
        ),
        Check(
            "local work grows at most linearly (CPU s per 10,000 lots, by segment)",
            ", ".join(f"{slope * 10_000:.2f}" for slope in cpu),
            _is_at_most_linear(cpu),
        ),
    ]


def _slopes(points: list[tuple[int, float]]) -> list[float]:
    return [
        (after[1] - before[1]) / (after[0] - before[0])
        for before, after in itertools.pairwise(points)
    ]


def _is_at_most_linear(slopes: list[float]) -> bool:
    return all(slope <= slopes[0] * LINEAR_TOLERANCE for slope in slopes[1:])


# The report


def write_report(results: Results, path: Path, command: str, *, has_plot: bool) -> None:
    """Write the Markdown report of ``results`` to ``path``."""
    lines = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/run.py`; rerun it to refresh this page.",
        "",
        *_setting_lines(results, command),
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *(
            f"| {check.target} | {check.measured} | {'yes' if check.is_met else 'no'} |"
            for check in check_targets(results)
        ),
        "",
        "## Runs",
        "",
        *_run_lines(results),
        "",
        "## Phases of the no-change plan",
        "",
        *_phase_lines(results),
        "",
        "## Size curve",
        "",
        *_curve_lines(results, has_plot),
        "",
        *_method_lines(results),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _setting_lines(results: Results, command: str) -> list[str]:
    sizes = results.sizes
    return [
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} cores ({_cpu_model()}), {_memory_gb():.0f} GB"
        f" of memory, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}",
        f"- Load average when the report was written: {_load_average()}; it"
        " includes any other work on the machine during the run",
        f"- Estate: {results.programmes:,} programme records holding"
        f" {results.lots:,} lots ({sizes.programmes:,} generated programmes of"
        f" {sizes.lots} lots, plus the example manifests)",
        f"- Latency added by the sandbox to every answer: {sizes.latency * 1000:g} ms;"
        f" requests in flight: {sizes.parallelism}; write rate R:"
        f" {sizes.rate:g} per second (client limit and sandbox quota)",
        *_scale_note(results),
    ]


def _scale_note(results: Results) -> list[str]:
    if results.lots >= TARGET_LOTS:
        return []
    return [
        "",
        f"The targets are set for {TARGET_LOTS:,} lots and 20 ms of latency; at this"
        " size they are listed for the shape of the report only.",
    ]


def _run_lines(results: Results) -> list[str]:
    header = [
        "| run | wall (s) | CPU (s) | peak RSS (MB) | requests | 429 | exit code |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    rows = [_measurement_line(row.label, row.measurement, row) for row in results.rows]
    if results.reference is not None:
        rows.insert(
            3,
            _measurement_line(
                f"Reference: per-record reads, {results.sizes.parallelism} in flight",
                results.reference,
                None,
            ),
        )
    bound = results.lower_bound
    rows.insert(
        4,
        f"| Reference: network lower bound | {bound.seconds:.2f} | | |"
        f" {bound.requests} | | |",
    )
    return header + rows + ["", *_ratio_lines(results)]


def _measurement_line(label: str, measurement: Measurement, row: Row | None) -> str:
    rss = "" if measurement.max_rss_mb is None else f"{measurement.max_rss_mb:.0f}"
    exit_code = ""
    if row is not None:
        exit_code = f"{measurement.exit_code} (expected {row.expected_exit})"
        if row.runs > 1:
            label += f" (median of {row.runs})"
    return (
        f"| {label} | {measurement.wall:.2f} | {measurement.cpu:.2f} | {rss} |"
        f" {measurement.requests} | {measurement.throttled} | {exit_code} |"
    )


def _ratio_lines(results: Results) -> list[str]:
    plan = results.row("Plan, no changes").measurement
    lines = []
    if results.reference is not None:
        lines.append(
            f"Per-record reads take {results.reference.wall / plan.wall:.1f}× the"
            f" wall time of the no-change plan, and"
            f" {results.reference.requests / max(1, plan.requests):.0f}× its requests."
        )
    lines.append(
        f"The no-change plan takes {plan.wall / results.lower_bound.seconds:.1f}× the"
        " network lower bound in wall time, its local work included."
    )
    return lines


def _phase_lines(results: Results) -> list[str]:
    phases = results.phases["phases"]
    names = {
        "import": "import the package",
        "load": "load, validate and normalize the manifests",
        "links": "read the link table",
        "read": "read MyNotary (network phase)",
        "plan": "compare (compute the plan)",
        "render": "render the plan as text",
    }
    lines = [
        "Measured in one process by `benchmarks/phases.py`, caches cold"
        f" ({results.phases['requests']} requests).",
        "",
        "| phase | wall (s) | CPU (s) |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {label} | {phases[name]['wall']:.2f} | {phases[name]['cpu']:.2f} |"
        for name, label in names.items()
    ]
    lines.append(
        f"| local work: load, compare, render | | {local_cpu(results.phases):.2f} |"
    )
    return [*lines, "", _largest_phases_line(results)]


def _largest_phases_line(results: Results) -> str:
    phases = results.phases["phases"]
    total = sum(phase["wall"] for phase in phases.values())
    ranked = sorted(phases.items(), key=lambda item: item[1]["wall"], reverse=True)
    shares = ", ".join(
        f"{name} {phase['wall'] / total:.0%}" for name, phase in ranked[:3]
    )
    return f"The phases take {total:.2f} s of wall time in all; the largest: {shares}."


def _curve_lines(results: Results, has_plot: bool) -> list[str]:
    lines = [
        "No-change plans of the first generated programmes. Local work is measured"
        " as in the phases above; the other columns are the `reconciler plan`"
        " command.",
        "",
        "| lots | local work CPU (s) | plan wall (s) | plan CPU (s) | peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {point.lots:,} | {point.local_cpu:.2f} | {point.command.wall:.2f} |"
        f" {point.command.cpu:.2f} | {point.command.max_rss_mb or 0:.0f} |"
        for point in results.curve
    ]
    if has_plot:
        lines += ["", "![Local work and peak memory by lots](benchmarks.png)"]
    else:
        lines += ["", "No plot: matplotlib is missing (`pip install -e '.[bench]'`)."]
    return lines


def _method_lines(results: Results) -> list[str]:
    return [
        "## How it is measured",
        "",
        "- The sandbox runs as `reconciler sandbox serve --latency L --write-quota R`"
        " in its own process, so its CPU is not counted. Its database is seeded"
        " directly with a record per programme and lot, holding the manifest's"
        " values, and the link table links each of them: the no-change plan exits 0"
        " with `--detailed-exitcode`.",
        "- Each command runs as `python -m reconciler …` in a child process of"
        " `benchmarks/rusage.py`, which measures the wall time around it and reads"
        " its CPU time (user and system) and peak RSS from `os.wait4`. Requests and"
        " 429 responses are counted by the sandbox (`GET /_sandbox/stats`). The"
        " phases are timed in one process by `benchmarks/phases.py`, with the"
        " garbage collector set as the command line sets it.",
        "- Plans read with `--rate-limit 0`. Applies run with `--rate-limit 0"
        " --write-rate-limit R`, against a sandbox quota of R writes per second."
        " An apply's wall time includes its plan; the write phase runs from the"
        " first write the sandbox received to the last.",
        "- The per-record reference reads every linked record with"
        " `GET /records/{id}`, as a Terraform refresh does, from an httpx client in"
        " the benchmark's own process, with the same number of requests in flight.",
        "- The network lower bound is the list of programmes plus the list of each"
        f" programme's lots, in pages of {PAGE_SIZE} records, divided by the"
        " requests in flight, times the latency.",
        "- The plan with 1 % of lots changed raises the price of one generated lot"
        " in a hundred. The plan of a new estate plans the same manifests for an"
        " organization that has no record. The apply of creates pushes"
        f" {results.sizes.create_programmes} new programmes of"
        f" {results.sizes.create_lots} lots each.",
    ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f} and {fifteen:.2f} (1, 5 and 15 minutes)"


def _memory_gb() -> float:
    pages = os.sysconf("SC_PHYS_PAGES")
    return float(pages * os.sysconf("SC_PAGE_SIZE")) / 1024**3


# The plot


def write_plot(results: Results, path: Path) -> bool:
    """Write the size curve to ``path`` as a PNG; False if matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False

    # A backend that needs no display.
    matplotlib.use("Agg")
    from matplotlib import pyplot

    lots = [point.lots for point in results.curve]
    figure, (cpu_axes, memory_axes) = pyplot.subplots(1, 2, figsize=(10, 4))
    cpu_axes.plot(lots, [point.local_cpu for point in results.curve], marker="o")
    cpu_axes.axhline(MAX_LOCAL_CPU, color="grey", linestyle="--", label="target")
    cpu_axes.set(
        title="Local work", xlabel="lots", ylabel="CPU seconds", xlim=(0, None)
    )
    cpu_axes.set_ylim(bottom=0)
    memory_axes.plot(
        lots, [point.command.max_rss_mb or 0 for point in results.curve], marker="o"
    )
    memory_axes.axhline(MAX_RSS_MB, color="grey", linestyle="--", label="target")
    memory_axes.set(
        title="Peak memory of the plan", xlabel="lots", ylabel="MB", xlim=(0, None)
    )
    memory_axes.set_ylim(bottom=0)
    for axes in (cpu_axes, memory_axes):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return True
