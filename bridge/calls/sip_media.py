"""One SIP call's audio: the shared media paths behind RTP, RTCP and RFC 4733.

The audio work itself is the two pipelines every leg shares (``media/``): caller RTP goes
through a :class:`~media.caller_path.CallerPath` (one-frame reorder window, then pass-through
or decode + resample + re-cut, concealment of lost frames) to the agent, and agent audio
through an :class:`~media.agent_path.AgentPath` (playout buffer, resample, encode) back. This
module is what is SIP about it, chosen from the negotiated codec and the agent session's format
when the call starts, and again when a re-offer changes the codec (:meth:`SipMedia.change_codec`):

* **pass-through** when the trunk speaks PCMU/PCMA and the agent takes the same G.711: bytes go
  both ways untouched; when the agent takes the other law, each byte is translated code to code
  (:data:`media.g711.ULAW_TO_ALAW`), still no decoding. Otherwise **transcoding** to and from
  PCM16 24 kHz. A G.711 session carries no other codec (:func:`carries`): the re-offers a call
  accepts are limited to what its session carries (:func:`carried_codecs`).
* A codec change mid-call (RFC 3264 §8.3.2) keeps the SSRC and sequence, continues the
  timestamps at the new clock rate, and keeps the agent audio already buffered when the playout
  format allows (between the G.711 laws); otherwise the call interrupts the agent first
  (:meth:`SipMedia.keeps_playout`), so the conversation holds what the caller heard.
* Caller RTP: packets of a payload type we did not negotiate are counted and dropped; RFC 4733
  telephone-events (any SSRC) become DTMF digits; on hold the caller's audio does not go
  upstream. RTCP (RFC 3550 §6): receiver statistics of the caller's stream, SR/RR every ~5 s,
  the peer's reports read for the round-trip time.
* Agent -> caller, on the shared frame ticker (:meth:`SipMedia.on_tick`): one RTP packet per
  20 ms, silence between responses, timestamps from the frame deadlines, RFC 4733 digits on
  the same stream with the audio held back while they play (RFC 4733 §2.5.1.2).

Nothing is sent (no audio, RTCP or tone) to a peer that has not proven it is there: an inbound
call's media starts with the caller's ACK (:meth:`SipMedia.prove`) or its first RTP packet,
whichever comes first; until then the agent's audio waits in the playout buffer (issue 12: an
INVITE that is never ACKed must not turn rtbridge into a stream cannon aimed at whatever address
its SDP names).

Synchronous and clock-free: the call feeds it packets and ticks; nothing here awaits.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from bridge.bench import _probe
from bridge.realtime.formats import AudioFormat
from media.agent_path import AgentPath
from media.caller_path import FRAME_MS, CallerPath, CallerStats
from media.clock import WallClock
from media.codecs.base import AudioCodec
from media.dtmf import DtmfDigit, DtmfError, DtmfReceiver, DtmfSender
from media.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW
from media.level import leg_levels
from media.playout import ClearResult, PlaybackEvent, PlayoutEncoding
from media.rtcp import RtcpError, RtcpReporter
from media.rtp import ReceiverStats, RtpClock, RtpPacket, RtpSendState

__all__ = ["MediaStats", "SipMedia", "carried_codecs", "carries", "pass_through_format"]

_PASS_THROUGH = {"PCMU": AudioFormat.PCMU, "PCMA": AudioFormat.PCMA}
_G711 = {"PCMU": PlayoutEncoding.PCMU, "PCMA": PlayoutEncoding.PCMA}
_SESSION_G711 = {AudioFormat.PCMU: PlayoutEncoding.PCMU, AudioFormat.PCMA: PlayoutEncoding.PCMA}
#: (from, to): the code-to-code table between the two G.711 laws
_LAW = {
    (PlayoutEncoding.PCMU, PlayoutEncoding.PCMA): ULAW_TO_ALAW,
    (PlayoutEncoding.PCMA, PlayoutEncoding.PCMU): ALAW_TO_ULAW,
}


def pass_through_format(codec_name: str) -> AudioFormat | None:
    """The agent format that lets this trunk codec pass untouched (None: must transcode)."""
    return _PASS_THROUGH.get(codec_name.upper())


def carries(session_format: AudioFormat, codec_name: str) -> bool:
    """Whether an agent session in ``session_format`` can carry a trunk codec: PCM16 any
    (transcoding), G.711 either law (the other one translated code by code), nothing else."""
    return session_format is AudioFormat.PCM16 or codec_name.upper() in _G711


def carried_codecs(session_format: AudioFormat, codecs: Iterable[str]) -> tuple[str, ...]:
    """The configured ``codecs`` a call whose session is in ``session_format`` may move to in
    a re-offer (the SIP core answers with the first of them the offer has)."""
    return tuple(c for c in codecs if carries(session_format, c))


@dataclass(slots=True)
class MediaStats(CallerStats):
    """The caller path's counters and the SIP leg's own."""

    rtp_out: int = 0
    foreign_payload: int = 0  # payload types we did not negotiate
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
        if not carries(session_format, codec.name):
            raise ValueError(f"a {session_format.value} agent session cannot carry {codec.name}")
        self.codec = codec
        #: the peer is there (ACK or RTP): until then nothing is sent to it
        self.proven = proven
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.session_format = session_format
        self._send_rtp = send_rtp
        self._to_agent = to_agent
        self._on_dtmf = on_dtmf
        self.stats = MediaStats()
        self.caller = self._caller_path(codec)
        self.agent = self._agent_path(codec)
        self.agent.on_playback = on_playback
        self._translations(codec)
        # the call's stats() reads these two
        self.reorder = self.caller.reorder
        self.playout = self.agent.playout

        # caller -> agent
        self.dtmf = DtmfReceiver(clock_rate=8000)
        self.on_hold = False
        # agent -> caller
        self._dtmf_out: DtmfSender | None = None
        self.send_state = RtpSendState(rng=rng)
        self._rtp_clock: RtpClock | None = None
        # RTCP (RFC 3550 §6): receiver statistics of the caller's stream, SR/RR every ~5 s
        self.rx_stats = ReceiverStats(codec.clock_rate)
        self._send_rtcp = send_rtcp
        self.rtcp = RtcpReporter(self.send_state, cname, wall=WallClock(), rng=rng)
        self._first_packet = True
        self._tick_at = 0.0
        self._rng = rng or random.Random()
        probe = _probe.ACTIVE  # `rtbridge bench sip` timing hooks; None: nothing is wrapped
        if probe is not None:
            probe.hook(self, "on_rtp", lambda on_rtp: probe.timed_on_rtp(on_rtp, send_rtp))
            probe.hook(self, "_send_rtp", probe.timed_send_rtp)

    # -- the two paths, for a codec ------------------------------------------------------

    def _session_encoding(self) -> PlayoutEncoding:
        return _SESSION_G711.get(self.session_format, PlayoutEncoding.PCM16)

    def _caller_path(self, codec: AudioCodec) -> CallerPath:
        session = self._session_encoding()
        #: no decoding: the session takes G.711 (the wire's law, or the other one translated)
        self.pass_through = session is not PlayoutEncoding.PCM16
        if self.pass_through:
            return CallerPath.pass_through(session, self._to_agent, stats=self.stats)
        return CallerPath.transcoding(
            codec.decode, codec.sample_rate, codec.decode_channels, self._to_agent, stats=self.stats
        )

    def _agent_path(self, codec: AudioCodec) -> AgentPath:
        session = self._session_encoding()
        if session is not PlayoutEncoding.PCM16:
            return AgentPath.pass_through(session)
        g711 = _G711.get(codec.name.upper())
        if g711 is not None:
            return AgentPath.to_g711(g711)
        return AgentPath.encoding(codec.encode, codec.sample_rate)

    def _translations(self, codec: AudioCodec) -> None:
        """G.711 of one law on the wire, the other in the session or the playout buffer: the
        code-to-code tables each direction applies (None: the bytes go as they are)."""
        wire = _G711.get(codec.name.upper(), PlayoutEncoding.PCM16)
        session = self._session_encoding()
        playout = self.agent.playout.format.encoding
        self._law_in = _LAW.get((wire, session)) if self.pass_through else None
        self._law_out = _LAW.get((playout, wire))

    def keeps_playout(self, codec: AudioCodec) -> bool:
        """Whether :meth:`change_codec` to ``codec`` keeps the agent audio already buffered
        (False: the playout format changes and what is buffered cannot be played; the call
        interrupts the agent first, so the conversation keeps what the caller heard)."""
        playout = self.agent.playout.format.encoding
        return codec.name.upper() in _G711 and playout is not PlayoutEncoding.PCM16

    def change_codec(
        self, codec: AudioCodec, *, payload_type: int, dtmf_payload_type: int | None
    ) -> None:
        """A settled re-offer (RFC 3264 §8.3.2) moved the stream to another codec or payload
        type: packets of the new payload type are the call's audio from now on, and the agent's
        audio goes out in the new codec on the same SSRC, its timestamps continuing at the new
        clock rate (RFC 3550 §5.1). Between the two G.711 laws the agent audio already
        buffered plays on, translated as it is sent; to another family the agent path is
        rebuilt (see :meth:`keeps_playout`). ValueError: the session format cannot carry it."""
        if not carries(self.session_format, codec.name):
            raise ValueError(f"a {self.session_format.value} session cannot carry {codec.name}")
        old_caller, old_agent = self.caller, self.agent
        self.caller = self._caller_path(codec)
        self.caller.tap = old_caller.tap
        if not self.keeps_playout(codec):
            self.agent = self._agent_path(codec)
            self.agent.on_playback, self.agent.tap = old_agent.on_playback, old_agent.tap
            self.agent.on_overflow = old_agent.on_overflow
            if old_agent.muted:  # the new path is the old one's state: muted, held
                self.agent.set_muted(True)
            if self.on_hold:
                self.agent.hold(True)
        self.reorder, self.playout = self.caller.reorder, self.agent.playout
        self._translations(codec)
        clock = self._rtp_clock
        if codec.clock_rate != self.codec.clock_rate:
            self.rx_stats = ReceiverStats(codec.clock_rate)
            if clock is not None:  # continuous at the last tick, at the new rate
                at = self._tick_at
                clock = RtpClock(codec.clock_rate, at, clock.timestamp(at))
                self._rtp_clock = self.rtcp.rtp_clock = clock
                self._dtmf_out = None  # made again on the new clock
        if dtmf_payload_type != self.dtmf_payload_type:
            self._dtmf_out = None
        self.codec, self.payload_type = codec, payload_type
        self.dtmf_payload_type = dtmf_payload_type

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
        if self._law_in is not None:  # the other G.711 law than the session's
            packet = replace(packet, payload=packet.payload.translate(self._law_in))
        self.caller.push(packet, now)

    def on_rtcp(self, data: bytes, now: float) -> None:
        """The peer's RTCP (reports give us the round-trip time; BYE is recorded)."""
        try:
            self.rtcp.receive(data, now)
        except RtcpError:
            self.stats.rtcp_malformed += 1

    # -- agent -> caller ----------------------------------------------------------------

    def push_agent_audio(self, response_id: str, item_id: str, audio: bytes) -> bool:
        """Agent audio in the session format, for playout."""
        self.stats.agent_bytes_in += len(audio)
        return self.agent.push(response_id, item_id, audio)

    def mark_done(self, response_id: str) -> None:
        self.agent.mark_done(response_id)

    def clear(self) -> ClearResult:
        """Barge-in: stop before the next frame; what was sent of each item."""
        return self.agent.clear()

    def playing(self) -> bool:
        """Agent audio buffered or being played (call control waits for this to end)."""
        return self.agent.playing()

    def set_muted(self, muted: bool) -> None:
        """Mute the agent towards the caller (what is buffered is dropped)."""
        self.agent.set_muted(muted)

    def send_dtmf(self, digits: str) -> bool:
        """RFC 4733 digits to the caller on the audio stream (same SSRC and sequence). False:
        none sent (the call has no telephone-event, or more digits than
        :data:`~media.dtmf.MAX_QUEUED_DIGITS` would be waiting)."""
        if self.dtmf_payload_type is None or self._rtp_clock is None:
            return False
        if self._dtmf_out is None:
            self._dtmf_out = DtmfSender(self.send_state, self._rtp_clock, self.dtmf_payload_type)
        # start on the next frame of the grid: one packet per tick, and the event's timestamp
        # is that of the audio frame it replaces
        try:
            self._dtmf_out.send(digits, self._tick_at + FRAME_MS / 1000)
        except DtmfError:  # too many waiting: the caller (tool, API) says so
            return False
        return True

    def hold(self, on_hold: bool, now: float) -> None:
        """Hold: caller audio stops going upstream and playout pauses. Playout resumes on the
        next tick, so its deadlines stay on the shared ticker's grid."""
        del now
        self.on_hold = on_hold
        self.agent.hold(on_hold)

    def levels(self) -> tuple[float | None, float | None]:
        """dBFS of the latest 20 ms each way: caller -> agent, agent -> caller (None: nothing
        flowed in the last 100 ms). Measured on demand from frames already at hand (the
        dashboard asks twice a second), so the media path pays nothing per frame."""
        return leg_levels(self.caller, self.agent, self.stats.last_rtp_at, self._tick_at)

    def on_tick(self, deadline: float, now: float) -> None:
        """The shared 20 ms tick: release a held caller packet, emit due agent frames."""
        self._tick_at = now
        self.caller.expire(now)
        for digit in self.dtmf.poll(now):
            if self._on_dtmf is not None:
                self._on_dtmf(digit)
        if not self.proven:
            return  # the agent's audio waits; playout starts on the first tick after proof
        clock = self._rtp_clock
        if clock is None:
            clock = self._rtp_clock = RtpClock(
                self.codec.clock_rate, deadline, self._rng.getrandbits(32)
            )
            self.rtcp.rtp_clock = clock
        if self._send_rtcp is not None and now >= self.rtcp.next_deadline(now):
            sources = [self.rx_stats] if self.rx_stats.ssrc is not None else []
            self._send_rtcp(self.rtcp.report(now, sources))
        dtmf_out = self._dtmf_out
        tones = dtmf_out is not None and dtmf_out.sending
        if tones:
            assert dtmf_out is not None
            for tone in dtmf_out.tick(now):
                if self._send_rtp(bytes(tone)):
                    self.stats.rtp_out += 1
        frames = self.agent.tick(deadline, now)
        if tones or not frames:  # RFC 4733 §2.5.1.2: no audio packets while an event is sent
            return
        encode, packet, send = self.agent.encode, self.send_state.encode, self._send_rtp
        law = self._law_out
        for frame in frames:
            payload = encode(frame)
            data = packet(
                self.payload_type,
                clock.timestamp(frame.deadline),
                payload if law is None else payload.translate(law),
                marker=self._first_packet,
                now=now,
            )
            self._first_packet = False
            if send(data):
                self.stats.rtp_out += 1
