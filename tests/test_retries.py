"""The client's retries, Retry-After, ambiguous creates and repeated updates, on
``httpx.MockTransport`` handlers that fail on purpose."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email.utils import format_datetime
from typing import Any
from typing import TypeVar

import httpx
import pytest

from reconciler.mynotary.adapter import DWELLING_LOT_TYPE
from reconciler.mynotary.adapter import PROGRAMME_TYPE
from reconciler.mynotary.client import MyNotaryClient
from reconciler.mynotary.client import MyNotaryError
from reconciler.mynotary.client import RetryPolicy
from reconciler.mynotary.client import VersionConflictError
from reconciler.mynotary.client import parse_retry_after

T = TypeVar("T")
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]

BASE_URL = "https://mynotary.test/api"
FAST = RetryPolicy(max_retries=3, max_wait=10.0, backoff=0.01, max_backoff=0.02)


def run(
    handler: Handler,
    action: Callable[[MyNotaryClient], Awaitable[T]],
    **options: Any,
) -> T:
    async def go() -> T:
        options.setdefault("retry", FAST)
        async with MyNotaryClient(
            BASE_URL,
            organization_id=1,
            creator_id=7,
            api_key="key",
            transport=httpx.MockTransport(handler),
            **options,
        ) as client:
            return await action(client)

    return asyncio.run(go())


def record(record_id: int, **fields: Any) -> dict[str, Any]:
    return {"id": record_id, "version": 1, "questions": {}, **fields}


def page(items: list[dict[str, Any]]) -> httpx.Response:
    body = {"items": items, "total": len(items), "page": 1, "pageSize": 100}
    return httpx.Response(200, json=body)


class Script:
    """A handler that returns a list of responses in turn and keeps the requests."""

    def __init__(self, *answers: httpx.Response | type[Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, type):
            raise answer("injected", request=request)  # type: ignore[call-arg]
        return answer

    def methods(self) -> list[str]:
        return [request.method for request in self.requests]


def create_lot(client: MyNotaryClient) -> Awaitable[dict[str, Any]]:
    return client.create_record(
        DWELLING_LOT_TYPE, {"numero_lot": "12"}, programme_id=1001
    )


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [message for message in caplog.messages if message.startswith("retrying ")]


# Reads


def test_retries_get_after_503() -> None:
    script = Script(
        httpx.Response(503), httpx.Response(502), httpx.Response(200, json=record(5))
    )

    result = run(script, lambda client: client.get_record(5))

    assert result == record(5)
    assert script.methods() == ["GET", "GET", "GET"]


def test_retries_get_after_timeout() -> None:
    script = Script(httpx.ReadTimeout, httpx.Response(200, json=record(5)))

    result = run(script, lambda client: client.get_record(5))

    assert result == record(5)
    assert len(script.requests) == 2


def test_retries_logged(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(
        httpx.Response(429, headers={"retry-after": "0"}),
        httpx.ReadTimeout,
        httpx.Response(200, json=record(5)),
    )

    with caplog.at_level(logging.INFO, logger="reconciler.mynotary.client"):
        run(script, lambda client: client.get_record(5))

    lines = retry_lines(caplog)
    assert (
        lines[0]
        == "retrying GET /records/5 after status 429 (attempt 1); waiting 0.00 s"
    )
    assert lines[1].startswith("retrying GET /records/5 after ReadTimeout (attempt 2);")
    assert len(lines) == 2


def test_retries_cap_attempts() -> None:
    script = Script(*[httpx.Response(503)] * 4)

    with pytest.raises(MyNotaryError) as caught:
        run(script, lambda client: client.get_record(5))

    assert len(script.requests) == 4
    assert caught.value.attempts == 4
    assert str(caught.value) == (
        "MyNotary request GET /records/5 failed with status 503: Service Unavailable"
        " (after 4 attempts)"
    )


def test_retries_cap_total_wait() -> None:
    # A Retry-After past the retry budget ends the retries at once.
    script = Script(httpx.Response(429, headers={"retry-after": "30"}))
    policy = RetryPolicy(max_retries=5, max_wait=2.0)

    with pytest.raises(MyNotaryError) as caught:
        run(script, lambda client: client.get_record(5), retry=policy)

    assert caught.value.status_code == 429
    assert len(script.requests) == 1


def test_retries_retry_after_seconds(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(
        httpx.Response(429, headers={"retry-after": "1"}),
        httpx.Response(200, json=record(5)),
    )

    with caplog.at_level(logging.INFO, logger="reconciler.mynotary.client"):
        started = time.monotonic()
        run(script, lambda client: client.get_record(5))
        elapsed = time.monotonic() - started

    assert retry_lines(caplog) == [
        "retrying GET /records/5 after status 429 (attempt 1); waiting 1.00 s"
    ]
    assert elapsed >= 1.0


def test_retries_no_retry_on_422() -> None:
    script = Script(
        httpx.Response(422, json={"error": "invalid_request", "message": "bad"})
    )

    with pytest.raises(MyNotaryError):
        run(script, lambda client: client.get_record(5))

    assert len(script.requests) == 1


def test_retry_after_parse_seconds() -> None:
    assert parse_retry_after("7") == 7.0


def test_retry_after_parse_http_date() -> None:
    moment = datetime.now(UTC) + timedelta(seconds=30)

    wait = parse_retry_after(format_datetime(moment, usegmt=True))

    assert wait is not None
    assert 28.0 <= wait <= 30.0


def test_retry_after_parse_past_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_retry_after_parse_invalid() -> None:
    assert parse_retry_after("soon") is None


# Creates


def test_retries_create_429_resent() -> None:
    script = Script(
        httpx.Response(429, headers={"retry-after": "0"}),
        httpx.Response(201, json=record(9)),
    )

    result = run(script, create_lot)

    assert result == record(9)
    assert script.methods() == ["POST", "POST"]


def test_retries_create_connect_error_resent() -> None:
    script = Script(httpx.ConnectError, httpx.Response(201, json=record(9)))

    result = run(script, create_lot)

    assert result == record(9)
    assert script.methods() == ["POST", "POST"]


def test_retries_create_504_adopted() -> None:
    landed = record(9, programmeId=1001, questions={"numero_lot": "12"})
    script = Script(httpx.Response(504), page([landed]))

    result = run(script, create_lot)

    lookup = script.requests[1]
    assert result == landed
    assert script.methods() == ["POST", "GET"]
    assert lookup.url.params["programmeId"] == "1001"
    assert lookup.url.params["numeroLot"] == "12"


def test_retries_create_timeout_not_landed() -> None:
    script = Script(httpx.ReadTimeout, page([]), httpx.Response(201, json=record(9)))

    result = run(script, create_lot)

    assert result == record(9)
    assert script.methods() == ["POST", "GET", "POST"]


def test_retries_create_programme_lookup() -> None:
    landed = record(3, externalReference="PRG-1")
    script = Script(httpx.RemoteProtocolError, page([landed]))

    async def create(client: MyNotaryClient) -> dict[str, Any]:
        return await client.create_record(
            PROGRAMME_TYPE, {"nom_programme": "A"}, external_reference="PRG-1"
        )

    result = run(script, create)

    assert result == landed
    assert script.requests[1].url.params["externalReference"] == "PRG-1"


def test_retries_create_unknown_gives_up() -> None:
    script = Script(
        httpx.Response(500),
        page([]),
        httpx.Response(500),
        page([]),
        httpx.Response(500),
        page([]),
        httpx.Response(500),
    )

    with pytest.raises(MyNotaryError) as caught:
        run(script, create_lot)

    assert script.methods().count("POST") == 4
    assert str(caught.value) == (
        "MyNotary request POST /records failed with status 500: Internal Server"
        " Error; the create was sent 4 times and its outcome is unknown, so the"
        " next apply looks the record up by its natural key before creating it"
    )


def test_retries_create_without_key_not_resent() -> None:
    script = Script(httpx.Response(504))

    async def create(client: MyNotaryClient) -> dict[str, Any]:
        return await client.create_record(PROGRAMME_TYPE, {"nom_programme": "A"})

    with pytest.raises(MyNotaryError):
        run(script, create)

    assert script.methods() == ["POST"]


# Updates


def test_retries_update_landed_before_retry() -> None:
    updated = record(5, version=4, questions={"surface_habitable": 45.5})
    script = Script(
        httpx.ReadTimeout,
        httpx.Response(409, json={"error": "version_conflict", "currentVersion": 4}),
        httpx.Response(200, json=updated),
    )

    result = run(
        script, lambda client: client.update_record(5, 3, {"surface_habitable": 45.5})
    )

    assert result["version"] == 4
    assert script.methods() == ["PATCH", "PATCH", "GET"]
    assert json.loads(script.requests[1].content)["version"] == 3


def test_retries_update_other_change_conflicts() -> None:
    changed = record(5, version=4, questions={"surface_habitable": 50})
    script = Script(
        httpx.Response(503),
        httpx.Response(409, json={"error": "version_conflict", "currentVersion": 4}),
        httpx.Response(200, json=changed),
    )

    with pytest.raises(VersionConflictError):
        run(
            script,
            lambda client: client.update_record(5, 3, {"surface_habitable": 45.5}),
        )

    assert script.methods() == ["PATCH", "PATCH", "GET"]


def test_retries_update_first_conflict_not_read() -> None:
    script = Script(
        httpx.Response(409, json={"error": "version_conflict", "currentVersion": 4})
    )

    with pytest.raises(VersionConflictError):
        run(script, lambda client: client.update_record(5, 3, {"surface_habitable": 1}))

    assert script.methods() == ["PATCH"]


# Rate limit and timeouts


def test_retries_rate_limit() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=record(5))

    async def read_many(client: MyNotaryClient) -> None:
        await asyncio.gather(*(client.get_record(5) for _ in range(30)))

    started = time.monotonic()
    run(handle, read_many, rate_limit=20.0)
    elapsed = time.monotonic() - started

    # A burst of 20 passes at once, then the other 10 at 20 per second.
    assert elapsed >= 0.45


def test_retries_timeouts_configured() -> None:
    seen: list[dict[str, Any]] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json=record(5))

    run(handle, lambda client: client.get_record(5), timeout=2.5, connect_timeout=0.5)

    assert seen == [{"connect": 0.5, "read": 2.5, "write": 2.5, "pool": 2.5}]


def test_retries_create_lookup_fails() -> None:
    script = Script(httpx.Response(504), *[httpx.Response(503)] * 4)

    with pytest.raises(MyNotaryError) as caught:
        run(script, create_lot)

    assert script.methods() == ["POST", "GET", "GET", "GET", "GET"]
    assert str(caught.value) == (
        "MyNotary request GET /records?organizationId=1&programmeId=1001&numeroLot=12"
        "&page=1&pageSize=100 failed with status 503: Service Unavailable (after 4"
        " attempts); the create was sent once and its outcome is unknown, so the"
        " next apply looks the record up by its natural key before creating it"
    )
