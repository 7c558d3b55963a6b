"""Import lot grids exported from Up into manifests.

Terms used here, besides those of ``reconciler``:

- export: a CSV file saved from Up or from a spreadsheet. Its first row is the
  header, and rows are numbered as a spreadsheet shows them (the header is row 1).
- mapping: a YAML file that says, for each manifest field, the column it comes from
  and how its cells are written (``schemas/mapping-v1.schema.json``).
- skipped row: a row that no manifest value comes from, counted with its reason.
- left out: a lot or programme that an error keeps out of the import; its manifest,
  if any, stays as it was.

``import_csv`` runs an import; ``render_report`` prints its summary.
"""

from __future__ import annotations

from reconciler.importer.errors import LotGridError
from reconciler.importer.errors import MappingError
from reconciler.importer.report import render_report
from reconciler.importer.run import ImportReport
from reconciler.importer.run import ImportRequest
from reconciler.importer.run import import_csv

__all__ = [
    "ImportReport",
    "ImportRequest",
    "LotGridError",
    "MappingError",
    "import_csv",
    "render_report",
]
