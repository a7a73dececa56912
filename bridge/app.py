"""The HTTP/WebSocket application: ``create_app(settings, server_key)``.

Routes validate and delegate; protocol code never calls back into this layer. The app's state
holds the settings, the server key and the upstream settings sessions use (the local agent's
address when ``serve`` started one in-process).
"""

from __future__ import annotations

from fastapi import FastAPI

from bridge import __version__
from bridge.apikeys import ServerKey
from bridge.config import Settings, UpstreamSettings
from bridge.relay import router as relay_router
from bridge.webrtc.routes import install as install_webrtc

__all__ = ["create_app"]


def create_app(
    settings: Settings,
    server_key: ServerKey,
    *,
    upstream: UpstreamSettings | None = None,
) -> FastAPI:
    app = FastAPI(title="rtbridge", version=__version__)
    app.state.settings = settings
    app.state.server_key = server_key
    app.state.upstream_settings = upstream or settings.upstream

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(relay_router)
    install_webrtc(app)  # browser calls, client secrets, CORS, the demo page
    return app
