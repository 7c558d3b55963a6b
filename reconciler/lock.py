"""The lock of a target: one process at a time writes its link table.

The lock is a file beside the link table (``links.yaml.lock``) holding JSON: the
lock id, host, process id, start time and target. It appears whole and at once:
the holder writes a temporary file, takes an exclusive ``flock`` on it, and links
it to the lock path, which fails if the path exists. The holder keeps the ``flock``
until it removes the file, so the kernel frees it when the holder dies, even by
SIGKILL.

A lock is stale when it was taken on this host, its ``flock`` is free and its
process is gone. A process that finds a stale lock removes it and takes the lock.
It removes the file only while holding the file's ``flock`` and only if the path
still names that file, so two processes that find the same stale lock cannot
remove a fresh one. A lock taken on another host is never judged stale:
``reconciler force-unlock LOCK_ID`` removes it.

NOTE: ``flock`` and ``os.link`` need a POSIX system and a local file system;
on NFS, ``flock`` may not see locks taken by another host.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from reconciler.errors import ReconcilerError

logger = logging.getLogger(__name__)

# Seconds between two looks at a held lock.
POLL_INTERVAL = 0.1


class LockError(ReconcilerError):
    """The lock of a target could not be taken or released."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock: id, host, process id, start (UTC ISO 8601) and target.

    ``process_started`` is the holder's process creation time (seconds since the
    epoch), which distinguishes a live holder from a later process with the same id.
    """

    id: str
    host: str
    pid: int
    started_at: str
    target: str
    process_started: float | None = None

    def describe(self) -> str:
        """Return who holds the lock, for messages."""
        return (
            f"process {self.pid} on host {self.host}, started {self.started_at}"
            f" (lock id {self.id})"
        )

    @classmethod
    def from_json(cls, data: Any) -> LockInfo:
        if not isinstance(data, dict):
            raise ValueError("the lock file does not hold a JSON object")
        return cls(
            id=str(data["id"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            started_at=str(data["started_at"]),
            target=str(data["target"]),
            process_started=data.get("process_started"),
        )


def lock_path_for(links_path: Path) -> Path:
    """Return the lock file of the link table at ``links_path``."""
    return links_path.with_name(links_path.name + ".lock")


class TargetLock:
    """A lock held on one link table; release it with ``release``."""

    def __init__(self, path: Path, info: LockInfo, descriptor: int) -> None:
        self.path = path
        self.info = info
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        """Remove the lock file, then free its ``flock``."""
        if self._descriptor is None:
            return
        try:
            if _names_file(self.path, self._descriptor):
                self.path.unlink()
        finally:
            os.close(self._descriptor)
            self._descriptor = None


@contextlib.contextmanager
def hold_lock(
    links_path: Path,
    target: str,
    *,
    timeout: float,
    on_wait: Callable[[LockInfo], None] | None = None,
) -> Iterator[TargetLock]:
    """Take the lock of the link table at ``links_path`` for the block's duration.

    Waits up to ``timeout`` seconds for another holder, calling ``on_wait`` once
    with its info, then raises LockError naming it.
    """
    lock = acquire_lock(links_path, target, timeout=timeout, on_wait=on_wait)
    try:
        yield lock
    finally:
        lock.release()


def acquire_lock(
    links_path: Path,
    target: str,
    *,
    timeout: float,
    on_wait: Callable[[LockInfo], None] | None = None,
) -> TargetLock:
    """Take the lock of the link table at ``links_path``; see ``hold_lock``."""
    path = lock_path_for(links_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    waited_for: LockInfo | None = None

    while True:
        lock = _try_create(path, target)
        if lock is not None:
            return lock

        holder = _read_holder(path)
        if holder is None or _remove_if_stale(path, holder):
            continue

        if time.monotonic() >= deadline:
            raise _held_error(links_path, holder, timeout)
        if waited_for != holder and on_wait is not None:
            on_wait(holder)
        waited_for = holder
        time.sleep(POLL_INTERVAL)


def read_lock(links_path: Path) -> LockInfo | None:
    """Return who holds the lock of the link table at ``links_path``, if anyone."""
    return _read_holder(lock_path_for(links_path))


def force_unlock(links_path: Path, lock_id: str) -> LockInfo:
    """Remove the lock of the link table at ``links_path`` if its id is ``lock_id``.

    Returns the removed lock's info. Raises LockError if there is no lock, if it
    has another id, or if its process still runs on this host.
    """
    path = lock_path_for(links_path)
    holder = _read_holder(path)
    if holder is None:
        raise LockError(f"{links_path} is not locked: there is no {path}")
    if holder.id != lock_id:
        raise LockError(
            f"{links_path} is locked by {holder.describe()}, not with lock id"
            f" {lock_id}; check the id and run force-unlock again"
        )
    if holder.host == socket.gethostname() and is_process_alive(holder):
        raise LockError(
            f"{links_path} is locked by {holder.describe()}, which still runs;"
            " let it end or stop it, then run force-unlock again"
        )

    path.unlink(missing_ok=True)
    logger.warning("removed the lock of %s held by %s", links_path, holder.describe())
    return holder


def is_process_alive(info: LockInfo) -> bool:
    """Tell whether the lock's process still runs on this host."""
    try:
        process = psutil.Process(info.pid)
        created = float(process.create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True

    if info.process_started is None:
        return True
    # Creation times are rounded differently across reads; a pid given to a new
    # process differs by far more than this.
    return abs(created - float(info.process_started)) < 1.0


def _try_create(path: Path, target: str) -> TargetLock | None:
    info = _new_info(target)
    temporary = path.with_name(f"{path.name}.{info.id}.tmp")
    descriptor = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        _write_all(descriptor, json.dumps(asdict(info), sort_keys=True).encode())
        os.fsync(descriptor)
        os.link(temporary, path)
    except FileExistsError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    finally:
        temporary.unlink(missing_ok=True)

    return TargetLock(path, info, descriptor)


def _new_info(target: str) -> LockInfo:
    process = psutil.Process()
    return LockInfo(
        id=str(uuid.uuid4()),
        host=socket.gethostname(),
        pid=os.getpid(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        target=target,
        process_started=process.create_time(),
    )


def _read_holder(path: Path) -> LockInfo | None:
    """Return the lock's info, or None if the lock vanished while being read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None

    try:
        return LockInfo.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise LockError(
            f"the lock file {path} is unreadable ({error}); if no apply is running,"
            " delete it"
        ) from None


def _remove_if_stale(path: Path, holder: LockInfo) -> bool:
    """Remove the lock at ``path`` if ``holder`` is stale; tell whether it did."""
    if holder.host != socket.gethostname():
        return False

    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        return _remove_locked_stale(path, holder, descriptor)
    finally:
        os.close(descriptor)


def _remove_locked_stale(path: Path, holder: LockInfo, descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False

    if not _names_file(path, descriptor):
        # Another process removed the stale lock first; look again.
        return True
    if is_process_alive(holder):
        return False

    path.unlink()
    logger.warning(
        "removed the stale lock of %s, left by %s, which is gone",
        path,
        holder.describe(),
    )
    return True


def _names_file(path: Path, descriptor: int) -> bool:
    """Tell whether ``path`` still names the file open as ``descriptor``."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _write_all(descriptor: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def _held_error(links_path: Path, holder: LockInfo, timeout: float) -> LockError:
    return LockError(
        f"the link table {links_path} is locked by another run: {holder.describe()};"
        f" waited {timeout:g} s. Wait for it to end and run again (or pass"
        " --lock-timeout), or, if that process is gone, run"
        f" `reconciler force-unlock {holder.id}`"
    )
