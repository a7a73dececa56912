"""Caller -> agent ordering: forward packets as they arrive, with a reorder window of one frame.

The caller's audio is not played out here: it goes to the agent, whose own buffer absorbs
jitter. So packets are forwarded the moment they arrive in order (adding microseconds, not a
playout depth). When exactly one packet is missing, the next one is held for at most one frame
period in case the missing one was only reordered; if it does not come, the gap is reported as
one lost frame (the caller path conceals it) and the held packet goes on. Larger gaps are
reported as up to ``max_conceal`` lost frames, then forwarding resumes; late and duplicate
packets are dropped and counted. A new SSRC restarts the sequence (RFC 3550 §8.2: a new
source); sequence numbers compare modulo 2^16 (RFC 3550 §A.1). So does a jump of the same
SSRC that no network makes: more than 1,000 ahead at once, or more than
:data:`MAX_MISORDER` behind in two packets in a row (RFC 3550 §A.1's ``bad_seq``): a media
server or SBC that switches what it relays (an announcement, then the bridged call) may keep
the SSRC and start the sequence afresh, and until it caught up again every packet was late.

Pure and clock-injected: :meth:`ReorderWindow.push` on arrival, :meth:`ReorderWindow.expire`
from the call's frame tick. :attr:`ReorderWindow.release_at` says when a held packet is due, so
a tick with nothing held costs an attribute read.
"""

from __future__ import annotations

from dataclasses import dataclass

from media.rtp import RtpPacket, seq_diff

__all__ = ["LOST", "ReorderStats", "ReorderWindow"]

#: Marks a lost frame in the output of :meth:`ReorderWindow.push` / :meth:`expire`.
LOST = None
#: Packets behind the expected one that are still only late (RFC 3550 §A.1's MAX_MISORDER);
#: further behind, two in a row restart the sequence.
MAX_MISORDER = 100


@dataclass(slots=True)
class ReorderStats:
    forwarded: int = 0
    reordered: int = 0  # arrived one frame late but in time to be forwarded in order
    lost: int = 0
    concealed: int = 0
    late: int = 0  # arrived after its slot was given up, or a duplicate: dropped
    restarts: int = 0  # new SSRC or a huge sequence jump


class ReorderWindow:
    def __init__(self, frame_period: float = 0.020, *, max_conceal: int = 3) -> None:
        self.period = frame_period
        self.max_conceal = max_conceal
        self._ssrc: int | None = None
        self._expected: int | None = None
        self._held: RtpPacket | None = None
        #: the sequence number that, coming next, confirms a restart far behind (RFC 3550
        #: §A.1 ``bad_seq``); None: no packet far behind came last
        self._bad_seq: int | None = None
        #: When the held packet is given up on (its predecessor is lost); None: nothing held.
        self.release_at: float | None = None
        self.stats = ReorderStats()

    @property
    def holding(self) -> bool:
        return self._held is not None

    def push(self, packet: RtpPacket, now: float) -> list[RtpPacket | None]:
        """Packets to forward now, in order; ``LOST`` (None) stands for a frame to conceal."""
        seq = packet.sequence_number
        if seq == self._expected and packet.ssrc == self._ssrc:  # in order: the common case
            self._expected = (seq + 1) & 0xFFFF
            self._bad_seq = None
            self.stats.forwarded += 1
            held = self._held
            if held is None or held.sequence_number != self._expected:
                return [packet]
            self.stats.reordered += 1
            self._held = self.release_at = None
            return [packet, *self._forward(held)]
        if self._ssrc != packet.ssrc or self._expected is None:
            out = self._flush_held()
            if self._ssrc is not None:
                self.stats.restarts += 1
            self._ssrc = packet.ssrc
            self._expected = seq
            return out + self._forward(packet)
        gap = seq_diff(seq, self._expected)
        if gap < 0:
            return self._behind(packet, gap)
        if gap == 1 and self._held is None:
            self._held, self.release_at = packet, now + self.period
            return []
        if self._held is not None and seq == self._held.sequence_number:
            self.stats.late += 1  # duplicate of the held packet
            return []
        # A second packet beyond the gap, or a bigger gap: give up on the missing frames.
        out = self._flush_held()
        assert self._expected is not None
        gap = seq_diff(seq, self._expected)
        if gap < 0:
            return out + self._behind(packet, gap)
        if gap > 1000:  # a jump no network reorders: treat as a restart, conceal nothing
            self.stats.restarts += 1
            self._expected = seq
            return out + self._forward(packet)
        return out + self._lose(gap) + self._forward(packet)

    def _behind(self, packet: RtpPacket, gap: int) -> list[RtpPacket | None]:
        """A packet ``-gap`` behind the expected one: late (a duplicate, or reordered past
        its slot), or, far behind twice in a row, the first of a sequence started afresh."""
        seq = packet.sequence_number
        if seq != self._bad_seq:
            if gap < -MAX_MISORDER:
                self._bad_seq = (seq + 1) & 0xFFFF
            self.stats.late += 1
            return []
        out = self._flush_held()
        self.stats.restarts += 1
        return out + self._forward(packet)

    def expire(self, now: float) -> list[RtpPacket | None]:
        """Release a packet held for a whole frame period (its predecessor is lost)."""
        if self.release_at is not None and now >= self.release_at:
            return self._flush_held()
        return []

    def _flush_held(self) -> list[RtpPacket | None]:
        if self._held is None:
            return []
        held, self._held, self.release_at = self._held, None, None
        assert self._expected is not None
        gap = seq_diff(held.sequence_number, self._expected)
        return self._lose(gap) + self._forward(held)

    def _lose(self, count: int) -> list[RtpPacket | None]:
        self.stats.lost += count
        n = min(count, self.max_conceal)
        self.stats.concealed += n
        assert self._expected is not None
        self._expected = (self._expected + count) & 0xFFFF
        return [LOST] * n

    def _forward(self, packet: RtpPacket) -> list[RtpPacket | None]:
        self._expected = (packet.sequence_number + 1) & 0xFFFF
        self._bad_seq = None
        self.stats.forwarded += 1
        return [packet]
