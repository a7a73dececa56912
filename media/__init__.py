"""rtbridge's media pipeline: codecs, resampling, RTP, DTMF, jitter and playout buffers.

Pure, synchronous code over numpy arrays with explicit state and injected clocks; the asyncio
drivers that move packets live with the calls.
"""
