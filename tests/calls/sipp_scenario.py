"""The SIPp caller builder, shared with ``rtbridge bench sip`` (it lives in bridge/bench)."""

from bridge.bench._sipp import (
    accept_refer,
    bye_or_hang_up,
    hold,
    info,
    pause,
    send_bye,
    stream,
    uac,
    uac_rejected,
    wait_bye,
)

__all__ = [
    "accept_refer",
    "bye_or_hang_up",
    "hold",
    "info",
    "pause",
    "send_bye",
    "stream",
    "uac",
    "uac_rejected",
    "wait_bye",
]
