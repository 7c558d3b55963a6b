"""Faults that the sandbox injects in its responses, to test the client's resilience.

``FaultInjector`` is an ASGI middleware around the sandbox app. For each request it
draws one fault from a random generator seeded by the fault seed, the request (method,
path, query, body) and how many times the same request came before. Two runs that
send the same requests therefore get the same faults, whatever the order in which
concurrent requests arrive.

Faults, each with its share of requests (the shares add up to at most 1):

- ``error-rate``: 500, 502 or 503, before the request is handled.
- ``throttle-rate``: 429 with ``Retry-After`` (seconds or an HTTP date), before the
  request is handled.
- ``hang-rate``: no response for ``hang-seconds``, then the connection is closed.
- ``drop-rate``: the connection is closed without an answer.
- ``ambiguous-rate``: a create or an update is committed, then answered 504.

A hang or a drop comes, with even odds, before the request is handled or after it
was committed with its answer thrown away. A request is never committed after the
fault, so a client that timed out and looks the record up sees the final state.
``latency`` delays every answer. ``list-total-offset`` and ``list-short-page``
corrupt list answers on every list request, to test the client's count checks.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path
from time import time
from typing import Any

import yaml
from starlette.types import ASGIApp
from starlette.types import Message
from starlette.types import Receive
from starlette.types import Scope
from starlette.types import Send

from reconciler.sandbox.store import dumps_json
from reconciler.sandbox.store import loads_json

_SERVER_ERROR_STATUSES = (500, 502, 503)
_WRITE_METHODS = frozenset({"POST", "PATCH"})
_RATE_FIELDS = (
    "error_rate",
    "throttle_rate",
    "hang_rate",
    "drop_rate",
    "ambiguous_rate",
)


class FaultConfigError(ValueError):
    """A fault setting is invalid: unknown, of the wrong type or out of range."""


class RetryAfterFormat(enum.Enum):
    SECONDS = "seconds"
    DATE = "date"


@dataclass(frozen=True)
class FaultConfig:
    """Which faults the sandbox injects, and how often (shares between 0 and 1).

    Times are in seconds. ``list_short_page`` is the first page number (from 1)
    whose list response has half its records; 0 turns it off.
    """

    seed: int = 0
    latency: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after: int = 1
    retry_after_format: RetryAfterFormat = RetryAfterFormat.SECONDS
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    drop_rate: float = 0.0
    ambiguous_rate: float = 0.0
    list_total_offset: int = 0
    list_short_page: int = 0

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise FaultConfigError(f"{_option(name)} must be between 0 and 1")
        if sum(getattr(self, name) for name in _RATE_FIELDS) > 1:
            rates = ", ".join(_option(name) for name in _RATE_FIELDS)
            raise FaultConfigError(f"{rates} must add up to at most 1")
        for name in ("latency", "retry_after", "hang_seconds"):
            if getattr(self, name) < 0:
                raise FaultConfigError(f"{_option(name)} must not be negative")
        if self.list_short_page < 0:
            raise FaultConfigError(f"{_option('list_short_page')} must not be negative")

    @property
    def is_active(self) -> bool:
        """Whether any fault or latency is on."""
        return self != FaultConfig(seed=self.seed)


def load_fault_config(
    path: Path | None, overrides: Mapping[str, Any] | None = None
) -> FaultConfig:
    """Read a fault config from a YAML file, then apply ``overrides``.

    File keys are the option names (``error-rate``); ``overrides`` is keyed by
    field name, and its None values are ignored. Raises FaultConfigError.
    """
    settings: dict[str, Any] = {}
    if path is not None:
        settings.update(_read_file(path))
    for name, value in (overrides or {}).items():
        if value is not None:
            settings[name] = value
    return _build(settings, str(path) if path else "options")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise FaultConfigError(f"can't read fault config {path}: {error}") from None

    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FaultConfigError(f"fault config {path} must be a mapping of options")

    known = {_option(field.name): field.name for field in fields(FaultConfig)}
    settings = {}
    for key, value in data.items():
        if key not in known:
            raise FaultConfigError(
                f"fault config {path}: unknown option {key!r};"
                f" expected one of {', '.join(sorted(known))}"
            )
        settings[known[key]] = value
    return settings


def _build(settings: dict[str, Any], source: str) -> FaultConfig:
    converted: dict[str, Any] = {}
    for field in fields(FaultConfig):
        if field.name in settings:
            converted[field.name] = _convert(field.name, settings[field.name], source)
    return replace(FaultConfig(), **converted)


def _convert(name: str, value: Any, source: str) -> Any:
    expected = type(getattr(FaultConfig(), name))
    try:
        if expected is RetryAfterFormat:
            return RetryAfterFormat(value)
        if expected is int and not isinstance(value, bool):
            return int(value)
        if expected is float and not isinstance(value, bool):
            return float(value)
    except (TypeError, ValueError):
        pass
    raise FaultConfigError(f"{source}: {_option(name)} has an invalid value {value!r}")


def _option(name: str) -> str:
    return name.replace("_", "-")


class Fault(enum.Enum):
    NONE = "none"
    SERVER_ERROR = "server-error"
    THROTTLE = "throttle"
    HANG_BEFORE = "hang-before"
    HANG_AFTER = "hang-after"
    DROP_BEFORE = "drop-before"
    DROP_AFTER = "drop-after"
    COMMIT_THEN_504 = "commit-then-504"


@dataclass(frozen=True)
class _Draw:
    fault: Fault
    status: int


class DroppedConnection(Exception):
    """Raised after a response started, so that the server closes the connection.

    The ASGI specification has the server close the connection when the app
    raises after ``http.response.start``. ``quiet_dropped_connections`` hides the
    error that uvicorn logs for it.
    """


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, DroppedConnection)


_QUIET_DROPS = _QuietDrops()


def quiet_dropped_connections() -> None:
    """Hide uvicorn's error log for connections that the injector drops."""
    logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)


class FaultInjector:
    """ASGI middleware that injects the faults of ``config`` into ``app``'s responses.

    ``counts`` is how many requests got each fault, for tests and logs. A test
    may replace ``config`` while the server runs; later requests use the new one.
    """

    def __init__(self, app: ASGIApp, config: FaultConfig) -> None:
        self._app = app
        self.config = config
        self.counts: Counter[Fault] = Counter()
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def requests(self) -> int:
        """The number of HTTP requests received."""
        return sum(self.counts.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        body = await _read_body(receive)
        replay = _replaying(body, receive)
        draw = self._draw(scope, body)
        await asyncio.sleep(self.config.latency)
        await self._answer(draw, scope, replay, send)

    def _draw(self, scope: Scope, body: bytes) -> _Draw:
        method = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        digest = hashlib.sha256(body).hexdigest()
        request = f"{method} {scope['path']}?{query} {digest}"

        with self._lock:
            occurrence = self._seen[request]
            self._seen[request] += 1

        seed = f"{self.config.seed}\0{request}\0{occurrence}".encode()
        generator = random.Random(hashlib.sha256(seed).digest())
        fault = self._pick(generator, is_write=method in _WRITE_METHODS)
        status = generator.choice(_SERVER_ERROR_STATUSES)

        with self._lock:
            self.counts[fault] += 1
        return _Draw(fault, status)

    def _pick(self, generator: random.Random, *, is_write: bool) -> Fault:
        config = self.config
        draw = generator.random()
        early = generator.random() < 0.5
        choices = (
            (config.error_rate, Fault.SERVER_ERROR),
            (config.throttle_rate, Fault.THROTTLE),
            (config.hang_rate, Fault.HANG_BEFORE if early else Fault.HANG_AFTER),
            (config.drop_rate, Fault.DROP_BEFORE if early else Fault.DROP_AFTER),
            (config.ambiguous_rate if is_write else 0.0, Fault.COMMIT_THEN_504),
        )

        threshold = 0.0
        for rate, fault in choices:
            threshold += rate
            if draw < threshold:
                return fault
        return Fault.NONE

    async def _answer(
        self, draw: _Draw, scope: Scope, receive: Receive, send: Send
    ) -> None:
        match draw.fault:
            case Fault.NONE:
                await self._app(scope, receive, _corrupting(send, scope, self.config))
            case Fault.SERVER_ERROR:
                await _send_error(send, draw.status, "server_error", {})
            case Fault.THROTTLE:
                headers = {"retry-after": self._retry_after()}
                await _send_error(send, 429, "rate_limited", headers)
            case Fault.HANG_BEFORE:
                await asyncio.sleep(self.config.hang_seconds)
                await _drop(send)
            case Fault.HANG_AFTER:
                await self._commit(scope, receive)
                await asyncio.sleep(self.config.hang_seconds)
                await _drop(send)
            case Fault.DROP_BEFORE:
                await _drop(send)
            case Fault.DROP_AFTER:
                await self._commit(scope, receive)
                await _drop(send)
            case Fault.COMMIT_THEN_504:
                await self._commit(scope, receive)
                await _send_error(send, 504, "gateway_timeout", {})

    async def _commit(self, scope: Scope, receive: Receive) -> None:
        """Handle the request and throw its response away."""

        async def discard(message: Message) -> None:
            return None

        await self._app(scope, receive, discard)

    def _retry_after(self) -> str:
        seconds = self.config.retry_after
        if self.config.retry_after_format is RetryAfterFormat.DATE:
            return formatdate(time() + seconds, usegmt=True)
        return str(seconds)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """Return a receive callable that yields ``body`` once, then calls ``receive``."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _send_error(
    send: Send, status: int, code: str, extra_headers: Mapping[str, str]
) -> None:
    body = dumps_json({"error": code, "message": f"injected fault: {code}"})
    content = body.encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *((name.encode(), value.encode()) for name, value in extra_headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def _drop(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise DroppedConnection


def _corrupting(send: Send, scope: Scope, config: FaultConfig) -> Send:
    """Wrap ``send`` to corrupt list responses as ``config`` sets; else return it."""
    is_list = scope["method"] == "GET" and scope["path"] == "/records"
    if not is_list or (config.list_total_offset == 0 and config.list_short_page == 0):
        return send

    start: Message | None = None
    chunks: list[bytes] = []

    async def corrupt(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return

        assert start is not None
        content = _corrupt_page(b"".join(chunks), start["status"], config)
        headers = [
            (name, value)
            for name, value in start.get("headers", [])
            if name.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    return corrupt


def _corrupt_page(content: bytes, status: int, config: FaultConfig) -> bytes:
    if status != 200:
        return content

    page = loads_json(content)
    page["total"] += config.list_total_offset
    is_short = 1 <= config.list_short_page <= page["page"]
    if is_short:
        items = page["items"]
        page["items"] = items[: len(items) // 2]
    return dumps_json(page).encode("utf-8")
