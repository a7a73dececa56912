"""``rtbridge serve``: the service process.

Starts, in one event loop: the local reference agent when no upstream is configured, the
HTTP/WebSocket app (relay, and later the control plane) under uvicorn, with TLS when given a
certificate, and SIP when a SIP port is set. It prints where it listens and where the server
key is, never the key itself. SIGINT/SIGTERM stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import uvicorn

from bridge.apikeys import resolve_server_key
from bridge.app import create_app
from bridge.config import Settings
from bridge.logs import setup_logging
from bridge.runtime import start_runtime

__all__ = ["serve"]

log = logging.getLogger("rtbridge")


def serve(settings: Settings, *, ice_hosts: list[str] | None = None) -> int:
    setup_logging(settings.server.log_level, settings.server.log_json)
    try:
        return asyncio.run(_serve(settings, ice_hosts or []))
    except KeyboardInterrupt:
        return 0


async def _serve(settings: Settings, ice_hosts: list[str]) -> int:
    srv = settings.server
    server_key = resolve_server_key(srv.data_dir)

    async with contextlib.AsyncExitStack() as stack:
        rt = await start_runtime(settings, stack, sip_port=srv.sip_port)
        app = create_app(rt.settings, server_key, upstream=rt.upstream)
        app.state.ice_hosts = ice_hosts
        app.state.manager = rt.manager
        app.state.store = rt.store
        config_kwargs: dict[str, Any] = {}
        if srv.tls_cert is not None and srv.tls_key is not None:
            config_kwargs.update(ssl_certfile=str(srv.tls_cert), ssl_keyfile=str(srv.tls_key))
        config = uvicorn.Config(
            app,
            host=srv.host,
            port=srv.http_port,
            log_level=srv.log_level,
            log_config=None,  # keep our handlers (and their secret filter)
            ws_max_size=16 * 1024 * 1024,
            ws_per_message_deflate=False,
            lifespan="on",
            **config_kwargs,
        )
        server = uvicorn.Server(config)
        banner = asyncio.create_task(
            _announce(
                server,
                settings,
                rt.upstream_label,
                server_key.path,
                tls=bool(config_kwargs),
                extra=[f"  SIP: {rt.sip_label}", f"  call records: {rt.settings.records_path}"],
            )
        )
        try:
            await server.serve()
        finally:
            banner.cancel()
    return 0


async def _announce(
    server: uvicorn.Server,
    settings: Settings,
    upstream_label: str,
    key_path: object,
    *,
    tls: bool,
    extra: list[str],
) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    host, port = settings.server.host, settings.server.http_port
    for s in server.servers:
        for sock in s.sockets:
            host, port = sock.getsockname()[:2]
            break
    http, ws = ("https", "wss") if tls else ("http", "ws")
    lines = [
        f"rtbridge listening on {http}://{host}:{port}",
        f"  Realtime relay: {ws}://{host}:{port}/v1/realtime",
        f"  upstream: {upstream_label}",
        "  server key: "
        + (f"stored in {key_path} (owner-only)" if key_path else "from $RTBRIDGE_API_KEY"),
        *extra,
    ]
    print("\n".join(lines), flush=True)
