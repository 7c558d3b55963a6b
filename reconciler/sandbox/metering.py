"""Request counts and a write quota for the sandbox served over HTTP.

``Metering`` is an ASGI middleware, outermost around the sandbox app. It counts the
requests by method and the responses by status, and serves the counts at
``GET /_sandbox/stats`` (``DELETE`` sets them back to zero). That endpoint belongs
to the sandbox alone, for benchmarks and tests: MyNotary has no such endpoint.

With a write quota of R, creates and updates go through a token bucket of R
tokens, refilled at R tokens per second: a burst of R writes passes, then R per
second. A write that finds the bucket empty gets 429 at once, with a
``Retry-After`` in whole seconds, and is not handled. Reads are never limited.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp
from starlette.types import Message
from starlette.types import Receive
from starlette.types import Scope
from starlette.types import Send

from reconciler.sandbox.store import dumps_json

STATS_PATH = "/_sandbox/stats"

_WRITE_METHODS = frozenset({"POST", "PATCH"})


class TokenBucket:
    """``rate`` tokens per second, at most ``rate`` held; starts full.

    ``clock`` returns seconds from any fixed point (``time.monotonic``).
    """

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError(f"the write quota ({rate}) must be positive")
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> float | None:
        """Take one token; return None, or the seconds until a token is free."""
        with self._lock:
            now = self._clock()
            refill = (now - self._updated) * self.rate
            self._tokens = min(self.rate, self._tokens + refill)
            self._updated = now

            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return (1 - self._tokens) / self.rate


@dataclass
class _Window:
    """When the first and the last write arrived, in ``time.monotonic`` seconds."""

    first: float | None = None
    last: float | None = None

    def note(self, moment: float) -> None:
        if self.first is None:
            self.first = moment
        self.last = moment

    @property
    def seconds(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return self.last - self.first


class Metering:
    """ASGI middleware that counts requests and enforces the write quota, if any.

    ``write_quota`` is in writes per second, None for no quota.
    """

    def __init__(self, app: ASGIApp, write_quota: float | None = None) -> None:
        self._app = app
        self._bucket = None if write_quota is None else TokenBucket(write_quota)
        self._lock = threading.Lock()
        self._methods: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._writes = _Window()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if scope["path"] == STATS_PATH:
            await self._answer_stats(scope, send)
            return

        method = scope["method"]
        is_write = method in _WRITE_METHODS
        with self._lock:
            self._methods[method] += 1
            if is_write:
                self._writes.note(time.monotonic())

        wait = self._bucket.take() if is_write and self._bucket else None
        if wait is not None:
            await self._throttle(wait, send)
            return
        await self._app(scope, receive, self._counting(send))

    def stats(self) -> dict[str, Any]:
        """Return the counts since the start or the last reset."""
        with self._lock:
            return {
                "requests": sum(self._methods.values()),
                "methods": dict(sorted(self._methods.items())),
                "statuses": {
                    str(status): count
                    for status, count in sorted(self._statuses.items())
                },
                "writeSeconds": round(self._writes.seconds, 6),
                "writeQuota": None if self._bucket is None else self._bucket.rate,
            }

    def reset(self) -> None:
        """Set every count back to zero."""
        with self._lock:
            self._methods.clear()
            self._statuses.clear()
            self._writes = _Window()

    def _counting(self, send: Send) -> Send:
        async def count(message: Message) -> None:
            if message["type"] == "http.response.start":
                with self._lock:
                    self._statuses[message["status"]] += 1
            await send(message)

        return count

    async def _throttle(self, wait: float, send: Send) -> None:
        # Retry-After takes whole seconds (RFC 9110, section 10.2.3).
        retry_after = str(max(1, math.ceil(wait)))
        body = {
            "error": "rate_limited",
            "message": f"write quota of {self._bucket_rate():g} per second reached",
        }
        await _send_json(self._counting(send), 429, body, {"retry-after": retry_after})

    def _bucket_rate(self) -> float:
        return 0.0 if self._bucket is None else self._bucket.rate

    async def _answer_stats(self, scope: Scope, send: Send) -> None:
        method = scope["method"]
        if method == "DELETE":
            self.reset()
        elif method != "GET":
            body = {"error": "method_not_allowed", "message": f"{method} {STATS_PATH}"}
            await _send_json(send, 405, body, {"allow": "GET, DELETE"})
            return
        await _send_json(send, 200, self.stats(), {})


async def _send_json(
    send: Send, status: int, body: dict[str, Any], extra_headers: dict[str, str]
) -> None:
    content = dumps_json(body).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *((name.encode(), value.encode()) for name, value in extra_headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
