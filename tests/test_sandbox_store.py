from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.mynotary.adapter import DWELLING_LOT_TYPE
from reconciler.mynotary.adapter import PROGRAMME_TYPE
from reconciler.sandbox.store import RecordNotFound
from reconciler.sandbox.store import RecordStore
from reconciler.sandbox.store import VersionConflict
from reconciler.sandbox.store import dumps_json
from reconciler.sandbox.store import loads_json


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_733_312_400_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Iterator[RecordStore]:
    with RecordStore(":memory:", clock=clock) as store:
        yield store


def create_programme(store: RecordStore, reference: str, organization: int = 1) -> int:
    record = store.create(organization, 7, PROGRAMME_TYPE, None, reference, {})
    return int(record["id"])


def create_lot(store: RecordStore, programme_id: int, number: str) -> int:
    questions = {"numero_lot": number}
    record = store.create(1, 7, DWELLING_LOT_TYPE, programme_id, None, questions)
    return int(record["id"])


def test_create_record_shape(store: RecordStore) -> None:
    record = store.create(1, 7, PROGRAMME_TYPE, None, "up-1", {"nom_programme": "A"})

    assert record == {
        "id": 1,
        "organizationId": 1,
        "creatorId": 7,
        "type": PROGRAMME_TYPE,
        "programmeId": None,
        "externalReference": "up-1",
        "version": 1,
        "createdAt": 1_733_312_400_000,
        "updatedAt": 1_733_312_400_000,
        "questions": {"nom_programme": "A"},
    }
    assert store.get(1) == record


def test_create_drops_null_questions(store: RecordStore) -> None:
    record = store.create(1, 7, PROGRAMME_TYPE, None, None, {"a": None, "b": 2})

    assert record["questions"] == {"b": 2}


def test_get_missing(store: RecordStore) -> None:
    assert store.get(42) is None


def test_decimal_round_trip(store: RecordStore) -> None:
    questions = {"surface_habitable": Decimal("45.50"), "prix_ttc": Decimal("1E+2")}
    record_id = store.create(1, 7, PROGRAMME_TYPE, None, None, questions)["id"]

    stored = store.get(record_id)

    assert stored is not None
    assert str(stored["questions"]["surface_habitable"]) == "45.50"
    assert str(stored["questions"]["prix_ttc"]) == "1E+2"


def test_list_pages_in_id_order(store: RecordStore) -> None:
    ids = [create_programme(store, f"up-{index}") for index in range(5)]

    first, total = store.list(1, page=1, page_size=2)
    last, last_total = store.list(1, page=3, page_size=2)
    beyond, _ = store.list(1, page=4, page_size=2)

    assert [record["id"] for record in first] == ids[:2]
    assert [record["id"] for record in last] == ids[4:]
    assert total == 5
    assert last_total == 5
    assert beyond == []


def test_list_filters(store: RecordStore) -> None:
    programme = create_programme(store, "up-1")
    other_programme = create_programme(store, "up-2")
    create_programme(store, "up-1", organization=2)
    lot = create_lot(store, programme, "12")
    create_lot(store, programme, "13")
    create_lot(store, other_programme, "12")

    programmes, _ = store.list(1, type=PROGRAMME_TYPE)
    by_reference, _ = store.list(1, type=PROGRAMME_TYPE, external_reference="up-1")
    lots, _ = store.list(1, programme_id=programme)
    by_number, _ = store.list(1, programme_id=programme, numero_lot="12")

    assert [record["id"] for record in programmes] == [programme, other_programme]
    assert [record["id"] for record in by_reference] == [programme]
    assert len(lots) == 2
    assert [record["id"] for record in by_number] == [lot]


def test_list_scoped_by_organization(store: RecordStore) -> None:
    create_programme(store, "up-1", organization=2)

    assert store.list(1) == ([], 0)


def test_list_invalid_page(store: RecordStore) -> None:
    with pytest.raises(ValueError, match="page 0 and page size 10 must be >= 1"):
        store.list(1, page=0, page_size=10)


def test_update_merges_questions(store: RecordStore, clock: FakeClock) -> None:
    questions = {"numero_lot": "12", "etage": 2, "batiment": "A"}
    record_id = store.create(1, 7, PROGRAMME_TYPE, None, None, questions)["id"]
    clock.now += 1000

    updated = store.update(record_id, 1, {"etage": 3, "batiment": None})

    assert updated["questions"] == {"numero_lot": "12", "etage": 3}
    assert updated["version"] == 2
    assert updated["updatedAt"] == updated["createdAt"] + 1000
    assert store.get(record_id) == updated


def test_update_replaces_nested_question(store: RecordStore) -> None:
    questions = {"adresse": {"rue": "Rue A", "ville": "Lyon"}}
    record_id = store.create(1, 7, PROGRAMME_TYPE, None, None, questions)["id"]

    updated = store.update(record_id, 1, {"adresse": {"ville": "Paris"}})

    assert updated["questions"] == {"adresse": {"ville": "Paris"}}


def test_update_version_conflict(store: RecordStore) -> None:
    record_id = store.create(1, 7, PROGRAMME_TYPE, None, None, {"a": 1})["id"]
    store.update(record_id, 1, {"a": 2})

    with pytest.raises(VersionConflict) as caught:
        store.update(record_id, 1, {"a": 3})

    assert caught.value.current_version == 2
    assert str(caught.value) == f"record {record_id} is at version 2, not 1"
    stored = store.get(record_id)
    assert stored is not None
    assert stored["questions"] == {"a": 2}


def test_update_missing(store: RecordStore) -> None:
    with pytest.raises(RecordNotFound, match="record 9 does not exist"):
        store.update(9, 1, {})


def test_insert_explicit_id(store: RecordStore) -> None:
    seeded = store.insert(
        {
            "id": 1001,
            "organizationId": 1,
            "creatorId": 7,
            "type": PROGRAMME_TYPE,
            "externalReference": "up-1",
            "version": 3,
            "questions": {"surface": Decimal("10.10")},
        }
    )

    created = store.create(1, 7, PROGRAMME_TYPE, None, None, {})

    assert store.get(1001) == seeded
    assert seeded["version"] == 3
    assert seeded["programmeId"] is None
    assert created["id"] == 1002


def test_insert_duplicate_id(store: RecordStore) -> None:
    record = {"id": 5, "organizationId": 1, "creatorId": 7, "type": PROGRAMME_TYPE}
    store.insert(record)

    message = "record 5 already exists in the sandbox store; seed each id once"
    with pytest.raises(ValueError, match=message):
        store.insert(record)


def test_store_persists(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.db"
    with RecordStore(path) as store:
        record = store.create(1, 7, PROGRAMME_TYPE, None, "up-1", {"x": Decimal("1.0")})

    with RecordStore(path) as reopened:
        assert reopened.get(record["id"]) == record


def test_dumps_json_decimal_number() -> None:
    text = dumps_json({"a": Decimal("198000.10"), "b": [1, "é", None, True]})

    assert text == '{"a":198000.10,"b":[1,"é",null,true]}'
    assert loads_json(text) == {"a": Decimal("198000.10"), "b": [1, "é", None, True]}


def test_dumps_json_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN is not a finite number"):
        dumps_json(Decimal("NaN"))


def test_loads_json_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN is not a valid JSON number"):
        loads_json('{"a": NaN}')
