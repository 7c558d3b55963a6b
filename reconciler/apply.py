"""Carry out a plan against MyNotary and record every link on the way.

Programmes go first, then annex lots (parkings, cellars…), then the lots that list
them as annexes, so every id a request needs exists when it is sent. Within each of
these phases, changes run concurrently up to the client's limit. Before a create
the link table's journal records the Up id as ``creating`` with its natural key, and
after it the new MyNotary id, so a crash at any point leaves a trail the next run
follows instead of creating a duplicate. Each change applied or failed also gets a
line in the audit log (``reconciler.audit``), written before its journal entry.

A failure stops the apply: no new change starts, the changes in flight finish, and
the later phases are not attempted. A cancellation (Ctrl-C under ``asyncio.run``)
does the same and sets ``ApplyResult.interrupted``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

from reconciler.audit import AuditContext
from reconciler.audit import AuditLog
from reconciler.audit import audit_path_for
from reconciler.errors import ReconcilerError
from reconciler.fields import ANNEX_NATURES
from reconciler.links import Link
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.mynotary import adapter
from reconciler.normalize import Value
from reconciler.plan import LOT
from reconciler.plan import PROGRAMME
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import Plan
from reconciler.planfile import plan_digest

logger = logging.getLogger(__name__)

Record = dict[str, Any]


class RecordWriter(Protocol):
    """The writes of ``MyNotaryClient`` that apply needs."""

    async def create_record(
        self,
        record_type: str,
        questions: dict[str, Any],
        /,
        *,
        programme_id: int | None = None,
        external_reference: str | None = None,
    ) -> Record: ...

    async def update_record(
        self, record_id: int, version: int, questions: dict[str, Any], /
    ) -> Record: ...


@dataclass(frozen=True)
class FailedChange:
    change: Change
    error: str


@dataclass
class ApplyResult:
    """What an apply did: changes applied, failed and not attempted.

    ``interrupted`` is true when the apply was cancelled (Ctrl-C) and stopped early.
    """

    applied: list[Change] = field(default_factory=list)
    failed: list[FailedChange] = field(default_factory=list)
    not_attempted: list[Change] = field(default_factory=list)
    interrupted: bool = False

    @property
    def is_success(self) -> bool:
        return not self.failed and not self.not_attempted

    def summary(self) -> str:
        return (
            f"{len(self.applied)} applied, {len(self.failed)} failed, "
            f"{len(self.not_attempted)} not attempted"
        )


ProgressCallback = Callable[[Change, Record | None], None]


def order_changes(changes: tuple[Change, ...]) -> list[list[Change]]:
    """Return the changes in phases: programmes, annex lots, then other lots."""
    programmes = [change for change in changes if change.kind == PROGRAMME]
    lots = [change for change in changes if change.kind == LOT]
    annexes = [change for change in lots if _is_annex(change)]
    others = [change for change in lots if not _is_annex(change)]
    return [phase for phase in (programmes, annexes, others) if phase]


def _is_annex(change: Change) -> bool:
    return change.desired.get("nature") in ANNEX_NATURES


async def apply_plan(
    plan: Plan,
    client: RecordWriter,
    links: LinkTable,
    *,
    parallelism: int = 8,
    on_progress: ProgressCallback | None = None,
) -> ApplyResult:
    """Apply ``plan``; stop at the first phase with a failure or a cancellation.

    The link table is saved at the end whatever happened, so it is true even when
    the apply failed halfway. The audit log beside it gets one line per change.
    """
    context = AuditContext(plan.target, plan_digest(plan))
    audit = AuditLog(audit_path_for(links.path), context)
    applier = _Applier(client, links, on_progress, audit)
    result = ApplyResult()
    try:
        for phase in order_changes(plan.changes):
            if result.failed or result.interrupted:
                result.not_attempted.extend(phase)
                continue
            await applier.run_phase(phase, parallelism, result)
    finally:
        links.save()
        audit.close()
    return result


class _Applier:
    def __init__(
        self,
        client: RecordWriter,
        links: LinkTable,
        on_progress: ProgressCallback | None,
        audit: AuditLog,
    ) -> None:
        self.client = client
        self.links = links
        self.on_progress = on_progress
        self.audit = audit

    async def run_phase(
        self, phase: list[Change], parallelism: int, result: ApplyResult
    ) -> None:
        semaphore = asyncio.Semaphore(parallelism)
        stop = asyncio.Event()

        async def run(change: Change) -> None:
            async with semaphore:
                if stop.is_set():
                    result.not_attempted.append(change)
                    return
                await self._run_change(change, stop, result)

        # asyncio.wait, unlike gather, leaves the changes running when the phase
        # is cancelled, so that they can finish and be recorded.
        tasks = [asyncio.ensure_future(run(change)) for change in phase]
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            _accept_cancellation()
            stop.set()
            result.interrupted = True
            logger.warning("interrupted: finishing the changes in flight")
            await asyncio.wait(tasks)

        for task in tasks:
            task.result()

    async def _run_change(
        self, change: Change, stop: asyncio.Event, result: ApplyResult
    ) -> None:
        try:
            record = await self.apply_change(change)
        except ReconcilerError as error:
            stop.set()
            logger.error("%s %s failed: %s", change.action.value, change.up_id, error)
            self.audit.record_failed(change, str(error))
            result.failed.append(FailedChange(change, str(error)))
            return
        except BaseException:
            stop.set()
            raise

        result.applied.append(change)
        if self.on_progress is not None:
            self.on_progress(change, record)

    async def apply_change(self, change: Change) -> Record | None:
        # The audit line of each change goes before its journal entry: a process
        # killed in between repeats the change (and its line) on the next run.
        match change.action:
            case Action.UNLINK:
                self.audit.record_applied(change, change.previous_id)
                self._record_link(change, LinkState.UNLINKED, change.previous_id)
                return None
            case Action.LINK:
                record = await self._update_fields(change)
                self.audit.record_applied(change, change.mynotary_id)
                self._record_link(change, LinkState.LINKED, change.mynotary_id)
                return record
            case Action.UPDATE:
                record = await self._update_fields(change)
                if any(item.name == "number" for item in change.fields):
                    # The link keeps the lot number as the natural key.
                    self._record_link(change, LinkState.LINKED, change.mynotary_id)
                self.audit.record_applied(change, change.mynotary_id)
                return record
            case Action.CREATE:
                return await self._create(change)

    def _record_link(
        self, change: Change, state: LinkState, mynotary_id: int | None
    ) -> None:
        link = Link(
            up_id=change.up_id,
            kind=change.kind,
            state=state,
            mynotary_id=mynotary_id,
            programme=change.programme_up_id if change.kind == LOT else None,
            number=change.lot_number,
        )
        self.links.record(link)

    async def _update_fields(self, change: Change) -> Record | None:
        if not change.fields or change.mynotary_id is None:
            return None
        names = [field_change.name for field_change in change.fields]
        questions = adapter.encode_questions(self._resolved(change), names)
        record = await self.client.update_record(
            change.mynotary_id, change.version or 0, questions
        )
        logger.info("updated %s #%s", change.up_id, change.mynotary_id)
        return record

    async def _create(self, change: Change) -> Record:
        programme_id = None
        external_reference = None
        if change.kind == PROGRAMME:
            record_type = adapter.PROGRAMME_TYPE
            external_reference = change.up_id
        else:
            record_type = adapter.lot_type(str(change.desired.get("nature")))
            programme_id = self._programme_id(change)
        questions = adapter.encode_questions(self._resolved(change))
        self._record_link(change, LinkState.CREATING, None)
        record = await self.client.create_record(
            record_type,
            questions,
            programme_id=programme_id,
            external_reference=external_reference,
        )
        self.audit.record_applied(change, int(record["id"]))
        self._record_link(change, LinkState.LINKED, int(record["id"]))
        logger.info("created %s as #%s", change.up_id, record["id"])
        return record

    def _programme_id(self, change: Change) -> int:
        link = self.links.get(change.programme_up_id)
        if (
            link is None
            or link.state is not LinkState.LINKED
            or link.mynotary_id is None
        ):
            raise ReconcilerError(
                f"programme {change.programme_up_id} of lot {change.lot_number} is not "
                "linked on MyNotary; apply its programme first"
            )
        return link.mynotary_id

    def _resolved(self, change: Change) -> Mapping[str, Value]:
        """Return the desired values with annex Up ids replaced by MyNotary ids."""
        values = dict(change.desired)
        annexes = values.get("annexes")
        if isinstance(annexes, tuple) and annexes:
            values["annexes"] = tuple(
                sorted(self._annex_id(change, str(up_id)) for up_id in annexes)
            )
        return values

    def _annex_id(self, change: Change, up_id: str) -> int:
        link = self.links.get(up_id)
        if link is None or link.mynotary_id is None or link.state is LinkState.CREATING:
            raise ReconcilerError(
                f"annex {up_id} of lot {change.lot_number} is not on MyNotary yet, so "
                "the annex relation can't be pushed; remove its unlinked mark or "
                "attach it"
            )
        return link.mynotary_id


def _accept_cancellation() -> None:
    """Mark the current task's cancellation as handled, so later awaits proceed."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
