"""A slow observer never stalls the call; it is told what it missed."""

from __future__ import annotations

from bridge.calls.observers import EventFanout


async def test_slow_observer_drops_are_counted_and_others_get_everything() -> None:
    fan = EventFanout()
    slow = fan.subscribe(maxsize=2)
    fast = fan.subscribe(maxsize=100)
    audio = fan.subscribe(maxsize=100, audio=True)
    for i in range(10):
        fan.publish({"type": "response.output_text.delta", "n": i})
    fan.publish({"type": "response.output_audio.delta", "delta": "AAAA"})
    fan.close()
    got_fast = [e["n"] async for e in fast]
    assert got_fast == list(range(10))  # no audio unless asked for
    got_audio = [e["type"] async for e in audio]
    assert got_audio[-1] == "response.output_audio.delta" and len(got_audio) == 11
    got_slow = [e async for e in slow]
    assert slow.dropped >= 8 and len(got_slow) + slow.dropped >= 10
    late = fan.subscribe()
    assert await late.get() is None  # subscribing to an ended call ends at once
