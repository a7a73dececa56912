"""The local reference agent: a Realtime server that behaves like OpenAI's on the wire.

It lets rtbridge be tested with no network and no key. It parrots each caller turn back (so
audio fidelity is checkable end to end), answers text turns with a tone phrase, runs an energy
VAD, supports cancel/truncate/tool calls and speaks GA, Azure, beta, xAI, Gemini Live or GPT-Live
(``AgentSettings.dialect``), each on its own wire.

Modules: ``server`` (WebSocket server, pacing, CLI entry), ``core`` (per-connection protocol
state machine, sans-IO), ``requests`` (client input validation), ``planner`` (what a response
says), ``session`` (session defaults and updates), ``vad`` (energy VAD),
``buffer`` (input audio buffer), ``conversation`` (items and their audio), ``responses``
(response event lifecycle), ``tones`` (synthetic audio), ``audio`` (wire formats), ``edge``
(dialect seam: GA, Azure, beta, xAI), ``gemini_edge`` and ``live_edge`` (the Gemini Live and
GPT-Live wires), ``record`` (what tests observe), ``ids``, ``events``.
"""

from __future__ import annotations

from bridge.agent.core import AgentCore
from bridge.agent.record import ResponseRecord, SessionRecord
from bridge.agent.server import LocalAgent, run_agent_forever

__all__ = ["AgentCore", "LocalAgent", "ResponseRecord", "SessionRecord", "run_agent_forever"]
