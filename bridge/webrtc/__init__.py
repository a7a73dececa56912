"""Browser calls: the OpenAI-compatible WebRTC leg (``POST /v1/realtime/calls``), ephemeral
client keys, the sideband's attach point and the demo page.

Modules: :mod:`~bridge.webrtc.routes` (HTTP surface), :mod:`~bridge.webrtc.ephemeral`
(``ek_`` keys), :mod:`~bridge.webrtc.leg` (call setup), :mod:`~bridge.webrtc.call` (one live
call), :mod:`~bridge.webrtc.media` (Opus <-> agent PCM on the shared ticker),
:mod:`~bridge.webrtc.ice` (offered host addresses), :mod:`~bridge.webrtc.sideband` (observers
of a live call over WebSocket).
"""

from bridge.webrtc.call import WebRtcCall
from bridge.webrtc.ephemeral import EphemeralKey, EphemeralKeys

__all__ = ["EphemeralKey", "EphemeralKeys", "WebRtcCall"]
