"""Errors that must stop a run without retry and without any change: rejected keys,
missing linked records, and lists whose pages do not add up to their total."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from resilience import API_KEY
from resilience import apply_in_process
from resilience import sandbox_settings
from resilience import store_records
from resilience import write_estate

from reconciler import commands
from reconciler.apply import ApplyResult
from reconciler.apply import apply_plan
from reconciler.config import Settings
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.manifest import load_manifests
from reconciler.mynotary.client import AuthenticationError
from reconciler.mynotary.client import MyNotaryClient
from reconciler.mynotary.client import RecordNotFoundError
from reconciler.plan import PlanOptions
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import RunningSandbox
from reconciler.sandbox.server import running_sandbox

# A latency of 1 ms turns the fault injector on, which counts the requests.
COUNTING = FaultConfig(latency=0.001)


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    write_estate(tmp_path / "manifests", programmes=2, lots=5)
    return tmp_path / "manifests"


@pytest.fixture
def applied(tmp_path: Path, estate: Path) -> Iterator[RunningSandbox]:
    """Serve a sandbox, apply the estate to it, and yield it still served.

    A test changes its faults by setting ``injector.config``.
    """
    with running_sandbox(tmp_path / "sandbox.db", API_KEY, COUNTING) as sandbox:
        result = apply_in_process(settings_of(sandbox, tmp_path), estate)
        assert result.code == 0, result.stderr
        yield sandbox


def settings_of(sandbox: RunningSandbox, tmp_path: Path) -> Settings:
    return sandbox_settings(sandbox.url, links(tmp_path))


def links(tmp_path: Path) -> Path:
    return tmp_path / "state" / "links.yaml"


def add_lot(estate: Path) -> None:
    """Add lot 6 to the first programme, so that a plan has a create to make."""
    path = sorted(estate.glob("*.yaml"))[0]
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    lot = dict(document["lots"][-1], upId="LOT-FAULT-1-6", number="6")
    document["lots"].append(lot)
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")


def test_errors_wrong_key_stops(tmp_path: Path, estate: Path) -> None:
    database = tmp_path / "sandbox.db"
    with running_sandbox(database, "another-key", COUNTING) as sandbox:
        result = apply_in_process(
            sandbox_settings(sandbox.url, links(tmp_path)), estate
        )
        assert sandbox.injector is not None
        requests = sandbox.injector.requests

    assert result.code == 1
    assert result.stderr == (
        "error: MyNotary request GET /records?organizationId=1&type=RECORD__PROGRAMME"
        "&page=1&pageSize=100 failed with status 401: missing or invalid x-api-key"
        " header; check the API key in MYNOTARY_API_KEY or MYNOTARY_API_KEY_FILE\n"
    )
    assert requests == 1
    assert store_records(database) == []
    assert not links(tmp_path).exists()


def test_errors_forbidden_not_retried() -> None:
    requests: list[httpx.Request] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(403, json={"error": "forbidden", "message": "no"})

    async def read() -> Any:
        async with MyNotaryClient(
            "https://mynotary.test",
            organization_id=4,
            creator_id=1,
            transport=httpx.MockTransport(handle),
        ) as client:
            return await client.list_programmes()

    with pytest.raises(AuthenticationError) as caught:
        asyncio.run(read())

    assert len(requests) == 1
    assert str(caught.value).endswith(
        "check the organization id (4) and that the API key in MYNOTARY_API_KEY or"
        " MYNOTARY_API_KEY_FILE may act on it"
    )


def test_errors_linked_record_missing(
    tmp_path: Path, estate: Path, applied: RunningSandbox
) -> None:
    database = tmp_path / "sandbox.db"
    table_before = links(tmp_path).read_bytes()
    removed = max(record["id"] for record in store_records(database))
    delete_record(database, removed)
    records_before = store_records(database)

    result = apply_in_process(settings_of(applied, tmp_path), estate)

    assert result.code == 1
    assert f"linked record #{removed} is missing on MyNotary" in result.stdout
    assert store_records(database) == records_before
    assert links(tmp_path).read_bytes() == table_before


def test_errors_update_of_missing_record(
    tmp_path: Path, estate: Path, applied: RunningSandbox
) -> None:
    # The record vanishes between the plan and the update: the update fails and
    # the link stays as it was, never taken as a deletion.
    path = sorted(estate.glob("*.yaml"))[0]
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("15000.0", "15500.0"), encoding="utf-8")

    settings = settings_of(applied, tmp_path)
    database = tmp_path / "sandbox.db"
    result, table, removed = plan_delete_apply(settings, estate, database)

    link = next(link for link in table if link.mynotary_id == removed)
    assert [failed.change.mynotary_id for failed in result.failed] == [removed]
    assert "failed with status 404" in result.failed[0].error
    assert link.state is LinkState.LINKED


def plan_delete_apply(
    settings: Settings, estate: Path, database: Path
) -> tuple[ApplyResult, LinkTable, int]:
    """Plan, delete the record of the first change, then apply the plan."""

    async def run() -> tuple[ApplyResult, LinkTable, int]:
        request = commands.PlanRequest([estate], settings, PlanOptions())
        async with commands.open_client(settings, commands.Console()) as client:
            loaded = load_manifests([estate])
            table, plan = await commands.build_plan(request, loaded, client)
            removed = plan.changes[0].mynotary_id
            assert removed is not None
            delete_record(database, removed)
            result = await apply_plan(plan, client, table)
        return result, table, removed

    return asyncio.run(run())


def test_errors_update_404_not_retried() -> None:
    requests: list[httpx.Request] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(404, json={"error": "not_found", "message": "gone"})

    async def update() -> Any:
        async with MyNotaryClient(
            "https://mynotary.test",
            organization_id=1,
            creator_id=1,
            transport=httpx.MockTransport(handle),
        ) as client:
            return await client.update_record(5, 1, {"numero_lot": "2"})

    with pytest.raises(RecordNotFoundError) as caught:
        asyncio.run(update())

    assert len(requests) == 1
    assert str(caught.value) == (
        "MyNotary request PATCH /records/5 failed with status 404: gone"
    )


def delete_record(database: Path, record_id: int) -> None:
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("DELETE FROM records WHERE id = ?", (record_id,))
    connection.close()


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (
            FaultConfig(list_total_offset=1),
            "returned 2 records but its total is 3",
        ),
        (
            FaultConfig(list_short_page=1),
            "returned 1 records but its total is 2",
        ),
    ],
    ids=["wrong-total", "truncated"],
)
def test_errors_incomplete_list_stops(
    tmp_path: Path,
    estate: Path,
    applied: RunningSandbox,
    faults: FaultConfig,
    message: str,
) -> None:
    database = tmp_path / "sandbox.db"
    add_lot(estate)
    table_before = links(tmp_path).read_bytes()
    records_before = store_records(database)
    assert applied.injector is not None
    applied.injector.config = faults

    result = apply_in_process(settings_of(applied, tmp_path), estate)

    assert result.code == 1
    assert result.stderr == (
        "error: Incomplete MyNotary list: /records?organizationId=1&type="
        f"RECORD__PROGRAMME {message}, so no record was treated as absent; run the"
        " command again\n"
    )
    assert store_records(database) == records_before
    assert links(tmp_path).read_bytes() == table_before
