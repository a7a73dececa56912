"""G.711 tables against an independent scalar reference (the classic Sun ``g711.c``).

The reference below is a line-by-line transcription of Sun Microsystems' public-domain
``g711.c`` (linear2ulaw / ulaw2linear / linear2alaw / alaw2linear), written as scalar Python so
it shares no code with the vectorised table builders in ``media.g711``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from media import g711
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

SIGN_BIT = 0x80
QUANT_MASK = 0x0F
SEG_SHIFT = 4
SEG_MASK = 0x70
BIAS = 0x84
CLIP = 8159
SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _search(val: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if val <= end:
            return i
    return len(table)


def ref_linear2alaw(pcm_val: int) -> int:
    pcm_val = pcm_val >> 3
    if pcm_val >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm_val = -pcm_val - 1
    seg = _search(pcm_val, SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << SEG_SHIFT
    if seg < 2:
        aval |= (pcm_val >> 1) & QUANT_MASK
    else:
        aval |= (pcm_val >> seg) & QUANT_MASK
    return aval ^ mask


def ref_alaw2linear(a_val: int) -> int:
    a_val ^= 0x55
    t = (a_val & QUANT_MASK) << 4
    seg = (a_val & SEG_MASK) >> SEG_SHIFT
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if a_val & SIGN_BIT else -t


def ref_linear2ulaw(pcm_val: int) -> int:
    pcm_val = pcm_val >> 2
    if pcm_val < 0:
        pcm_val = -pcm_val
        mask = 0x7F
    else:
        mask = 0xFF
    if pcm_val > CLIP:
        pcm_val = CLIP
    pcm_val += BIAS >> 2
    seg = _search(pcm_val, SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    uval = (seg << 4) | ((pcm_val >> (seg + 1)) & 0xF)
    return uval ^ mask


def ref_ulaw2linear(u_val: int) -> int:
    u_val = ~u_val & 0xFF
    t = ((u_val & QUANT_MASK) << 3) + BIAS
    t <<= (u_val & SEG_MASK) >> SEG_SHIFT
    return BIAS - t if u_val & SIGN_BIT else t - BIAS


ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encode_all_65536_inputs() -> None:
    got = ulaw_encode(ALL_PCM)
    want = bytes(ref_linear2ulaw(int(v)) for v in ALL_PCM)
    assert got == want


def test_alaw_encode_all_65536_inputs() -> None:
    got = alaw_encode(ALL_PCM)
    want = bytes(ref_linear2alaw(int(v)) for v in ALL_PCM)
    assert got == want


def test_ulaw_decode_all_256_codes() -> None:
    got = ulaw_decode(ALL_CODES)
    assert got.dtype == np.int16
    assert got.tolist() == [ref_ulaw2linear(c) for c in range(256)]


def test_alaw_decode_all_256_codes() -> None:
    got = alaw_decode(ALL_CODES)
    assert got.dtype == np.int16
    assert got.tolist() == [ref_alaw2linear(c) for c in range(256)]


def test_itu_anchor_values() -> None:
    # G.711 table 2 (u-law) and table 1 (A-law) end points, 16-bit scaled.
    assert ulaw_decode(b"\xff\x7f\x80\x00").tolist() == [0, 0, 32124, -32124]
    assert alaw_decode(b"\xd5\x55\xaa\x2a").tolist() == [8, -8, 32256, -32256]
    assert ulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xff\x80\x00"
    assert alaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xd5\xaa\x2a"


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_decode_encode_is_identity_on_codes(
    encode: Callable[[NDArray[np.int16]], bytes], decode: Callable[[bytes], NDArray[np.int16]]
) -> None:
    # Every reconstruction level re-encodes to its own code (the two zero levels of u-law,
    # 0x7F and 0xFF, both decode to 0 which encodes as 0xFF).
    codes = bytes(c for c in range(256) if c != 0x7F)
    assert encode(decode(codes)) == codes


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop removed in Python 3.13")
def test_matches_cpython_audioop() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    raw = ALL_PCM.tobytes()
    assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(raw, 2)
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(raw, 2)
    assert ulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_empty_and_odd_sizes() -> None:
    assert ulaw_encode(np.zeros(0, dtype=np.int16)) == b""
    assert alaw_encode(np.zeros(0, dtype=np.int16)) == b""
    assert ulaw_decode(b"").shape == (0,)
    assert alaw_decode(b"").dtype == np.int16
    x = np.array([1, -1, 1000], dtype=np.int16)
    assert len(ulaw_encode(x)) == 3
    assert ulaw_decode(bytearray(b"\x01\x02\x03")).shape == (3,)
    assert alaw_decode(memoryview(b"\x01\x02\x03")).shape == (3,)


def test_non_contiguous_input() -> None:
    x = ALL_PCM[::7]
    assert ulaw_encode(x) == ulaw_encode(x.copy())
    assert alaw_encode(x) == alaw_encode(x.copy())


def test_rejects_wrong_dtype() -> None:
    floats: Any = np.zeros(4, dtype=np.float32)
    not_an_array: Any = [1, 2, 3]
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(floats)
    with pytest.raises(TypeError, match="int16"):
        alaw_encode(not_an_array)


def test_law_to_law_tables_keep_each_codes_level() -> None:
    codes = bytes(range(256))
    for table, src, dst in (
        (g711.ULAW_TO_ALAW, g711.ulaw_decode, g711.alaw_decode),
        (g711.ALAW_TO_ULAW, g711.alaw_decode, g711.ulaw_decode),
    ):
        before = src(codes).astype(np.int32)
        after = dst(codes.translate(table)).astype(np.int32)
        # the nearest level of the other law: within its step at that level (about 1/16)
        assert np.all(np.abs(after - before) <= np.maximum(16, np.abs(before) // 15))
    assert bytes([0xFF]).translate(g711.ULAW_TO_ALAW) == bytes([0xD5])  # silence stays silence
