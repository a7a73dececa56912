"""rtbridge's media pipeline: codecs, resampling, RTP, DTMF, and the two paths every call uses.

:mod:`media.caller_path` (caller packets -> 20 ms agent frames: reorder window, pass-through or
decode + resample + re-cut, concealment) and :mod:`media.agent_path` (agent audio -> paced wire
payloads: playout buffer, resample, encode) are shared by the SIP and WebRTC legs; the stages
they are built from each have their own module.

Pure, synchronous code over numpy arrays with explicit state and injected clocks; the asyncio
drivers that move packets live with the calls.
"""

import os

# numpy's OpenBLAS runs a matrix product on every core and then spins its threads waiting for
# the next: a resample of one 100 ms chunk cost 116 us of CPU on two threads against 39 us on
# one, and a 2 s input took longer on two. Real-time media is many small products, one per
# frame of each call, and calls already spread over processes: one thread each. Set before
# numpy is first imported (``bridge`` imports this package first); a value the operator set
# is kept.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
