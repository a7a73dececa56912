"""The HTTP/WebSocket application: ``create_app(settings, server_key)``.

Routes validate and delegate; protocol code never calls back into this layer. The lifespan
owns the runtime (``runtime=True``), the control plane (:mod:`bridge.control`) and the
dashboard's fleet history (:mod:`bridge.dashboard.fleet`). The app's state
holds the settings, the server key, the upstream settings sessions use (the local agent's
address when ``serve`` started one in-process), the process's security event log
(:mod:`bridge.security`) and the dashboard's login sessions.

Web-facing defaults: every request body is capped by kind (:mod:`bridge.body_limits`); Swagger
UI (``/docs``) is off unless ``server.docs`` is set, because FastAPI's page loads its scripts
from a CDN, without integrity hashes, onto the origin whose cookie drives the control plane
(``/openapi.json`` stays, for tools); ReDoc is never served.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from bridge import __version__
from bridge.apikeys import ServerKey
from bridge.body_limits import BodyLimits
from bridge.config import Settings, UpstreamSettings
from bridge.control import ControlPlane
from bridge.control import install as install_control
from bridge.control.sessions import SESSIONS_FILE, LoginSessions
from bridge.dashboard import router as dashboard_router
from bridge.dashboard.fleet import watch_fleet
from bridge.relay import router as relay_router
from bridge.runtime import start_runtime
from bridge.security import SecurityLog
from bridge.webrtc.routes import install as install_webrtc

__all__ = ["create_app"]


def create_app(
    settings: Settings,
    server_key: ServerKey,
    *,
    upstream: UpstreamSettings | None = None,
    runtime: bool = False,
    sip_port: int | None = None,
) -> FastAPI:
    """The app. With ``runtime=True`` its lifespan starts and stops the runtime (local agent,
    records, call manager, SIP on ``sip_port``); otherwise a caller may put its own
    ``app.state.manager`` (and ``app.state.sip_leg``) in before start-up. Either way the
    lifespan owns the control plane (``app.state.control``) of that manager."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if runtime:
                rt = await start_runtime(
                    settings, stack, sip_port=sip_port, security=app.state.security
                )
                app.state.runtime = rt
                app.state.settings = rt.settings
                app.state.upstream_settings = upstream or rt.upstream
                app.state.manager = rt.manager
                app.state.sip_leg = rt.sip_leg
                app.state.store = rt.store
            manager = getattr(app.state, "manager", None)
            if manager is not None:
                app.state.security = manager.security  # one security log per process
                sip_leg = getattr(app.state, "sip_leg", None)
                plane = ControlPlane(app.state.settings, manager, manager.store, sip_leg=sip_leg)
                app.state.control = await stack.enter_async_context(plane)
                app.state.fleet = await stack.enter_async_context(watch_fleet(manager))
            yield

    srv = settings.server
    app = FastAPI(
        title="rtbridge",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if srv.docs else None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.server_key = server_key
    app.state.security = SecurityLog()
    app.state.sessions = LoginSessions(
        server_key, srv.data_dir / SESSIONS_FILE, ttl_s=srv.session_ttl_s
    )
    app.state.upstream_settings = upstream or settings.upstream
    app.state.control = None
    app.state.fleet = None  # the fleet view's last hour (bridge.dashboard.fleet), with calls

    install_control(app)  # /v1/calls, /v1/realtime/calls/{id}/*, /v1/events, probes, metrics
    app.include_router(relay_router)
    install_webrtc(app)  # browser calls, client secrets, CORS, the demo page
    app.include_router(dashboard_router)  # /dashboard: ops dashboard, login sessions
    app.add_middleware(BodyLimits)  # outermost of ours: no route reads an oversized body
    return app
