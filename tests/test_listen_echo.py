"""The Speex echo canceller's replay while young: faster adaptation to a reverberant room."""

from __future__ import annotations

import numpy as np
import pytest
from listen_support import COACH_VOICE, concat, silence, speak

from coach.listen.echo import EchoCanceller

pytestmark = [pytest.mark.speech]


def _room(signal: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(1)
    response = np.zeros(16 * 300)
    response[16 * 20] = 0.6
    tail = np.arange(len(response) - 16 * 25)
    response[16 * 25 :] += rng.standard_normal(tail.size) * np.exp(-tail / (16 * 60)) * 0.08
    echo = fftconvolve(signal.astype(np.float64), response)[: len(signal)]
    return np.clip(echo, -32768, 32767).astype(np.int16)


def _reduction_db(canceller: EchoCanceller, mic: np.ndarray, reference: np.ndarray,
                  from_s: float, to_s: float) -> float:
    residual = np.zeros(0, np.int16)
    for start in range(0, len(mic), 320):
        out, _, _ = canceller.process(mic[start : start + 320], reference[start : start + 320])
        residual = np.concatenate([residual, out])
    s = slice(int(from_s * 16000), int(to_s * 16000))
    before = float(np.sum(mic[s].astype(np.float64) ** 2))
    after = float(np.sum(residual[s].astype(np.float64) ** 2))
    return 10 * np.log10(before / max(after, 1.0))


def test_replaying_while_young_removes_more_of_a_room_echo_early() -> None:
    coach = concat([speak("좋아요 천천히 다리를 들어 올리세요", *COACH_VOICE), silence(300),
                    speak("다음 동작으로 넘어가기 전에 잠시 숨을 쉬세요", *COACH_VOICE)])
    mic = _room(coach)
    plain = _reduction_db(EchoCanceller(replay_ms=0), mic, coach, 2.0, 4.0)
    replayed = _reduction_db(EchoCanceller(), mic, coach, 2.0, 4.0)
    assert replayed >= plain + 3.0
    assert replayed >= 10.0


def test_a_direct_echo_is_still_removed_with_replay() -> None:
    coach = concat([speak("좋아요 천천히 다리를 들어 올리세요", *COACH_VOICE), silence(300),
                    speak("하나 둘 셋 넷", *COACH_VOICE)])
    assert _reduction_db(EchoCanceller(), coach, coach, 2.0, 4.0) >= 20.0
