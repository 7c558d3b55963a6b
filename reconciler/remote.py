"""Read the part of MyNotary that a plan compares with the manifests.

Requests grow with pages and programmes, not with lots: one list of programmes,
one list of lots per programme involved (read concurrently), and a single read only
for records that a manifest attaches by hand or that a link names but that the
lists did not contain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.manifest.model import LotManifest
from reconciler.manifest.model import ProgrammeManifest

Record = dict[str, Any]


class RecordReader(Protocol):
    """The reads of ``MyNotaryClient`` that a plan needs."""

    async def list_programmes(self) -> list[Record]: ...

    async def list_lots_of(
        self, programme_ids: Iterable[int]
    ) -> dict[int, list[Record]]: ...

    async def get_record(self, record_id: int) -> Record | None: ...


@dataclass
class RemoteState:
    """Records read from MyNotary, indexed for the comparison."""

    programmes: dict[int, Record] = field(default_factory=dict)
    lots_by_programme: dict[int, list[Record]] = field(default_factory=dict)
    records: dict[int, Record] = field(default_factory=dict)
    missing_ids: set[int] = field(default_factory=set)

    def record(self, record_id: int) -> Record | None:
        return self.records.get(record_id)

    def programme_by_reference(self, reference: str) -> Record | None:
        for record in self.programmes.values():
            if record.get("externalReference") == reference:
                return record
        return None


async def read_remote_state(
    client: RecordReader,
    programmes: Iterable[ProgrammeManifest],
    links: LinkTable,
) -> RemoteState:
    """Read the programmes, their lots, and the records named by hand or by links."""
    programmes = list(programmes)
    state = RemoteState()
    for record in await client.list_programmes():
        state.programmes[record["id"]] = record
        state.records[record["id"]] = record
    wanted = _programme_ids_involved(programmes, links, state)
    lots = await client.list_lots_of(sorted(wanted))
    for programme_id, records in lots.items():
        state.lots_by_programme[programme_id] = records
        for record in records:
            state.records[record["id"]] = record
    await _read_single_records(client, _ids_to_check(programmes, links, state), state)
    return state


def _programme_ids_involved(
    programmes: list[ProgrammeManifest], links: LinkTable, state: RemoteState
) -> set[int]:
    wanted: set[int] = set()
    for programme in programmes:
        link = links.get(programme.up_id)
        if link is not None and link.mynotary_id is not None:
            wanted.add(link.mynotary_id)
        if programme.link is not None and programme.link.attach is not None:
            wanted.add(programme.link.attach)
        twin = state.programme_by_reference(programme.up_id)
        if twin is not None:
            wanted.add(twin["id"])
    return {programme_id for programme_id in wanted if programme_id in state.programmes}


def _ids_to_check(
    programmes: list[ProgrammeManifest], links: LinkTable, state: RemoteState
) -> set[int]:
    """Return the ids of attached or linked records that the lists did not hold.

    Records marked unlinked are left out: an unlink needs no remote read.
    """
    ids: set[int] = set()
    for programme in programmes:
        if programme.link is not None and programme.link.is_unlinked:
            continue
        records: list[ProgrammeManifest | LotManifest] = [programme, *programme.lots]
        for record in records:
            if record.link is not None and record.link.is_unlinked:
                continue
            if record.link is not None and record.link.attach is not None:
                ids.add(record.link.attach)
            link = links.get(record.up_id)
            if link is not None and link.state is LinkState.LINKED:
                ids.add(link.mynotary_id or 0)
    return {
        record_id for record_id in ids if record_id and record_id not in state.records
    }


async def _read_single_records(
    client: RecordReader, ids: set[int], state: RemoteState
) -> None:
    ordered = sorted(ids)
    results = await asyncio.gather(
        *(client.get_record(record_id) for record_id in ordered)
    )
    for record_id, record in zip(ordered, results, strict=True):
        if record is None:
            state.missing_ids.add(record_id)
        else:
            state.records[record_id] = record
