"""The Realtime event protocol: typed events, session config, items, dialect translation.

Modules:
    wire      frames <-> dicts (orjson), the templated audio append, log redaction
    events    a typed pydantic model for every GA client and server event (seed 004); the
              classes live in event_base, client_events and server_events

    session   the GA session configuration (seed 002) and audio-format helpers
    items     conversation items (seed 000)
    dialects  the one normaliser between GA and every upstream dialect (a package: one
              module per dialect, the shared interface and Capabilities)

Rules every module here keeps: unknown event types and unknown fields survive a round trip
(models allow extra fields; dumps use ``exclude_unset``), frames that need no translation are
forwarded unchanged, and base64 audio is never logged.
"""
