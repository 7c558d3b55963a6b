"""A tiny run of the benchmark script: every measurement runs and is reported.

The full benchmark is not part of the suite (it takes minutes); its results are in
docs/benchmarks.md. This run checks the script, not the speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "benchmarks" / "run.py"

ROWS = (
    "| Plan, no changes |",
    "| Plan, 1 % of lots changed |",
    "| Plan, new estate (all creates) |",
    "| Reference: per-record reads, 10 in flight |",
    "| Reference: network lower bound |",
    "| Apply, 20 updates |",
    "| Apply, 20 creates |",
)
PHASES = (
    "| import the package |",
    "| load, validate and normalize the manifests |",
    "| read the link table |",
    "| read MyNotary (network phase) |",
    "| compare (compute the plan) |",
    "| render the plan as text |",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--output-dir", str(output)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return output


def _lines(report: Path) -> list[str]:
    return (report / "benchmarks.md").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("row", ROWS)
def test_benchmark_smoke_run_rows(report: Path, row: str) -> None:
    assert any(line.startswith(row) for line in _lines(report))


@pytest.mark.parametrize("row", PHASES)
def test_benchmark_smoke_phase_rows(report: Path, row: str) -> None:
    assert any(line.startswith(row) for line in _lines(report))


def test_benchmark_smoke_exit_codes(report: Path) -> None:
    runs = [line for line in _lines(report) if line.startswith(("| Plan", "| Apply"))]

    assert len(runs) == 5
    assert all("(expected " in line for line in runs)
    assert [line.split("|")[-2].split()[0] for line in runs] == [
        "0",
        "2",
        "2",
        "0",
        "0",
    ]


def test_benchmark_smoke_targets(report: Path) -> None:
    lines = _lines(report)
    start = lines.index("## Targets")
    end = lines.index("## Runs")
    targets = [line for line in lines[start + 4 : end] if line.startswith("| ")]

    assert len(targets) == 10
    assert lines[start + 2] == "| target | measured | met |"


def test_benchmark_smoke_curve(report: Path) -> None:
    lines = _lines(report)
    start = lines.index("## Size curve")
    header = (
        "| lots | local work CPU (s) | plan wall (s) | plan CPU (s) | peak RSS (MB) |"
    )

    assert lines[start + 4] == header
    assert [line.split("|")[1].strip() for line in lines[start + 6 : start + 9]] == [
        "10",
        "20",
        "40",
    ]


def test_benchmark_smoke_plot(report: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")

    assert (report / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
