"""rtbridge's media pipeline: codecs, resampling, RTP, DTMF, and the two paths every call uses.

:mod:`media.caller_path` (caller packets -> 20 ms agent frames: reorder window, pass-through or
decode + resample + re-cut, concealment) and :mod:`media.agent_path` (agent audio -> paced wire
payloads: playout buffer, resample, encode) are shared by the SIP and WebRTC legs; the stages
they are built from each have their own module.

Pure, synchronous code over numpy arrays with explicit state and injected clocks; the asyncio
drivers that move packets live with the calls.
"""
