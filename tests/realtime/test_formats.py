"""The one AudioFormat: flat names, GA objects both ways, sizes, OpenAI's errors."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.realtime.formats import AudioFormat


@pytest.mark.parametrize(
    ("fmt", "flat", "ga", "rate", "per_ms"),
    [
        (AudioFormat.PCM16, "pcm16", {"type": "audio/pcm", "rate": 24000}, 24000, 48.0),
        (AudioFormat.PCMU, "g711_ulaw", {"type": "audio/pcmu"}, 8000, 8.0),
        (AudioFormat.PCMA, "g711_alaw", {"type": "audio/pcma"}, 8000, 8.0),
    ],
)
def test_names_objects_and_sizes(
    fmt: AudioFormat, flat: str, ga: dict[str, Any], rate: int, per_ms: float
) -> None:
    assert AudioFormat(flat) is fmt and fmt.value == flat
    assert fmt.to_ga() == ga
    assert AudioFormat.from_ga(ga) is fmt and AudioFormat.from_ga(ga["type"]) is fmt
    assert AudioFormat.from_wire(ga) is fmt and AudioFormat.from_wire(flat) is fmt
    assert fmt.rate == rate and fmt.bytes_per_ms() == per_ms
    assert fmt.duration_ms(int(per_ms * 20)) == 20


def test_pcm_at_another_rate_is_read_but_not_taken_as_a_session_format() -> None:
    assert AudioFormat.from_ga({"type": "audio/pcm", "rate": 16000}) is AudioFormat.PCM16
    with pytest.raises(ValueError, match="Only 24000 is supported"):
        AudioFormat.from_wire({"type": "audio/pcm", "rate": 16000})


@pytest.mark.parametrize("bad", ["pcm8", "", None, 16, {"type": "audio/opus"}, {}])
def test_unknown_formats_are_refused_with_a_precise_error(bad: Any) -> None:
    with pytest.raises(ValueError):
        AudioFormat.from_wire(bad)
