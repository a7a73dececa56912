"""An in-process rtbridge call stack for end-to-end call tests: local agent, call manager,
call records and the SIP endpoint, on free ports of 127.0.0.1."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.agent import LocalAgent
from bridge.calls.manager import CallManager
from bridge.calls.sip_leg import SipLeg
from bridge.config import AgentSettings, Settings
from bridge.records import CallStore
from sip.driver import SipEndpoint, start_sip
from sip.settings import SipSettings
from tests.sip.sipp_support import SippResult, free_port, run_sipp
from tests.support.peers import require_peer

_CALLERS = itertools.count()


@dataclass
class Stack:
    agent: LocalAgent
    manager: CallManager
    sip_leg: SipLeg
    sip: SipEndpoint
    store: CallStore
    settings: Settings

    @property
    def sip_port(self) -> int:
        return self.sip.ports["udp"]

    async def sipp_caller(
        self,
        cwd: Path,
        scenario: str | None = None,
        *,
        builtin: str | None = None,
        extra: tuple[str, ...] = (),
        timeout: float = 60,
    ) -> SippResult:
        """One SIPp call into this stack (see :func:`sipp_caller`)."""
        return await sipp_caller(
            self.sip_port, cwd, scenario, builtin=builtin, extra=extra, timeout=timeout
        )


async def sipp_caller(
    sip_port: int,
    cwd: Path,
    scenario: str | None = None,
    *,
    builtin: str | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = 60,
    local_ip: str = "127.0.0.1",
    host: str = "127.0.0.1",
) -> SippResult:
    """One SIPp call to ``host:sip_port`` (this stack, or an ``rtbridge serve``; ``[::1]``
    for IPv6): a scenario's XML (written into ``cwd``) or one of SIPp's built-in scenarios
    (``-sn``), from free ports of ``local_ip``."""
    sipp = require_peer("sipp")
    if scenario is not None:
        path = cwd / f"caller-{next(_CALLERS)}.xml"
        path.write_text(scenario)
        which = ("-sf", str(path))
    else:
        assert builtin is not None
        which = ("-sn", builtin)
    return await run_sipp(
        sipp,
        *which,
        f"{host}:{sip_port}",
        "-m",
        "1",
        "-p",
        str(free_port()),
        "-mp",
        str(free_port()),
        *extra,
        cwd=cwd,
        timeout=timeout,
        local_ip=local_ip,
    )


def _ephemeral_low() -> int:
    """The first port the kernel hands out for port 0 (Linux's ``ip_local_port_range``)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def rtp_range() -> dict[str, int]:
    """A random RTP range below the kernel's ephemeral ports: a peer's port picked with
    :func:`free_port` (SIPp's ``-mp``) then never lands in it. (It did: SIPp failed to bind its
    media port because the stack had taken it for a call's RTCP in between.)"""
    top = max(_ephemeral_low(), 21000) - 402
    base = random.randrange(20000, top, 2)
    return {"rtp_port_min": base, "rtp_port_max": base + 400}


@pytest.fixture
def stack_options() -> dict[str, Any]:
    """Override in a test module to change agent formats, profiles, call settings, the SIP
    endpoint's settings (``sip``: trunks, limits, ports) and the manager's (``manager``)."""
    return {}


@pytest.fixture
async def stack(tmp_path: Path, stack_options: dict[str, Any]) -> AsyncIterator[Stack]:
    agent = LocalAgent(
        AgentSettings(port=0, **stack_options.get("agent", {})),
        **stack_options.get("agent_kwargs", {}),
    )
    await agent.start()
    extra = dict(stack_options.get("profile", {}))
    profile = {**extra, "upstream": {"url": agent.url, **extra.get("upstream", {})}}
    settings = Settings.model_validate(
        {
            "server": {"data_dir": str(tmp_path)},
            "profiles": {"default": profile, **stack_options.get("profiles", {})},
            "calls": {**rtp_range(), **stack_options.get("calls", {})},
            "sip": {"codecs": ["PCMA", "PCMU", "G722", "opus"]},
        }
    )
    store = CallStore(tmp_path / "calls.db")
    manager = CallManager(settings, store, **stack_options.get("manager", {}))
    await manager.__aenter__()
    sip_leg = SipLeg(manager)
    sip = await start_sip(
        SipSettings.model_validate(
            {
                "bind_host": "127.0.0.1",
                "udp_port": 0,
                "tcp_port": None,
                **stack_options.get("sip", {}),
            }
        ),
        sip_leg,
    )
    sip_leg.endpoint = sip
    try:
        yield Stack(agent, manager, sip_leg, sip, store, settings)
    finally:
        await manager.close()
        await sip.close()
        store.close()
        await agent.stop()
