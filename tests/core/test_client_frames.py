"""The upstream's own client text frames: what websockets' parser reads back, with a fresh
masking key from the kernel's source per frame."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from bridge.realtime import client_frames
from bridge.realtime.client_frames import MaskKeys, text_frame


def _parse(data: bytes) -> Frame:
    """Read one frame as the server side does (masked frames expected)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        assert reader.at_eof()  # nothing left over
        return frame
    raise AssertionError("the frame was incomplete")


@given(st.text(max_size=300) | st.sampled_from(["x" * 125, "x" * 126, "é" * 40_000]))
def test_text_frames_parse_back_as_websockets_reads_them(text: str) -> None:
    payload = text.encode()
    keys = MaskKeys(chunk=8)
    frame = _parse(text_frame(payload, keys.next()))
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data == payload


def test_every_frame_gets_a_fresh_key_from_os_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = client_frames.os.urandom

    def urandom(n: int) -> bytes:
        reads.append(n)
        return real(n)

    monkeypatch.setattr(client_frames.os, "urandom", urandom)
    keys = MaskKeys(chunk=4096)
    got = [keys.next() for _ in range(2048)]
    assert reads == [4096, 4096]  # one system call per 1024 keys
    assert all(len(k) == 4 for k in got)
    assert len(set(got)) > 2000  # not one key reused (a birthday collision or two at most)
