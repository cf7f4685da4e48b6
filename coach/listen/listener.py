"""The Listener: microphone blocks (and what the coach played) in, CommandEvents out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from coach.listen.commands import MOVING_ON_COMMANDS, URGENT_COMMANDS, Command, CommandEvent
from coach.listen.echo import (
    CANCELLERS,
    ECHO_FILTER_MS,
    ECHO_TAIL_MS,
    FRAME_MS,
    FRAME_SAMPLES,
    WORD_MS,
    Canceller,
    EchoCanceller,
    EnergyHistory,
    ResidualEchoSuppressor,
    SelfWordGate,
    frame_energies,
)
from coach.listen.engine import SAMPLE_RATE_HZ, Engine, Hypothesis, PcmBlock, Word
from coach.listen.judge import Judge, SpeechSpan, Threshold

FRESH_START_QUIET_MS = 100
"""Voice activity silence needed before the engine is restarted at a new coach sentence."""

ENDPOINT_OVERHANG_MS = 100
"""At the early endpoint, a command word may end at most this long after voice activity
did (Listener._overhangs): espeak's clean "그만해" ran on 60 ms (its soft final nasal is
below voice activity's threshold); the false "아프다" over the coach's echo 130 ms."""


SECOND_OPINION_TEMPERATURE = 1.5
"""Over the coach's voice, a next-best reading's likelihood relative to the best, exp(-d)
for a score d lower, is judged as exp(-d / 1.5): PAIN's and STOP's 0.45 then take a
reading at most 1.2 below the best (relative likelihood 0.30), not 0.8 (0.45). There the
word reaches the recogniser through the echo canceller, and in session 9's live e2e runs
the person's "아야" was the second reading at 0.51-0.57 in three passing runs and 0.39 in
the failing one (PAIN came 340 ms after the word, from the whole decode); session 8's
failure had 0.36. Not elsewhere: softened everywhere, eval_listener's Korean negative
speech in 0 dB noise (no coach) gave 12 false commands instead of 7; softened over the
coach only, eval_listener's Korean sets and bench_barge_in gave exactly the results of
the plain rule, and replays of four e2e and one bench_live recording changed only that
PAIN (340 -> 170 ms after the word)."""

SECOND_OPINION_BELOW = 0.8
"""An early final with a word below this confidence gets a second opinion (the engine's
next-best readings, Listener._second_opinion): the person's misheard "아야" came out at
0.46-0.67 in the cases measured."""


def _as_int16(pcm: np.ndarray[Any, Any]) -> PcmBlock:
    array = np.asarray(pcm).reshape(-1)
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(np.round(array * 32767.0), -32768, 32767).astype(np.int16)
    return array.astype(np.int16, copy=False)


def _softened(reading: Hypothesis) -> Hypothesis:
    """A next-best reading with its words' relative likelihood softened (see
    ``SECOND_OPINION_TEMPERATURE``)."""
    words = tuple(
        replace(w, confidence=w.confidence ** (1.0 / SECOND_OPINION_TEMPERATURE))
        for w in reading.words
    )
    return replace(reading, words=words)


def _ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE_HZ


class VoiceActivity:
    """Energy voice activity on 10 ms frames, against a tracked noise floor.

    Tells the judge when the current utterance started and ended, so an early
    (partial) command gets a word end time and is emitted once the speaker stops.
    """

    def __init__(self, ratio: float = 8.0, min_energy: float = 1e4, gap_ms: int = 300) -> None:
        self.ratio = ratio
        """A frame is voiced above ``ratio`` x noise floor (8 = 9 dB) ..."""
        self.min_energy = min_energy
        """... and above this mean square (1e4 = about -50 dBFS)."""
        self.gap_ms = gap_ms
        """Silence shorter than this does not end an utterance."""
        self._floor = min_energy / ratio
        self._frames = 0
        self._start_ms = -1
        self._end_ms = -1

    def add(self, energies: Iterable[float]) -> None:
        """Account for the next frames' mean squares."""
        for energy in energies:
            self._floor = energy if energy < self._floor else self._floor * 1.005
            self._frames += 1
            if energy > max(self._floor * self.ratio, self.min_energy):
                now = self._frames * FRAME_MS
                if self._start_ms < 0 or now - FRAME_MS - self._end_ms > self.gap_ms:
                    self._start_ms = now - FRAME_MS
                self._end_ms = now

    def span(self) -> SpeechSpan | None:
        """The latest utterance and the silence since it, if any speech was heard."""
        if self._start_ms < 0:
            return None
        now = self._frames * FRAME_MS
        return SpeechSpan(self._start_ms, self._end_ms, now - self._end_ms)


class Listener:
    """Streams 16 kHz mono int16 blocks through echo cancellation, an engine and the judge.

    All times are in the input stream's clock: the samples fed so far. Feed every
    microphone block in order; pass the block the speaker played at the same time as
    ``reference`` and the sentence being played as ``playing_text`` so the listener
    does not hear the coach's own voice (see ``coach.listen.echo``).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        thresholds: dict[Command, Threshold] | None = None,
        gate: SelfWordGate | None = None,
        echo_filter_ms: int = ECHO_FILTER_MS,
        canceller: str = "speex",
        echo_replay_ms: int = 4000,
        endpoint_silence_ms: int | None = 120,
        endpoint_max_ms: int = 1600,
        endpoint_min_residual_ratio: float = 0.4,
    ) -> None:
        self.engine = engine
        if thresholds is None:  # an engine may weigh its own confidences (VoskEngine)
            thresholds = getattr(engine, "judge_thresholds", None)
        self.judge = (
            Judge(engine.vocabulary) if thresholds is None else Judge(engine.vocabulary, thresholds)
        )
        self.gate = gate or SelfWordGate()
        self.energies = EnergyHistory()
        self.voice = VoiceActivity()
        self._echo_filter_ms = echo_filter_ms
        self._echo_replay_ms = echo_replay_ms
        self._canceller_name = canceller
        self._canceller_factory = CANCELLERS[canceller]
        self.endpoint_silence_ms = endpoint_silence_ms
        """Close a short utterance after this much silence (voice activity); None: off."""
        self.endpoint_max_ms = endpoint_max_ms
        """Only utterances up to this long (a command, not a sentence) are closed early."""
        self.endpoint_min_residual_ratio = endpoint_min_residual_ratio
        """Over the coach's voice, close early only an utterance whose residual after echo
        cancellation keeps this share of the microphone energy (a person, not echo). A
        person as loud as the coach keeps about half, less when the utterance takes in a
        burst of the coach's echo just before the word: 0.47 in a test's "아야" with the
        400 ms echo filter alone (ECHO_FILTER_MS), and the 0.5 of before then left it to
        the partial result, 160 ms later. Bursts of the coach's echo alone kept 0.01-0.24
        there. At 0.4 rather than 0.5 (with that filter), bench_barge_in (25 sentences)
        heard the same commands, PAIN and STOP at 0 dB sooner: p95 290 -> 256 ms from the
        word's end (direct), 364 -> 169 ms (room-a)."""
        self._endpointed_end_ms = -1
        """Where the utterance ended when the early endpoint last judged it: once per end,
        so a blocked look at the coach's echo just before a word does not use up the
        word's own chance (a PAIN in a bench_live recording: +387 ms after the word, now +127)."""
        self._urgent_span_start_ms = -1
        """Voice activity span in which an early endpoint already found PAIN or STOP."""
        self._canceller: Canceller | None = None
        self._suppressor = ResidualEchoSuppressor()
        self._engine_hears_suppressed: bool = getattr(engine, "hears_suppressed_echo", True)
        """Whether the engine gets the residual after the suppressor (the default) or the
        canceller's own: an engine may say it hears better without (SpotterEngine)."""
        self._samples_in = 0
        self._carry = np.zeros(0, np.int16)
        self._carry_ref = np.zeros(0, np.int16)
        self.dropped: list[CommandEvent] = []
        """Commands the self-word gate rejected (for diagnostics)."""
        self._playing_text: str | None = None
        self._fresh_start_due = False
        """A new coach sentence began: restart the engine once the person is quiet."""
        self.fresh_starts = 0
        """How many times the engine was restarted at a sentence (for diagnostics)."""
        self.second_opinions = 0
        """PAINs and STOPs heard in a next-best reading at the early endpoint (diagnostics)."""

    @property
    def stream_ms(self) -> int:
        """Microphone audio fed so far, in ms."""
        return _ms(self._samples_in)

    def playing(self, text: str, start_ms: int, end_ms: int) -> None:
        """Tell the listener the coach played ``text`` over this span of the mic clock."""
        self.gate.playing(text, start_ms, end_ms)

    def speaker_gap(self) -> None:
        """The speaker fell behind (``coach.live.EchoReference.crossed_gap``): the echo may
        come later from now on. The canceller holds its long filter until the echo delay
        is measured again (``reference_moved`` or ``gap_measured``), and what it removed
        before says nothing about now: meanwhile its short filter may let the coach's own
        words through (a PAIN, "hurts", in bench_underflow's reverberant room, when the
        self-word gate still judged by the reduction from before the gap)."""
        self.energies.relearning()
        hold: Callable[[], None] | None = getattr(self._canceller, "hold", None)
        if hold is not None:
            hold()

    def gap_measured(self) -> bool:
        """The echo delay after a speaker gap was measured and has not moved (or could not
        be measured): a held canceller catches up. Whether one was held (the caller may
        call this after every block)."""
        release: Callable[[int], None] | None = getattr(self._canceller, "release", None)
        if release is None or not getattr(self._canceller, "holding", False):
            return False
        release(0)
        return True

    def reference_moved(self, correction: int | None = None) -> None:
        """The caller now hands the reference at a new delay, ``correction`` samples later
        in the played stream (negative: earlier): a canceller held since a speaker gap
        catches up at the new delay (``EchoCanceller.release``); otherwise, or when the
        correction is not said, it relearns."""
        self.energies.relearning()
        release: Callable[[int], None] | None = getattr(self._canceller, "release", None)
        if release is not None and getattr(self._canceller, "holding", False):
            if correction is not None:
                release(correction)
                return
            release(0)
        relearn: Callable[[], None] | None = getattr(self._canceller, "relearn", None)
        if relearn is not None:
            relearn()

    def feed(
        self,
        mic: np.ndarray[Any, Any],
        reference: np.ndarray[Any, Any] | None = None,
        playing_text: str | None = None,
    ) -> list[CommandEvent]:
        """Feed one microphone block; the commands it completed.

        ``reference`` (same length as ``mic``) is what the speaker played meanwhile.
        Both are 16 kHz mono: int16, or float in [-1, 1] (converted).
        """
        mic = _as_int16(mic)
        if playing_text and playing_text != self._playing_text:
            self._fresh_start_due = True
        self._playing_text = playing_text
        start_ms = self.stream_ms
        self._samples_in += len(mic)
        if playing_text:
            self.gate.playing(playing_text, start_ms, self.stream_ms)
        if reference is not None:
            reference = _as_int16(reference)
            if len(reference) != len(mic):
                raise ValueError("reference block must have the same length as the mic block")
            if self._canceller is None:
                self._canceller = (
                    EchoCanceller(self._echo_filter_ms, replay_ms=self._echo_replay_ms)
                    if self._canceller_name == "speex"
                    else self._canceller_factory(self._echo_filter_ms)
                )
        else:
            reference = np.zeros(len(mic), np.int16)
        return self._run(mic, reference)

    def finish(self) -> list[CommandEvent]:
        """End of input: the commands of the last, unfinished utterance."""
        # Pad so the last partial 10 ms frame reaches the engine (pad not counted).
        pad = np.zeros(FRAME_SAMPLES - 1, np.int16)
        events = self._run(pad, pad)
        for hypothesis in self.engine.flush():
            events += self._judge(hypothesis)
        return events

    def _run(self, mic: PcmBlock, reference: PcmBlock) -> list[CommandEvent]:
        if len(self._carry):
            mic = np.concatenate([self._carry, mic])
            reference = np.concatenate([self._carry_ref, reference])
            self._carry = self._carry_ref = np.zeros(0, np.int16)
        echo_like: np.ndarray[Any, np.dtype[np.bool_]] | None = None
        if self._canceller is not None:
            cancelled, mic_frames, ref_frames = self._canceller.process(mic, reference)
            residual = self._suppressor.process(cancelled, mic_frames, ref_frames)
            echo_like = self._suppressor.echo_like
            heard = residual if self._engine_hears_suppressed else cancelled
        else:
            # No reference yet: only cut whole frames, so energies stay frame-aligned.
            n = len(mic) // FRAME_SAMPLES * FRAME_SAMPLES
            mic_frames, self._carry = mic[:n], mic[n:]
            ref_frames, self._carry_ref = reference[:n], reference[n:]
            residual = heard = mic_frames
        self.energies.add(mic_frames, residual, ref_frames)
        activity = frame_energies(residual)
        if echo_like is not None:
            # The person stopped where the plain rule says: not after the coach's leftover
            # that the suppressor's hangover passed on to the recogniser.
            activity[echo_like] *= self._suppressor.gain**2
        self.voice.add(activity)
        span = self.voice.span()
        if span is not None and span.trailing_silence_ms < _ms(len(mic_frames)):
            voice_heard: Callable[[bool], None] | None = getattr(self.engine, "voice_heard", None)
            if voice_heard is not None:
                voice_heard(span.end_ms - span.start_ms <= self.endpoint_max_ms)
        coach_audible: Callable[[bool], None] | None = getattr(self.engine, "coach_audible", None)
        if coach_audible is not None:
            # A word ending now began up to WORD_MS ago; the coach's room echo outlasts it.
            now_ms = self.stream_ms
            coach_audible(self.energies.played_in(now_ms - WORD_MS - ECHO_TAIL_MS, now_ms))
        events: list[CommandEvent] = []
        for hypothesis in self.engine.accept(heard):
            events += self._judge(hypothesis)
        closed = self._endpoint()
        if closed is not None:
            events += self._judge_closed(closed)
        if self._fresh_start_due:
            events += self._fresh_start()
        return events

    def _fresh_start(self) -> list[CommandEvent]:
        """Restart the engine at a new coach sentence, once nobody is talking.

        Vosk adapts to the speaker as it listens (online i-vectors). In a session most of
        what it hears is the coach's leftover echo, so it adapts to the coach, and then
        mishears the person's word: at the early endpoint "아야" came out as "하세요"
        (conf ~0.5), and PAIN was heard 300-450 ms late or not at all. Restarting at each
        coach sentence limits its adaptation to the last few seconds. Replays of two
        20-trial bench_live recordings: detections over 200 ms after the word 10 -> 1 and
        7 -> 0, PAINs heard 26 -> 27 and 23 -> 25 of 27 (but two new false commands in the
        first). bench_barge_in (25 sentences): self-triggered commands in room-a 2 -> 0,
        STOP over the coach 65 -> 74 of 100, PAIN 198 -> 196 of 200. eval_listener's
        self-trigger set: room-c 14 -> 1 commands.
        """
        restart: Callable[[], list[Hypothesis]] | None = getattr(self.engine, "restart", None)
        if restart is None:
            self._fresh_start_due = False
            return []
        span = self.voice.span()
        if span is not None and span.trailing_silence_ms < FRESH_START_QUIET_MS:
            return []  # the person may be mid-word: wait
        self._fresh_start_due = False
        self.fresh_starts += 1
        return [e for h in restart() for e in self._judge(h)]

    def _judge_closed(self, closed: list[Hypothesis]) -> list[CommandEvent]:
        """An early endpoint only serves PAIN and STOP (from the best reading, or a close
        second: see _second_opinion): anything else (no command, or NEXT, YES... which
        favour precision) is undone, and the engine decodes the utterance again whole, as
        if it had never been closed ("하나 둘 셋 | 넷")."""
        span = self.voice.span()
        if span is not None and self._overhangs(closed, span.end_ms):
            return self._rewound()
        urgent = self._urgent(closed, span)
        if urgent is not None:
            return urgent
        return self._second_opinion(closed, span) or self._rewound()

    def _urgent(
        self, finals: list[Hypothesis], span: SpeechSpan | None
    ) -> list[CommandEvent] | None:
        """The PAIN or STOP of an early final; [] if the gate rejected one (the coach's own
        word: the gate has spoken, decoding it again won't change that); None if it holds
        no urgent command (its other commands are kept in ``dropped``)."""
        gated = len(self.dropped)
        events = [e for h in finals for e in self._judge(h)]
        if any(e.command in URGENT_COMMANDS for e in self.dropped[gated:]):
            return []
        if events and all(e.command in URGENT_COMMANDS for e in events):
            if span is not None:  # the rest of it ("그만 | 해") is not another command
                self._urgent_span_start_ms = span.start_ms
            return events
        self.dropped += events
        return None

    def _second_opinion(
        self, closed: list[Hypothesis], span: SpeechSpan | None
    ) -> list[CommandEvent]:
        """PAIN or STOP from the next-best readings of the utterance the early endpoint
        closed, when the best one held no urgent command.

        Cut at the word's end, a word is sometimes a coin toss: in a live e2e run the
        person's "아야" came out as "하세요" (conf 0.55), and in a bench_live recording as
        "좋아요" (0.67); in both the engine's n-best had "아야" within 0.2 of the best
        score, and PAIN came only from the whole-utterance decode 160-200 ms later. A
        missed PAIN is unsafe and a false one only interrupts, so a close second counts:
        each reading is judged like the first final (thresholds, the whole-utterance
        rule, the gate), its words' confidence its likelihood relative to the best
        reading's (PAIN and STOP need 0.45: a score at most 0.8 below the best; over the
        coach's voice, softened by ``SECOND_OPINION_TEMPERATURE``, at most 1.2).

        Only where the best reading is no command at all, with a word the engine was
        unsure of (below ``SECOND_OPINION_BELOW``: a sure reading is not a coin toss), or
        only a command that moves the session on (NEXT, SKIP: ``MOVING_ON_COMMANDS``),
        however sure; and not over the coach before the canceller has shown it removes the
        coach. A live e2e run heard the coach's own first word, 0.7 s into the session, as
        "아야" (conf 0.23, rightly rejected) and the readings had "아야" at 0.9 of "됐어":
        a false PAIN. The same rule as the gate's (SelfWordGate.canceller_unproven).

        Why moving on: over the coach's voice, "멈춰" (stop) often comes out as "넘겨"
        (skip). Where the engine was unsure of it (below SKIP's threshold, then 0.8) and
        "멈춰" was a close second, the STOP was lost: bench_barge_in heard 6 more of its 100
        "멈춰" (69 -> 75) with this rule, 122-252 ms after the word, and the same number of
        "넘겨" and "넘어가" said over the coach (90 and 91 of 100). A STOP heard in place of
        a SKIP only pauses; a SKIP in place of a STOP moves on a person who asked to stop.
        Its 8 other false SKIPs listed no reading of "멈춰" close enough; 6 of them, at
        0.81-0.88, now fall short of Vosk's own bar for NEXT and SKIP
        (``vosk_engine.MOVING_ON_MIN_CONFIDENCE``). On eval_listener's synthetic set (no
        coach): one STOP fewer and one NEXT more of 170 commands; an early result leaves
        the engine without the adaptation to the voice that decoding the utterance again
        keeps.
        """
        reconsider: Callable[[], list[Hypothesis]] | None = getattr(
            self.engine, "reconsider", None
        )
        if reconsider is None or span is None:
            return []
        words = [w for h in closed for w in h.words]
        heard = self._commands_of(words)
        moving_on = bool(heard) and heard <= MOVING_ON_COMMANDS
        if heard and not moving_on:
            return []  # the engine weighed the command word itself and found it wanting
        if not moving_on and not any(w.confidence < SECOND_OPINION_BELOW for w in words):
            return []
        if self.gate.canceller_unproven(self.energies, span.start_ms, span.end_ms):
            return []
        readings = reconsider()
        if self.energies.played_in(span.start_ms - ECHO_TAIL_MS, span.end_ms):
            readings = [_softened(r) for r in readings]
        for reading in readings:
            if moving_on and not self._commands_of(reading.words) & URGENT_COMMANDS:
                continue  # the moving-on reading itself: kept for the whole decode
            if self._overhangs([reading], span.end_ms):
                continue
            events = self._urgent([reading], span)
            if events is None:
                continue
            self.second_opinions += bool(events)
            return events
        return []

    def _commands_of(self, words: Iterable[Word]) -> set[Command]:
        """The commands whose phrases use any of ``words``."""
        said = {w.text for w in words}
        phrases = self.engine.vocabulary.all_phrases()
        return {c for c, phrase in phrases if said & set(phrase.split())}

    def _rewound(self) -> list[CommandEvent]:
        """Undo the early endpoint: the engine decodes the utterance again, whole."""
        rewind: Callable[[], list[Hypothesis]] | None = getattr(self.engine, "rewind", None)
        return [e for h in (rewind() if rewind is not None else []) for e in self._judge(h)]

    def _overhangs(self, closed: list[Hypothesis], voice_end_ms: int) -> bool:
        """Whether a command word of the early final runs on into the silence after the voice.

        Cut early, the decoder must end the utterance with the audio it has, and over the
        coach's leftover echo it once stretched a word across the silence that followed:
        "아프다" ended 130 ms after voice activity did, and a false PAIN ended a live session
        (the e2e test). A word the person said ends inside their voice: in three 20-trial
        bench_live recordings every PAIN the early endpoint closed (74) ended 30-110 ms
        before voice activity did. Such a final is not trusted; the engine decodes again.
        """
        words = self.engine.vocabulary.words()
        return any(
            w.end_ms > voice_end_ms + ENDPOINT_OVERHANG_MS
            for h in closed
            for w in h.words
            if w.text in words
        )

    def _partials_trusted(self, span: SpeechSpan | None) -> bool:
        """Whether a partial result may settle a command now (Judge.consider's
        ``trust_partial``).

        Not over the coach before the canceller has shown it removes the coach
        (SelfWordGate.canceller_unproven), unless the microphone was louder than the
        coach's echo alone could make it (EnergyHistory.louder_than_the_coach): the
        residual is then the coach's voice, and a partial result, which carries no
        confidence, turns it into words. The gate already rejects any other command there,
        but PAIN skips the canceller rules (a missed "pain" is unsafe), and in a live e2e
        run the Korean model's partial heard "아야" in the coach's English 4 s into the
        session: a false PAIN. Such a PAIN waits for the final result, whose confidences
        the judge weighs (in that recording's replay, it held no command). The cost is a
        slower PAIN from a person no louder than the coach, in the first seconds of the
        coach's voice (the intro, before any movement) and after the echo path changes.
        """
        if span is None:
            return True
        if not self.gate.canceller_unproven(self.energies, span.start_ms, span.end_ms):
            return True
        return self.energies.louder_than_the_coach(span.start_ms, span.end_ms)

    def _endpoint(self) -> list[Hypothesis] | None:
        """Close the utterance as soon as voice activity says a short one ended.

        Vosk's partial result trails the audio by about 200 ms (the acoustic model's
        right context), and its own endpointer waits 500 ms of silence; its final
        result, asked for at the word's end, already has the word with its confidence
        and times. So once a command-length utterance is followed by
        ``endpoint_silence_ms`` of silence the engine is asked to finalize, and the
        whole-utterance rule judges the final result (scripts/measure_listen_ko.py:
        PAIN/STOP latency from word end p50 266 -> 129 ms, p95 489 -> 150 ms). Never
        while the coach is audible: there the partial result and the engine decide.
        """
        endpoint: Callable[[], list[Hypothesis]] | None = getattr(self.engine, "endpoint", None)
        span = self.voice.span()
        if (
            endpoint is None
            or self.endpoint_silence_ms is None
            or span is None
            or self.judge.emitted  # the partial result already said it
            or span.end_ms == self._endpointed_end_ms
            or span.trailing_silence_ms < self.endpoint_silence_ms
            or span.trailing_silence_ms >= self.endpoint_silence_ms + 10 * FRAME_MS
            or span.end_ms - span.start_ms > self.endpoint_max_ms
        ):
            return None
        self._endpointed_end_ms = span.end_ms
        mic, residual, _ = self.energies.window(span.start_ms, span.end_ms)
        if (
            self.energies.played_in(span.start_ms - ECHO_TAIL_MS, span.end_ms)
            and residual < self.endpoint_min_residual_ratio * mic
        ):
            # Over the coach's voice the residual's bursts are often its leftover echo,
            # and closing one alone turns it into a word (measured: a YES from a
            # reverberant room), or cuts a barge-in from its end: wait for the engine,
            # unless the canceller left most of the utterance's energy in place (the
            # echo is what it removes; a person's voice is what stays).
            # (Its room echo outlasts it: a sentence that just ended counts too.)
            return None
        return endpoint()

    def _judge(self, hypothesis: Hypothesis) -> list[CommandEvent]:
        span = self.voice.span()
        verdict = self.judge.consider(
            hypothesis, span, trust_partial=lambda: self._partials_trusted(span)
        )
        if verdict is None:
            return []
        if span is not None and span.start_ms == self._urgent_span_start_ms:
            return []
        event = CommandEvent(
            command=verdict.command,
            phrase=verdict.phrase,
            confidence=verdict.confidence,
            word_end_ms=verdict.word_end_ms,
            detected_ms=self.stream_ms,
        )
        if not self.gate.passes(
            self.engine.vocabulary.phrases.get(verdict.command, (verdict.phrase,)),
            verdict.confidence,
            verdict.word_start_ms,
            verdict.word_end_ms,
            self.energies,
            safety_first=verdict.command is Command.PAIN,
        ):
            self.dropped.append(event)
            held_back: Callable[[str], None] | None = getattr(self.engine, "held_back", None)
            if held_back is not None:
                held_back(verdict.command.value)
            return []
        self.energies.mark_person(verdict.word_start_ms, verdict.word_end_ms)
        return [event]
