"""Where rtbridge may send a call: destination rules on parsed targets, caps, and the guard
that records every refusal (toll fraud is the costliest failure of a SIP service).

* :mod:`~bridge.destinations.targets`: parse a target, refuse what no policy may allow;
* :mod:`~bridge.destinations.rules`: rules and a profile's numbering plan and caps (settings);
* :mod:`~bridge.destinations.policy`: the pure allow/refuse :class:`Verdict`;
* :mod:`~bridge.destinations.caps`: per-minute and per-day caps;
* :mod:`~bridge.destinations.guard`: the runtime's :class:`Destinations` (policy, caps,
  security events).

This package does not import :mod:`bridge.config` (the settings import its rules).
"""

from bridge.destinations.policy import DestinationPolicy, Purpose, Verdict, VerdictCode
from bridge.destinations.rules import DestinationRule, DestinationSettings
from bridge.destinations.targets import Target, TargetError, parse_target

__all__ = [
    "DestinationPolicy",
    "DestinationRule",
    "DestinationSettings",
    "Purpose",
    "Target",
    "TargetError",
    "Verdict",
    "VerdictCode",
    "parse_target",
]
