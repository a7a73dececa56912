"""One SIP call's audio: caller RTP -> agent session format, agent audio -> paced RTP.

Two paths, chosen once per call from the negotiated codec and the agent session's format:

* **pass-through**: the trunk speaks PCMU/PCMA and the agent takes the same G.711 format. Bytes
  go both ways untouched: no decode, no resampling (G.711 is only decoded to conceal a loss).
* **transcoding**: anything else. Caller audio is decoded, re-cut into 20 ms frames and
  resampled to PCM16 24 kHz; agent PCM16 24 kHz is resampled to the codec's rate and encoded
  on its way out.

Caller -> agent forwards on arrival through a one-frame :class:`ReorderWindow` (lost frames
are concealed by a fading repeat of the last frame); packets of any ptime are re-cut into
20 ms frames. RFC 4733 telephone-events (any SSRC) become DTMF digits.

Agent -> caller goes through the :class:`~media.playout.PlayoutBuffer`, driven by the shared
frame ticker (:meth:`SipMedia.on_tick`): one RTP packet per 20 ms, silence between responses,
timestamps from the frame deadlines. Its playback events and ``clear()`` results are what
``output_audio_buffer.*`` and barge-in truncation are computed from. Nothing is sent (no
audio, RTCP or tone) to a peer that has not proven it is there: an inbound call's media starts
with the caller's ACK (:meth:`SipMedia.prove`) or its first RTP packet, whichever comes first;
until then the agent's audio waits in the playout buffer (issue 12: an INVITE that is never
ACKed must not turn rtbridge into a stream cannon aimed at whatever address its SDP names).

Synchronous and clock-free: the call feeds it packets and ticks; nothing here awaits.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bridge.bench import _probe
from bridge.realtime.formats import AudioFormat
from media import g711
from media.clock import WallClock
from media.codecs.base import AudioCodec
from media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from media.framing import Reframer
from media.playout import (
    ClearResult,
    Frame,
    PlaybackEvent,
    PlayoutBuffer,
    PlayoutEncoding,
    PlayoutFormat,
)
from media.reorder import ReorderWindow
from media.resample import Resampler
from media.rtcp import RtcpError, RtcpReporter
from media.rtp import ReceiverStats, RtpClock, RtpPacket, RtpSendState

__all__ = ["MediaStats", "SipMedia", "pass_through_format"]

AGENT_RATE = 24000
FRAME_MS = 20
_CONCEAL_GAINS = (0.7, 0.45, 0.25)

_PASS_THROUGH = {"PCMU": AudioFormat.PCMU, "PCMA": AudioFormat.PCMA}
SILENCE_DBFS = -90.0  # level reported for digital silence


def _dbfs(pcm: NDArray[np.int16]) -> float:
    if not len(pcm):
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) / 32768.0
    return max(20.0 * float(np.log10(rms)) if rms > 0 else SILENCE_DBFS, SILENCE_DBFS)


def pass_through_format(codec_name: str) -> AudioFormat | None:
    """The agent format that lets this trunk codec pass untouched (None: must transcode)."""
    return _PASS_THROUGH.get(codec_name.upper())


@dataclass(slots=True)
class MediaStats:
    frames_to_agent: int = 0
    frames_dropped_upstream: int = 0  # the upstream queue was full (stalled agent)
    frames_concealed: int = 0
    rtp_out: int = 0
    foreign_payload: int = 0  # payload types we did not negotiate
    decode_errors: int = 0
    agent_bytes_in: int = 0
    held_frames: int = 0  # caller audio not forwarded while on hold
    rtcp_malformed: int = 0
    last_rtp_at: float | None = None


class SipMedia:
    def __init__(
        self,
        codec: AudioCodec,
        *,
        payload_type: int,
        session_format: AudioFormat,
        send_rtp: Callable[[bytes], bool],
        to_agent: Callable[[bytes], bool],
        send_rtcp: Callable[[bytes], bool] | None = None,
        cname: str = "rtbridge",
        on_dtmf: Callable[[DtmfDigit], None] | None = None,
        on_playback: Callable[[PlaybackEvent], None] | None = None,
        dtmf_payload_type: int | None = None,
        rng: random.Random | None = None,
        proven: bool = True,
    ) -> None:
        self.codec = codec
        #: the peer is there (ACK or RTP): until then nothing is sent to it
        self.proven = proven
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.session_format = session_format
        self.pass_through = pass_through_format(codec.name) is session_format
        self._send_rtp = send_rtp
        self._to_agent = to_agent
        self._on_dtmf = on_dtmf
        self._on_playback = on_playback
        self.stats = MediaStats()

        # caller -> agent
        self.reorder = ReorderWindow(FRAME_MS / 1000)
        self.dtmf = DtmfReceiver(clock_rate=8000)
        self._frame_bytes_in = codec.frame_samples if self.pass_through else 0
        self._pt_buffer = bytearray()
        self._reframer = Reframer(AGENT_RATE * FRAME_MS // 1000)  # after resampling: mono 24k
        self._up_resampler = (
            None
            if self.pass_through
            else Resampler(codec.sample_rate, AGENT_RATE, channels_in=codec.decode_channels)
        )
        self._last_frame: bytes = b""
        self._lost_run = 0
        self.on_hold = False
        self._resume_pending = False
        self.muted = False
        self._dtmf_out: DtmfSender | None = None

        # agent -> caller
        if self.pass_through:
            enc = PlayoutEncoding.PCMU if codec.name.upper() == "PCMU" else PlayoutEncoding.PCMA
            fmt = PlayoutFormat(enc, 8000, FRAME_MS)
        else:
            fmt = PlayoutFormat(PlayoutEncoding.PCM16, codec.sample_rate, FRAME_MS)
        self.playout = PlayoutBuffer(fmt)
        self._down_resampler = (
            None if self.pass_through else Resampler(AGENT_RATE, codec.sample_rate)
        )
        self.send_state = RtpSendState(rng=rng)
        self._rtp_clock: RtpClock | None = None
        # RTCP (RFC 3550 §6): receiver statistics of the caller's stream, SR/RR every ~5 s
        self.rx_stats = ReceiverStats(codec.clock_rate)
        self._send_rtcp = send_rtcp
        self.rtcp = RtcpReporter(self.send_state, cname, wall=WallClock(), rng=rng)
        self._first_packet = True
        # levels for the dashboard: the latest frame each way, measured only when asked
        self._tick_at = 0.0
        self._out_frame: Frame | None = None
        self._rng = rng or random.Random()
        probe = _probe.ACTIVE  # `rtbridge bench sip` timing hooks; None: nothing is wrapped
        if probe is not None:
            timed = probe.timed_on_rtp(self.on_rtp, send_rtp)
            self.on_rtp = timed  # type: ignore[method-assign,assignment]
            self._send_rtp = probe.timed_send_rtp(self._send_rtp)

    # -- caller -> agent ----------------------------------------------------------------

    def prove(self) -> None:
        """The peer acknowledged the call (its ACK): media may flow to it."""
        self.proven = True

    def on_rtp(self, packet: RtpPacket, now: float) -> None:
        self.stats.last_rtp_at = now
        self.proven = True
        pt = packet.payload_type
        if pt == self.dtmf_payload_type:
            for digit in self.dtmf.receive(packet, now):
                if self._on_dtmf is not None:
                    self._on_dtmf(digit)
            return
        if pt != self.payload_type:
            self.stats.foreign_payload += 1
            return
        self.rx_stats.update(packet, now)
        if self.on_hold:  # on hold the caller's audio does not go upstream
            self.stats.held_frames += 1
            return
        for item in self.reorder.push(packet, now):
            self._forward(item)

    def _forward(self, packet: RtpPacket | None) -> None:
        if packet is None:
            self._conceal()
            return
        self._lost_run = 0
        if self.pass_through:
            buf = self._pt_buffer
            buf += packet.payload
            n = self._frame_bytes_in
            while len(buf) >= n:
                frame = bytes(buf[:n])
                del buf[:n]
                self._send_frame(frame)
            return
        try:
            pcm = self.codec.decode(packet.payload)
        except Exception:
            self.stats.decode_errors += 1
            return
        assert self._up_resampler is not None
        for pcm_frame in self._reframer.push(self._up_resampler.process(pcm)):
            self._send_frame(pcm_frame.tobytes())

    def _conceal(self) -> None:
        """One lost 20 ms frame: repeat the last frame with a fading gain (no zero bursts)."""
        if not self._last_frame or self._lost_run >= len(_CONCEAL_GAINS):
            return
        gain = _CONCEAL_GAINS[self._lost_run]
        self._lost_run += 1
        if self.pass_through:
            decode, encode = (
                (g711.ulaw_decode, g711.ulaw_encode)
                if self.session_format is AudioFormat.PCMU
                else (g711.alaw_decode, g711.alaw_encode)
            )
            pcm = (decode(self._last_frame).astype(np.float32) * gain).astype(np.int16)
            frame = encode(pcm)
        else:
            last: NDArray[np.int16] = np.frombuffer(self._last_frame, dtype=np.int16)
            frame = (last.astype(np.float32) * gain).astype(np.int16).tobytes()
        self.stats.frames_concealed += 1
        self._deliver(frame)

    def _send_frame(self, frame: bytes) -> None:
        self._last_frame = frame
        self._deliver(frame)

    def _deliver(self, frame: bytes) -> None:
        if self._to_agent(frame):
            self.stats.frames_to_agent += 1
        else:
            self.stats.frames_dropped_upstream += 1

    # -- agent -> caller ----------------------------------------------------------------

    def push_agent_audio(self, response_id: str, item_id: str, audio: bytes) -> bool:
        """Agent audio in the session format, for playout."""
        self.stats.agent_bytes_in += len(audio)
        if self.muted:
            return False
        if self.pass_through:
            return self.playout.push(response_id, item_id, audio)
        assert self._down_resampler is not None
        pcm: NDArray[np.int16] = np.frombuffer(audio[: len(audio) & ~1], dtype=np.int16)
        return self.playout.push(response_id, item_id, self._down_resampler.process(pcm))

    def mark_done(self, response_id: str) -> None:
        self.playout.mark_done(response_id)

    def clear(self) -> ClearResult:
        """Barge-in: stop before the next frame; what was sent of each item."""
        result = self.playout.clear()
        if self._down_resampler is not None:
            self._down_resampler.reset()
        return result

    def on_rtcp(self, data: bytes, now: float) -> None:
        """The peer's RTCP (reports give us the round-trip time; BYE is recorded)."""
        try:
            self.rtcp.receive(data, now)
        except RtcpError:
            self.stats.rtcp_malformed += 1

    def levels(self) -> tuple[float | None, float | None]:
        """dBFS of the latest 20 ms each way: caller -> agent, agent -> caller (None: nothing
        flowed in the last 100 ms). Measured on demand from frames already at hand (the
        dashboard asks twice a second), so the media path pays nothing per frame."""
        level_in = level_out = None
        last_rtp = self.stats.last_rtp_at
        if self._last_frame and last_rtp is not None and self._tick_at - last_rtp <= 0.1:
            fmt = self.session_format if self.pass_through else AudioFormat.PCM16
            level_in = _dbfs(self._decoded(self._last_frame, fmt))
        out = self._out_frame
        if out is not None and self._tick_at - out.deadline <= 0.1:
            if out.is_silence:
                level_out = SILENCE_DBFS
            elif self.pass_through:
                level_out = _dbfs(self._decoded(out.payload, self.session_format))
            else:
                level_out = _dbfs(out.pcm16())
        return level_in, level_out

    @staticmethod
    def _decoded(frame: bytes, fmt: AudioFormat) -> NDArray[np.int16]:
        if fmt is AudioFormat.PCMU:
            return g711.ulaw_decode(frame)
        if fmt is AudioFormat.PCMA:
            return g711.alaw_decode(frame)
        return np.frombuffer(frame[: len(frame) & ~1], dtype=np.int16)

    def playing(self) -> bool:
        """Agent audio buffered or being played (call control waits for this to end)."""
        return bool(self.playout.active_responses) or self.playout.buffered_ms > 0

    def set_muted(self, muted: bool) -> None:
        """Mute the agent towards the caller (what is buffered is dropped)."""
        self.muted = muted
        if muted:
            self.playout.clear()

    def send_dtmf(self, digits: str) -> bool:
        """RFC 4733 digits to the caller on the audio stream (same SSRC and sequence)."""
        if self.dtmf_payload_type is None or self._rtp_clock is None:
            return False
        if self._dtmf_out is None:
            self._dtmf_out = DtmfSender(self.send_state, self._rtp_clock, self.dtmf_payload_type)
        # start on the next frame of the grid: one packet per tick, and the event's timestamp
        # is that of the audio frame it replaces
        self._dtmf_out.send(digits, self._tick_at + FRAME_MS / 1000)
        return True

    def hold(self, on_hold: bool, now: float) -> None:
        """Hold: caller audio stops going upstream and playout pauses. Playout resumes on the
        next tick, so its deadlines stay on the shared ticker's grid."""
        del now
        self.on_hold = on_hold
        if on_hold:
            self._resume_pending = False
            self.playout.pause()
        elif self.playout.paused:
            self._resume_pending = True

    def on_tick(self, deadline: float, now: float) -> None:
        """The shared 20 ms tick: release a held caller packet, emit due agent frames."""
        self._tick_at = now
        for item in self.reorder.expire(now):
            self._forward(item)
        for digit in self.dtmf.poll(now):
            if self._on_dtmf is not None:
                self._on_dtmf(digit)
        if not self.proven:
            return  # the agent's audio waits; playout starts on the first tick after proof
        if self._resume_pending:
            self._resume_pending = False
            self.playout.resume(deadline)
        if self._rtp_clock is None:
            self.playout.start(deadline)
            self._rtp_clock = RtpClock(self.codec.clock_rate, deadline, self._rng.getrandbits(32))
            self.rtcp.rtp_clock = self._rtp_clock
        if self._send_rtcp is not None and now >= self.rtcp.next_deadline(now):
            sources = [self.rx_stats] if self.rx_stats.ssrc is not None else []
            self._send_rtcp(self.rtcp.report(now, sources))
        tones = self._dtmf_out is not None and self._dtmf_out.sending
        if tones:
            assert self._dtmf_out is not None
            for tone in self._dtmf_out.tick(now):
                if self._send_rtp(bytes(tone)):
                    self.stats.rtp_out += 1
        for frame in self.playout.tick(now):
            if tones:  # RFC 4733 §2.5.1.2: no audio packets while an event is being sent
                continue
            payload = frame.payload if self.pass_through else self.codec.encode(frame.pcm16())
            pkt = self.send_state.packet(
                self.payload_type,
                self._rtp_clock.timestamp(frame.deadline),
                payload,
                marker=self._first_packet,
                now=now,
            )
            self._first_packet = False
            self._out_frame = frame
            if self._send_rtp(bytes(pkt)):
                self.stats.rtp_out += 1
        if self._on_playback is not None:
            for event in self.playout.take_events():
                self._on_playback(event)
