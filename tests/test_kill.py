"""Applies killed (SIGKILL) or interrupted (SIGINT) at random points, then run again.

Each apply runs the ``reconciler`` command in a subprocess against the sandbox
served on 127.0.0.1, whose responses are delayed so that an apply lasts about a
second. After the kill, an apply run again must converge: MyNotary holds exactly
the manifests' records, without duplicates, every record is linked, and the audit
log accounts for every record.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import clean_environment
from resilience import API_KEY
from resilience import apply_in_process
from resilience import find_inconsistencies
from resilience import sandbox_settings
from resilience import store_records
from resilience import write_estate

from reconciler.audit import audit_path_for
from reconciler.audit import read_audit_log
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.lock import lock_path_for
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import running_sandbox

pytestmark = pytest.mark.skipif(
    os.name != "posix", reason="SIGKILL, SIGINT and the lock's flock need POSIX"
)

KILL_POINTS = 24
KILL_SEED = 20240611

# Seconds each response is delayed. With one change at a time, an apply of the
# estate then takes about a second after the interpreter has started.
LATENCY = FaultConfig(latency=0.04)

# Seconds a subprocess may run before the test fails instead of hanging.
PROCESS_TIMEOUT = 60


def start_apply(url: str, workdir: Path) -> subprocess.Popen[str]:
    """Start ``reconciler apply --auto-approve`` on the estate in ``workdir``."""
    command = [
        str(Path(sys.executable).with_name("reconciler")),
        "apply",
        "manifests",
        "--auto-approve",
        *("--url", url, "--organization", "1", "--user", "1"),
        *("--links", "state/links.yaml", "--parallelism", "1"),
    ]
    return subprocess.Popen(
        command,
        cwd=workdir,
        env=clean_environment(MYNOTARY_API_KEY=API_KEY),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def time_one_apply(tmp_path: Path) -> float:
    """Return the seconds that one apply of a fresh estate takes, start to end."""
    workdir = tmp_path / "timing"
    write_estate(workdir / "manifests")
    with running_sandbox(workdir / "sandbox.db", API_KEY, LATENCY) as sandbox:
        started = time.monotonic()
        process = start_apply(sandbox.url, workdir)
        process.communicate(timeout=PROCESS_TIMEOUT)
        elapsed = time.monotonic() - started

    assert process.returncode == 0
    return elapsed


def test_kill_at_random_points(tmp_path: Path) -> None:
    duration = time_one_apply(tmp_path)
    delays = random.Random(KILL_SEED).sample(range(1, 1000), KILL_POINTS)

    for point, permille in enumerate(sorted(delays)):
        delay = duration * permille / 1000
        workdir = tmp_path / f"point-{point}"
        manifests = write_estate(workdir / "manifests")
        links_path = workdir / "state" / "links.yaml"
        database = workdir / "sandbox.db"

        with running_sandbox(database, API_KEY, LATENCY) as sandbox:
            process = start_apply(sandbox.url, workdir)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=PROCESS_TIMEOUT)

            settings = sandbox_settings(sandbox.url, links_path)
            again = apply_in_process(settings, workdir / "manifests")

        where = f"killed after {delay:.2f} s (point {point})"
        assert again.code == 0, f"{where}: {again.stdout}{again.stderr}"
        assert not lock_path_for(links_path).exists(), where
        assert find_inconsistencies(database, manifests, links_path, settings) == [], (
            where
        )


def test_kill_sigint_mid_apply(tmp_path: Path) -> None:
    manifests = write_estate(tmp_path / "manifests")
    links_path = tmp_path / "state" / "links.yaml"
    database = tmp_path / "sandbox.db"

    with running_sandbox(database, API_KEY, FaultConfig(latency=0.1)) as sandbox:
        process = start_apply(sandbox.url, tmp_path)
        wait_for_audit_lines(audit_path_for(links_path), process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)

        settings = sandbox_settings(sandbox.url, links_path)
        links = LinkTable.load(links_path, settings.target)
        records = store_records(database)
        linked = [link for link in links if link.state is LinkState.LINKED]
        again = apply_in_process(settings, tmp_path / "manifests")

    summary = [line for line in stdout.splitlines() if line.startswith("Apply ")]
    assert process.returncode == 130, stderr
    assert len(summary) == 1
    assert summary[0].startswith("Apply interrupted: ")
    assert not summary[0].endswith(" 0 not attempted.")
    assert not links.journal_path.exists()
    assert not lock_path_for(links_path).exists()
    assert len(linked) == len(records)
    assert again.code == 0
    assert find_inconsistencies(database, manifests, links_path, settings) == []


def wait_for_audit_lines(path: Path, process: subprocess.Popen[str]) -> None:
    """Return once the apply wrote its first audit line, so that it is applying."""
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while not read_audit_log(path):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the apply wrote no audit line; it exited {process.poll()}")
        time.sleep(0.02)
