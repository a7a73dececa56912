"""rtbridge: a telephony bridge for Realtime voice agents.

``bridge`` holds the control plane, calls, the Realtime protocol layer (``bridge.realtime``),
the upstream client, the local reference agent (``bridge.agent``) and the CLI. ``sip`` holds SIP
signalling and ``media`` the audio pipeline.
"""

import media  # noqa: F401  (first: it keeps numpy's BLAS to one thread per process)

__version__ = "0.1.0"
