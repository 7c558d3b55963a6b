"""Run the sandbox over HTTP with uvicorn, in the foreground or in a test's thread.

With a ``FaultConfig`` whose faults are on, the app is wrapped in a
``FaultInjector`` that injects them. Outermost, ``Metering`` counts requests
(``GET /_sandbox/stats``) and enforces the write quota, if one is set.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from reconciler.sandbox.app import create_app
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.faults import FaultInjector
from reconciler.sandbox.faults import quiet_dropped_connections
from reconciler.sandbox.metering import Metering
from reconciler.sandbox.store import RecordStore

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

# Seconds to wait for a background server to start, and for open requests to end
# when it stops.
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 5.0


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox served in a background thread: its URL and its fault injector."""

    url: str
    injector: FaultInjector | None


def serve(
    db_path: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    faults: FaultConfig | None = None,
    write_quota: float | None = None,
) -> None:
    """Serve the sandbox over the database ``db_path`` until interrupted.

    ``write_quota`` is the creates and updates accepted per second, None for no
    limit.
    """
    with RecordStore(db_path) as store:
        app, _ = _build_app(store, api_key, faults, write_quota)
        uvicorn.run(app, host=host, port=port, lifespan="off", ws="none")


@contextmanager
def running_server(
    db_path: str | Path,
    api_key: str | None = None,
    faults: FaultConfig | None = None,
    write_quota: float | None = None,
) -> Iterator[str]:
    """Run the sandbox on 127.0.0.1 in a background thread and yield its base URL.

    The port is a free one chosen by the system. The server accepts connections
    when the URL is yielded, and is stopped, its thread joined and the store closed
    when the block exits.
    """
    with running_sandbox(db_path, api_key, faults, write_quota) as sandbox:
        yield sandbox.url


@contextmanager
def running_sandbox(
    db_path: str | Path,
    api_key: str | None = None,
    faults: FaultConfig | None = None,
    write_quota: float | None = None,
) -> Iterator[RunningSandbox]:
    """Run the sandbox as ``running_server`` does; yield its URL and fault injector."""
    with RecordStore(db_path) as store, closing(_bind_local_socket()) as listener:
        app, injector = _build_app(store, api_key, faults, write_quota)
        config = uvicorn.Config(
            app,
            lifespan="off",
            ws="none",
            log_level="warning",
            timeout_graceful_shutdown=int(SHUTDOWN_TIMEOUT),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [listener]},
            name="sandbox-server",
            daemon=True,
        )

        port = listener.getsockname()[1]
        thread.start()
        try:
            _wait_until_started(server, thread)
            yield RunningSandbox(f"http://{DEFAULT_HOST}:{port}", injector)
        finally:
            server.should_exit = True
            thread.join()


def _build_app(
    store: RecordStore,
    api_key: str | None,
    faults: FaultConfig | None,
    write_quota: float | None = None,
) -> tuple[ASGIApp, FaultInjector | None]:
    app: ASGIApp = create_app(store, api_key=api_key)
    injector = None
    if faults is not None and faults.is_active:
        quiet_dropped_connections()
        injector = FaultInjector(app, faults)
        app = injector

    return Metering(app, write_quota), injector


def _bind_local_socket() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((DEFAULT_HOST, 0))
        listener.listen()
    except OSError:
        listener.close()
        raise
    return listener


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT

    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the sandbox server thread stopped during startup")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the sandbox server did not start within {STARTUP_TIMEOUT} s"
            )
        time.sleep(0.01)
