"""Measure commands and request strategies against a sandbox served in its own process.

The sandbox runs as ``reconciler sandbox serve`` in another process, so its CPU
is not counted as the reconciler's. Each reconciler command runs as a child
process too, under ``benchmarks/rusage.py``, which returns its own wall time, CPU
time and peak memory. The sandbox's ``/_sandbox/stats`` endpoint counts the
requests it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TextIO

import httpx

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Measurement:
    """One run: wall and CPU seconds, peak memory in MB, requests and 429 responses.

    ``write_seconds`` is the time from the first to the last write the sandbox
    received. ``exit_code`` is None for a run inside the benchmark's process.
    """

    wall: float
    cpu: float
    max_rss_mb: float | None
    requests: int
    throttled: int = 0
    write_seconds: float = 0.0
    exit_code: int | None = None


class Sandbox:
    """A sandbox served by ``reconciler sandbox serve`` in ``folder``."""

    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process

    def stats(self) -> dict[str, Any]:
        """Return the request counts since the last reset."""
        response = httpx.get(f"{self.url}/_sandbox/stats", timeout=10)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def reset_stats(self) -> None:
        """Set the request counts back to zero."""
        httpx.delete(f"{self.url}/_sandbox/stats", timeout=10).raise_for_status()


@contextlib.contextmanager
def served_sandbox(
    folder: Path, latency: float, write_quota: float | None, log: TextIO
) -> Iterator[Sandbox]:
    """Serve the sandbox database of ``folder`` on a free port of 127.0.0.1."""
    port = _free_port()
    command = [
        *reconciler_command(),
        "sandbox",
        "serve",
        "--port",
        str(port),
        "--latency",
        str(latency),
    ]
    if write_quota is not None:
        command += ["--write-quota", str(write_quota)]
    process = subprocess.Popen(
        command, cwd=folder, env=clean_environment(), stdout=log, stderr=log
    )
    sandbox = Sandbox(f"http://{HOST}:{port}", process)
    try:
        _wait_until_ready(sandbox)
        yield sandbox
    finally:
        process.terminate()
        process.wait(timeout=30)


def reconciler_command() -> list[str]:
    """Return the command that runs the reconciler of this interpreter."""
    return [sys.executable, "-m", "reconciler"]


def clean_environment() -> dict[str, str]:
    """Return this environment without MyNotary settings, so flags alone count."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MYNOTARY_")
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        port: int = listener.getsockname()[1]
    return port


def _wait_until_ready(sandbox: Sandbox) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if sandbox.process.poll() is not None:
            raise RuntimeError("the sandbox process stopped during startup")
        try:
            sandbox.stats()
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the sandbox did not start within {STARTUP_TIMEOUT} s"
                ) from None
            time.sleep(0.05)


def measure_command(
    arguments: Sequence[str], folder: Path, sandbox: Sandbox, output: Path
) -> Measurement:
    """Run ``reconciler ARGUMENTS`` in ``folder``; its output goes to ``output``.

    The command runs under ``benchmarks/rusage.py``, which measures it.
    """
    sandbox.reset_stats()
    result_path = output.with_suffix(".rusage.json")
    wrapper = Path(__file__).with_name("rusage.py")
    command = [*reconciler_command(), *arguments]
    with output.open("wb") as sink:
        subprocess.run(
            [sys.executable, str(wrapper), str(result_path), *command],
            cwd=folder,
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            check=False,
        )
    usage = json.loads(result_path.read_text(encoding="utf-8"))

    stats = sandbox.stats()
    return Measurement(
        wall=usage["wall"],
        cpu=usage["cpu"],
        max_rss_mb=usage["maxRssMb"],
        requests=stats["requests"],
        throttled=stats["statuses"].get("429", 0),
        write_seconds=stats["writeSeconds"],
        exit_code=usage["exitCode"],
    )


def measure_phases(
    arguments: Sequence[str], folder: Path, sandbox: Sandbox
) -> dict[str, Any]:
    """Run ``benchmarks/phases.py ARGUMENTS`` and return what it printed."""
    sandbox.reset_stats()
    script = Path(__file__).with_name("phases.py")
    completed = subprocess.run(
        [sys.executable, str(script), *arguments],
        cwd=folder,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    result["requests"] = sandbox.stats()["requests"]
    return result


def measure_per_record_reads(
    sandbox: Sandbox, record_ids: Sequence[int], parallelism: int
) -> Measurement:
    """Read every record by id, ``parallelism`` requests at a time.

    This is the refresh of a Terraform provider: one read per resource, ten at a
    time by default. It runs in the benchmark's process, so its CPU time is the
    benchmark's own during the reads and it has no peak memory of its own.
    """
    sandbox.reset_stats()
    started = time.perf_counter()
    cpu = time.process_time()
    asyncio.run(_read_each(sandbox.url, record_ids, parallelism))
    measurement = Measurement(
        wall=time.perf_counter() - started,
        cpu=time.process_time() - cpu,
        max_rss_mb=None,
        requests=sandbox.stats()["requests"],
    )
    return measurement


async def _read_each(url: str, record_ids: Sequence[int], parallelism: int) -> None:
    slots = asyncio.Semaphore(parallelism)
    limits = httpx.Limits(max_connections=parallelism)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def read(record_id: int) -> None:
            async with slots:
                response = await client.get(f"/records/{record_id}")
                response.raise_for_status()

        await asyncio.gather(*(read(record_id) for record_id in record_ids))
