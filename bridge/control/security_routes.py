"""``GET /v1/security/events``: the security event log's recent events (server key only).

``kind`` filters by one or more kinds (``kind=auth-failure&kind=destination-refused``),
``after_seq`` returns only events newer than one already seen, ``limit`` bounds the answer
(newest first). ``counts`` holds the totals by kind since the process started, as in
``rtbridge_security_events_total``. See :mod:`bridge.security`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from bridge.control.auth import require_key
from bridge.security import SecurityKind, SecurityLog

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_key)])


@router.get("/v1/security/events", tags=["security"])
async def security_events(
    request: Request,
    kind: Annotated[list[SecurityKind] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after_seq: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Recent security events, newest first, and the counts by kind."""
    security: SecurityLog = request.app.state.security
    events = security.recent(kinds=kind, limit=limit, after_seq=after_seq)
    return {
        "object": "list",
        "data": [e.to_json() for e in events],
        "counts": security.counts,
        "last_seq": security.last_seq,
    }
