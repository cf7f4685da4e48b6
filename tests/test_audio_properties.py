"""Properties of the playback queue under any mix of plays, interrupts and callbacks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from coach.audio import AudioBlock, PlaybackEvent, PlaybackEventKind, PlaybackQueue

RATE = 8_000
BLOCK = 80  # 10 ms

Kind = PlaybackEventKind


@dataclass(frozen=True)
class Play:
    n_samples: int
    uninterruptible: bool


@dataclass(frozen=True)
class Interrupt:
    fade_ms: int


@dataclass(frozen=True)
class Render:
    blocks: int


steps = st.lists(
    st.one_of(
        st.builds(Play, st.integers(1, 400), st.booleans()),
        st.builds(Interrupt, st.sampled_from([5, 10, 20])),
        st.builds(Render, st.integers(1, 4)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_every_clip_ends_exactly_once_and_uninterruptible_ones_play_whole(
    script: list[Play | Interrupt | Render],
) -> None:
    events: list[PlaybackEvent] = []
    reference: list[AudioBlock] = []
    playback = PlaybackQueue(RATE, on_event=events.append, reference=reference.append)
    clips: dict[int, Play] = {}
    written = []
    clock_s = 0.0
    for step in [*script, Render(60)]:  # finally drain everything
        if isinstance(step, Play):
            # Each clip a distinct constant level, so its samples can be told apart.
            level = 0.1 + 0.8 * (len(clips) % 9) / 9
            pcm = np.full(step.n_samples, level, np.float32)
            item = playback.play(pcm, RATE, uninterruptible=step.uninterruptible, tag=level)
            clips[item] = step
        elif isinstance(step, Interrupt):
            playback.interrupt(step.fade_ms)
        else:
            for _ in range(step.blocks):
                written.append(playback.render(BLOCK, clock_s))
                clock_s += BLOCK / RATE
    assert playback.idle()
    out = np.concatenate(written)
    np.testing.assert_array_equal(np.concatenate([b.pcm for b in reference]), out)

    ends = {Kind.FINISHED, Kind.INTERRUPTED, Kind.DROPPED}
    by_item: dict[int, list[Kind]] = {}
    for event in events:
        by_item.setdefault(event.item_id, []).append(event.kind)
    assert set(by_item) == set(clips)
    for item, kinds in by_item.items():
        assert kinds in ([Kind.STARTED, Kind.FINISHED], [Kind.STARTED, Kind.INTERRUPTED],
                         [Kind.DROPPED]), kinds
        assert kinds[-1] in ends
        if clips[item].uninterruptible:
            assert kinds == [Kind.STARTED, Kind.FINISHED]

    # Clips play one after another in queue order; a finished clip played all its samples.
    started = [e for e in events if e.kind is Kind.STARTED]
    assert [e.item_id for e in started] == sorted(e.item_id for e in started)
    for event in events:
        if event.kind is Kind.FINISHED:
            begin = next(e for e in started if e.item_id == event.item_id)
            played = round((event.time_s - begin.time_s) * RATE)
            assert played == clips[event.item_id].n_samples
        if event.kind is Kind.INTERRUPTED:
            begin = next(e for e in started if e.item_id == event.item_id)
            assert round((event.time_s - begin.time_s) * RATE) < clips[event.item_id].n_samples
    # Nothing ever leaves the clip range [-1, 1] and silence is exact zeros.
    assert np.all(np.abs(out) <= 1.0)
