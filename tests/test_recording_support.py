"""The end-to-end tests' and bench_live's recording helpers (no audio device needed)."""

from __future__ import annotations

import numpy as np
import pytest
from recording_support import join_blocks


@pytest.fixture
def blocks() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(-30_000, 30_000, n).astype(np.int16) for n in rng.integers(1, 500, 60)]


def test_joining_part_of_a_recording_gives_the_same_samples_as_slicing_all_of_it(
    blocks: list[np.ndarray],
) -> None:
    whole = np.concatenate(blocks)
    edges = np.cumsum([0, *(len(b) for b in blocks)])
    # Block edges, one off either side, inside blocks, the very ends, and past the end.
    inner = edges[1:-1]
    points = sorted({0, 1, len(whole) - 1, len(whole), len(whole) + 40,
                     *inner, *(inner + 1), *(inner - 1), *range(7, len(whole), 97)})
    for start in points:
        assert np.array_equal(join_blocks(blocks, start), whole[start:])
        for end in points[::5]:
            assert np.array_equal(join_blocks(blocks, start, end), whole[start:end]), (start, end)


def test_joining_nothing_gives_no_samples() -> None:
    assert join_blocks([]).size == 0
    assert join_blocks([np.ones(5, np.int16)], 5).size == 0
