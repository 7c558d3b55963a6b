"""Helpers of the fault, kill, lock and audit tests.

They write a small estate of manifests, build settings that point at a served
sandbox, run an apply in this process, and check that MyNotary, the link table and
the audit log agree with the manifests.
"""

from __future__ import annotations

import copy
import io
import sqlite3
from collections import Counter
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from reconciler import commands
from reconciler.audit import audit_path_for
from reconciler.audit import read_audit_log
from reconciler.config import NetworkSettings
from reconciler.config import Settings
from reconciler.config import TargetOptions
from reconciler.config import resolve_settings
from reconciler.errors import ReconcilerError
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.mynotary.client import RetryPolicy
from reconciler.plan import PlanOptions

TEMPLATE = Path(__file__).parent / "fixtures" / "residence-bretonniere.yaml"

# A key that no other text contains, so that finding it anywhere is a leak.
API_KEY = "mnk-LEAKCHECK-7f3a9c1e5b2d"

# Small waits keep the fault tests short: the backoff starts at 10 ms.
FAST_RETRY = RetryPolicy(max_retries=2, max_wait=5.0, backoff=0.01, max_backoff=0.05)

Document = dict[str, Any]


def write_estate(folder: Path, programmes: int = 2, lots: int = 10) -> list[Path]:
    """Write ``programmes`` manifests of ``lots`` lots each under ``folder``.

    In each programme, lots 1 and 2 are parkings, lot 3 is a cellar and the others
    are flats. The first flat lists lots 1 and 3 as annexes, so an apply runs all
    three phases.
    """
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)

    paths = []
    for index in range(1, programmes + 1):
        document = _programme(template, index, lots)
        path = folder / f"residence-fault-{index}.yaml"
        path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
        paths.append(path)
    return paths


def _programme(template: Document, index: int, lot_count: int) -> Document:
    parking, flat, cellar = template["lots"]
    up_id = f"PRG-FAULT-{index}"
    document = copy.deepcopy(template)
    document["upId"] = up_id
    document["name"] = f"Résidence des Pannes {index}"

    lots = []
    for number in range(1, lot_count + 1):
        source = flat
        if number <= 2:
            source = parking
        elif number == 3:
            source = cellar
        lot = copy.deepcopy(source)
        lot["upId"] = f"LOT-FAULT-{index}-{number}"
        lot["number"] = str(number)
        lot.pop("annexes", None)
        if number == 4:
            lot["annexes"] = [f"LOT-FAULT-{index}-1", f"LOT-FAULT-{index}-3"]
        lots.append(lot)
    document["lots"] = lots
    return document


def estate_keys(paths: list[Path]) -> dict[str, tuple[str, str | None]]:
    """Return each Up id of the manifests with its natural key.

    A programme's key is (its Up id, None); a lot's is (its programme's Up id,
    its number).
    """
    keys: dict[str, tuple[str, str | None]] = {}
    for path in paths:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        keys[document["upId"]] = (document["upId"], None)
        for lot in document["lots"]:
            keys[lot["upId"]] = (document["upId"], str(lot["number"]))
    return keys


def sandbox_settings(
    url: str,
    links_path: Path,
    *,
    retry: RetryPolicy = FAST_RETRY,
    timeout: float = 2.0,
    rate_limit: float | None = None,
) -> Settings:
    """Return the settings of a run against the sandbox served at ``url``."""
    options = TargetOptions(
        url=url, organization_id=1, user_id=1, links_path=links_path, timeout=timeout
    )
    settings = resolve_settings(options, {"MYNOTARY_API_KEY": API_KEY})
    network = NetworkSettings(
        connect_timeout=timeout, retry=retry, rate_limit=rate_limit
    )
    return replace(settings, network=network)


@dataclass(frozen=True)
class RunResult:
    """What one command run in this process printed, and its exit code."""

    code: int
    stdout: str
    stderr: str


def apply_in_process(
    settings: Settings,
    manifests: Path,
    *,
    parallelism: int = 8,
    lock_timeout: float = 0.0,
) -> RunResult:
    """Run ``reconciler apply --auto-approve`` in this process.

    A ReconcilerError ends the run as the command line ends it: its message on
    standard error and its exit code.
    """
    out = io.StringIO()
    err = io.StringIO()
    request = commands.ApplyRequest(
        plan=commands.PlanRequest([manifests], settings, PlanOptions()),
        auto_approve=True,
        parallelism=parallelism,
        confirm=lambda: True,
        lock_timeout=lock_timeout,
    )
    try:
        code = commands.run_apply(request, commands.Console(out=out, err=err))
    except ReconcilerError as error:
        err.write(f"error: {error}\n")
        code = error.exit_code
    return RunResult(code, out.getvalue(), err.getvalue())


def store_records(database: Path) -> list[dict[str, Any]]:
    """Return every record of the sandbox store: id, type, programme, key."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT id, type, programme_id, external_reference,"
            " CAST(json_extract(questions, '$.numero_lot') AS TEXT) FROM records"
        ).fetchall()
    finally:
        connection.close()
    return [
        {
            "id": row[0],
            "type": row[1],
            "programmeId": row[2],
            "externalReference": row[3],
            "number": row[4],
        }
        for row in rows
    ]


def find_inconsistencies(
    database: Path, manifests: list[Path], links_path: Path, settings: Settings
) -> list[str]:
    """Return every way in which MyNotary, the link table and the audit log
    disagree with the manifests; none when all is consistent."""
    keys = estate_keys(manifests)
    records = store_records(database)
    links = LinkTable.load(links_path, settings.target)
    problems = _check_records(records, keys)
    problems += _check_links(records, keys, links)
    problems += _check_audit(records, links, audit_path_for(links_path))
    return problems


def _check_records(
    records: list[dict[str, Any]], keys: dict[str, tuple[str, str | None]]
) -> list[str]:
    problems = []
    if len(records) != len(keys):
        problems.append(f"MyNotary has {len(records)} records, manifests {len(keys)}")

    references = Counter(
        record["externalReference"] for record in records if record["number"] is None
    )
    for reference, count in references.items():
        if count > 1:
            problems.append(f"{count} programme records with reference {reference}")

    numbers = Counter(
        (record["programmeId"], record["number"])
        for record in records
        if record["number"] is not None
    )
    for (programme_id, number), count in numbers.items():
        if count > 1:
            problems.append(
                f"{count} lots numbered {number} in programme {programme_id}"
            )
    return problems


def _check_links(
    records: list[dict[str, Any]],
    keys: dict[str, tuple[str, str | None]],
    links: LinkTable,
) -> list[str]:
    by_id = {record["id"]: record for record in records}
    programme_ids = {
        link.up_id: link.mynotary_id for link in links if link.kind == "programme"
    }
    problems = []
    for up_id, (programme, number) in keys.items():
        link = links.get(up_id)
        if link is None or link.state is not LinkState.LINKED:
            problems.append(f"{up_id} is not linked: {link}")
            continue
        record = by_id.get(link.mynotary_id or 0)
        if record is None:
            problems.append(
                f"{up_id} is linked to #{link.mynotary_id}, not on MyNotary"
            )
        elif number is None and record["externalReference"] != programme:
            problems.append(f"{up_id} is linked to #{record['id']}, another programme")
        elif number is not None and (
            record["number"] != number
            or record["programmeId"] != programme_ids.get(programme)
        ):
            problems.append(f"{up_id} is linked to #{record['id']}, another lot")
    return problems


def _check_audit(
    records: list[dict[str, Any]], links: LinkTable, audit_path: Path
) -> list[str]:
    entries = read_audit_log(audit_path)
    problems = []
    for entry in entries:
        if entry.get("result") not in ("applied", "failed"):
            problems.append(f"audit line with result {entry.get('result')!r}")
        if entry.get("result") == "failed" and not entry.get("error"):
            problems.append(f"failed audit line without an error: {entry}")

    adopted = {
        entry["mynotaryId"]
        for entry in entries
        if entry.get("result") == "applied" and entry["action"] in ("create", "link")
    }
    for record in records:
        if record["id"] not in adopted:
            problems.append(
                f"record #{record['id']} has no applied create or link line"
            )

    for link in links:
        lines = [
            entry
            for entry in entries
            if entry["upId"] == link.up_id and entry.get("result") == "applied"
        ]
        if not lines or lines[-1]["mynotaryId"] != link.mynotary_id:
            problems.append(f"the last audit line of {link.up_id} is not its link")
    return problems
