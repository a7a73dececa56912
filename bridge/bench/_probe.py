"""Timing hooks for ``rtbridge bench sip``, off (and free) unless a benchmark installs them.

Production code asks this module once per object, at construction: ``probe.ACTIVE is None``
means no benchmark is running and nothing is wrapped or recorded. The SIP benchmark's worker
process (:mod:`bridge.bench._sip_worker`) calls :func:`install` before it starts rtbridge; from
then on every new :class:`~bridge.calls.sip_media.SipMedia` and
:class:`~bridge.upstream.UpstreamSession` registers a few of its methods
(:meth:`LatencyProbe.hook`), which the probe wraps with the ones below only while it is armed.

What is measured (microseconds unless named ``_ms``; durations on ``time.monotonic``):

* ``socket_wait_us``: the kernel queued the caller's RTP datagram on the call's socket (its
  ``SIOCGSTAMPNS`` receive timestamp) -> the packet reached the call's media path
  (``SipMedia.on_rtp``, after the endpoint read, parsed and latched it). This is the time a
  datagram waits while rtbridge's event loop is busy with other work;
* ``in_to_enqueue_us``: ``SipMedia.on_rtp`` -> its ``input_audio_buffer.append`` enqueued for
  the upstream writer (``UpstreamSession.send_audio``): reorder window, re-cut,
  decode/resample when transcoding, base64 and the append template;
* ``enqueue_to_sent_us``: enqueued -> the frame was handed to the socket: by the upstream
  writer task (the wait for it to be scheduled is here), or at once within ``send_audio`` when
  that task was idle;
* ``in_to_sent_us``: kernel receive -> handed to the upstream socket, per append: the sum of
  the three above, the added latency of the caller -> agent direction. Appends made on a tick
  (a frame released by the reorder timer, a concealed loss) have no packet and count only in
  ``enqueue_to_sent_us``; a packet without a kernel stamp (counted in ``unstamped_packets``)
  is timed from ``SipMedia.on_rtp``;
* ``rtp_send_interval_jitter_ms``: per call, ``|interval between two RTP sends - 20 ms|``.

Recording happens only while :attr:`LatencyProbe.armed` (:meth:`LatencyProbe.arm`); disarmed,
nothing is wrapped: the CPU window measures rtbridge's own code, not the probe's.
"""

from __future__ import annotations

import fcntl
import random
import struct
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["ACTIVE", "LatencyProbe", "Reservoir", "install", "percentiles", "uninstall"]

FRAME_S = 0.020
_SIOCGSTAMPNS = 0x8907  # linux/sockios.h
#: A datagram the kernel did not stamp makes SIOCGSTAMPNS answer "now"; a stamped one is at
#: least a recvfrom, the endpoint's parse and this hook's Python old (well over 3 us).
_MIN_STAMPED_WAIT_S = 3e-6
APPEND_PREFIX = '{"type":"input_audio_buffer.append"'

#: what the upstream writer learns per audio append: (packet times or None, enqueued)
Pending = tuple[tuple[float, float] | None, float]

#: The installed probe, or None (the normal case: no hooks anywhere).
ACTIVE: LatencyProbe | None = None


def percentiles(values: list[float], digits: int = 1) -> dict[str, float | int]:
    """count, p50/p90/p99 and max of ``values`` (nearest-rank; zeros when empty)."""
    if not values:
        return {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    s = sorted(values)
    n = len(s)

    def at(q: float) -> float:
        return round(s[min(n - 1, int(q * n))], digits)

    return {
        "count": n,
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(s[-1], digits),
    }


class Reservoir:
    """A uniform sample of at most ``size`` values from a stream (Vitter's algorithm R)."""

    __slots__ = ("_rng", "count", "max", "samples", "size")

    def __init__(self, size: int = 50_000, seed: int = 1) -> None:
        self.size = size
        self.count = 0
        self.max = 0.0
        self.samples: list[float] = []
        self._rng = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        if value > self.max:
            self.max = value
        if len(self.samples) < self.size:
            self.samples.append(value)
            return
        j = self._rng.randrange(self.count)
        if j < self.size:
            self.samples[j] = value

    def clear(self) -> None:
        self.count = 0
        self.max = 0.0
        self.samples.clear()

    def summary(self, digits: int = 1) -> dict[str, float | int]:
        out = percentiles(self.samples, digits)
        out["count"] = self.count
        out["max"] = round(self.max, digits)
        return out


class _Hook:
    """One registered method: wrapped in place while the probe is armed."""

    __slots__ = ("attr", "owner", "replaced", "wrap")

    def __init__(self, owner: object, attr: str, wrap: Callable[[Any], Any]) -> None:
        self.owner = weakref.ref(owner)
        self.attr = attr
        self.wrap = wrap
        self.replaced: tuple[bool, Any] | None = None  # (was an instance attribute, its value)

    def apply(self) -> None:
        owner = self.owner()
        if owner is None or self.replaced is not None:
            return
        mine = vars(owner)
        self.replaced = (self.attr in mine, mine.get(self.attr))
        setattr(owner, self.attr, self.wrap(getattr(owner, self.attr)))

    def undo(self) -> None:
        owner, replaced = self.owner(), self.replaced
        self.replaced = None
        if owner is None or replaced is None:
            return
        had, value = replaced
        if had:
            setattr(owner, self.attr, value)
        else:  # a method of the class again
            delattr(owner, self.attr)


class LatencyProbe:
    def __init__(self, size: int = 50_000) -> None:
        self.armed = False
        self._hooks: list[_Hook] = []
        #: the RTP packet now being handled: (kernel receive, reached ``SipMedia.on_rtp``),
        #: monotonic times; None outside ``on_rtp``
        self.arrival: tuple[float, float] | None = None
        self.in_to_enqueue_us = Reservoir(size, seed=1)
        self.enqueue_to_sent_us = Reservoir(size, seed=2)
        self.in_to_sent_us = Reservoir(size, seed=3)
        self.rtp_send_interval_jitter_ms = Reservoir(size, seed=4)
        self.socket_wait_us = Reservoir(size, seed=5)
        self.appends_without_packet = 0
        self.kernel_stamps = 0
        self.unstamped = 0  # packets with no kernel stamp: timed from ``SipMedia.on_rtp``

    def hook(self, owner: object, attr: str, wrap: Callable[[Any], Any]) -> None:
        """While armed, ``owner.attr`` is ``wrap(the original)``; the original otherwise."""
        self._hooks = [h for h in self._hooks if h.owner() is not None]
        hook = _Hook(owner, attr, wrap)
        self._hooks.append(hook)
        if self.armed:
            hook.apply()

    def arm(self, on: bool) -> None:
        """Start (``on``) or stop recording, wrapping or unwrapping every hooked method."""
        self.armed = False
        for hook in self._hooks:
            hook.apply() if on else hook.undo()
        self.armed = on

    def reservoirs(self) -> dict[str, Reservoir]:
        return {
            "in_to_enqueue_us": self.in_to_enqueue_us,
            "enqueue_to_sent_us": self.enqueue_to_sent_us,
            "in_to_sent_us": self.in_to_sent_us,
            "rtp_send_interval_jitter_ms": self.rtp_send_interval_jitter_ms,
            "socket_wait_us": self.socket_wait_us,
        }

    def reset(self) -> None:
        for r in self.reservoirs().values():
            r.clear()
        self.appends_without_packet = 0
        self.kernel_stamps = 0
        self.unstamped = 0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: r.summary(2 if name.endswith("_ms") else 1)
            for name, r in self.reservoirs().items()
        }
        out["appends_without_packet"] = self.appends_without_packet
        out["kernel_stamps"] = self.kernel_stamps
        out["unstamped_packets"] = self.unstamped
        return out

    # -- hooks for SipMedia ----------------------------------------------------------------

    def timed_on_rtp(
        self, on_rtp: Callable[[Any, float], None], send_rtp: Callable[[bytes], bool]
    ) -> Callable[[Any, float], None]:
        """Wrap ``SipMedia.on_rtp``: mark when the packet reached the kernel (the call's RTP
        socket, found through ``send_rtp``, a bound ``RtpEndpoint.send``) and the media path,
        for the append it produces."""
        fd = [_socket_fd(send_rtp)]
        if fd[0] is not None:
            # the first ask switches receive stamps on: every datagram queued from now on has
            # one (datagrams queued before have none, and would read as "just arrived")
            _kernel_stamp(fd[0])

        def wrapped(packet: Any, now: float) -> None:
            t = time.monotonic()
            arrival = t
            if self.armed:
                if fd[0] is None:
                    fd[0] = _socket_fd(send_rtp)
                stamp = _kernel_stamp(fd[0]) if fd[0] is not None else None
                wait = time.time() - stamp if stamp is not None else -1.0
                if wait >= _MIN_STAMPED_WAIT_S:
                    arrival = t - wait
                    self.socket_wait_us.add(wait * 1e6)
                    self.kernel_stamps += 1
                else:
                    self.unstamped += 1
            self.arrival = (arrival, t)
            try:
                on_rtp(packet, now)
            finally:
                self.arrival = None

        return wrapped

    def timed_send_rtp(self, send: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
        """Wrap a call's RTP send: the interval between its sends, against 20 ms."""
        last = [0.0]

        def wrapped(packet: bytes) -> bool:
            ok = send(packet)
            t = time.monotonic()
            if self.armed and last[0]:
                self.rtp_send_interval_jitter_ms.add(abs(t - last[0] - FRAME_S) * 1000.0)
            last[0] = t
            return ok

        return wrapped

    # -- hooks for UpstreamSession ---------------------------------------------------------

    def timed_send_audio(
        self, send_audio: Callable[[bytes], bool], pending: deque[Pending]
    ) -> Callable[[bytes], bool]:
        """Wrap ``UpstreamSession.send_audio``: remember (arrival, enqueued) per append queued
        (before the call: an idle writer sends it within it)."""

        def wrapped(audio: bytes) -> bool:
            pending.append((self.arrival, time.monotonic()))
            try:
                ok = send_audio(audio)
            except BaseException:
                pending.pop()
                raise
            if not ok:
                pending.pop()
            return ok

        return wrapped

    def sent(self, pending: deque[Pending], frame: str) -> None:
        """The upstream writer handed ``frame`` to the socket."""
        if not pending or not frame.startswith(APPEND_PREFIX):
            return
        t = time.monotonic()
        arrival, enqueued = pending.popleft()
        if not self.armed:
            return
        self.enqueue_to_sent_us.add((t - enqueued) * 1e6)
        if arrival is None:
            self.appends_without_packet += 1
            return
        kernel, reached = arrival
        self.in_to_enqueue_us.add((enqueued - reached) * 1e6)
        self.in_to_sent_us.add((t - kernel) * 1e6)


def _socket_fd(send_rtp: Callable[[bytes], bool]) -> int | None:
    """The RTP socket behind a bound ``RtpEndpoint.send`` (None if it cannot be found)."""
    try:
        return int(send_rtp.__self__._rtp.fileno())  # type: ignore[attr-defined]
    except Exception:
        return None


def _kernel_stamp(fd: int) -> float | None:
    """When the kernel received the datagram last read from ``fd`` (``SIOCGSTAMPNS``, wall
    clock), or None."""
    try:
        raw: bytes = fcntl.ioctl(fd, _SIOCGSTAMPNS, bytes(16))
    except OSError:
        return None
    sec, nsec = struct.unpack("qq", raw)
    return int(sec) + int(nsec) / 1e9


def install(size: int = 50_000) -> LatencyProbe:
    """Install the probe for this process (a benchmark worker; before any call starts)."""
    global ACTIVE
    ACTIVE = LatencyProbe(size)
    return ACTIVE


def uninstall() -> None:
    global ACTIVE
    ACTIVE = None
