"""The messages nodes exchange on their command channels: typed, validated, JSON on the wire.

A node that is asked to act on a call another node owns publishes a :class:`Command` on the
owner's channel (``rtbridge:cmd:<node id>``); the owner runs it through the same control-plane
action a local request would (:mod:`bridge.control.actions`) and publishes a :class:`Reply` on
the asker's channel. Redis answers ``PUBLISH`` with the number of receivers: 0 means the owner
is gone, and the asker answers its client at once (:class:`~bridge.errors.OwnerUnavailable`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from bridge.errors import CommandMalformed

__all__ = ["Command", "Message", "Op", "Reply", "parse_message"]


class Op(StrEnum):
    """What a node may ask the owner of a call to do (the management API's per-call routes)."""

    VIEW = "view"  # GET /v1/calls/{id}: the live view with media statistics
    HANGUP = "hangup"
    TRANSFER = "transfer"  # {target, param}
    DTMF = "dtmf"  # {digits}
    SAY = "say"  # {text, role, respond}
    SESSION = "session"  # {session}
    RECORDING = "recording"  # {paused}: pause or resume the call's recording
    HOLD = "hold"  # {on}: put the caller on hold or resume (SIP re-INVITE)
    EVENTS = "events"  # {after_seq}: the event log, where records are not shared
    ACCEPT = "accept"  # {session}: answer a ringing call (OpenAI's call API)
    REJECT = "reject"  # {status_code}: refuse a ringing call


@dataclass(frozen=True, slots=True)
class Command:
    op: Op
    call_id: str
    reply_to: str  # the asking node's id
    args: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: "cmd_" + secrets.token_hex(8))

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "kind": "command",
                "id": self.id,
                "op": self.op.value,
                "call_id": self.call_id,
                "reply_to": self.reply_to,
                "args": self.args,
            }
        )


@dataclass(frozen=True, slots=True)
class Reply:
    id: str  # the command's
    result: dict[str, Any] | None = None
    #: ``{status, message, code, param}`` when the owner refused
    error: dict[str, Any] | None = None

    def dumps(self) -> bytes:
        return orjson.dumps(
            {"kind": "reply", "id": self.id, "result": self.result, "error": self.error}
        )


Message = Command | Reply


def _str(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v or len(v) > 200:
        raise CommandMalformed(f"command channel message: {key!r} must be a short string")
    return v


def _obj(d: dict[str, Any], key: str, *, optional: bool = False) -> dict[str, Any] | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, dict):
        raise CommandMalformed(f"command channel message: {key!r} must be an object")
    return v


def parse_message(data: bytes | str) -> Message:
    """A command or a reply; raises :class:`CommandMalformed` for anything else."""
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CommandMalformed(f"command channel message is not JSON: {exc}") from exc
    if not isinstance(d, dict):
        raise CommandMalformed("command channel message is not an object")
    kind = d.get("kind")
    if kind == "command":
        try:
            op = Op(str(d.get("op")))
        except ValueError:
            raise CommandMalformed(f"unknown command op {d.get('op')!r}") from None
        args = _obj(d, "args")
        assert args is not None
        return Command(op, _str(d, "call_id"), _str(d, "reply_to"), args, _str(d, "id"))
    if kind == "reply":
        return Reply(
            _str(d, "id"), _obj(d, "result", optional=True), _obj(d, "error", optional=True)
        )
    raise CommandMalformed(f"unknown command channel message kind {kind!r}")
