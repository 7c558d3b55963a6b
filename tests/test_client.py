from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any
from typing import TypeVar

import httpx
import pytest

from reconciler.errors import RemoteError
from reconciler.mynotary.adapter import DWELLING_LOT_TYPE
from reconciler.mynotary.adapter import PROGRAMME_TYPE
from reconciler.mynotary.client import NO_RETRY
from reconciler.mynotary.client import AuthenticationError
from reconciler.mynotary.client import DuplicateRecordError
from reconciler.mynotary.client import IncompleteListError
from reconciler.mynotary.client import MyNotaryClient
from reconciler.mynotary.client import MyNotaryError
from reconciler.mynotary.client import VersionConflictError
from reconciler.sandbox.app import create_app
from reconciler.sandbox.server import running_server
from reconciler.sandbox.store import RecordStore

API_KEY = "secret-key-123"
BASE_URL = "https://mynotary.test/api"
SANDBOX_URL = "http://sandbox"

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
T = TypeVar("T")


def run_with_client(
    transport: httpx.AsyncBaseTransport | None,
    action: Callable[[MyNotaryClient], Coroutine[Any, Any, T]],
    base_url: str = BASE_URL,
    **options: Any,
) -> T:
    """Run ``action`` with a client over ``transport``, or the network if None."""

    async def run() -> T:
        async with MyNotaryClient(
            base_url,
            organization_id=1,
            creator_id=7,
            api_key=API_KEY,
            transport=transport,
            **options,
        ) as client:
            return await action(client)

    return asyncio.run(run())


def mock(handler: Handler) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def record(record_id: int, **fields: Any) -> dict[str, Any]:
    return {"id": record_id, "version": 1, "questions": {}, **fields}


def page_of(items: list[dict[str, Any]], total: int, page: int, size: int) -> Any:
    return {"items": items, "total": total, "page": page, "pageSize": size}


def error(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    body = {"error": code, "message": message, **extra}
    return httpx.Response(status, json=body)


def paged_handler(
    records: list[dict[str, Any]], total: int, requests: list[httpx.Request]
) -> Handler:
    """Serve ``records`` in pages, reporting ``total`` as the count."""

    async def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        page = int(request.url.params["page"])
        size = int(request.url.params["pageSize"])
        items = records[(page - 1) * size : page * size]
        return httpx.Response(200, json=page_of(items, total, page, size))

    return handle


def test_list_reads_three_pages() -> None:
    records = [record(index) for index in range(1, 6)]
    requests: list[httpx.Request] = []
    transport = mock(paged_handler(records, 5, requests))

    result = run_with_client(
        transport, lambda client: client.list_programmes(), page_size=2
    )

    assert result == records
    assert sorted(request.url.params["page"] for request in requests) == ["1", "2", "3"]
    assert requests[0].url.params["organizationId"] == "1"
    assert requests[0].url.params["type"] == PROGRAMME_TYPE


def test_list_wrong_total() -> None:
    records = [record(index) for index in range(1, 5)]
    transport = mock(paged_handler(records, 5, []))

    with pytest.raises(IncompleteListError) as caught:
        run_with_client(transport, lambda client: client.list_lots(1001), page_size=2)

    assert str(caught.value) == (
        "Incomplete MyNotary list: /records?organizationId=1&programmeId=1001"
        " returned 4 records but its total is 5, so no record was treated as"
        " absent; run the command again"
    )
    assert isinstance(caught.value, RemoteError)


def test_list_repeated_record() -> None:
    records = [record(1), record(2), record(2)]
    transport = mock(paged_handler(records, 3, []))

    with pytest.raises(IncompleteListError, match="returned the same record twice"):
        run_with_client(transport, lambda client: client.list_lots(1001), page_size=2)


def test_list_lots_of_bounded() -> None:
    in_flight = 0
    peak = 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        programme_id = int(request.url.params["programmeId"])
        items = [record(programme_id * 10, programmeId=programme_id)]
        return httpx.Response(200, json=page_of(items, 1, 1, 100))

    result = run_with_client(
        mock(handle),
        lambda client: client.list_lots_of([1, 2, 3, 4, 5, 6]),
        max_in_flight=2,
    )

    assert sorted(result) == [1, 2, 3, 4, 5, 6]
    assert result[3] == [record(30, programmeId=3)]
    assert peak == 2


def test_unauthorized_hides_key() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return error(401, "unauthorized", "missing or invalid x-api-key header")

    with pytest.raises(AuthenticationError) as caught:
        run_with_client(mock(handle), lambda client: client.get_record(5))

    assert str(caught.value) == (
        "MyNotary request GET /records/5 failed with status 401: missing or invalid"
        " x-api-key header; check the API key in MYNOTARY_API_KEY or"
        " MYNOTARY_API_KEY_FILE"
    )
    assert caught.value.status_code == 401


def test_forbidden_names_organization() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return error(403, "forbidden", f"key {API_KEY} may not act on organization 1")

    with pytest.raises(AuthenticationError) as caught:
        run_with_client(mock(handle), lambda client: client.list_programmes())

    message = str(caught.value)
    assert API_KEY not in message
    assert "key *** may not act on organization 1" in message
    assert message.endswith(
        "check the organization id (1) and that the API key in MYNOTARY_API_KEY"
        " or MYNOTARY_API_KEY_FILE may act on it"
    )


def test_get_record_missing() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return error(404, "not_found", "record 5 does not exist")

    result = run_with_client(mock(handle), lambda client: client.get_record(5))

    assert result is None


def test_update_version_conflict() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return error(409, "version_conflict", "stale", currentVersion=4)

    with pytest.raises(VersionConflictError) as caught:
        run_with_client(mock(handle), lambda client: client.update_record(5, 3, {}))

    assert caught.value.current_version == 4
    assert str(caught.value) == (
        "MyNotary request PATCH /records/5 failed with status 409: stale; the record"
        " changed since it was read (current version 4), so plan again"
    )


def test_server_error() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="upstream down")

    with pytest.raises(MyNotaryError) as caught:
        run_with_client(
            mock(handle), lambda client: client.get_record(5), retry=NO_RETRY
        )

    assert str(caught.value) == (
        "MyNotary request GET /records/5 failed with status 503: Service Unavailable"
    )
    assert caught.value.status_code == 503


def test_transport_error() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(MyNotaryError) as caught:
        run_with_client(
            mock(handle), lambda client: client.get_record(5), retry=NO_RETRY
        )

    assert str(caught.value) == (
        "MyNotary request GET /records/5 failed: ConnectError: connection refused"
    )
    assert caught.value.status_code is None


def test_timeout_error() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("", request=request)

    with pytest.raises(MyNotaryError) as caught:
        run_with_client(
            mock(handle),
            lambda client: client.get_record(5),
            timeout=2.5,
            retry=NO_RETRY,
        )

    assert str(caught.value) == (
        "MyNotary request GET /records/5 failed: timed out after 2.5 s"
    )


def test_key_only_in_header(caplog: pytest.LogCaptureFixture) -> None:
    requests: list[httpx.Request] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(201, json=record(9))

    async def create(client: MyNotaryClient) -> dict[str, Any]:
        return await client.create_record(PROGRAMME_TYPE, {"nom_programme": "A"})

    with caplog.at_level(logging.INFO, logger="reconciler.mynotary.client"):
        run_with_client(mock(handle), create)

    sent = requests[0]
    assert sent.headers["x-api-key"] == API_KEY
    assert API_KEY not in str(sent.url)
    assert API_KEY.encode() not in sent.content
    assert API_KEY not in caplog.text


def test_request_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=record(5))

    with caplog.at_level(logging.INFO, logger="reconciler.mynotary.client"):
        run_with_client(mock(handle), lambda client: client.get_record(5))

    messages = [
        entry.getMessage()
        for entry in caplog.records
        if entry.name == "reconciler.mynotary.client"
    ]
    assert len(messages) == 1
    assert messages[0].startswith("GET /records/5 200 ")
    assert messages[0].endswith(" ms")


def test_create_body_decimals() -> None:
    bodies: list[bytes] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(201, json=record(9))

    async def create(client: MyNotaryClient) -> dict[str, Any]:
        questions = {"numero_lot": "12", "surface_habitable": Decimal("45.50")}
        return await client.create_record(
            DWELLING_LOT_TYPE, questions, programme_id=1001
        )

    run_with_client(mock(handle), create)

    assert bodies[0].decode() == (
        '{"organizationId":1,"creatorId":7,"type":"RECORD__BIEN__LOT_HABITATION",'
        '"programmeId":1001,"externalReference":null,'
        '"questions":{"numero_lot":"12","surface_habitable":45.50}}'
    )


def test_response_decimals() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text='{"id": 5, "questions": {"prix_ttc": 0.10}}')

    result = run_with_client(mock(handle), lambda client: client.get_record(5))

    assert result == {"id": 5, "questions": {"prix_ttc": Decimal("0.10")}}


def test_invalid_json_response() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>")

    with pytest.raises(MyNotaryError) as caught:
        run_with_client(mock(handle), lambda client: client.get_record(5))

    assert str(caught.value) == (
        "MyNotary request GET /records/5 returned status 200 with a body that is not"
        " a JSON object"
    )


def test_find_programme_duplicate() -> None:
    records = [record(3), record(8)]
    transport = mock(paged_handler(records, 2, []))

    with pytest.raises(DuplicateRecordError) as caught:
        run_with_client(transport, lambda client: client.find_programme("up-1"))

    assert str(caught.value) == (
        "MyNotary has 2 records with externalReference 'up-1' (ids 3, 8); remove the"
        " duplicates in MyNotary so that one record remains"
    )


def test_client_invalid_options() -> None:
    with pytest.raises(ValueError, match=r"page_size \(0\)"):
        MyNotaryClient(BASE_URL, organization_id=1, creator_id=7, page_size=0)


async def round_trip(client: MyNotaryClient) -> dict[str, Any]:
    """Create a programme and a lot, update the lot, and read everything back."""
    programme = await client.create_record(
        PROGRAMME_TYPE, {"nom_programme": "Les Tilleuls"}, external_reference="up-1"
    )
    lot = await client.create_record(
        DWELLING_LOT_TYPE,
        {"numero_lot": "12", "surface_habitable": Decimal("45.50")},
        programme_id=programme["id"],
    )
    updated = await client.update_record(
        lot["id"], lot["version"], {"prix_ttc": Decimal("198000.10")}
    )

    return {
        "programme": programme,
        "lot": lot,
        "updated": updated,
        "fetched": await client.get_record(lot["id"]),
        "programmes": await client.list_programmes(),
        "lots": await client.list_lots_of([programme["id"]]),
        "found_programme": await client.find_programme("up-1"),
        "found_lot": await client.find_lot(programme["id"], "12"),
        "absent_lot": await client.find_lot(programme["id"], "99"),
    }


def test_round_trip_with_sandbox() -> None:
    with RecordStore(":memory:") as store:
        transport = httpx.ASGITransport(app=create_app(store, api_key=API_KEY))

        result = run_with_client(transport, round_trip, SANDBOX_URL)

    programme_id = result["programme"]["id"]
    updated = result["updated"]
    assert updated["version"] == 2
    assert updated["questions"] == {
        "numero_lot": "12",
        "surface_habitable": Decimal("45.50"),
        "prix_ttc": Decimal("198000.10"),
    }
    assert str(updated["questions"]["surface_habitable"]) == "45.50"
    assert str(updated["questions"]["prix_ttc"]) == "198000.10"
    assert result["fetched"] == updated
    assert result["programmes"] == [result["programme"]]
    assert result["lots"] == {programme_id: [updated]}
    assert result["found_programme"] == result["programme"]
    assert result["found_lot"] == updated
    assert result["absent_lot"] is None


def test_round_trip_pages_with_sandbox() -> None:
    async def create_and_list(client: MyNotaryClient) -> list[dict[str, Any]]:
        for index in range(5):
            await client.create_record(
                PROGRAMME_TYPE, {}, external_reference=f"up-{index}"
            )
        return await client.list_programmes()

    with RecordStore(":memory:") as store:
        transport = httpx.ASGITransport(app=create_app(store))

        programmes = run_with_client(
            transport, create_and_list, SANDBOX_URL, page_size=2
        )

    assert [programme["externalReference"] for programme in programmes] == [
        f"up-{index}" for index in range(5)
    ]


def test_sandbox_rejects_wrong_key() -> None:
    with RecordStore(":memory:") as store:
        app = create_app(store, api_key="another-key")
        transport = httpx.ASGITransport(app=app)

        with pytest.raises(AuthenticationError) as caught:
            run_with_client(
                transport, lambda client: client.list_programmes(), SANDBOX_URL
            )

    assert API_KEY not in str(caught.value)
    assert "another-key" not in str(caught.value)


def test_round_trip_over_tcp(tmp_path: Path) -> None:
    with running_server(tmp_path / "sandbox.db", api_key=API_KEY) as base_url:
        result = run_with_client(None, round_trip, base_url)

    assert result["fetched"] == result["updated"]
    assert str(result["fetched"]["questions"]["prix_ttc"]) == "198000.10"
