"""Call records: a row per call and an append-only event log per call.

:class:`CallStore` is the one store (non-blocking writes, read-your-writes, retention, records
of dead processes closed as ``interrupted``); the database behind it is SQLite by default
(``<data_dir>/calls.db``) or PostgreSQL (``calls.records_url``), shared by a cluster's nodes.
Event kinds: ``transcript.user``, ``transcript.agent``, ``dtmf``, ``tool_call``, ``error``,
``state``, ...
"""

from bridge.records.schema import (
    INTERRUPTED,
    MIGRATIONS,
    CallEvent,
    CallQuery,
    CallRecord,
    Cursor,
)
from bridge.records.store import CallStore, RecordsHealth, RecordsUnavailable

__all__ = [
    "INTERRUPTED",
    "MIGRATIONS",
    "CallEvent",
    "CallQuery",
    "CallRecord",
    "CallStore",
    "Cursor",
    "RecordsHealth",
    "RecordsUnavailable",
]
