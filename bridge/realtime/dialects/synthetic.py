"""What Gemini Live and GPT-Live translators share: a GA session rtbridge keeps for them.

Neither upstream has GA's session object, items, responses, truncation or cancel. The shared
part, one place per gap:

* **Opening.** A GA client expects ``session.created`` first; the translator sends it itself when
  the socket opens, with the session the client has not yet configured.
* **The first frame.** The upstream's first frame (Gemini ``setup``, GPT-Live ``session.start``)
  is built from the first GA ``session.update`` (or from the defaults, if another event comes
  first). Everything the client sends before the upstream confirms is held and sent after,
  in order; the confirmation becomes the GA ``session.updated`` that answers the update. Fields
  the upstream has no place for are listed in that event's ``not_applied``.
* **Later ``session.update``s.** Only the fields in ``Capabilities.mutable_session`` may change
  mid-session. An update that changes any other field is refused whole with an ``error``
  (code ``session_update_not_applied``, ``param`` the first field, the message naming all of
  them), as GA refuses an invalid update; it is still remembered in :attr:`desired_session`, so
  the next connection (a renewal) starts with it. An update that changes nothing is answered
  with ``session.updated`` at once.
* **Local answers.** ``conversation.item.truncate``, ``.delete``, ``.retrieve`` and
  ``response.cancel`` are answered here (:class:`~bridge.realtime.dialects.lifecycle.Lifecycle`).
  A GA client event with no counterpart gets an ``error`` (code ``unsupported_event``), never
  silence.
"""

from __future__ import annotations

import base64
import binascii
import copy
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from bridge.realtime.dialects.base import NOTHING, Event, Routed, UpstreamTranslator
from bridge.realtime.dialects.lifecycle import IdMinter, Lifecycle, LocalError, error_event

__all__ = ["SyntheticTranslator", "flat_fields", "merge_session"]

#: Upstream events held while the upstream has not confirmed its first frame (then dropped,
#: counted in ``held_dropped``): about 10 s of 20 ms audio.
MAX_HELD = 500
_READ_ONLY = frozenset({"type", "id", "object", "expires_at", "client_secret"})


def merge_session(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: ``audio.input``/``audio.output`` merge key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if key == "audio" and isinstance(value, Mapping):
            audio = dict(out.get("audio") or {})
            for side, part in value.items():
                if isinstance(part, Mapping):
                    audio[side] = {**(audio.get(side) or {}), **copy.deepcopy(dict(part))}
                else:
                    audio[side] = copy.deepcopy(part)
            out["audio"] = audio
        else:
            out[key] = copy.deepcopy(value)
    return out


def flat_fields(session: Mapping[str, Any]) -> dict[str, Any]:
    """A GA session as ``{"instructions": ..., "audio.input.format": ...}`` (read-only keys
    left out)."""
    out: dict[str, Any] = {}
    for key, value in session.items():
        if key in _READ_ONLY:
            continue
        if key == "audio" and isinstance(value, Mapping):
            for side, part in value.items():
                if isinstance(part, Mapping):
                    for k, v in part.items():
                        out[f"audio.{side}.{k}"] = v
                else:
                    out[f"audio.{side}"] = part
        else:
            out[key] = value
    return out


class SyntheticTranslator(UpstreamTranslator):
    """Base of the translators that synthesise GA's session, items and responses.

    ``model`` is the upstream's configured model; a GA client's ``model`` (an OpenAI model
    name, as the openai SDK always sends) is not what this upstream serves and is not used."""

    passthrough = False
    model_in_url = False

    def __init__(self, model: str, *, ids: IdMinter | None = None) -> None:
        self.model = model
        self.ids = ids or IdMinter()
        self.life = Lifecycle(self.ids)
        self.session: dict[str, Any] = {"type": "realtime", "model": model}
        self.desired_session: dict[str, Any] = dict(self.session)
        self.started = False  # the first frame went upstream
        self.ready = False  # the upstream confirmed it
        self.held_dropped = 0
        self.not_applied: list[str] = []  # fields of the first update the upstream cannot hold
        #: set while the upstream's output for a cancelled or interrupted turn is dropped
        self.discarding = False
        self._held: list[Event] = []
        self._held_frames: list[str] = []
        self._pending_update_id: Any = None
        self._handlers: dict[str, Callable[[Mapping[str, Any]], Routed]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append_event,
            "conversation.item.truncate": self._truncate,
            "conversation.item.delete": self._delete,
            "conversation.item.retrieve": self._retrieve,
            "response.cancel": self._cancel,
            "input_audio_buffer.clear": self._clear,
        }

    # ---- to implement ------------------------------------------------------------------

    @abstractmethod
    def first_frame(self, session: dict[str, Any]) -> tuple[Event, list[str]]:
        """The upstream's first frame for this GA session, and the fields it cannot hold.

        Raises :class:`LocalError` when the session cannot start at all (a format the
        upstream lacks: the call path then falls back to PCM16)."""

    def apply_mid_session(self, changes: dict[str, Any]) -> Routed:
        """Send the mutable ``changes`` (flat field names) upstream; default: none exist."""
        return NOTHING

    @abstractmethod
    def audio_frames(self, audio: bytes) -> list[str]:
        """Upstream frames for caller audio in the GA session format."""

    # ---- opening and the first frame ---------------------------------------------------

    def opening(self) -> Routed:
        created = {
            "type": "session.created",
            "event_id": self.ids("event"),
            "session": dict(self.session),
        }
        return Routed(client=(created,))

    def _start(self, session: Mapping[str, Any], event_id: Any = None) -> Routed:
        requested = merge_session(self.session, session)
        try:
            frame, not_applied = self.first_frame(requested)
        except LocalError as exc:
            return Routed(client=(error_event(self.ids, exc, event_id),))
        self.session = requested
        self.desired_session = copy.deepcopy(requested)
        self.not_applied = not_applied
        self.started = True
        self._pending_update_id = event_id
        return Routed(upstream=(frame,))

    def confirmed(self) -> Routed:
        """The upstream accepted the first frame: ``session.updated`` and what was held."""
        self.ready = True
        updated: Event = {
            "type": "session.updated",
            "event_id": self.ids("event"),
            "session": copy.deepcopy(self.session),
        }
        if self.not_applied:
            updated["not_applied"] = list(self.not_applied)
        held, self._held = tuple(self._held), []
        frames, self._held_frames = tuple(self._held_frames), []
        return Routed(upstream=held, client=(updated,), frames=frames)

    def _send(self, *events: Event) -> Routed:
        """Upstream events, held until the upstream confirmed its first frame."""
        if self.ready:
            return Routed(upstream=events)
        room = MAX_HELD - len(self._held) - len(self._held_frames)
        self._held += events[: max(0, room)]
        self.held_dropped += max(0, len(events) - max(0, room))
        return NOTHING

    def _ensure_started(self) -> Routed:
        return NOTHING if self.started else self._start({})

    # ---- GA client events --------------------------------------------------------------

    def to_upstream(self, ev: Mapping[str, Any]) -> Routed:
        kind = ev.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        try:
            if kind != "session.update" and not self.started:
                return self._ensure_started() + self.to_upstream(ev)
            if handler is None:
                raise LocalError(
                    f"'{kind}' has no counterpart on this upstream ({self.dialect.value}).",
                    code="unsupported_event",
                    param="type",
                )
            return handler(ev)
        except LocalError as exc:
            return Routed(client=(error_event(self.ids, exc, ev.get("event_id")),))

    def append_audio(self, audio: bytes) -> Routed:
        start = self._ensure_started()
        frames = self.audio_frames(audio)
        if self.ready:
            return start + Routed(frames=tuple(frames))
        room = MAX_HELD - len(self._held) - len(self._held_frames)
        self._held_frames += frames[: max(0, room)]
        self.held_dropped += max(0, len(frames) - max(0, room))
        return start

    def _append_event(self, ev: Mapping[str, Any]) -> Routed:
        audio = ev.get("audio")
        if not isinstance(audio, str):
            raise LocalError(
                "Missing required parameter: 'audio'.",
                code="missing_required_parameter",
                param="audio",
            )
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise LocalError(
                "Invalid 'audio': not base64.", code="invalid_value", param="audio"
            ) from None
        return self.append_audio(raw)

    def _session_update(self, ev: Mapping[str, Any]) -> Routed:
        session = ev.get("session")
        if not isinstance(session, Mapping):
            raise LocalError(
                "Missing required parameter: 'session'.",
                code="missing_required_parameter",
                param="session",
            )
        if not self.started:
            return self._start(session, ev.get("event_id"))
        self.desired_session = merge_session(self.desired_session, session)
        current = flat_fields(self.session)
        changes = {k: v for k, v in flat_fields(session).items() if current.get(k, _ABSENT) != v}
        mutable = self.capabilities.mutable_session
        refused = [k for k in changes if mutable is not None and k not in mutable]
        if refused:
            raise LocalError(
                f"{self.dialect.value} cannot change {', '.join(refused)} during a session; "
                "the update was not applied (it is kept for the next session).",
                code="session_update_not_applied",
                param=f"session.{refused[0]}",
            )
        self.session = merge_session(self.session, session)
        if not changes:
            return Routed(
                client=(
                    {
                        "type": "session.updated",
                        "event_id": self.ids("event"),
                        "session": copy.deepcopy(self.session),
                    },
                )
            )
        return self.apply_mid_session(changes)

    def _clear(self, ev: Mapping[str, Any]) -> Routed:
        """The upstream keeps no input buffer a client could clear: answered here."""
        return Routed(
            client=({"type": "input_audio_buffer.cleared", "event_id": self.ids("event")},)
        )

    def committed(self) -> Routed:
        """``input_audio_buffer.committed`` for a client's commit (the upstream has none)."""
        return Routed(
            client=(
                {
                    "type": "input_audio_buffer.committed",
                    "event_id": self.ids("event"),
                    "previous_item_id": None,
                    "item_id": self.ids("item"),
                },
            )
        )

    @staticmethod
    def required_item(ev: Mapping[str, Any]) -> Mapping[str, Any]:
        item = ev.get("item")
        if not isinstance(item, Mapping):
            raise LocalError(
                "Missing required parameter: 'item'.",
                code="missing_required_parameter",
                param="item",
            )
        return item

    def _truncate(self, ev: Mapping[str, Any]) -> Routed:
        item_id, index, end = ev.get("item_id"), ev.get("content_index", 0), ev.get("audio_end_ms")
        if not isinstance(item_id, str) or not isinstance(end, int) or not isinstance(index, int):
            raise LocalError(
                "conversation.item.truncate needs item_id, content_index and audio_end_ms.",
                code="missing_required_parameter",
                param="item_id",
            )
        return Routed(client=tuple(self.life.truncate(item_id, index, end)))

    def _delete(self, ev: Mapping[str, Any]) -> Routed:
        return Routed(client=tuple(self.life.delete(str(ev.get("item_id")))))

    def _retrieve(self, ev: Mapping[str, Any]) -> Routed:
        return Routed(client=tuple(self.life.retrieve(str(ev.get("item_id")))))

    def _cancel(self, ev: Mapping[str, Any]) -> Routed:
        wanted = ev.get("response_id")
        active = self.life.active
        if active is None or (wanted is not None and wanted != active.id):
            raise LocalError(
                "Cancellation failed: no active response found", code="response_cancel_not_active"
            )
        self.discarding = True
        return Routed(client=tuple(self.life.finish("cancelled", "client_cancelled")))

    def upstream_event(self, ev: Mapping[str, Any]) -> Routed:
        """An upstream message with no GA counterpart, kept whole for observers."""
        return Routed(
            client=(
                {
                    "type": "rtbridge.upstream.event",
                    "event_id": self.ids("event"),
                    "dialect": self.dialect.value,
                    "event": dict(ev),
                },
            )
        )


_ABSENT = object()
