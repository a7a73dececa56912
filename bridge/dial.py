"""``rtbridge call TARGET``: place one outbound call and keep it up until it ends.

Runs the same runtime as ``serve`` (local agent for profiles without an upstream, call
records, call manager, SIP on ``--sip-port`` or an ephemeral port), originates the call through
the profile's allowlist, prints the outcome as JSON, and hangs up after ``--duration`` seconds
or on Ctrl-C. Exit status: 0 answered, 1 not answered (busy, no answer, rejected, failed),
2 refused before dialling (allowlist, bad settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

from bridge.calls.end import EndReason
from bridge.config import Settings
from bridge.errors import CallNotAllowed
from bridge.logs import setup_logging
from bridge.runtime import start_runtime

__all__ = ["dial"]


def dial(
    settings: Settings,
    target: str,
    *,
    profile: str = "default",
    trunk: str | None = None,
    caller: str | None = None,
    sip_port: int | None = None,
    duration: float | None = None,
) -> int:
    setup_logging(settings.server.log_level, settings.server.log_json)
    try:
        return asyncio.run(_dial(settings, target, profile, trunk, caller, sip_port, duration))
    except KeyboardInterrupt:
        return 130


async def _dial(
    settings: Settings,
    target: str,
    profile: str,
    trunk: str | None,
    caller: str | None,
    sip_port: int | None,
    duration: float | None,
) -> int:
    async with contextlib.AsyncExitStack() as stack:
        rt = await start_runtime(settings, stack, sip_port=sip_port if sip_port is not None else 0)
        manager = rt.manager
        try:
            call_id = await rt.sip_leg.originate(
                target, profile_name=profile, trunk=trunk, caller=caller, source="cli"
            )
        except CallNotAllowed as exc:
            print(f"rtbridge: {exc}", file=sys.stderr)
            return 2
        result = await rt.sip_leg.outcomes[call_id]
        print(
            json.dumps(
                {"call_id": call_id, "outcome": result.outcome, "sip_status": result.sip_status}
            ),
            flush=True,
        )
        if result.outcome != "answered":
            return 1
        call = manager.calls.get(call_id)
        if call is not None:
            try:
                async with asyncio.timeout(duration):
                    await manager.wait_idle()
            except TimeoutError:
                manager.hangup(call_id, EndReason.LOCAL_HANGUP)
                await manager.wait_idle()
        rt.store.flush()
        record = rt.store.get_call(call_id)
        print(
            json.dumps({"call_id": call_id, "ended": record.end_reason if record else None}),
            flush=True,
        )
    return 0
