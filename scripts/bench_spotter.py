"""Benchmark the spotter engine against PocketSphinx (the baseline), in the same run.

Sets (each figure says where it comes from):

- ``eval``: REAL ``../shared/speech/real/speech_commands``: "stop" detection on its 10
  "stop" clips and false commands on its 290 clips of 29 other words. This is the
  EVALUATION set: nothing was tuned on it.
- ``tuning``: REAL ``one_speaker`` (136 "stop", 180 other): the TUNING set (half of it was
  also used for training the spotter), so it is no result.
- ``synth``: SYNTHETIC espeak-ng speech in voices never used in training: the first phrase of
  every command and some non-command words and sentences, clean and with noise at 10 dB.

Every clip is pasted at a known offset into a 60 s stream of quiet room noise (gaps of
2-3.5 s) and fed in 20 ms blocks through ``coach.listen.Listener``, as the live session
does. Latency is from the clip's word end (its active part) to the event, in the stream's
clock. Each engine runs in its own process (memory is its peak RSS).

    .venv/bin/python scripts/bench_spotter.py --sets tuning,synth     # while tuning
    .venv/bin/python scripts/bench_spotter.py                          # everything
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
if "--coach-root" in sys.argv:  # a worker running the committed (previous) coach package
    sys.path.insert(0, sys.argv[sys.argv.index("--coach-root") + 1])

import corpus_lib as cl  # noqa: E402

REAL = HERE.parents[1] / "shared" / "speech" / "real"
BLOCK_MS = 20
ENGINES = ("spotter", "spotter@HEAD", "pocketsphinx")
"""``spotter@HEAD``: the spotter as committed at git HEAD (the previous engine), run from an
exported copy of the committed package (``corpus_lib.export_head_tree``)."""
TARGETS = {"stop": ">=95%", "neg": "<=1%", "latency": "p95 <=300 ms", "rtf": "<=0.1",
           "memory": "<400 MB"}
ANSWERS = ("YES", "NO")
"""Commands the session only acts on while it asks a question."""
SYNTH_POSITIVE = ("stop", "pain", "next", "pause", "repeat", "ouch", "help", "resume")
SYNTH_NEGATIVE = ("top", "shop", "step", "stuff", "pane", "paint", "plain", "text", "nest",
                  "neck", "spine", "lean forward", "keep your back flat",
                  "bring the knee to your chest", "nice and easy", "breathe in slowly",
                  "how are you", "open the window", "seventeen", "thirty")
SYNTH_VOICES = ("en-us+f4", "en-gb-x-rp+m5", "en+klatt3", "en-us-nyc+David", "en-029+Belinda")


def _labelled_clips(set_name: str, seed: int) -> list[cl.Utterance]:
    """The set's clips (16 kHz float32) with labels: command (STOP...) or None."""
    clips: list[cl.Utterance] = []
    if set_name in ("eval", "tuning"):
        folder = REAL / ("speech_commands" if set_name == "eval" else "one_speaker")
        if not folder.is_dir():
            return []
        for word_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for clip in sorted(word_dir.glob("*.wav")):
                pcm, rate = cl.read_wav(clip)
                command = "STOP" if word_dir.name == "stop" else None
                clips.append(cl.Utterance(cl.fade(cl.resample(pcm, rate)), {
                    "command": command, "phrase": word_dir.name,
                    "clip": f"{word_dir.name}/{clip.name}", "condition": "real"}))
        return clips
    rng = np.random.default_rng(seed)
    from coach.listen.vocabulary import load_vocabulary

    vocabulary = load_vocabulary("en", _empty_vocabulary())
    for voice in SYNTH_VOICES:
        for text in SYNTH_POSITIVE + SYNTH_NEGATIVE:
            command = vocabulary.command_for(text)
            variant = cl.VoiceVariant(voice, int(rng.integers(130, 200)), int(rng.integers(30, 70)))
            pcm = cl.normalize_active(cl.espeak_cached(text, variant, Path("/tmp/coach-bench-tts")))
            for condition in ("clean", "snr10", "snr0"):
                clips.append(cl.Utterance(cl.fade(pcm), {
                    "command": command.value if command else None, "phrase": text,
                    "clip": f"{voice}:{text}", "condition": condition}))
    return clips


def _empty_vocabulary() -> Path:
    path = Path("/tmp/coach-bench-empty-vocabulary.yaml")
    path.write_text("{}\n", encoding="utf-8")
    return path


def build_streams(set_name: str, seed: int) -> list[dict[str, Any]]:
    """Streams (pcm int16 + placed clips) for one set."""
    clips = _labelled_clips(set_name, seed)
    if not clips:
        return []
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(clips))]
    clips = [clips[i] for i in order]
    streams = []
    for condition in dict.fromkeys(c.label["condition"] for c in clips):
        subset = [c for c in clips if c.label["condition"] == condition]
        durations = [len(u.pcm) * 1000 // cl.SAMPLE_RATE_HZ for u in subset]
        for n, layout in enumerate(cl.plan_streams(durations, 60_000, (2000, 3500), rng)):
            noise_rng = np.random.default_rng([seed, n, len(streams)])
            if condition.startswith("snr"):
                def background(k: int, r: np.random.Generator = noise_rng,
                               snr: float = float(condition[3:])) -> cl.Audio:
                    return cl.noise_for_snr(cl.pink_noise(k, r), snr)
            else:
                def background(k: int, r: np.random.Generator = noise_rng) -> cl.Audio:
                    return cl.room_noise(k, r)
            pcm, placed = cl.build_stream(subset, layout, background)
            streams.append({"pcm": cl.to_int16(pcm), "placed": placed, "condition": condition})
    return streams


def run_engine(engine_name: str, sets: Sequence[str], seed: int, model: str | None = None
               ) -> dict[str, Any]:
    """Worker: feed every stream through a Listener with this engine; raw events + costs."""
    import psutil

    from coach.listen.listener import Listener
    from coach.listen.vocabulary import load_vocabulary

    data = {s: build_streams(s, seed) for s in sets}
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_before_mb = psutil.Process().memory_info().rss / 2**20
    vocabulary = load_vocabulary("en", _empty_vocabulary())
    t0 = time.perf_counter()
    if engine_name.startswith("spotter"):
        from coach.listen.spotter import SpotterEngine, SpotterModel

        spotter_model = SpotterModel.load(
            Path(model) if model and engine_name == "spotter" else None)

        def make() -> Any:
            return SpotterEngine(vocabulary, spotter_model)
    else:
        from coach.listen.sphinx_engine import SphinxEngine

        def make() -> Any:
            return SphinxEngine(vocabulary)
    make()
    load_s = time.perf_counter() - t0
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out: dict[str, Any] = {"engine": engine_name, "load_s": load_s, "sets": {}}
    block = cl.SAMPLE_RATE_HZ * BLOCK_MS // 1000
    for set_name, streams in data.items():
        results = []
        proc_s = audio_s = 0.0
        for stream in streams:
            listener = Listener(make())
            pcm = stream["pcm"]
            events = []
            t = time.perf_counter()
            for i in range(0, len(pcm), block):
                events += listener.feed(pcm[i : i + block])
            events += listener.finish()
            proc_s += time.perf_counter() - t
            audio_s += len(pcm) / cl.SAMPLE_RATE_HZ
            results.append({
                "condition": stream["condition"],
                "placed": [{"onset_ms": p.onset_ms, "word_end_ms": p.word_end_ms,
                            "offset_ms": p.offset_ms, **p.label} for p in stream["placed"]],
                "events": [e.to_json() for e in events],
            })
        out["sets"][set_name] = {"streams": results, "proc_s": proc_s, "audio_s": audio_s}
    out["engine_growth_mb"] = psutil.Process().memory_info().rss / 2**20 - rss_before_mb
    out["baseline_mb"] = baseline_mb
    out["loaded_mb"] = loaded_mb
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def pct(k: int, n: int) -> str:
    """``k/n (p%)``."""
    return f"{k}/{n} ({100 * k / n:.1f}%)" if n else "0/0"


def score(set_result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per clip: events assigned to it (word end within its window)."""
    rows = []
    for stream in set_result["streams"]:
        placed = stream["placed"]
        assigned: list[list[dict[str, Any]]] = [[] for _ in placed]
        for event in stream["events"]:
            for k, p in enumerate(placed):
                if p["onset_ms"] - 300 <= event["word_end_ms"] <= p["word_end_ms"] + 800:
                    assigned[k].append(event)
                    break
            else:
                # A stray event (not near any clip) counts against the nearest clip.
                k = int(np.argmin([abs(p["word_end_ms"] - event["word_end_ms"])
                                   for p in placed]))
                assigned[k].append(event)
        for p, events in zip(placed, assigned, strict=True):
            rows.append({**p, "condition": stream["condition"], "events": events})
    return rows


def report(run: dict[str, Any]) -> dict[str, float]:
    """Print the figures of one engine; the headline ones, for the comparison table."""
    summary: dict[str, float] = {}
    total_audio = sum(s["audio_s"] for s in run["sets"].values())
    total_proc = sum(s["proc_s"] for s in run["sets"].values())
    rtf = total_proc / max(total_audio, 1e-9)
    summary["rtf"] = rtf
    summary["engine growth MB"] = run["engine_growth_mb"]
    print(f"\n=== engine {run['engine']}: load {run['load_s']:.2f} s; memory "
          f"{run['baseline_mb']:.0f} MB before load, {run['loaded_mb']:.0f} MB loaded, peak "
          f"{run['peak_mb']:.0f} MB (the benchmark holds all its audio; the engine's own "
          f"growth: {run['engine_growth_mb']:+.0f} MB; target {TARGETS['memory']}); "
          f"real-time factor {rtf:.3f}"
          f" over {total_audio / 60:.1f} min (target {TARGETS['rtf']})")
    for set_name, result in run["sets"].items():
        rows = score(result)
        title = {"eval": "REAL speech_commands — EVALUATION set (held out, never tuned on)",
                 "tuning": "REAL one_speaker — TUNING set (half used in training): not a result",
                 "synth": "SYNTHETIC espeak-ng, voices not used in training"}[set_name]
        print(f"\n  --- {title}; RTF {result['proc_s'] / max(result['audio_s'], 1e-9):.3f}")
        for condition in dict.fromkeys(r["condition"] for r in rows):
            sub = [r for r in rows if r["condition"] == condition]
            pos = [r for r in sub if r["command"]]
            neg = [r for r in sub if not r["command"]]
            hits = [r for r in pos if any(e["command"] == r["command"] for e in r["events"])]
            latencies = [
                min(e["detected_ms"] for e in r["events"] if e["command"] == r["command"])
                - r["word_end_ms"] for r in hits
            ]
            lat = (f"latency word end->event p50 {np.percentile(latencies, 50):.0f} ms, "
                   f"p95 {np.percentile(latencies, 95):.0f} ms (target {TARGETS['latency']})"
                   if latencies else "latency n/a")
            label = f"[{condition}] " if set_name == "synth" else ""
            key = f"{set_name}:{condition}"
            summary[f"{key} detected %"] = 100 * len(hits) / max(1, len(pos))
            summary[f"{key} false %"] = 100 * sum(bool(r["events"]) for r in neg) / max(1, len(neg))
            if latencies:
                summary[f"{key} latency p50"] = float(np.percentile(latencies, 50))
                summary[f"{key} latency p95"] = float(np.percentile(latencies, 95))
            if set_name == "synth":
                by_cmd = Counter(r["command"] for r in pos)
                hit_cmd = Counter(r["command"] for r in hits)
                detail = ", ".join(f"{c} {hit_cmd[c]}/{n}" for c, n in sorted(by_cmd.items()))
                print(f"    {label}commands detected: {pct(len(hits), len(pos))} ({detail}); {lat}")
            else:
                print(f"    'stop' detected: {pct(len(hits), len(pos))} (target "
                      f"{TARGETS['stop']}); {lat}")
            missed = [r["clip"] for r in pos if r not in hits]
            if missed:
                print(f"      missed: {missed[:12]}{' ...' if len(missed) > 12 else ''}")
            wrong = [(r["clip"], e["command"]) for r in pos for e in r["events"]
                     if e["command"] != r["command"]]
            if wrong:
                print(f"      other commands on command clips: {wrong[:8]}")
            fired = [r for r in neg if r["events"]]
            print(f"    {label}other words with a false command: {pct(len(fired), len(neg))} "
                  f"(target {TARGETS['neg']}; every command active)")
            # Outside a question the session acts on no YES/NO: the same run with those
            # events dropped (an approximation of a vocabulary without them: a dropped
            # YES/NO event may have held back a later event by the refractory time).
            outside = [r for r in neg if any(e["command"] not in ANSWERS for e in r["events"])]
            summary[f"{key} false % no YES/NO"] = 100 * len(outside) / max(1, len(neg))
            print(f"    {label}other words with a false command outside a question (YES/NO "
                  f"events ignored): {pct(len(outside), len(neg))}")
            if fired:
                what = Counter(f"{r['phrase']}->{e['command']}" for r in fired for e in r["events"])
                print(f"      {sorted(what.items(), key=lambda kv: -kv[1])}")
                yes_no = [r for r in fired if r["phrase"] in ("yes", "no") and all(
                    e["command"] == r["phrase"].upper() for e in r["events"])]
                if yes_no:
                    print(f"      of which YES/NO heard on a real 'yes'/'no' (arguably right): "
                          f"{len(yes_no)}; without them: {pct(len(fired) - len(yes_no), len(neg))}")
    return summary


def compare(summaries: dict[str, dict[str, float]], baseline: str = "pocketsphinx") -> None:
    """One table of the headline figures, every engine side by side, with the ratio of each
    to the baseline engine measured in the same run."""
    engines = list(summaries)
    keys = list(dict.fromkeys(k for s in summaries.values() for k in s))
    print(f"\n=== comparison (same run; ratio = engine / {baseline})")
    print("  " + f"{'figure':34s}" + "".join(f"{e:>22s}" for e in engines))
    for key in keys:
        cells = []
        for engine in engines:
            value = summaries[engine].get(key)
            base = summaries.get(baseline, {}).get(key)
            if value is None:
                cells.append(f"{'-':>22s}")
                continue
            ratio = f" (x{value / base:.2f})" if base and engine != baseline else ""
            cells.append(f"{value:>12.3g}{ratio:>10s}")
        print("  " + f"{key:34s}" + "".join(cells))


def enroll_study(model: str | None) -> None:
    """How far live takes lie from an enrollment (REAL one_speaker, the TUNING set): three
    "stop" takes enrolled, then the lowest distance over a stream for other "stop" takes and
    for the other words. Chooses ``coach.listen.enroll.DEFAULT_MAX_DISTANCE``."""
    from coach.listen.embedding import FrontEnd
    from coach.listen.enroll import TEMPLATE_STEPS, Enrollment
    from coach.listen.spotter import SpotterModel

    folder = REAL / "one_speaker"
    if not folder.is_dir():
        print(f"[no recordings at {folder}]")
        return
    front_end = FrontEnd()
    spotter = SpotterModel.load(Path(model) if model else None)
    rng = np.random.default_rng(5)

    def stream(path: Path) -> Any:
        pcm, rate = cl.read_wav(path)
        out = cl.room_noise(16_000 * 4, rng)
        out[24_000 : 24_000 + len(pcm)] += cl.resample(pcm, rate)
        return cl.to_int16(out)

    stops = sorted((folder / "stop").glob("*.wav"))
    enrollment = Enrollment("en")
    for path in stops[:3]:
        enrollment.add_take("stop", stream(path), front_end, spotter)
    distances: dict[str, list[float]] = {}
    others = [p for d in sorted(folder.iterdir()) if d.is_dir() and d.name != "stop"
              for p in sorted(d.glob("*.wav"))[:6]]
    for path in stops[3:40] + others:
        emb = spotter.normalise(front_end.embed_clip(stream(path)))
        best = min(enrollment.nearest(emb[k - TEMPLATE_STEPS + 1 : k + 1], {"stop": "STOP"})[1]
                   for k in range(TEMPLATE_STEPS - 1, len(emb)))
        distances.setdefault("stop" if path.parent.name == "stop" else "other", []).append(best)
    for name, values in distances.items():
        q = np.percentile(values, [0, 5, 50, 95, 100])
        print(f"  {name:6s} n={len(values)}: min {q[0]:.3f} p5 {q[1]:.3f} median {q[2]:.3f} "
              f"p95 {q[3]:.3f} max {q[4]:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every engine in its own process and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="eval,tuning,synth",
                        help="comma list of eval, tuning, synth (default: all)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--model", help="spotter model file (default: the packaged one)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--coach-root", help=argparse.SUPPRESS)
    parser.add_argument("--enroll-study", action="store_true",
                        help="only measure enrollment distances on one_speaker (TUNING set)")
    args = parser.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    if args.enroll_study:
        enroll_study(args.model)
        return 0
    if args.worker:
        print(json.dumps(run_engine(args.worker, sets, args.seed, args.model)))
        return 0
    started = time.perf_counter()
    summaries: dict[str, dict[str, float]] = {}
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for engine in args.engines.split(","):
        model = ["--model", args.model] if args.model else []
        if engine == "spotter@HEAD":
            model += ["--coach-root", str(cl.export_head_tree(HERE.parent))]
        cmd = [sys.executable, __file__, "--worker", engine, "--sets", args.sets,
               "--seed", str(args.seed), *model]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"[engine {engine} failed:\n{proc.stderr[-3000:]}]")
            continue
        summaries[engine] = report(json.loads(proc.stdout.strip().splitlines()[-1]))
        sys.stdout.flush()
    if len(summaries) > 1:
        compare(summaries)
    print(f"\n[bench done in {time.perf_counter() - started:.0f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (at the start {load_at_start})]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
