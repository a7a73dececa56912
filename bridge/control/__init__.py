"""The control plane: management API, OpenAI's call API and webhooks, metrics, drain.

:func:`install` adds the routes, the error shapes and the drain guard to an app;
:class:`ControlPlane` is the per-process state the app's lifespan owns.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.control.auth import require_key
from bridge.control.plane import ControlPlane
from bridge.records import RecordsUnavailable
from bridge.records.store import RETRY_MAX_S

__all__ = ["ControlPlane", "install", "require_key"]

#: Retry-After of a 503 ``records_unavailable``: the store retries its database this far apart
RECORDS_RETRY_AFTER_S = round(RETRY_MAX_S)


def _error_response(status: int, detail: Any, headers: dict[str, str] | None) -> JSONResponse:
    if isinstance(detail, dict) and "message" in detail:
        err = {"type": "invalid_request_error", "code": None, "param": None, **detail}
    else:
        err = {
            "message": str(detail),
            "type": "invalid_request_error" if status < 500 else "server_error",
            "code": None,
            "param": None,
        }
    return JSONResponse({"error": err}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _error_response(exc.status_code, exc.detail, getattr(exc, "headers", None))


async def _records_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A read of the call records found the database down: 503, try again shortly (writes are
    not lost: they wait for the database)."""
    assert isinstance(exc, RecordsUnavailable)
    body = {
        "message": f"{exc}; retry shortly.",
        "type": "server_error",
        "code": exc.code,
    }
    return _error_response(503, body, {"Retry-After": str(RECORDS_RETRY_AFTER_S)})


def _finite(value: Any) -> Any:
    """``value`` with its non-finite floats spelled as JSON's extensions spell them (``NaN``,
    ``Infinity``, ``-Infinity``): a 422 echoes the input, and JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _finite(jsonable_encoder(exc.errors()))
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    first = errors[0].get("loc", ()) if errors else ()
    param = ".".join(str(x) for x in first if x != "body") or None
    body = {
        "error": {
            "message": "Invalid request: " + "; ".join(parts),
            "type": "invalid_request_error",
            "code": "invalid_request",
            "param": param,
        },
        "detail": errors,
    }
    return JSONResponse(body, status_code=422)


class _DrainGuard:
    """While draining, new browser calls get 503 with Retry-After (SIP is refused by the
    SIP core itself, originate by the route)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and scope.get("path") == "/v1/realtime/calls"
        ):
            plane: ControlPlane | None = getattr(scope["app"].state, "control", None)
            if plane is not None and plane.draining:
                retry = str(plane.settings.calls.retry_after_s)
                response = _error_response(
                    503,
                    {
                        "message": "Draining: no new calls.",
                        "type": "server_error",
                        "code": "draining",
                    },
                    {"Retry-After": retry},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Add the control plane's routes, error shapes and drain guard to ``app``."""
    from bridge.control.routes import api, probes
    from bridge.control.security_routes import router as security_router

    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RecordsUnavailable, _records_unavailable)
    app.add_middleware(_DrainGuard)
    app.include_router(probes)
    app.include_router(api)
    app.include_router(security_router)
