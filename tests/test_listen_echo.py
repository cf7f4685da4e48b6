"""The echo canceller, the residual echo suppressor, the energy history and the self-word gate."""

from __future__ import annotations

import numpy as np
import pytest
from listen_support import COACH_VOICE, DeafEngine, concat, noise, silence, speak

from coach.listen.echo import (
    ECHO_TAIL_MS,
    WORD_MS,
    EchoCanceller,
    EnergyHistory,
    ResidualEchoSuppressor,
    SelfWordGate,
)
from coach.listen.engine import Hypothesis, Word
from coach.listen.listener import Listener

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


def _reverberant(signal: np.ndarray) -> np.ndarray:
    """A reverberant room (eval_listener's room-c): 80 ms delay, then a tail whose energy
    falls 60 dB in 500 ms, so most of the echo arrives after the first 200 ms."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(3)
    response = np.zeros(16 * 560)
    response[16 * 80] = 0.6
    t = np.arange(16 * 480) / 16000
    tail = rng.standard_normal(t.size) * np.exp(-6.91 * t / 0.5)
    response[16 * 80 :] += 0.25 * tail / np.sqrt(np.sum(tail**2))
    echo = fftconvolve(signal.astype(np.float64), response)[: len(signal)]
    return np.clip(echo, -32768, 32767).astype(np.int16)


SENTENCES = ["좋아요 천천히 다리를 들어 올리세요", "다음 동작으로 넘어가기 전에 잠시 숨을 쉬세요",
             "아프거나 저리면 멈추세요", "하나 둘 셋 넷 다섯", "좋아요 잘 하고 있어요"]


@pytest.fixture(scope="module")
def coach_talking() -> np.ndarray:
    """About 14 s of the coach's voice: past the canceller's learning (8 s of playback)."""
    parts = [speak(text, *COACH_VOICE) for text in SENTENCES * 2]
    return concat([p for part in parts for p in (part, silence(200))])


def test_the_long_filter_takes_over_a_reverberant_rooms_echo_once_learnt(
    coach_talking: np.ndarray,
) -> None:
    mic = _reverberant(coach_talking)
    both = EchoCanceller()
    young = _reduction_db(both, mic[: 5 * 16000], coach_talking[: 5 * 16000], 3.0, 5.0)
    assert both.using_short  # while young, the short filter (it learns faster)
    rest = _reduction_db(both, mic[5 * 16000 :], coach_talking[5 * 16000 :], 6.0, 9.0)
    assert not both.using_short
    short_only = EchoCanceller(filter_ms=200, short_filter_ms=None)
    assert _reduction_db(short_only, mic[: 5 * 16000], coach_talking[: 5 * 16000], 3.0, 5.0) == (
        pytest.approx(young)
    )
    late = _reduction_db(short_only, mic[5 * 16000 :], coach_talking[5 * 16000 :], 6.0, 9.0)
    assert rest >= late + 3.0  # the 200 ms filter leaves the room's late echo
    both.relearn()  # the echo path moved: young again
    assert both.using_short


def test_a_direct_echo_keeps_the_short_filter(coach_talking: np.ndarray) -> None:
    both = EchoCanceller()
    assert _reduction_db(both, coach_talking, coach_talking, 10.0, 14.0) >= 20.0
    assert both.using_short


# -- residual echo suppression -----------------------------------------------------------------


def _frames(*levels: float) -> np.ndarray:
    """One 10 ms frame of a 440 Hz tone per level (peak amplitude), as int16."""
    t = np.arange(160) / 16_000
    tone = np.sin(2 * np.pi * 440 * t)
    return np.concatenate([tone * level for level in levels]).astype(np.int16)


def test_frames_that_are_mostly_echo_are_attenuated() -> None:
    suppressor = ResidualEchoSuppressor()
    mic = _frames(10_000, 10_000, 10_000)
    reference = _frames(10_000, 10_000, 0)
    residual = _frames(1_000, 1_000, 1_000)  # 20 dB down: the canceller's leftover
    out = suppressor.process(residual, mic, reference)
    # While the coach plays, the leftover is cut to 3%; once it stops, nothing is touched.
    assert np.abs(out[:320]).max() <= 0.03 * 1_000 + 1
    np.testing.assert_array_equal(out[320:], residual[320:])


def test_a_persons_quiet_frames_survive_after_a_loud_one_even_across_blocks() -> None:
    suppressor = ResidualEchoSuppressor(hangover_ms=200)
    # A person: the residual keeps the microphone's energy. Then a quiet tail of the word
    # under a loud coach syllable, which frame by frame looks like echo.
    person = suppressor.process(_frames(8_000), _frames(9_000), _frames(10_000))
    assert np.abs(person).max() > 7_000
    tail = [_frames(1_000) for _ in range(25)]
    kept = [suppressor.process(r, _frames(10_000), _frames(10_000)) for r in tail]
    for block in kept[:20]:  # 200 ms of hangover, one frame per call
        assert np.abs(block).max() > 900
    for block in kept[20:]:  # then the leftover is echo again
        assert np.abs(block).max() <= 31


def test_the_cancellers_leftover_after_double_talk_is_not_a_voice_though_it_is_not_cut() -> None:
    suppressor = ResidualEchoSuppressor(hangover_ms=0)
    # While the coach plays: a person (residual ~ mic), then the leftover of a canceller
    # disturbed by the double talk, 10 dB down (above the cut's 13 dB), then 20 dB down.
    mic = _frames(9_000, 10_000, 10_000)
    residual = _frames(8_500, 3_200, 1_000)
    out = suppressor.process(residual, mic, _frames(10_000, 10_000, 10_000))
    assert suppressor.echo_like.tolist() == [False, True, True]
    assert np.abs(out[160:320]).max() > 3_000  # -10 dB is passed to the recogniser ...
    assert np.abs(out[320:]).max() <= 31  # ... -20 dB is cut
    # With the coach silent nothing is echo, however quiet the residual.
    suppressor.process(residual, mic, _frames(0, 0, 0))
    assert not suppressor.echo_like.any()


def test_no_hangover_means_the_old_frame_by_frame_rule() -> None:
    suppressor = ResidualEchoSuppressor(hangover_ms=0)
    suppressor.process(_frames(8_000), _frames(9_000), _frames(10_000))
    out = suppressor.process(_frames(1_000), _frames(10_000), _frames(10_000))
    assert np.abs(out).max() <= 31


# -- echo return loss enhancement --------------------------------------------------------------


def _history(frames: list[tuple[float, float, float]]) -> EnergyHistory:
    """Frames of (mic, residual, reference) peak levels, as 440 Hz tones."""
    history = EnergyHistory()
    for mic, residual, reference in frames:
        history.add(_frames(mic), _frames(residual), _frames(reference))
    return history


def test_erle_is_the_cancellers_even_when_the_user_spoke_over_the_coach() -> None:
    coach = [(10_000.0, 1_000.0, 10_000.0)] * 70  # 20 dB removed
    user = [(20_000.0, 19_000.0, 10_000.0)] * 30  # a person: hardly removed, rightly
    history = _history(coach[:35] + user + coach[35:])
    # Summed energies would say about 1.5 dB; the user's words are not the canceller's.
    assert 19.0 < history.erle_db(before_ms=1000) < 21.0


def test_erle_leaves_out_the_persons_heard_commands() -> None:
    """Over short sentences a person's words can fill most of the coach's playing frames:
    then the median is theirs, unless the frames of the commands already heard are left
    out (and only those: an unheard word still counts)."""
    coach = [(10_000.0, 1_000.0, 10_000.0)] * 40  # 20 dB removed
    user = [(20_000.0, 19_000.0, 10_000.0)] * 30  # one word
    history = _history(coach[:20] + user * 3 + coach[20:])  # frames 20-109: the person
    assert history.erle_db(before_ms=1300) < 1.0
    history.mark_person(200, 500)  # the first word was heard as a command
    assert history.erle_db(before_ms=1300) < 1.0  # the other two still outweigh the coach
    history.mark_person(500, 800)
    assert 19.0 < history.erle_db(before_ms=1300) < 21.0


def test_erle_of_a_canceller_that_has_not_adapted_is_low() -> None:
    history = _history([(10_000.0, 9_000.0, 10_000.0)] * 100)
    assert history.erle_db(before_ms=1000) < 1.0


def test_erle_without_playback_is_zero() -> None:
    history = _history([(5_000.0, 5_000.0, 0.0)] * 50)
    assert history.erle_db(before_ms=500) == 0.0


def test_erle_forgets_what_the_canceller_did_before_it_started_relearning() -> None:
    history = _history([(10_000.0, 1_000.0, 10_000.0)] * 100)  # 20 dB, adapted
    assert history.erle_db(before_ms=1000) > 19.0
    history.relearning()  # the echo path moved: the coach comes through again
    for _ in range(60):
        history.add(_frames(10_000.0), _frames(9_000.0), _frames(10_000.0))
    # The last 8 s still hold 100 frames at 20 dB and 60 at 1 dB: the median says 20 dB.
    assert history.erle_db(before_ms=1600) < 1.0


def test_erle_needs_300_ms_of_the_coach_playing() -> None:
    history = _history([(10_000.0, 1_000.0, 10_000.0)] * 29)
    assert history.erle_db(before_ms=290) == 0.0
    history.add(_frames(10_000.0), _frames(1_000.0), _frames(10_000.0))
    assert history.erle_db(before_ms=300) > 19.0


def _syllables(n: int, shift: int = 0) -> list[float]:
    """A coach-like level pattern, 10 ms frames: 150 ms syllables and 50 ms gaps."""
    return [10_000.0 if (i - shift) % 20 < 15 else 0.0 for i in range(n)]


def test_the_coachs_own_echo_is_never_louder_than_the_coach_whatever_its_delay() -> None:
    reference = _syllables(300)
    for delay in (-10, 0, 12):  # frames the echo leads or trails the reference by
        echo = [0.3 * level for level in _syllables(300, shift=delay)]
        history = _history([(m, m, r) for m, r in zip(echo, reference, strict=True)])
        assert not history.louder_than_the_coach(2000, 2500)


@pytest.mark.parametrize(("voice", "evident"), [(6_000.0, True), (3_000.0, False)])
def test_a_person_louder_than_the_coachs_echo_is_evident_without_a_canceller(
    voice: float, evident: bool
) -> None:
    # The echo's peaks are 3000: a voice at 6000 is 6 dB over them; one at 3000 is not.
    reference = _syllables(300)
    mic = [0.3 * level for level in _syllables(300, shift=12)]
    mic[200:250] = [max(m, voice) for m in mic[200:250]]
    history = _history([(m, m, r) for m, r in zip(mic, reference, strict=True)])
    assert history.louder_than_the_coach(2000, 2500) is evident


# -- the self-word gate over the coach's voice -----------------------------------------------


@pytest.mark.parametrize(
    ("residual", "passes"),
    [(9_500.0, True), (12_000.0, False), (2_000.0, False)],
    ids=["a person", "a diverged canceller", "the coach's leftover"],
)
def test_a_command_over_the_coach_needs_a_residual_a_person_could_leave(
    residual: float, passes: bool
) -> None:
    # 3 s of the coach removed 20 dB (a proven canceller), then a word over the coach.
    coach = [(10_000.0, 1_000.0, 10_000.0)] * 300
    word = [(10_000.0, residual, 10_000.0)] * 50
    history = _history(coach + word)
    gate = SelfWordGate()
    assert not gate.canceller_unproven(history, 3000, 3500)
    assert gate.passes(("살살",), 1.0, 3000, 3500, history) is passes
    # PAIN is never held back by the canceller's quality.
    assert gate.passes(("아야",), 1.0, 3000, 3500, history, safety_first=True)


class HearingEngine(DeafEngine):
    """Keeps every block the listener hands it."""

    def __init__(self, hears_suppressed_echo: bool) -> None:
        super().__init__()
        self.hears_suppressed_echo = hears_suppressed_echo
        self.heard: list[np.ndarray] = []

    def accept(self, pcm: np.ndarray) -> list[Hypothesis]:
        self.heard.append(pcm.copy())
        return super().accept(pcm)


def test_an_engine_may_hear_the_cancellers_residual_without_the_suppressor(
    coach_talking: np.ndarray,
) -> None:
    """The coach's echo alone: an engine gets the suppressor's output (its leftover echo
    cut), unless it says ``hears_suppressed_echo = False`` (the spotter): then the
    canceller's own residual, the same audio with that leftover in it."""
    mic = (coach_talking.astype(np.float64) * 0.5).astype(np.int16)
    engines = [HearingEngine(True), HearingEngine(False)]
    for engine in engines:
        listener = Listener(engine)
        for start in range(0, len(mic), 320):
            listener.feed(mic[start : start + 320], coach_talking[start : start + 320], "coach")
    suppressed, cancelled = (np.concatenate(e.heard).astype(np.float64) for e in engines)
    assert len(suppressed) == len(cancelled) > len(mic) - 320  # whole 10 ms frames
    late = slice(10 * 16000, None)  # once the canceller has learnt the echo
    leftover = np.mean(cancelled[late] ** 2)
    assert leftover > 0.0
    assert np.mean(suppressed[late] ** 2) < leftover / 10  # the suppressor cut it >10 dB
    assert np.mean(mic[late].astype(np.float64) ** 2) > 10 * leftover  # the canceller too


class AudibleEngine(DeafEngine):
    """Notes what the listener says of the coach before each block, and says "그만" (STOP)
    or "아야" (PAIN) as a final result when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.audible: list[tuple[int, bool]] = []
        self.held: list[str] = []
        self.say: tuple[str, int] | None = None
        """(word, at stream ms): the word ends 300 ms before."""

    def coach_audible(self, audible: bool) -> None:
        self.audible.append((self.now_ms, audible))

    def held_back(self, command: str) -> None:
        self.held.append(command)

    def accept(self, pcm: np.ndarray) -> list[Hypothesis]:
        super().accept(pcm)
        if self.say is None or self.now_ms < self.say[1]:
            return []
        word, at_ms = self.say
        self.say = None
        return [Hypothesis((Word(word, at_ms - 700, at_ms - 300, 0.7),), True, self.now_ms)]


def test_the_listener_tells_the_engine_while_the_coachs_voice_may_be_under_a_word() -> None:
    """From the first block the coach plays in, until a word begun after it stopped
    (WORD_MS) and its room echo (ECHO_TAIL_MS) has passed."""
    coach = noise(2000, 3000.0, seed=3)
    reference = concat([silence(1000), coach, silence(3000)])
    mic = (reference.astype(np.float64) * 0.5).astype(np.int16)
    engine = AudibleEngine()
    listener = Listener(engine)
    for start in range(0, len(mic), 320):
        listener.feed(mic[start : start + 320], reference[start : start + 320])
    said = {start_ms + 20: audible for start_ms, audible in engine.audible}  # by block end
    assert len(said) == len(mic) // 320
    # Audible when the span a word ending now was said in (and its echo) reaches into
    # 1000-3000 ms, the coach's 2 s.
    reach_ms = WORD_MS + ECHO_TAIL_MS
    assert [end for end, a in said.items() if a] == [
        end for end in said if end > 1000 and end - reach_ms < 3000
    ]


def test_the_engine_hears_which_of_its_commands_the_gate_held_back() -> None:
    """A STOP over the coach before the canceller has shown that it removes the coach is
    held back, and the engine is told (the spotter then lets a surer step of the same word
    be heard); a PAIN there is taken, and nothing is said."""
    coach = noise(3000, 3000.0, seed=4)
    for word, held in (("그만", ["STOP"]), ("아야", [])):
        engine = AudibleEngine()
        engine.say = (word, 1500)
        listener = Listener(engine)
        heard = []
        for start in range(0, len(coach), 320):
            heard += listener.feed(coach[start : start + 320], coach[start : start + 320])
        assert engine.held == held
        assert [e.phrase for e in listener.dropped] == ([word] if held else [])
        assert [e.phrase for e in heard] == ([] if held else [word])


def test_the_listener_marks_the_commands_it_takes_as_the_persons() -> None:
    """A command the gate passes marks its span in the energy history (``erle_db`` then
    leaves it out); one the gate holds back (it may be the coach's own) marks nothing."""
    coach = noise(3000, 3000.0, seed=4)
    for word, held in (("그만", True), ("아야", False)):
        engine = AudibleEngine()
        engine.say = (word, 1500)
        listener = Listener(engine)
        marked: list[tuple[int, int]] = []
        mark = listener.energies.mark_person
        listener.energies.mark_person = (  # type: ignore[method-assign]
            lambda start, end, mark=mark, marked=marked: (marked.append((start, end)),
                                                          mark(start, end))[1])
        heard = []
        for start in range(0, len(coach), 320):
            heard += listener.feed(coach[start : start + 320], coach[start : start + 320])
        assert marked == ([] if held else [(800, 1200)]), (word, marked, heard)


def _underflow_stream(gap: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The coach's voice through a room, the speaker falling ``gap`` samples behind halfway
    (its echo comes that much later from then on, unknown to the reference): (played
    stream, microphone, sample of the gap)."""
    played = concat([speak(text, *COACH_VOICE) for text in SENTENCES * 2])
    at = len(played) // 2
    late = np.concatenate([played[:at], np.zeros(gap, np.int16), played[at:]])[: len(played)]
    return played, _room(late), at


def test_a_canceller_held_through_a_speaker_gap_goes_on_removing_the_coach() -> None:
    """An underflow: the coach's echo comes 10 ms later, and the echo delay is measured
    again 0.5 s on (coach.echo_delay's quick measurement). Adapting to the misplaced echo
    meanwhile left the canceller removing little of the coach for seconds after the
    reference was moved back; held, its long filter hears those frames only at the
    measured delay and goes on from where it was."""
    played, mic, at = _underflow_stream(160)
    moved_at = (at + 8000) // 320 * 320
    results: dict[bool, float] = {}
    for hold in (False, True):
        canceller = EchoCanceller()
        residual = []
        shift = 0
        for start in range(0, len(mic) - 320 + 1, 320):
            if start == at // 320 * 320 and hold:
                canceller.hold()
            if start == moved_at:
                # As coach.live.Hearing: this block's reference was taken before the move.
                if hold:
                    canceller.release(-160)
                else:
                    canceller.relearn()
            a = start + shift
            reference = played[a : a + 320]
            out, _, _ = canceller.process(mic[start : start + 320], reference)
            residual.append(out)
            if start == moved_at:
                shift = -160
        cleaned = np.concatenate(residual)
        s = slice(moved_at + 1600, moved_at + 1600 + 32000)  # 0.1-2.1 s after the move
        before = float(np.sum(mic[s].astype(np.float64) ** 2))
        after = float(np.sum(cleaned[s].astype(np.float64) ** 2))
        results[hold] = 10 * np.log10(before / max(after, 1.0))
    assert results[True] >= 15.0, results
    assert results[True] >= results[False] + 6.0, results


def test_the_listener_holds_its_canceller_from_a_speaker_gap_until_the_delay_is_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    hold, release, relearn = EchoCanceller.hold, EchoCanceller.release, EchoCanceller.relearn
    monkeypatch.setattr(EchoCanceller, "hold", lambda self: (calls.append("hold"), hold(self)))
    monkeypatch.setattr(EchoCanceller, "release", lambda self, correction=0: (
        calls.append(f"release {correction}"), release(self, correction)))
    monkeypatch.setattr(EchoCanceller, "relearn",
                        lambda self: (calls.append("relearn"), relearn(self)))
    listener = Listener(DeafEngine())
    block = np.full(320, 1000, np.int16)
    listener.feed(block, block)  # the canceller starts with the first reference
    assert not listener.gap_measured()  # nothing held: nothing to do

    listener.speaker_gap()
    listener.feed(block, block)
    assert listener.gap_measured()  # measured unmoved: caught up after the next block
    listener.feed(block, block)
    assert not listener.gap_measured()

    listener.speaker_gap()
    listener.feed(block, block)
    listener.reference_moved(-160)  # measured moved: caught up at the new delay, no relearning
    listener.feed(block, block)
    listener.reference_moved(-160)  # a move not after a gap: relearns as before
    assert calls == ["hold", "release 0", "hold", "release -160", "relearn"]
