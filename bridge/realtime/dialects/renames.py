"""The dialects that are GA with other names: OpenAI beta and xAI (and GA/Azure, unchanged).

rtbridge speaks GA everywhere inside; this module is the only place that knows how the OpenAI beta
shape (seed 001, PROTOCOL.md "Dialects") and the xAI Grok voice agent (seed 003) differ from it.
A :class:`Translator` is made per connection (it keeps a little state, see xAI below) and works on
plain dicts: no pydantic, so the per-audio-delta path is one dict lookup and one shallow copy.
It is also the :class:`~bridge.realtime.dialects.base.UpstreamTranslator` for these dialects
(``to_upstream``/``from_upstream`` wrap the first two directions below); Azure's GA endpoint
speaks GA on the wire, so for it, as for GA, nothing is translated.

Directions (each method takes one event and returns a list: ``[]`` dropped, 2+ expanded):

* ``client_to_dialect``: GA client event -> dialect (rtbridge's upstream client sends it)
* ``server_from_dialect``: dialect server event -> GA (rtbridge's upstream client receives it)
* ``client_from_dialect``: dialect client event -> GA (the local agent serving a dialect)
* ``server_to_dialect``: GA server event -> dialect (the local agent serving a dialect)

For :attr:`Dialect.GA <bridge.config.Dialect>` and ``AZURE`` ``needs_translation`` is False:
callers forward raw frames and never call the methods (which then return a shallow copy).

**The pass-through rule.** An event with no counterpart in the target dialect, or whose type this
module does not know, is passed through unchanged (a shallow copy, same ``type``, same fields):
a proxy never drops what it does not understand. Examples: xAI's ``ping``; towards beta,
``conversation.item.done``, ``conversation.item.input_audio_transcription.segment`` and the
``output_audio_buffer.*`` and MCP events; towards xAI, the MCP events; from xAI,
``conversation.item.input_audio_transcription.updated``; and every unknown type. Fields a rule does
not understand pass through too: translated events are JSON-equal to their input apart from the
renamed/moved fields. Outputs are new dicts; inputs are never mutated (nested containers that
change are copied on write). Nothing is ever dropped: every method returns at least one event.

Beta <-> GA:

* session (``session.update``/``created``/``updated``): flat ``input_audio_format`` /
  ``output_audio_format`` (``pcm16``, ``g711_ulaw``, ``g711_alaw``) <-> ``audio.input.format`` /
  ``audio.output.format`` objects; ``voice``, ``speed`` <-> ``audio.output.*``; ``turn_detection``,
  ``input_audio_transcription``, ``input_audio_noise_reduction`` <-> ``audio.input.*``;
  ``modalities`` <-> ``output_modalities`` (GA ``["audio"]`` is beta ``["audio", "text"]``);
  ``max_response_output_tokens`` <-> ``max_output_tokens``; GA ``type: "realtime"`` is removed
  for beta and re-added coming back. A GA ``type: "transcription"`` session travels as beta
  ``transcription_session.update`` / ``.created`` / ``.updated``.
* ``response.create``'s ``response`` and the ``response`` of ``response.created``/``done``: the
  same renames (``voice``, ``output_audio_format``, ``modalities``; the create params also
  ``max_response_output_tokens``).
* server names: ``response.audio.*`` <-> ``response.output_audio.*``,
  ``response.audio_transcript.*`` <-> ``response.output_audio_transcript.*``, ``response.text.*``
  <-> ``response.output_text.*``, ``conversation.item.created`` <-> ``conversation.item.added``.
* assistant content ``text``/``audio`` (beta) <-> ``output_text``/``output_audio`` (GA) inside
  items (item create/added/retrieved, output items, ``response.output``, ``response.input``) and
  in ``response.content_part.*`` parts.

xAI <-> GA:

* xAI uses GA event names, and dotted names are always what we send. Its client library's
  snake_case tags (``session_update``, ``response_audio_delta``, ...) are accepted in both
  from-dialect directions (:func:`snake_to_dotted`, built from every known event name; beta names
  such as ``response_audio_delta`` then take their GA name). ``response.text.*`` and the other
  beta names are accepted from xAI too.
* session: top-level ``voice`` and ``turn_detection`` <-> ``audio.output.voice`` and
  ``audio.input.turn_detection``. Audio formats: xAI accepts GA objects, so objects are sent;
  flat strings are accepted coming in and become GA objects (``pcm16`` means 24 kHz). Voices
  ``ara rex sal eve leo`` are recognised case-insensitively and written lowercase in xAI
  sessions (both to-dialect directions); any other voice id passes through. ``session.type``
  is sent as given and added (``realtime``) when absent coming in.
* xAI's ready signal is ``conversation.created`` and it may never send ``session.created``: on the
  first ``conversation.created`` or ``session.updated`` from xAI with no ``session.created`` seen,
  a GA ``session.created`` is synthesised first (its session is what the client has sent through
  ``client_to_dialect``, merged, else ``{"type": "realtime"}``). A real ``session.created`` that
  arrives after that is forwarded as ``session.updated``: a GA client sees one ``session.created``.
* DTMF: xAI's ``input_audio_buffer.dtmf_event_received`` may carry ``digit`` instead of
  ``event``; it becomes ``event`` (a ``digit`` equal to ``event`` is dropped). GA -> xAI adds
  ``digit`` beside ``event``.
* assistant content ``text``/``audio`` coming from xAI becomes ``output_text``/``output_audio``.

Lossy on a dialect -> GA -> dialect trip (and only there): beta ``modalities`` order; xAI flat
formats, snake tags, an absent ``session.type``, ``digit``, and ``text``/``audio`` content come
back in GA spelling. GA -> dialect -> GA is exact except: a PCM format without ``rate`` (or with a
rate other than 24000) comes back from beta as 24000, and built-in xAI voice names come back
from xAI lowercase.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bridge.config import Dialect
from bridge.realtime import wire
from bridge.realtime.dialects.base import Routed, UpstreamTranslator
from bridge.realtime.names import (
    BETA_SERVER_EVENT_NAMES,
    CLIENT_EVENT_NAMES,
    GA_SERVER_EVENT_NAMES,
)

__all__ = ["RENAMED_DIALECTS", "XAI_VOICES", "Translator", "snake_to_dotted"]

Event = dict[str, Any]
_Rule = tuple[str, Callable[[Mapping[str, Any], str], list[Event]] | None]

#: xAI's built-in voices (matched case-insensitively; other ids pass through).
XAI_VOICES = frozenset({"ara", "rex", "sal", "eve", "leo"})

_FLAT_TO_GA: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
_MIME_TO_FLAT = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}

#: Beta (and xAI-accepted) server names -> GA.
_SERVER_NAMES_TO_GA = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
}
_SERVER_NAMES_TO_BETA = {ga: beta for beta, ga in _SERVER_NAMES_TO_GA.items()}
_CONTENT_TO_BETA = {"output_text": "text", "output_audio": "audio"}
_CONTENT_TO_GA = {"text": "output_text", "audio": "output_audio"}
_ITEM_EVENTS = (
    "conversation.item.added",
    "conversation.item.retrieved",
    "response.output_item.added",
    "response.output_item.done",
)

# Names the snake table is built from: every registered event, the beta-only client event, and
# the xAI-only names PROTOCOL.md lists.
_KNOWN_NAMES = (
    *CLIENT_EVENT_NAMES,
    *GA_SERVER_EVENT_NAMES,
    *BETA_SERVER_EVENT_NAMES,
    "transcription_session.update",
    "conversation.item.input_audio_transcription.updated",
)


def _build_snake_table(names: Iterable[str]) -> dict[str, str]:
    table: dict[str, str] = {}
    for name in names:
        snake = name.replace(".", "_")
        if snake == name:
            continue
        other = table.setdefault(snake, name)
        if other != name:  # pragma: no cover - guarded by a test
            raise RuntimeError(f"snake tag {snake!r} is ambiguous: {other!r} / {name!r}")
    return table


_SNAKE_TO_DOTTED = _build_snake_table(_KNOWN_NAMES)


def snake_to_dotted(name: str) -> str | None:
    """The dotted event name for an xAI snake_case tag (``session_update`` -> ``session.update``).

    ``None`` if ``name`` is not the snake form of a known event name (dotted names, names without
    a dot such as ``error``, and unknown tags all give ``None``).
    """
    return _SNAKE_TO_DOTTED.get(name)


# --------------------------------------------------------------------------- value helpers


def _fmt_to_flat(fmt: Any) -> Any:
    mime = fmt.get("type") if isinstance(fmt, Mapping) else None
    return _MIME_TO_FLAT.get(mime, fmt) if isinstance(mime, str) else fmt


def _fmt_from_flat(fmt: Any) -> Any:
    if isinstance(fmt, str) and fmt in _FLAT_TO_GA:
        return dict(_FLAT_TO_GA[fmt])
    return fmt


def _modalities_to_beta(mods: Any) -> Any:
    return ["audio", "text"] if mods == ["audio"] else mods


def _modalities_to_ga(mods: Any) -> Any:
    if isinstance(mods, list) and "audio" in mods and all(m in ("audio", "text") for m in mods):
        return ["audio"]
    return mods


def _xai_voice(voice: Any) -> Any:
    if isinstance(voice, str) and voice.lower() in XAI_VOICES:
        return voice.lower()
    return voice


def _move(src: dict[str, Any], key: str, dst: dict[str, Any], new_key: str, fn: Any = None) -> None:
    if key in src:
        value = src.pop(key)
        dst[new_key] = fn(value) if fn is not None else value


def _sub(obj: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    return dict(value) if isinstance(value, Mapping) else None


# (flat key, GA audio side, GA key, value mapper to GA, value mapper to flat)
_Spec = tuple[str, str, str, Any, Any]
_BETA_AUDIO: tuple[_Spec, ...] = (
    ("input_audio_format", "input", "format", _fmt_from_flat, _fmt_to_flat),
    ("input_audio_transcription", "input", "transcription", None, None),
    ("turn_detection", "input", "turn_detection", None, None),
    ("input_audio_noise_reduction", "input", "noise_reduction", None, None),
    ("output_audio_format", "output", "format", _fmt_from_flat, _fmt_to_flat),
    ("voice", "output", "voice", None, None),
    ("speed", "output", "speed", None, None),
)
_XAI_AUDIO_OUT: tuple[_Spec, ...] = (
    ("turn_detection", "input", "turn_detection", None, None),
    ("voice", "output", "voice", None, _xai_voice),
)
_XAI_AUDIO_IN: tuple[_Spec, ...] = (
    *_XAI_AUDIO_OUT,
    ("input_audio_format", "input", "format", _fmt_from_flat, None),
    ("output_audio_format", "output", "format", _fmt_from_flat, None),
)
_RESPONSE_AUDIO: tuple[_Spec, ...] = (
    ("output_audio_format", "output", "format", _fmt_from_flat, _fmt_to_flat),
    ("voice", "output", "voice", None, None),
)


def _flatten_audio(obj: Mapping[str, Any], specs: tuple[_Spec, ...]) -> dict[str, Any]:
    """GA nested ``audio.{input,output}.*`` -> flat top-level keys (per ``specs``)."""
    out = dict(obj)
    audio = _sub(out, "audio")
    if audio is None:
        return out
    for side in ("input", "output"):
        part = _sub(audio, side)
        if part is None:
            continue
        for flat, s, key, _, to_flat in specs:
            if s == side:
                _move(part, key, out, flat, to_flat)
        if part:
            audio[side] = part
        else:
            del audio[side]
    if audio:
        out["audio"] = audio
    else:
        del out["audio"]
    return out


def _nest_audio(obj: Mapping[str, Any], specs: tuple[_Spec, ...]) -> dict[str, Any]:
    """Flat top-level keys -> GA nested ``audio.{input,output}.*`` (per ``specs``)."""
    if not any(spec[0] in obj for spec in specs) or not isinstance(obj.get("audio", {}), Mapping):
        return dict(obj)
    out = dict(obj)
    audio = _sub(out, "audio") or {}
    sides = {"input": _sub(audio, "input") or {}, "output": _sub(audio, "output") or {}}
    for flat, side, key, to_ga, _ in specs:
        _move(out, flat, sides[side], key, to_ga)
    for side, part in sides.items():
        if part:
            audio[side] = part
    out["audio"] = audio
    return out


def _retyped(part: Any, names: Mapping[str, str]) -> Any:
    """``part`` with its ``type`` renamed per ``names`` (a copy), or ``part`` itself."""
    if isinstance(part, Mapping):
        old = part.get("type")
        if isinstance(old, str) and old in names:
            return {**part, "type": names[old]}
    return part


def _content_list(content: Any, names: Mapping[str, str]) -> Any:
    if not isinstance(content, list):
        return content
    return [_retyped(part, names) for part in content]


def _item(item: Any, names: Mapping[str, str], assistant_only: bool) -> Any:
    if not isinstance(item, Mapping) or item.get("type") != "message" or "content" not in item:
        return item
    if assistant_only and item.get("role") != "assistant":
        return item
    return {**item, "content": _content_list(item["content"], names)}


def _items(items: Any, names: Mapping[str, str], assistant_only: bool) -> Any:
    if not isinstance(items, list):
        return items
    return [_item(i, names, assistant_only) for i in items]


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        old = base.get(key)
        if isinstance(value, Mapping) and isinstance(old, dict):
            base[key] = _merge(dict(old), value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value
    return base


# --------------------------------------------------------------------------- the translator


#: The dialects this module translates (the others have modules of their own).
RENAMED_DIALECTS = frozenset({Dialect.GA, Dialect.AZURE, Dialect.BETA, Dialect.XAI})


class Translator(UpstreamTranslator):
    """Translates one connection's events between GA and ``dialect`` (see the module docs)."""

    def __init__(self, dialect: Dialect) -> None:
        if dialect not in RENAMED_DIALECTS:
            raise ValueError(f"{dialect.value} is not a renamed GA dialect")
        self.dialect = dialect
        self.needs_translation: bool = dialect not in (Dialect.GA, Dialect.AZURE)
        self.passthrough = not self.needs_translation
        self._session_seen = False
        self._client_session: dict[str, Any] | None = None
        self._synthesised = 0
        self._client_to: dict[str, _Rule] = {}
        self._server_from: dict[str, _Rule] = {}
        self._client_from: dict[str, _Rule] = {}
        self._server_to: dict[str, _Rule] = {}
        if dialect is Dialect.BETA:
            self._init_beta()
        elif dialect is Dialect.XAI:
            self._init_xai()

    # ---- public API: one dict lookup, then a shallow copy or the rule's transform

    def client_to_dialect(self, ev: Mapping[str, Any]) -> list[Event]:
        """A GA client event as the upstream dialect expects it."""
        return self._apply(self._client_to, ev)

    def server_from_dialect(self, ev: Mapping[str, Any]) -> list[Event]:
        """A server event from an upstream in this dialect, as GA."""
        return self._apply(self._server_from, ev)

    def client_from_dialect(self, ev: Mapping[str, Any]) -> list[Event]:
        """A client event in this dialect, as GA."""
        return self._apply(self._client_from, ev)

    def server_to_dialect(self, ev: Mapping[str, Any]) -> list[Event]:
        """A GA server event, as this dialect."""
        return self._apply(self._server_to, ev)

    # ---- the upstream client's view

    def to_upstream(self, ev: Mapping[str, Any]) -> Routed:
        return Routed(upstream=tuple(self.client_to_dialect(ev)))

    def from_upstream(self, ev: Mapping[str, Any], now: float) -> Routed:
        return Routed(client=tuple(self.server_from_dialect(ev)))

    def append_audio(self, audio: bytes) -> Routed:
        return Routed(frames=(wire.append_frame(audio),))

    @staticmethod
    def _apply(rules: Mapping[str, _Rule], ev: Mapping[str, Any]) -> list[Event]:
        etype = ev.get("type")
        rule = rules.get(etype) if isinstance(etype, str) else None
        if rule is None:
            return [dict(ev)]
        new_type, transform = rule
        if transform is None:
            out = dict(ev)
            out["type"] = new_type
            return [out]
        return transform(ev, new_type)

    # ---- beta

    def _init_beta(self) -> None:
        item_to = _field_rule("item", lambda v: _item(v, _CONTENT_TO_BETA, False))
        item_from = _field_rule("item", lambda v: _item(v, _CONTENT_TO_GA, True))
        self._client_to = {
            "session.update": ("session.update", self._session_event_to_beta),
            "conversation.item.create": ("conversation.item.create", item_to),
            "response.create": (
                "response.create",
                _field_rule("response", lambda v: _response_to_beta(v, "input")),
            ),
        }
        self._client_from = {
            "session.update": ("session.update", _field_rule("session", _session_from_beta)),
            "transcription_session.update": ("session.update", _transcription_from_beta),
            "conversation.item.create": ("conversation.item.create", item_from),
            "response.create": (
                "response.create",
                _field_rule("response", lambda v: _response_from_beta(v, "input")),
            ),
        }
        server_to: dict[str, _Rule] = {
            ga: (beta, None) for ga, beta in _SERVER_NAMES_TO_BETA.items()
        }
        server_from: dict[str, _Rule] = {b: (ga, None) for b, ga in _SERVER_NAMES_TO_GA.items()}
        for name in _ITEM_EVENTS:
            server_to[name] = (_SERVER_NAMES_TO_BETA.get(name, name), item_to)
            server_from[name] = (name, item_from)
        server_from["conversation.item.created"] = ("conversation.item.added", item_from)
        for name in ("session.created", "session.updated"):
            server_to[name] = (name, self._session_event_to_beta)
            server_from[name] = (name, _field_rule("session", _session_from_beta))
            server_from["transcription_" + name] = (name, _transcription_from_beta)
        for name in ("response.created", "response.done"):
            server_to[name] = (name, _field_rule("response", _response_to_beta))
            server_from[name] = (name, _field_rule("response", _response_from_beta))
        for name in ("response.content_part.added", "response.content_part.done"):
            server_to[name] = (name, _field_rule("part", _part_rename(_CONTENT_TO_BETA)))
            server_from[name] = (name, _field_rule("part", _part_rename(_CONTENT_TO_GA)))
        self._server_to, self._server_from = server_to, server_from

    @staticmethod
    def _session_event_to_beta(ev: Mapping[str, Any], new_type: str) -> list[Event]:
        out = dict(ev)
        session = ev.get("session")
        if not isinstance(session, Mapping):
            return [out]
        if session.get("type") == "transcription":
            out["type"] = new_type.replace("session.", "transcription_session.", 1)
        out["session"] = _session_to_beta(session)
        return [out]

    # ---- xAI

    def _init_xai(self) -> None:
        item_from = _field_rule("item", lambda v: _item(v, _CONTENT_TO_GA, True))
        self._client_to = {"session.update": ("session.update", self._xai_session_update)}
        self._server_to = {
            "session.created": ("session.created", _field_rule("session", _session_to_xai)),
            "session.updated": ("session.updated", _field_rule("session", _session_to_xai)),
            "input_audio_buffer.dtmf_event_received": (
                "input_audio_buffer.dtmf_event_received",
                _dtmf_to_xai,
            ),
        }
        self._client_from = {
            "session.update": ("session.update", _field_rule("session", _session_from_xai)),
            "conversation.item.create": ("conversation.item.create", item_from),
        }
        server_from: dict[str, _Rule] = {b: (ga, None) for b, ga in _SERVER_NAMES_TO_GA.items()}
        for name in _ITEM_EVENTS:
            server_from[name] = (name, item_from)
        server_from["conversation.item.created"] = ("conversation.item.added", item_from)
        server_from["session.created"] = ("session.created", self._xai_session_created)
        server_from["session.updated"] = ("session.updated", self._xai_ready)
        server_from["conversation.created"] = ("conversation.created", self._xai_ready)
        server_from["input_audio_buffer.dtmf_event_received"] = (
            "input_audio_buffer.dtmf_event_received",
            _dtmf_from_xai,
        )
        for name in ("response.created", "response.done"):
            server_from[name] = (name, _field_rule("response", _response_from_xai))
        for name in ("response.content_part.added", "response.content_part.done"):
            server_from[name] = (name, _field_rule("part", _part_rename(_CONTENT_TO_GA)))
        self._server_from = _with_snake_aliases(server_from)
        self._client_from = _with_snake_aliases(self._client_from)

    def _xai_session_update(self, ev: Mapping[str, Any], new_type: str) -> list[Event]:
        session = ev.get("session")
        if isinstance(session, Mapping):
            self._client_session = _merge(self._client_session or {}, copy.deepcopy(session))
        return _field_rule("session", _session_to_xai)(ev, new_type)

    def _xai_session_created(self, ev: Mapping[str, Any], new_type: str) -> list[Event]:
        self._session_seen = True
        if self._synthesised:  # the client already had its session.created: this one updates it
            new_type = "session.updated"
        return _field_rule("session", _session_from_xai)(ev, new_type)

    def _xai_ready(self, ev: Mapping[str, Any], new_type: str) -> list[Event]:
        if new_type == "session.updated":
            out = _field_rule("session", _session_from_xai)(ev, new_type)
        else:
            out = [{**ev, "type": new_type}]
        if self._session_seen:
            return out
        self._session_seen = True
        self._synthesised += 1
        session = _merge({"type": "realtime"}, copy.deepcopy(self._client_session or {}))
        synth: Event = {
            "type": "session.created",
            "event_id": f"event_rtbridge_session_{self._synthesised}",
            "session": session,
        }
        return [synth, *out]


# --------------------------------------------------------------------------- rules


def _field_rule(
    field: str, fn: Callable[[Any], Any]
) -> Callable[[Mapping[str, Any], str], list[Event]]:
    """A rule that renames the event and maps one of its fields (if present) through ``fn``."""

    def rule(ev: Mapping[str, Any], new_type: str) -> list[Event]:
        out = dict(ev)
        out["type"] = new_type
        if field in out:
            out[field] = fn(out[field])
        return [out]

    return rule


def _with_snake_aliases(rules: Mapping[str, _Rule]) -> dict[str, _Rule]:
    """Add every snake tag, mapped like its dotted name (or renamed to it)."""
    out = dict(rules)
    for snake, dotted in _SNAKE_TO_DOTTED.items():
        out[snake] = rules.get(dotted, (dotted, None))
    return out


def _part_rename(names: Mapping[str, str]) -> Callable[[Any], Any]:
    return lambda part: _retyped(part, names)


def _session_to_beta(session: Mapping[str, Any]) -> Any:
    out = _flatten_audio(session, _BETA_AUDIO)
    if out.get("type") in ("realtime", "transcription"):
        del out["type"]
    _move(out, "output_modalities", out, "modalities", _modalities_to_beta)
    _move(out, "max_output_tokens", out, "max_response_output_tokens")
    return out


def _session_from_beta(session: Any, session_type: str = "realtime") -> Any:
    if not isinstance(session, Mapping):
        return session
    out = _nest_audio(session, _BETA_AUDIO)
    _move(out, "modalities", out, "output_modalities", _modalities_to_ga)
    _move(out, "max_response_output_tokens", out, "max_output_tokens")
    return out if "type" in out else {"type": session_type, **out}


def _transcription_from_beta(ev: Mapping[str, Any], new_type: str) -> list[Event]:
    out = dict(ev)
    out["type"] = new_type
    if "session" in out:
        out["session"] = _session_from_beta(out["session"], "transcription")
    return [out]


def _response_to_beta(obj: Any, items_key: str = "output") -> Any:
    """A response (``items_key="output"``) or response.create params (``"input"``) to beta."""
    if not isinstance(obj, Mapping):
        return obj
    out = _flatten_audio(obj, _RESPONSE_AUDIO)
    _move(out, "output_modalities", out, "modalities", _modalities_to_beta)
    if items_key == "input":  # only the create params rename it; a response keeps the GA name
        _move(out, "max_output_tokens", out, "max_response_output_tokens")
    if items_key in out:
        out[items_key] = _items(out[items_key], _CONTENT_TO_BETA, False)
    return out


def _response_from_beta(obj: Any, items_key: str = "output") -> Any:
    if not isinstance(obj, Mapping):
        return obj
    out = _nest_audio(obj, _RESPONSE_AUDIO)
    _move(out, "modalities", out, "output_modalities", _modalities_to_ga)
    if items_key == "input":
        _move(out, "max_response_output_tokens", out, "max_output_tokens")
    if items_key in out:
        out[items_key] = _items(out[items_key], _CONTENT_TO_GA, True)
    return out


def _response_from_xai(response: Any) -> Any:
    if not isinstance(response, Mapping) or "output" not in response:
        return response
    return {**response, "output": _items(response["output"], _CONTENT_TO_GA, True)}


def _session_to_xai(session: Any) -> Any:
    if not isinstance(session, Mapping):
        return session
    return _flatten_audio(session, _XAI_AUDIO_OUT)


def _session_from_xai(session: Any) -> Any:
    if not isinstance(session, Mapping):
        return session
    out = _nest_audio(session, _XAI_AUDIO_IN)
    return out if "type" in out else {"type": "realtime", **out}


def _dtmf_to_xai(ev: Mapping[str, Any], new_type: str) -> list[Event]:
    out = dict(ev)
    if "event" in out and "digit" not in out:
        out["digit"] = out["event"]
    return [out]


def _dtmf_from_xai(ev: Mapping[str, Any], new_type: str) -> list[Event]:
    out = dict(ev)
    out["type"] = new_type
    if "digit" in out:
        if "event" not in out:
            out["event"] = out.pop("digit")
        elif out["digit"] == out["event"]:
            del out["digit"]
    return [out]
