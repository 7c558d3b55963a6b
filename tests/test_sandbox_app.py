from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from reconciler.mynotary.adapter import DWELLING_LOT_TYPE
from reconciler.mynotary.adapter import OTHER_LOT_TYPE
from reconciler.mynotary.adapter import PROGRAMME_TYPE
from reconciler.sandbox.app import create_app
from reconciler.sandbox.server import running_server
from reconciler.sandbox.store import RecordStore
from reconciler.sandbox.store import loads_json

API_KEY = "sandbox-test-key"


@pytest.fixture
def store() -> Iterator[RecordStore]:
    with RecordStore(":memory:") as store:
        yield store


@pytest.fixture
def app(store: RecordStore) -> Starlette:
    return create_app(store)


def call(app: Starlette, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send one request to the app in process and return its response."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sandbox"
        ) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


def create(app: Starlette, **fields: Any) -> httpx.Response:
    body = {"organizationId": 1, "creatorId": 7, "questions": {}, **fields}
    return call(app, "POST", "/records", json=body)


def create_programme(app: Starlette, reference: str, organization: int = 1) -> int:
    response = create(
        app,
        type=PROGRAMME_TYPE,
        externalReference=reference,
        organizationId=organization,
    )
    assert response.status_code == 201
    return int(response.json()["id"])


def create_lot(app: Starlette, programme_id: int, number: str) -> int:
    response = create(
        app,
        type=DWELLING_LOT_TYPE,
        programmeId=programme_id,
        questions={"numero_lot": number},
    )
    assert response.status_code == 201
    return int(response.json()["id"])


def assert_error(
    response: httpx.Response, status: int, code: str, message: str
) -> None:
    assert response.status_code == status
    assert response.json() == {"error": code, "message": message}


def test_create_programme(app: Starlette) -> None:
    response = create(app, type=PROGRAMME_TYPE, externalReference="up-1")

    record = response.json()
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert record["id"] == 1
    assert record["version"] == 1
    assert record["externalReference"] == "up-1"
    assert record["programmeId"] is None


def test_create_lot_keeps_decimals(app: Starlette) -> None:
    programme_id = create_programme(app, "up-1")
    content = (
        '{"organizationId": 1, "creatorId": 7, "type": "RECORD__BIEN__LOT_HABITATION",'
        f' "programmeId": {programme_id}, "externalReference": null,'
        ' "questions": {"numero_lot": "12", "surface_habitable": 45.50}}'
    )

    response = call(app, "POST", "/records", content=content)

    assert response.status_code == 201
    assert '"surface_habitable":45.50' in response.text
    assert loads_json(response.text)["questions"]["surface_habitable"] == Decimal(
        "45.50"
    )


TYPES = (
    "RECORD__PROGRAMME, RECORD__BIEN__LOT_HABITATION, RECORD__BIEN__LOT_HORS_HABITATION"
)
CREATE_FIELDS = (
    "organizationId, creatorId, type, programmeId, externalReference, questions"
)
LIST_PARAMETERS = (
    "organizationId, type, programmeId, externalReference, numeroLot, page, pageSize"
)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": None}, "type is missing"),
        ({"type": "RECORD__X"}, f'type must be one of {TYPES}, got "RECORD__X"'),
        (
            {"type": PROGRAMME_TYPE, "organizationId": None},
            "organizationId is missing",
        ),
        (
            {"type": PROGRAMME_TYPE, "creatorId": "7"},
            'creatorId must be an integer, got "7"',
        ),
        (
            {"type": PROGRAMME_TYPE, "organizationId": True},
            "organizationId must be an integer, got true",
        ),
        (
            {"type": PROGRAMME_TYPE, "externalReference": 5},
            "externalReference must be a string or null, got 5",
        ),
        (
            {"type": PROGRAMME_TYPE, "questions": []},
            "questions must be a JSON object, got []",
        ),
        (
            {"type": PROGRAMME_TYPE, "programmeId": 1},
            "programmeId must be null for a RECORD__PROGRAMME record",
        ),
        (
            {"type": OTHER_LOT_TYPE},
            "programmeId is missing: a RECORD__BIEN__LOT_HORS_HABITATION record"
            " needs the id of its programme record",
        ),
        (
            {"type": DWELLING_LOT_TYPE, "programmeId": 99},
            "programmeId 99 is not a programme record of organization 1",
        ),
        (
            {"type": PROGRAMME_TYPE, "extra": 1},
            f"unknown field 'extra'; expected fields: {CREATE_FIELDS}",
        ),
    ],
)
def test_create_invalid(app: Starlette, fields: dict[str, Any], message: str) -> None:
    response = create(app, **fields)

    assert_error(response, 422, "invalid_request", message)


def test_create_lot_of_other_organization(app: Starlette) -> None:
    programme_id = create_programme(app, "up-1", organization=2)

    response = create(app, type=DWELLING_LOT_TYPE, programmeId=programme_id)

    message = f"programmeId {programme_id} is not a programme record of organization 1"
    assert_error(response, 422, "invalid_request", message)


def test_create_lot_under_lot(app: Starlette) -> None:
    lot_id = create_lot(app, create_programme(app, "up-1"), "1")

    response = create(app, type=DWELLING_LOT_TYPE, programmeId=lot_id)

    message = f"programmeId {lot_id} is not a programme record of organization 1"
    assert_error(response, 422, "invalid_request", message)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "request body is not valid JSON"),
        ('{"a": NaN}', "request body is not valid JSON"),
        ("[1]", "request body must be a JSON object"),
    ],
)
def test_create_bad_body(app: Starlette, content: str, message: str) -> None:
    response = call(app, "POST", "/records", content=content)

    assert_error(response, 422, "invalid_request", message)


def test_get_record(app: Starlette) -> None:
    programme_id = create_programme(app, "up-1")

    response = call(app, "GET", f"/records/{programme_id}")

    assert response.status_code == 200
    assert response.json()["externalReference"] == "up-1"


def test_get_missing(app: Starlette) -> None:
    response = call(app, "GET", "/records/42")

    assert_error(response, 404, "not_found", "record 42 does not exist")


def test_unknown_path(app: Starlette) -> None:
    response = call(app, "GET", "/records/abc")

    assert_error(response, 404, "not_found", "GET /records/abc: Not Found")


def test_delete_not_allowed(app: Starlette) -> None:
    programme_id = create_programme(app, "up-1")

    response = call(app, "DELETE", f"/records/{programme_id}")

    message = f"DELETE /records/{programme_id}: Method Not Allowed"
    assert_error(response, 405, "method_not_allowed", message)
    allowed = set(response.headers["allow"].split(", "))
    assert allowed == {"GET", "HEAD", "PATCH"}


def test_update_merges(app: Starlette) -> None:
    lot_id = create_lot(app, create_programme(app, "up-1"), "12")
    content = (
        '{"version": 1, "questions": {"prix_ttc": 198000.10, "numero_lot": null,'
        ' "etage": 2}}'
    )

    response = call(app, "PATCH", f"/records/{lot_id}", content=content)

    record = loads_json(response.text)
    assert response.status_code == 200
    assert record["version"] == 2
    assert record["questions"] == {"prix_ttc": Decimal("198000.10"), "etage": 2}
    assert '"prix_ttc":198000.10' in response.text


def test_update_version_conflict(app: Starlette) -> None:
    programme_id = create_programme(app, "up-1")
    body = {"version": 1, "questions": {"nom_programme": "A"}}
    call(app, "PATCH", f"/records/{programme_id}", json=body)

    response = call(app, "PATCH", f"/records/{programme_id}", json=body)

    assert response.status_code == 409
    assert response.json() == {
        "error": "version_conflict",
        "message": f"record {programme_id} is at version 2, not 1",
        "currentVersion": 2,
    }


def test_update_missing(app: Starlette) -> None:
    response = call(app, "PATCH", "/records/42", json={"version": 1, "questions": {}})

    assert_error(response, 404, "not_found", "record 42 does not exist")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"questions": {}}, "version is missing"),
        ({"version": 1}, "questions must be a JSON object, got null"),
        ({"version": 1.5, "questions": {}}, "version must be an integer, got 1.5"),
        (
            {"version": 1, "questions": {}, "type": "x"},
            "unknown field 'type'; expected fields: version, questions",
        ),
    ],
)
def test_update_invalid(app: Starlette, body: dict[str, Any], message: str) -> None:
    programme_id = create_programme(app, "up-1")

    response = call(app, "PATCH", f"/records/{programme_id}", json=body)

    assert_error(response, 422, "invalid_request", message)


def test_list_pages(app: Starlette) -> None:
    ids = [create_programme(app, f"up-{index}") for index in range(5)]
    params = {"organizationId": 1, "type": PROGRAMME_TYPE, "pageSize": 2}

    first = call(app, "GET", "/records", params={**params, "page": 1}).json()
    last = call(app, "GET", "/records", params={**params, "page": 3}).json()

    assert [item["id"] for item in first["items"]] == ids[:2]
    assert [item["id"] for item in last["items"]] == ids[4:]
    assert first["total"] == 5
    assert first["page"] == 1
    assert first["pageSize"] == 2
    assert last["page"] == 3


def test_list_caps_page_size(app: Starlette) -> None:
    params = {"organizationId": 1, "pageSize": 500}

    response = call(app, "GET", "/records", params=params)

    assert response.json() == {"items": [], "total": 0, "page": 1, "pageSize": 100}


def test_list_filters(app: Starlette) -> None:
    programme_id = create_programme(app, "up-1")
    create_programme(app, "up-2")
    lot_id = create_lot(app, programme_id, "12")
    create_lot(app, programme_id, "13")

    by_reference = call(
        app,
        "GET",
        "/records",
        params={
            "organizationId": 1,
            "type": PROGRAMME_TYPE,
            "externalReference": "up-1",
        },
    ).json()
    lots = call(
        app,
        "GET",
        "/records",
        params={"organizationId": 1, "programmeId": programme_id},
    ).json()
    by_number = call(
        app,
        "GET",
        "/records",
        params={"organizationId": 1, "programmeId": programme_id, "numeroLot": "12"},
    ).json()

    assert [item["id"] for item in by_reference["items"]] == [programme_id]
    assert lots["total"] == 2
    assert [item["id"] for item in by_number["items"]] == [lot_id]


def test_list_scoped_by_organization(app: Starlette) -> None:
    create_programme(app, "up-1", organization=2)

    response = call(app, "GET", "/records", params={"organizationId": 1})

    assert response.json()["total"] == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "organizationId is missing: listing needs an organization"),
        ({"organizationId": "x"}, "organizationId must be an integer, got 'x'"),
        ({"organizationId": 1, "page": 0}, "page must be at least 1, got 0"),
        ({"organizationId": 1, "pageSize": 0}, "pageSize must be at least 1, got 0"),
        ({"organizationId": 1, "type": "X"}, f'type must be one of {TYPES}, got "X"'),
        (
            {"organizationId": 1, "apiKey": "k"},
            f"unknown query parameter 'apiKey'; expected parameters: {LIST_PARAMETERS}",
        ),
    ],
)
def test_list_invalid(app: Starlette, params: dict[str, Any], message: str) -> None:
    response = call(app, "GET", "/records", params=params)

    assert_error(response, 422, "invalid_request", message)


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}])
def test_api_key_rejected(store: RecordStore, headers: dict[str, str]) -> None:
    app = create_app(store, api_key=API_KEY)

    response = call(app, "GET", "/records/1", headers=headers)

    message = "missing or invalid x-api-key header"
    assert_error(response, 401, "unauthorized", message)


def test_api_key_accepted(store: RecordStore) -> None:
    app = create_app(store, api_key=API_KEY)

    response = call(app, "GET", "/records/1", headers={"x-api-key": API_KEY})

    assert response.status_code == 404


def test_server_over_tcp(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    headers = {"x-api-key": API_KEY}
    body = {"organizationId": 1, "creatorId": 7, "type": PROGRAMME_TYPE}

    with (
        running_server(database, api_key=API_KEY) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        rejected = client.get("/records/1")
        created = client.post("/records", json=body, headers=headers)

    with (
        running_server(database, api_key=API_KEY) as second_url,
        httpx.Client(base_url=second_url, headers=headers) as client,
    ):
        reread = client.get(f"/records/{created.json()['id']}")

    assert base_url.startswith("http://127.0.0.1:")
    assert rejected.status_code == 401
    assert created.status_code == 201
    assert reread.status_code == 200
    assert reread.json() == created.json()


def test_sandbox_huge_ids_rejected() -> None:
    async def main() -> list[int]:
        store = RecordStore(":memory:")
        transport = httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sandbox.test"
        ) as client:
            huge = "9" * 25
            statuses = [
                (await client.get(f"/records/{huge}")).status_code,
                (
                    await client.get(f"/records?organizationId=1&page={huge}")
                ).status_code,
                (
                    await client.patch(
                        f"/records/{huge}", json={"version": 1, "questions": {}}
                    )
                ).status_code,
            ]
        store.close()
        return statuses

    assert asyncio.run(main()) == [404, 422, 404]
