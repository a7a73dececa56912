"""Configuring a call's upstream session for its leg: the session, its audio formats, the answer.

The leg, not the client, decides the session's audio format: every ``session.update`` that
reaches the upstream through a call (the profile's, a client's, the sideband's) has its
``audio.input.format``/``audio.output.format`` set by :func:`enforce_formats`.

Format negotiation is adaptive (:func:`configure`): the call asks for the trunk's G.711 codec
(pass-through, no resampling at all). If the upstream refuses it with an ``error`` naming the
format (OpenAI-style ``invalid_value`` on ``session.audio.*.format``), the session falls back to
PCM16 24 kHz and the leg transcodes. The format the upstream reports in ``session.updated`` is
the one used. A renewed session (:mod:`bridge.calls.agent_session`) keeps the call's format: no
fallback then.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.calls.agent_events import session_problem
from bridge.calls.control import merge_telephony_tools
from bridge.config import AgentProfile
from bridge.errors import UpstreamClosedError, UpstreamError
from bridge.realtime.formats import AudioFormat
from bridge.upstream import UpstreamSession

__all__ = [
    "PROVISIONAL_WAIT_S",
    "READ_ONLY",
    "Configured",
    "SessionRefused",
    "build_session",
    "configure",
    "enforce_formats",
]

log = logging.getLogger(__name__)

#: Session fields the upstream reports that a ``session.update`` must not send back.
READ_ONLY = ("id", "object", "expires_at", "client_secret")
#: How long a ``session.updated`` with an unexpected format waits for the real answer.
PROVISIONAL_WAIT_S = 1.0


class SessionRefused(UpstreamError):
    """The upstream answered our session configuration with an error."""

    retryable = False


def build_session(profile: AgentProfile, fmt: AudioFormat) -> dict[str, Any]:
    """The GA session a call starts with, from its agent profile."""
    session: dict[str, Any] = {
        "type": "realtime",
        "model": profile.upstream.model,
        "audio": {
            "input": {"format": fmt.to_ga(), "turn_detection": {"type": "server_vad"}},
            "output": {"format": fmt.to_ga()},
        },
    }
    if profile.instructions:
        session["instructions"] = profile.instructions
    if profile.voice:
        session["audio"]["output"]["voice"] = profile.voice
    if profile.tools:
        session["tools"] = copy.deepcopy(profile.tools)
    if profile.telephony_tools:
        session = merge_telephony_tools(session)
    return session


def enforce_formats(session: Mapping[str, Any], fmt: AudioFormat) -> dict[str, Any]:
    """A copy of a GA session object with both audio formats set to the leg's format."""
    out = dict(session)
    audio = _obj(out.get("audio"))
    for direction in ("input", "output"):
        part = _obj(audio.get(direction))
        part["format"] = fmt.to_ga()
        audio[direction] = part
    out["audio"] = audio
    return out


def _obj(value: object) -> dict[str, Any]:
    """A copy of ``value`` if it is an object, else an empty one (a session's parts)."""
    return dict(value) if isinstance(value, Mapping) else {}


def _format_of(session: Mapping[str, Any]) -> AudioFormat | None:
    try:
        return AudioFormat.from_ga(session["audio"]["output"]["format"])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(slots=True)
class Configured:
    """The upstream confirmed a session: its format, the session as it reported it (read-only
    fields left out), and the other events read while waiting (in order)."""

    format: AudioFormat
    session: dict[str, Any]
    pending: list[dict[str, Any]]


async def configure(
    up: UpstreamSession,
    session: dict[str, Any],
    fmt: AudioFormat,
    *,
    fallback: bool,
    ready_timeout: float,
    refusals: list[str],
) -> Configured:
    """Send ``session`` and wait for its confirmation. ``fallback``: a refused G.711 format
    falls back to PCM16. Refusals' messages are appended to ``refusals``; raises
    :class:`SessionRefused` when the upstream refuses, :class:`UpstreamError` when it does not
    answer within ``ready_timeout``."""
    pending: list[dict[str, Any]] = []
    await up.send({"type": "session.update", "session": session})
    try:
        async with asyncio.timeout(ready_timeout):
            updated = await _await_updated(up, fmt, pending, refusals)
    except TimeoutError:
        raise UpstreamError(
            f"upstream did not confirm the session within {ready_timeout:g} s", retryable=True
        ) from None
    if updated is None and fallback and fmt is not AudioFormat.PCM16:
        log.info("upstream refused %s; falling back to pcm16 (transcoding)", fmt)
        fmt = AudioFormat.PCM16
        session = enforce_formats(session, AudioFormat.PCM16)
        await up.send({"type": "session.update", "session": session})
        async with asyncio.timeout(ready_timeout):
            updated = await _await_updated(up, fmt, pending, refusals)
    if updated is None:
        raise SessionRefused("upstream refused the session configuration")
    reported = _format_of(updated)
    return Configured(
        reported if reported is not None else fmt,
        {k: v for k, v in updated.items() if k not in READ_ONLY},
        pending,
    )


async def _await_updated(
    up: UpstreamSession, fmt: AudioFormat, pending: list[dict[str, Any]], refusals: list[str]
) -> dict[str, Any] | None:
    """The ``session.updated`` that answers our update, or None if an ``error`` came first.

    A ``session.updated`` reporting another format than we asked for is provisional: some
    dialects deliver one that does not answer our update (xAI's late ``session.created``,
    forwarded as ``session.updated`` by the translator). If the matching one (or an error)
    follows within :data:`PROVISIONAL_WAIT_S`, it wins; otherwise the reported format is what
    the upstream gave us, and we adopt it.
    """
    provisional: dict[str, Any] | None = None
    events = up.events().__aiter__()
    while True:
        try:
            if provisional is None:
                event = await events.__anext__()
            else:
                event = await asyncio.wait_for(events.__anext__(), PROVISIONAL_WAIT_S)
        except TimeoutError:
            return provisional
        except StopAsyncIteration:
            raise UpstreamClosedError(
                "upstream closed while the session was being configured"
            ) from None
        kind = event.get("type")
        if kind == "session.updated":
            raw = event.get("session")
            session = dict(raw) if isinstance(raw, Mapping) else {}
            problem = session_problem(session)
            if problem is not None:  # not adopted: the answer we wait for is still to come
                log.warning("upstream sent a malformed session.updated, ignored: %s", problem)
                continue
            if _format_of(session) in (None, fmt):
                return session
            provisional = session
            continue
        if kind == "error":
            err = event.get("error") or {}
            log.warning("upstream refused session.update: %s", err.get("message"))
            refusals.append(str(err.get("message", "")))
            return None
        pending.append(event)
