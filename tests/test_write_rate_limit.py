"""The client's limit on writes, and the sandbox's write quota and request counts."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.config import TargetOptions
from reconciler.config import resolve_network
from reconciler.errors import ConfigurationError
from reconciler.mynotary.adapter import PROGRAMME_TYPE
from reconciler.mynotary.client import NO_RETRY
from reconciler.mynotary.client import MyNotaryClient
from reconciler.mynotary.client import MyNotaryError
from reconciler.sandbox.app import create_app
from reconciler.sandbox.metering import Metering
from reconciler.sandbox.metering import TokenBucket
from reconciler.sandbox.server import running_server
from reconciler.sandbox.store import RecordStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(record_id: int) -> dict[str, Any]:
    return {"id": record_id, "type": PROGRAMME_TYPE, "version": 2, "questions": {}}


def started_times(
    action: Callable[[MyNotaryClient], Coroutine[Any, Any, Any]], **options: Any
) -> dict[str, list[float]]:
    """Run ``action`` against a mock MyNotary; return when each method's requests
    arrived, in seconds from the first."""
    arrivals: dict[str, list[float]] = {}

    async def handle(request: httpx.Request) -> httpx.Response:
        arrivals.setdefault(request.method, []).append(time.monotonic())
        return httpx.Response(200, json=record(5))

    async def run() -> None:
        async with MyNotaryClient(
            "https://mynotary.test/api",
            organization_id=1,
            creator_id=1,
            transport=httpx.MockTransport(handle),
            **options,
        ) as client:
            await action(client)

    asyncio.run(run())
    first = min(moment for times in arrivals.values() for moment in times)
    return {
        method: [moment - first for moment in times]
        for method, times in arrivals.items()
    }


def test_write_rate_limit_spaces_writes() -> None:
    async def update_many(client: MyNotaryClient) -> None:
        await asyncio.gather(*(client.update_record(5, 1, {}) for _ in range(5)))

    times = started_times(update_many, rate_limit=None, write_rate_limit=20.0)

    gaps = [later - earlier for earlier, later in itertools.pairwise(times["PATCH"])]
    # One write every 1 / 20 s, without a first burst; 0.04 leaves room for the
    # timer's resolution.
    assert len(gaps) == 4
    assert min(gaps) >= 0.04


def test_write_rate_limit_leaves_reads() -> None:
    async def read_and_write(client: MyNotaryClient) -> None:
        await client.update_record(5, 1, {})
        await client.update_record(5, 2, {})
        await asyncio.gather(*(client.get_record(5) for _ in range(20)))

    times = started_times(read_and_write, rate_limit=None, write_rate_limit=1.0)

    # The second write waited a second; the twenty reads after it did not wait.
    assert times["PATCH"][1] >= 0.9
    assert times["GET"][-1] - times["GET"][0] < 0.5


def test_write_rate_limit_invalid() -> None:
    with pytest.raises(ValueError, match=r"write_rate_limit \(0\) must be positive"):
        MyNotaryClient(
            "https://x.test", organization_id=1, creator_id=1, write_rate_limit=0
        )


def test_write_rate_limit_setting() -> None:
    from_flag = resolve_network(TargetOptions(write_rate_limit=5), {})
    from_variable = resolve_network(
        TargetOptions(), {"MYNOTARY_WRITE_RATE_LIMIT": "7.5"}
    )
    off = resolve_network(TargetOptions(write_rate_limit=0), {})

    assert from_flag.write_rate_limit == 5
    assert from_variable.write_rate_limit == 7.5
    assert off.write_rate_limit is None
    assert resolve_network(TargetOptions(), {}).write_rate_limit is None


def test_write_rate_limit_setting_invalid() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_network(TargetOptions(), {"MYNOTARY_WRITE_RATE_LIMIT": "fast"})

    assert str(caught.value) == (
        "MYNOTARY_WRITE_RATE_LIMIT 'fast' is not a number of 0 or more; set it to a"
        " number such as 0"
    )


# The sandbox's token bucket


def test_token_bucket_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock)

    granted = [bucket.take(), bucket.take()]
    refused = bucket.take()
    clock.now += 0.5
    after_refill = bucket.take()

    assert granted == [None, None]
    assert refused == pytest.approx(0.5)
    assert after_refill is None


def test_token_bucket_holds_one_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock)

    clock.now += 60
    taken = [bucket.take() for _ in range(3)]

    assert taken[:2] == [None, None]
    assert taken[2] is not None


# The sandbox's metering middleware


def metered_call(
    app: Metering, requests: list[tuple[str, str, dict[str, Any] | None]]
) -> list[httpx.Response]:
    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sandbox"
        ) as client:
            return [
                await client.request(method, path, json=body)
                for method, path, body in requests
            ]

    return asyncio.run(send())


PROGRAMME = {
    "organizationId": 1,
    "creatorId": 1,
    "type": PROGRAMME_TYPE,
    "externalReference": "PRG-1",
    "questions": {},
}


def test_sandbox_write_quota_answers_429() -> None:
    with RecordStore(":memory:") as store:
        app = Metering(create_app(store), write_quota=2)
        responses = metered_call(
            app,
            [
                ("POST", "/records", PROGRAMME),
                ("POST", "/records", PROGRAMME),
                ("POST", "/records", PROGRAMME),
                ("GET", "/records?organizationId=1", None),
            ],
        )
        stored = store.list(1)[1]

    assert [response.status_code for response in responses] == [201, 201, 429, 200]
    assert responses[2].headers["retry-after"] == "1"
    assert responses[2].json() == {
        "error": "rate_limited",
        "message": "write quota of 2 per second reached",
    }
    assert stored == 2


def test_sandbox_stats_counts() -> None:
    with RecordStore(":memory:") as store:
        app = Metering(create_app(store), write_quota=1)
        responses = metered_call(
            app,
            [
                ("POST", "/records", PROGRAMME),
                ("POST", "/records", PROGRAMME),
                ("GET", "/records/1", None),
                ("GET", "/records/99", None),
                ("GET", "/_sandbox/stats", None),
            ],
        )

    stats = responses[-1].json()
    assert stats["requests"] == 4
    assert stats["methods"] == {"GET": 2, "POST": 2}
    assert stats["statuses"] == {"200": 1, "201": 1, "404": 1, "429": 1}
    assert stats["writeQuota"] == 1
    assert stats["writeSeconds"] >= 0


def test_sandbox_stats_reset() -> None:
    with RecordStore(":memory:") as store:
        app = Metering(create_app(store))
        responses = metered_call(
            app,
            [
                ("GET", "/records/1", None),
                ("DELETE", "/_sandbox/stats", None),
                ("GET", "/_sandbox/stats", None),
                ("POST", "/_sandbox/stats", None),
            ],
        )

    assert responses[1].status_code == 200
    assert responses[2].json()["requests"] == 0
    assert responses[3].status_code == 405


def test_sandbox_quota_served(tmp_path: Path) -> None:
    async def create_three(url: str) -> list[int]:
        async with MyNotaryClient(
            url, organization_id=1, creator_id=1, rate_limit=None, retry=NO_RETRY
        ) as client:
            created = []
            for index in range(3):
                try:
                    record = await client.create_record(
                        PROGRAMME_TYPE, {}, external_reference=f"PRG-{index}"
                    )
                except MyNotaryError as error:
                    created.append(error.status_code or 0)
                else:
                    created.append(int(record["version"]))
            return created

    with running_server(tmp_path / "sandbox.db", write_quota=2) as url:
        outcomes = asyncio.run(create_three(url))

    assert outcomes == [1, 1, 429]
