"""What ``serve`` and ``call`` both run: the local agent (when a profile needs it), call
records, the call manager and, when a SIP port is set, the SIP endpoint.

:func:`start_runtime` enters everything into the caller's ``AsyncExitStack``, so the stack's
exit stops it all in reverse order (SIP first, then calls, records, the agent).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from bridge.calls.manager import CallManager
from bridge.calls.sip_leg import SipLeg
from bridge.config import Settings, UpstreamSettings
from bridge.records import CallStore
from bridge.security import SecurityLog

__all__ = ["Runtime", "start_runtime"]


log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings  # with local-agent URLs filled in
    upstream: UpstreamSettings  # what the WebSocket relay connects to
    upstream_label: str
    store: CallStore
    manager: CallManager
    sip_leg: SipLeg
    sip_label: str


async def start_runtime(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    *,
    sip_port: int | None,
    security: SecurityLog | None = None,
    owner: str | None = None,
) -> Runtime:
    upstream = settings.upstream
    upstream_label = f"{upstream.url} ({upstream.dialect.value})"
    needs_agent = not upstream.url or any(not p.upstream.url for p in settings.profiles.values())
    if needs_agent:
        from bridge.agent import LocalAgent

        agent_settings = settings.agent.model_copy(update={"host": "127.0.0.1", "port": 0})
        agent = await stack.enter_async_context(LocalAgent(agent_settings))
        local = {"url": agent.url, "dialect": agent_settings.dialect, "api_key_env": None}
        if not upstream.url:
            upstream = upstream.model_copy(update=local)
            upstream_label = f"local agent {agent.url} ({agent_settings.dialect.value})"
        profiles = {
            name: p
            if p.upstream.url
            else p.model_copy(update={"upstream": p.upstream.model_copy(update=local)})
            for name, p in settings.profiles.items()
        }
        settings = settings.model_copy(update={"profiles": profiles})

    store = CallStore(
        settings.records_target,
        retention_s=settings.calls.records_retention_days * 86400.0,
        owner=owner,
        recordings=settings.recordings_path,
    )
    stack.callback(store.close)
    manager = await stack.enter_async_context(CallManager(settings, store, security=security))
    sip_leg = SipLeg(manager)
    sip_label = "off (use --sip-port)"
    ignored = sorted({"udp_port", "tcp_port"} & settings.sip.model_fields_set)
    if ignored:
        log.warning(
            "[sip] %s ignored: SIP listens on server.sip_port (--sip-port), UDP and TCP",
            " and ".join(ignored),
        )
    if sip_port is not None:
        from sip.driver import start_sip

        sip_settings = settings.sip.model_copy(update={"udp_port": sip_port, "tcp_port": sip_port})
        endpoint = await start_sip(sip_settings, sip_leg)
        stack.push_async_callback(endpoint.close)
        sip_leg.endpoint = endpoint
        sip_label = f"{sip_settings.bind_host} " + ", ".join(
            f"{k.upper()} {v}" for k, v in sorted(endpoint.ports.items())
        )
    return Runtime(settings, upstream, upstream_label, store, manager, sip_leg, sip_label)
