"""The Realtime event protocol: frames, event names, the audio format, dialect translation.

Modules:
    wire      frames <-> dicts (orjson), the templated audio append, log redaction
    names     every GA client and server event name (seed 004) and the beta server names
    formats   :class:`~bridge.realtime.formats.AudioFormat`, the one audio format type
    dialects  the one normaliser between GA and every upstream dialect (a package: one
              module per dialect, the shared interface and Capabilities)

Events travel as dicts (parsed once with orjson); the ones a call reads are typed at the edge
of the call path (:mod:`bridge.calls.agent_events`). Rules every module here keeps: unknown
event types and unknown fields survive a round trip, frames that need no translation are
forwarded unchanged, and base64 audio is never logged.
"""
