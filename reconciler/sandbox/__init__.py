"""A local stand-in for MyNotary: an HTTP server that implements the API contract.

The contract is ``docs/mynotary-api.md``. ``store`` keeps records in SQLite, ``app``
serves them as an ASGI app, and ``server`` runs that app with uvicorn, on 127.0.0.1
unless the caller passes another host.
"""

from __future__ import annotations
