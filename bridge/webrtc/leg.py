"""Setting up a browser call: SDP offer in, agent session open, SDP answer out.

:func:`open_call` does what ``POST /v1/realtime/calls`` promises: admission by the call manager,
the agent session opened and configured for PCM16 24 kHz (the profile's session with the
client's ``session`` merged over it), an aiortc peer connection answering the offer with Opus
only, host candidates on the configured addresses (the offer usually has none and nothing is
trickled: the browser's address is learned from its connectivity checks), and the call handed
to the manager. Every failure is recorded and raised as :class:`CallSetupError` with the HTTP
status the route answers.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from bridge.calls.agent_session import AgentSession
from bridge.calls.end import EndReason
from bridge.calls.info import CallInfo
from bridge.calls.manager import CallManager
from bridge.calls.negotiation import enforce_formats
from bridge.calls.watchdog import Watchdog
from bridge.errors import CallSetupError, UpstreamError
from bridge.logs import log_incident
from bridge.realtime.formats import AudioFormat
from bridge.webrtc.call import WebRtcCall
from bridge.webrtc.ice import gather_on_hosts, guard_sources
from bridge.webrtc.media import TickedAudioTrack, WebRtcMedia, forward_on_arrival

__all__ = ["merge_session", "open_call"]

log = logging.getLogger(__name__)


def merge_session(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``; nested objects merge key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge_session(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


async def open_call(
    manager: CallManager,
    *,
    offer_sdp: str,
    session: Mapping[str, Any],
    ice_hosts: Sequence[str],
    source: str,
) -> tuple[WebRtcCall, str]:
    """Set up a browser call; returns it (already owned by ``manager``) and the SDP answer.

    The set-up holds one of the manager's set-up slots: admission counts it against
    ``max_calls`` and a drain waits for it (before, browser set-ups were counted only once up:
    20 offers at once all passed a cap of 6, and a drain began while one was being set up)."""
    why = manager.admission()
    if why is not None:
        raise CallSetupError(503, f"cannot take calls now: {why}", "unavailable")
    with manager.setup_slot():
        return await _set_up(
            manager, offer_sdp=offer_sdp, session=session, ice_hosts=ice_hosts, source=source
        )


async def _set_up(
    manager: CallManager,
    *,
    offer_sdp: str,
    session: Mapping[str, Any],
    ice_hosts: Sequence[str],
    source: str,
) -> tuple[WebRtcCall, str]:
    settings = manager.settings
    profile_name = settings.webrtc.profile
    profile = settings.profiles.get(profile_name)
    if profile is None:
        raise CallSetupError(500, f"webrtc profile {profile_name!r} is not defined", "config")
    call_id = manager.new_id()
    store = manager.store
    clock = manager.clock
    store.call_offered(
        call_id, direction="inbound", leg="webrtc", from_uri=source, profile=profile_name
    )

    def fail(status: int, reason: EndReason, message: str, code: str) -> CallSetupError:
        store.log_event(call_id, "error", {"source": "setup", "message": message})
        store.call_ended(call_id, reason=reason.value)
        return CallSetupError(status, message, code)

    agent = AgentSession(
        profile,
        preferred=AudioFormat.PCM16,
        ready_timeout_s=settings.calls.session_ready_timeout_s,
        reconnect_window_s=settings.calls.upstream_reconnect_window_s,
        environ=manager.environ,
        clock=clock,
    )
    try:
        agent.session = enforce_formats(merge_session(agent.session, session), AudioFormat.PCM16)
        await agent.open()
    except UpstreamError as exc:  # the browser gets a reference, never the upstream's words
        ref = log_incident(log, f"webrtc call {call_id}: agent unavailable", exc)
        raise fail(
            503 if exc.retryable else 502,
            EndReason.UPSTREAM_UNAVAILABLE,
            f"The agent is unavailable ({ref}).",
            "upstream_unavailable",
        ) from exc
    except BaseException as exc:  # any other failure ends the record too (was: offered for ever)
        with contextlib.suppress(Exception):
            await agent.close()
        if not isinstance(exc, Exception):
            store.call_ended(call_id, reason=EndReason.SETUP_CANCELLED.value)
            raise
        ref = log_incident(log, f"webrtc call {call_id}: setup failed", exc)
        msg = f"Call setup failed ({ref})."
        raise fail(500, EndReason.INTERNAL_ERROR, msg, "server_error") from exc
    if agent.format is not AudioFormat.PCM16:
        await agent.close()
        raise fail(
            502, EndReason.UPSTREAM_FORMAT, "the agent refused PCM16 audio", "upstream_format"
        )

    config = RTCConfiguration(iceServers=[RTCIceServer(u) for u in settings.webrtc.stun_servers])
    pc = RTCPeerConnection(config)
    track = TickedAudioTrack()
    media = WebRtcMedia(to_agent=agent.send_audio, track=track)
    now = clock.wall()
    info = CallInfo(
        call_id=call_id,
        direction="inbound",
        from_uri=source,
        to_uri="",
        profile_name=profile_name,
        trunk=None,
        codec="opus",
        session_format=agent.format.value,
        offered_at=now,
        answered_at=now,
    )
    call = WebRtcCall(
        info,
        pc=pc,
        agent=agent,
        media=media,
        profile=profile,
        store=store,
        ticker=manager.ticker,
        watchdog=Watchdog(
            started_at=clock.now(),
            max_duration_s=profile.max_duration_s,
            media_timeout_s=settings.calls.rtp_timeout_s,
            last_media=lambda: media.stats.last_frame_at,
            media_timeout_reason=EndReason.MEDIA_TIMEOUT,
            connect_timeout_s=settings.webrtc.connect_timeout_s,
        ),
        clock=clock,
        transfers=manager.destinations.for_call(call_id, profile_name, profile),
        security=manager.security,
        recordings=manager.recordings,
    )
    try:
        answer = await _answer(pc, media, offer_sdp, ice_hosts, clock.now)
    except BaseException as exc:
        # each clean-up step on its own: aiortc's close can itself fail on an offer it half
        # took (a BUNDLE naming a missing mid), and the agent session and record must still end
        try:
            await pc.close()
        except Exception:
            log.warning("webrtc call %s: closing the refused peer connection failed", call_id)
        await agent.close()
        if isinstance(exc, CallSetupError):
            raise fail(exc.status, EndReason.BAD_OFFER, str(exc), exc.code) from exc
        if isinstance(exc, Exception):
            msg = f"cannot answer the SDP offer: {exc}"
            raise fail(400, EndReason.BAD_OFFER, msg, "invalid_sdp") from exc
        store.call_ended(call_id, reason=EndReason.SETUP_CANCELLED.value)
        raise
    store.update_call(
        call_id, state="answered", answered_at=now, codec="opus", session_format=agent.format.value
    )
    store.log_event(call_id, "answered", {"codec": "opus", "session_format": agent.format.value})
    parties = {"from_uri": info.from_uri, "to_uri": info.to_uri, "profile": info.profile_name}
    manager.publish("call.offered", call_id, direction=info.direction, leg="webrtc", **parties)
    manager.publish("call.answered", call_id, codec=info.codec, session_format=info.session_format)
    manager.own(call)
    return call, answer


async def _answer(
    pc: RTCPeerConnection,
    media: WebRtcMedia,
    offer_sdp: str,
    hosts: Sequence[str],
    now: Callable[[], float],
) -> str:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
    if not audio:
        raise CallSetupError(400, "the offer has no audio m-line", "invalid_sdp")
    opus = [
        c
        for c in RTCRtpSender.getCapabilities("audio").codecs
        if c.mimeType.lower() == "audio/opus"
    ]
    audio[0].setCodecPreferences(opus)
    media.inline = forward_on_arrival(audio[0].receiver, media.on_rtp, now)
    pc.addTrack(media.track)
    await gather_on_hosts(pc, hosts)
    await pc.setLocalDescription(await pc.createAnswer())
    media.foreign = guard_sources(pc)
    desc = pc.localDescription
    assert desc is not None
    if "opus/48000" not in desc.sdp.lower():
        raise CallSetupError(400, "the offer does not include Opus", "invalid_sdp")
    return str(desc.sdp)
