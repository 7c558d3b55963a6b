"""Reconcile a property developer's programmes and lots from Up to MyNotary.

Terms used throughout the package, each with one meaning:

- manifest: a YAML file under ``manifests/`` that describes one programme and its
  lots as exported from Up (``apiVersion: v1``, ``kind: Programme``).
- programme: a residence on sale; lot: one unit of it (apartment, parking, cellar…).
- Up id: the id of a programme or lot in Up, the key of every record here.
- desired state: what the manifests say MyNotary should hold.
- remote state: what MyNotary holds, read through its API.
- link: the pairing of an Up id with a MyNotary record id, kept in the link table.
  Its state is ``linked``, ``unlinked`` (left alone on purpose) or ``creating``
  (a create was sent and its answer not yet recorded).
- plan: the list of changes that would make the remote state match the desired
  state, plus the problems that block it. A change is a ``create``, ``update``,
  ``link`` or ``unlink``.
- apply: carrying out a plan against MyNotary and recording links.
- drift: a difference between remote state and desired state for linked records
  that no plan produced.

MyNotary records are never deleted: an unlink only forgets a record.
"""

from __future__ import annotations

__version__ = "0.1.0"
