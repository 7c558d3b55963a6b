"""The lock of a target's link table: holders, waits, stale locks, force-unlock, and
two applies started together."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import clean_environment
from resilience import API_KEY
from resilience import find_inconsistencies
from resilience import sandbox_settings
from resilience import write_estate

from reconciler.audit import audit_path_for
from reconciler.audit import read_audit_log
from reconciler.lock import LockError
from reconciler.lock import LockInfo
from reconciler.lock import acquire_lock
from reconciler.lock import force_unlock
from reconciler.lock import hold_lock
from reconciler.lock import lock_path_for
from reconciler.lock import read_lock
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import running_sandbox

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the lock needs flock")

TARGET = "http://127.0.0.1:1 (organization 1)"

# Seconds a subprocess may run before the test fails instead of hanging.
PROCESS_TIMEOUT = 60


def write_lock(links_path: Path, **fields: object) -> LockInfo:
    """Write a lock file as a process that is gone would have left it."""
    info = {
        "id": "lock-left-behind",
        "host": socket.gethostname(),
        "pid": finished_pid(),
        "started_at": "2024-06-11T08:00:00+00:00",
        "target": TARGET,
        "process_started": 0.0,
        **fields,
    }
    lock_path_for(links_path).write_text(json.dumps(info), encoding="utf-8")
    return LockInfo.from_json(info)


def finished_pid() -> int:
    """Return the id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_lock_file_names_holder(tmp_path: Path) -> None:
    links_path = tmp_path / "links.yaml"

    with hold_lock(links_path, TARGET, timeout=0) as lock:
        holder = read_lock(links_path)

    assert holder == lock.info
    assert holder is not None
    assert holder.pid == os.getpid()
    assert holder.host == socket.gethostname()
    assert holder.target == TARGET
    assert not lock_path_for(links_path).exists()


def test_lock_held_fails_after_timeout(tmp_path: Path) -> None:
    links_path = tmp_path / "links.yaml"
    waited: list[LockInfo] = []

    with hold_lock(links_path, TARGET, timeout=0) as lock:
        started = time.monotonic()
        with pytest.raises(LockError) as caught:
            acquire_lock(links_path, TARGET, timeout=0.3, on_wait=waited.append)
        elapsed = time.monotonic() - started

    info = lock.info
    assert str(caught.value) == (
        f"the link table {links_path} is locked by another run: process {info.pid}"
        f" on host {info.host}, started {info.started_at} (lock id {info.id});"
        " waited 0.3 s. Wait for it to end and run again (or pass --lock-timeout),"
        f" or, if that process is gone, run `reconciler force-unlock {info.id}`"
    )
    assert waited == [info]
    assert elapsed >= 0.3


def test_lock_taken_when_released(tmp_path: Path) -> None:
    links_path = tmp_path / "links.yaml"
    first = acquire_lock(links_path, TARGET, timeout=0)
    releaser = threading.Timer(0.3, first.release)
    releaser.start()

    second = acquire_lock(links_path, TARGET, timeout=10)
    releaser.join()

    assert read_lock(links_path) == second.info
    assert second.info.id != first.info.id
    second.release()


def test_lock_stale_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    links_path = tmp_path / "links.yaml"
    stale = write_lock(links_path)

    with (
        caplog.at_level(logging.WARNING, logger="reconciler.lock"),
        hold_lock(links_path, TARGET, timeout=0) as lock,
    ):
        holder = read_lock(links_path)

    assert holder == lock.info
    assert caplog.messages == [
        f"removed the stale lock of {lock_path_for(links_path)}, left by"
        f" {stale.describe()}, which is gone"
    ]


def test_lock_other_host_kept(tmp_path: Path) -> None:
    links_path = tmp_path / "links.yaml"
    write_lock(links_path, host="another-host.invalid")

    with pytest.raises(LockError) as caught:
        acquire_lock(links_path, TARGET, timeout=0)

    assert "process" in str(caught.value)
    assert "on host another-host.invalid" in str(caught.value)
    assert lock_path_for(links_path).exists()


def test_lock_force_unlock(tmp_path: Path) -> None:
    links_path = tmp_path / "links.yaml"
    left = write_lock(links_path, host="another-host.invalid")

    removed = force_unlock(links_path, "lock-left-behind")

    assert removed == left
    assert not lock_path_for(links_path).exists()


def test_lock_force_unlock_wrong_id(tmp_path: Path) -> None:
    links_path = tmp_path / "links.yaml"
    left = write_lock(links_path)

    with pytest.raises(LockError) as caught:
        force_unlock(links_path, "another-id")

    assert str(caught.value) == (
        f"{links_path} is locked by {left.describe()}, not with lock id another-id;"
        " check the id and run force-unlock again"
    )
    assert lock_path_for(links_path).exists()


def test_lock_force_unlock_live_holder(tmp_path: Path) -> None:
    links_path = tmp_path / "links.yaml"

    with hold_lock(links_path, TARGET, timeout=0) as lock:
        with pytest.raises(LockError) as caught:
            force_unlock(links_path, lock.info.id)
        still_locked = lock_path_for(links_path).exists()

    assert str(caught.value).endswith(
        "which still runs; let it end or stop it, then run force-unlock again"
    )
    assert still_locked


def test_lock_force_unlock_command(tmp_path: Path) -> None:
    links_path = tmp_path / "links.yaml"
    left = write_lock(links_path, host="another-host.invalid")
    command = [
        str(Path(sys.executable).with_name("reconciler")),
        "force-unlock",
        "lock-left-behind",
        *("--url", "http://127.0.0.1:9", "--organization", "1", "--user", "1"),
        *("--links", str(links_path)),
    ]

    completed = subprocess.run(
        command,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == (
        f"Lock lock-left-behind of {links_path} removed; it was held by"
        f" {left.describe()}.\n"
    )
    assert not lock_path_for(links_path).exists()


# Two applies on one target


def start_apply(url: str, workdir: Path, *options: str) -> subprocess.Popen[str]:
    command = [
        str(Path(sys.executable).with_name("reconciler")),
        "apply",
        "manifests",
        "--auto-approve",
        *("--url", url, "--organization", "1", "--user", "1"),
        *("--links", "state/links.yaml", "--parallelism", "2"),
        *options,
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


@pytest.mark.parametrize("lock_timeout", ["0", "60"])
def test_lock_two_applies(tmp_path: Path, lock_timeout: str) -> None:
    manifests = write_estate(tmp_path / "manifests")
    links_path = tmp_path / "state" / "links.yaml"
    database = tmp_path / "sandbox.db"

    with running_sandbox(database, API_KEY, FaultConfig(latency=0.08)) as sandbox:
        processes = [
            start_apply(sandbox.url, tmp_path, "--lock-timeout", lock_timeout)
            for _ in range(2)
        ]
        outputs = [
            process.communicate(timeout=PROCESS_TIMEOUT) for process in processes
        ]
        settings = sandbox_settings(sandbox.url, links_path)

    codes = sorted(process.returncode for process in processes)
    creates = Counter(
        entry["upId"]
        for entry in read_audit_log(audit_path_for(links_path))
        if entry["action"] == "create"
    )
    holder = f"is locked by another run: process {processes[0].pid}"
    other = f"is locked by another run: process {processes[1].pid}"
    errors = [stderr for _, stderr in outputs if holder in stderr or other in stderr]
    assert codes == ([0, 0] if lock_timeout == "60" else [0, 1])
    assert len(errors) == (0 if lock_timeout == "60" else 1)
    assert all(f"on host {socket.gethostname()}, started " in text for text in errors)
    assert set(creates.values()) == {1}
    assert find_inconsistencies(database, manifests, links_path, settings) == []
