"""Train the spotter's classifier head (coach/listen/spotter_model.npz), reproducibly.

The spotter hears through a frozen front end (``coach.listen.embedding``: openWakeWord's
mel spectrogram + Google's speech embedding, trained on real speech) and only a small
head is trained here: a one-hidden-layer MLP over the last 16 embeddings (2 s), one class
per English command phrase plus ``[unk]``, in numpy.

Data (all seeded): every command phrase and many non-command words and sentences (the
coach's own instruction sentences included) spoken by espeak-ng in many voices, rates
and pitches (SYNTHETIC), and the real one-speaker recordings of
``../shared/speech/real/one_speaker`` ("stop" as STOP, its other words and noise as
non-commands; half for training, half held out: the TUNING set). ``speech_commands``
(the evaluation set) is never read here. Clips are augmented (speed/pitch, microphone
colour, room reverb, gain) and strung into 20 s scenes with random gaps over a background
(quiet room, white/pink/brown noise, babble of negative speech, real room recordings) at
-3..30 dB SNR. Each 80 ms step of a scene is one example: a phrase class for the steps
0-320 ms after the phrase ended, ``[unk]`` for speech, silence and noise elsewhere.

    .venv/bin/python scripts/train_spotter.py    # writes coach/listen/spotter_model.npz

Per-command thresholds are chosen on the held-out synthetic voices and the held-out half
of one_speaker (false firings on their non-command parts), and the script prints the
detection they give. About 6 minutes on this 2-core machine from scratch (seeded: the same
npz every run); espeak-ng output is cached in /tmp/coach-spotter-synth (keyed by
espeak-ng's version too) and the scenes' embeddings in /tmp/coach-spotter-embedded (then
about 2.5 minutes). The model's meta records the espeak-ng version and a digest of the
synthetic clips (``clips_sha1``): a retrain that gives another model but the same digest
differs elsewhere than in the speech it heard.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import functools
import hashlib
import io
import json
import math
import multiprocessing
import pickle
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import soundfile
from scipy import signal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coach.listen.commands import Command  # noqa: E402
from coach.listen.embedding import (  # noqa: E402
    EMBED_SPAN_SAMPLES,
    STEP_SAMPLES,
    FrontEnd,
)
from coach.listen.judge import DEFAULT_THRESHOLDS, FALLBACK_THRESHOLD  # noqa: E402
from coach.listen.spotter import CONTEXT_STEPS, ONE_STEP_SCORES, SMOOTH_STEPS  # noqa: E402
from coach.listen.vocabulary import load_vocabulary  # noqa: E402

ONE_SPEAKER = ROOT.parent / "shared" / "speech" / "real" / "one_speaker"
OUT = ROOT / "coach" / "listen" / "spotter_model.npz"
CACHE = Path("/tmp/coach-spotter-synth")
EMBED_CACHE = Path("/tmp/coach-spotter-embedded")
DATA_VERSION = 2
"""Bump when the scenes change (augmentation, labels): invalidates EMBED_CACHE."""
SR = 16_000
OTHER = "[unk]"
SCENE_S = 20.0
LEAD_S = 2.0
"""Background before a scene's first clip: the first example needs 2 s of context."""
POSITIVE_MS = (0, 320)
"""Steps whose window ends this long after a phrase's end are that phrase."""
IGNORE_AFTER_MS = 640
"""Steps later than POSITIVE_MS but within this are neither phrase nor [unk] (fading)."""


def words(text: str) -> list[str]:
    """The space-separated words of ``text``."""
    return text.split()


CONFUSING: set[str] = set()
"""The CONFUSABLE words (filled in main)."""


# Non-command speech: confusable words first (close to a command), then everyday words,
# numbers, exercise words and whole sentences. Written for this purpose, not taken from
# the evaluation set's word list.
CONFUSABLE = words(
    "top shop step stuff stock stopped stomp stab spot pop cop drop hop mop "
    "pane paint plain pen pin pine paid pay main rain lane cane gain train "
    "text nest neck necks mixed sent desk best test west vest "
    "house mouse out about pouch couch "
    "skin skid sick kit ski "
    "pose paws cause pours pulse "
    "hold cold told gold old bold "
    "half health held hell "
    "peat repeat retreat complete "
    "slow flower lower sour "
    "fast master faster plaster after "
    "yet yesterday yellow mess bless less lest "
    "know now not note nose "
    "and end bend lend friend "
    "wake weight white "
    "way weigh hey hay"
)
EVERYDAY = words(
    "the a an of to in is it you that he was for on are as with his they I at be this have "
    "from or one had by word but not what all were we when your can said there use each which "
    "she do how their if will up other about out many then them these so some her would make "
    "like him into time has look two more write go see number way could people my than first "
    "water been call who oil its find long down day did get come made may part over new sound "
    "take only little work know place year live me back give most very after thing our just "
    "name good sentence man think say great where help through much before line right too "
    "mean old any same tell boy follow came want show also around form three small set put "
    "end does another well large must big even such because turn here why ask went men read "
    "need land different home us move try kind hand picture again change off play spell air "
    "away animal point page letter mother answer found study still learn should world "
    "four five six seven eight nine ten zero eleven twelve twenty hundred "
    "left right forward backward front back knee leg foot ankle hip spine nerve breathe relax "
    "slowly gently bend straighten lift lower chin head neck shoulder arm floor lying sitting "
    "morning evening today tomorrow coffee music window door table chair phone kitchen garden "
    "red blue green black white happy sad tired fine okay hello goodbye thanks please sorry "
    "maybe really actually probably sure cool nice lovely weather bird cat dog tree car bus"
)
SENTENCES = (
    "stop if you feel pain",
    "take a slow breath in",
    "now bend your knee gently",
    "hold it there for five seconds",
    "this is the next exercise",
    "lie on your back with your legs straight",
    "repeat this ten times on each side",
    "if it hurts make the movement smaller",
    "relax your shoulders and breathe out",
    "good work that was the last one",
    "what time is it",
    "I think I need some water",
    "can you hear me",
    "the weather is nice today",
    "where did I put my phone",
    "my back feels a little better",
    "let me get comfortable first",
    "one more time please",
    "straighten your leg slowly",
    "point your toes up toward the ceiling",
)

URGENT_WORDS = ("stop", "pain", "ouch", "halt", "hurts")
BASE_VOICES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
               "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
TRAIN_VARIANTS = ("", "m1", "m2", "m3", "m4", "m6", "m7", "f1", "f2", "f3", "f5",
                  "klatt", "klatt2", "klatt4", "Andy", "Annie", "Denis", "Linda", "Mike",
                  "Michael", "Steph", "anika", "Alicia", "Gene", "Paul", "Robert", "travis",
                  "grandma", "grandpa", "male3", "female2", "female3", "shelby", "Edward")
HELD_OUT_VARIANTS = ("f4", "m5", "klatt3", "David", "Belinda")
"""Voices never used in training: the tests speak with these."""

Audio = npt.NDArray[np.float32]


def coach_sentences() -> list[str]:
    """Every sentence the coach itself says (phrases and the built-in routines' cues)."""
    import coach.phrases as phrases
    from coach.loader import builtin_ids, resolve_routine
    from coach.timeline import compile_timeline

    texts = [v for k, v in vars(phrases).items() if k.isupper() and isinstance(v, str)]
    for routine_id in builtin_ids():
        texts += [c.text for c in compile_timeline(resolve_routine(routine_id)).cues if c.text]
    out: list[str] = []
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            clean = sentence.strip()
            if clean and clean not in out:
                out.append(clean)
    return out


@functools.cache
def espeak_version() -> str:
    """The espeak-ng that speaks the synthetic clips, e.g. ``1.51`` (its voices change from
    one release to the next, and with them the clips and the trained head); asked once."""
    out = subprocess.run(["espeak-ng", "--version"], check=True, capture_output=True,
                         text=True, timeout=30).stdout
    found = re.search(r"text-to-speech:\s*(\S+)", out)
    return found.group(1) if found else out.strip()


def espeak(text: str, voice: str, rate_wpm: int, pitch: int) -> Audio:
    """espeak-ng speech at 16 kHz (cached on disk by its parameters and espeak-ng's
    version: a cache from another release would silently train on other voices)."""
    version = espeak_version()
    key = hashlib.sha1(f"{version}|{voice}|{rate_wpm}|{pitch}|{text}".encode()).hexdigest()[:16]
    path = CACHE / f"{key}.npy"
    if path.is_file():
        return np.asarray(np.load(path), np.float32)
    raw = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout", "--", text],
        check=True, capture_output=True, timeout=60,
    ).stdout
    pcm, rate = soundfile.read(io.BytesIO(raw), dtype="float32")
    pcm16 = signal.resample_poly(pcm, SR // math.gcd(SR, rate), rate // math.gcd(SR, rate))
    pcm16 = np.asarray(pcm16, np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, pcm16)
    return pcm16


def clips_digest(clips: Sequence[Clip]) -> str:
    """A short hash of the clips' audio and labels, in order: two trainings with the same
    digest (and seed and settings) heard the same synthetic speech."""
    digest = hashlib.sha1()
    for clip in clips:
        digest.update(clip.label.encode())
        digest.update(np.asarray(clip.pcm, np.float32).tobytes())
    return digest.hexdigest()[:16]


def trim(pcm: Audio) -> Audio:
    """The clip without its digital silence at both ends."""
    loud = np.flatnonzero(np.abs(pcm) > 1e-3)
    return pcm[loud[0] : loud[-1] + 1] if len(loud) else pcm


def active_end(pcm: Audio, range_db: float = 35.0) -> int:
    """Sample just after the clip's last 10 ms frame within ``range_db`` of its loudest
    (the benchmarks' definition of the word end)."""
    n = len(pcm) // 160
    if n == 0:
        return len(pcm)
    power = (pcm[: n * 160].astype(np.float64).reshape(n, 160) ** 2).mean(axis=1)
    active = np.flatnonzero(power >= power.max() * 10 ** (-range_db / 10))
    return (int(active[-1]) + 1) * 160


# --------------------------------------------------------------------------- augmentation


def coloured_noise(n: int, rng: np.random.Generator) -> Audio:
    """White, pink or brown noise, unit power."""
    white = rng.standard_normal(n + 1)
    kind = rng.integers(3)
    if kind == 1:
        b, a = [0.049922, -0.095993, 0.050612, -0.004408], [1, -2.494956, 2.017265, -0.522189]
        noise = signal.lfilter(b, a, white)
    elif kind == 2:
        noise = signal.lfilter([1.0], [1.0, -0.97], white)
    else:
        noise = white
    noise = noise[1:]
    return np.asarray(noise / (np.std(noise) + 1e-9), np.float32)


def room_ir(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A synthetic room impulse response: direct path + exponentially decaying noise tail."""
    rt60 = rng.uniform(0.15, 0.6)
    n = int(rt60 * SR)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n) * rng.uniform(0.05, 0.4)
    ir[0] = 1.0
    return np.asarray(ir / np.sqrt(np.sum(ir**2)), np.float64)


def vary(pcm: Audio, rng: np.random.Generator, strength: float) -> tuple[Audio, int]:
    """One acoustic variant of a clip (speed/pitch, colour, reverb), peak 1; and its word
    end (sample), measured before reverberation smears it."""
    x = np.asarray(trim(pcm), np.float64)
    if rng.random() < 0.7 * strength:  # speed and pitch together, by resampling
        up = 100
        x = signal.resample_poly(x, up, round(up * rng.uniform(0.85, 1.15)))
    if rng.random() < 0.5 * strength:  # microphone colour: random band limits
        sos = signal.butter(2, [rng.uniform(60, 400), rng.uniform(3500, 7800)], btype="band",
                            fs=SR, output="sos")
        x = signal.sosfilt(sos, x)
    end = active_end(np.asarray(x, np.float32))
    if rng.random() < 0.4 * strength:
        x = signal.fftconvolve(x, room_ir(rng))[: len(x) + SR // 4]
    x = x / (np.max(np.abs(x)) + 1e-9)
    return np.asarray(x, np.float32), end


@dataclass
class Clip:
    """One clip to place in a scene: its audio and label (a phrase, or OTHER)."""

    pcm: Audio
    label: str
    real: bool = False
    text: str = ""
    mixed: bool = False
    """Other speech that contains a command phrase ("stop if you feel pain"): neither a
    command nor clearly other (the echo gate, not the head, rejects the coach's own)."""


class Span(NamedTuple):
    """Where a clip landed in a scene (samples) and what it is."""

    start: int
    end: int
    """The word end (last active frame)."""
    label: str
    text: str
    mixed: bool


def contains_command(text: str) -> bool:
    """Whether a command phrase occurs, as whole words, in ``text``."""
    spoken = " " + re.sub(r"[^a-z' ]", " ", text.lower()) + " "
    spoken = re.sub(r"\s+", " ", spoken)
    return any(f" {p} " in spoken for p in commands_of_phrase if p != OTHER)


@dataclass
class Scene:
    """Clips strung together over one background; what the trainer embeds as one stream."""

    clips: list[Clip]
    seed: int
    strength: float


def build_scene(scene: Scene, babble_pool: Sequence[Audio], rooms: Sequence[Audio]
                ) -> tuple[Audio, list[Span]]:
    """The scene's audio (float, peak < 1) and its clips as spans."""
    rng = np.random.default_rng(scene.seed)
    placed: list[tuple[Audio, int, int, str]] = []
    cursor = int(LEAD_S * SR * rng.uniform(0.6, 1.0))
    spans: list[Span] = []
    for clip in scene.clips:
        pcm, end = vary(clip.pcm, rng, scene.strength * (0.5 if clip.real else 1.0))
        level_db = rng.uniform(-32, -8)  # peak level: soft and loud speakers
        placed.append((pcm * 10 ** (level_db / 20), cursor, end, clip.label))
        spans.append(Span(cursor, cursor + end, clip.label, clip.text, clip.mixed))
        cursor += len(pcm) + int(rng.uniform(0.25, 1.6) * SR)
    total = cursor + int(0.7 * SR)
    speech = np.zeros(total, np.float64)
    for pcm, start, _, _ in placed:
        speech[start : start + len(pcm)] += pcm
    voiced = np.abs(speech) > 0.05 * np.max(np.abs(speech))
    speech_power = float(np.mean(speech[voiced] ** 2)) if voiced.any() else 1e-4
    kind = rng.choice(["room", "coloured", "babble", "real"], p=[0.3, 0.35, 0.2, 0.15])
    if kind == "room" or scene.strength == 0:
        noise = coloured_noise(total, rng) * 10 ** (rng.uniform(-80, -55) / 20)
    else:
        if kind == "babble" and babble_pool:
            noise = np.zeros(total, np.float64)
            for _ in range(4):
                loop = np.concatenate([babble_pool[int(i)] for i in
                                       rng.integers(len(babble_pool), size=40)])
                reps = math.ceil(total / max(1, len(loop)))
                noise += np.tile(loop, reps)[:total] / (np.std(loop) + 1e-9)
            noise = np.asarray(noise / (np.std(noise) + 1e-9), np.float32)
        elif kind == "real" and rooms:
            loop = np.concatenate([rooms[int(i)] for i in rng.integers(len(rooms), size=8)])
            noise = np.tile(loop, math.ceil(total / len(loop)))[:total]
            noise = np.asarray(noise / (np.std(noise) + 1e-9), np.float32)
        else:
            noise = coloured_noise(total, rng)
        snr_db = rng.uniform(-3, 30)
        noise = noise * math.sqrt(speech_power / 10 ** (snr_db / 10))
    out = speech + noise
    peak = np.max(np.abs(out))
    if peak > 0.99:
        out *= 0.99 / peak
    return np.asarray(out, np.float32), spans


def step_labels(n_steps: int, spans: Sequence[Span], index: dict[str, int],
                positive_ms: tuple[int, int] = POSITIVE_MS
                ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Class and weight of each 80 ms step (weight 0: ambiguous, not trained)."""
    ends = np.arange(n_steps) * STEP_SAMPLES + EMBED_SPAN_SAMPLES
    labels = np.full(n_steps, index[OTHER], np.int64)
    weights = np.ones(n_steps, np.float32)
    lo, hi = (ms * SR // 1000 for ms in positive_ms)
    fade = IGNORE_AFTER_MS * SR // 1000
    for start, end, label, _, mixed in spans:
        if mixed:
            weights[(ends >= start) & (ends <= end + fade)] = 0.0
            continue
        if label == OTHER:
            continue
        after = ends - end
        weights[(ends >= start) & (after < lo)] = 0.0  # the phrase is still being said
        weights[(after > hi) & (after <= fade)] = 0.0
        positive = (after >= lo) & (after <= hi)
        labels[positive] = index[label]
        weights[positive] = 1.0
    return labels, weights


_FRONT_END: FrontEnd | None = None


def embed_scene(job: tuple[Scene, Sequence[Audio], Sequence[Audio]]
                ) -> tuple[Audio, list[Span]]:
    """Worker: a scene's embeddings (n, 96) and its spans."""
    global _FRONT_END
    if _FRONT_END is None:
        _FRONT_END = FrontEnd(threads=1)
    scene, babble, rooms = job
    audio, spans = build_scene(scene, babble, rooms)
    return _FRONT_END.embed_clip(audio), spans


# --------------------------------------------------------------------------- data


def phrase_table() -> tuple[list[str], list[str]]:
    """(phrases, their commands) of the packaged English vocabulary, plus OTHER."""
    with tempfile.TemporaryDirectory() as folder:  # no user additions in the model
        empty = Path(folder) / "none.yaml"
        empty.write_text("{}\n", encoding="utf-8")
        pairs = load_vocabulary("en", empty).all_phrases()
    return [p for _, p in pairs] + [OTHER], [c.value for c, _ in pairs] + [OTHER]


def synth_jobs(phrases: Sequence[str], negatives: Sequence[str], variants: Sequence[str],
               per_phrase: int, per_negative: int, seed: int
               ) -> list[tuple[str, str, int, int, str]]:
    """(text, voice, rate, pitch, label) for every synthetic clip."""
    rng = np.random.default_rng(seed)
    jobs: list[tuple[str, str, int, int, str]] = []
    for texts, count, labelled in ((phrases, per_phrase, True), (negatives, per_negative, False)):
        for text in texts:
            # The urgent one-word commands get more takes: they must never be missed.
            takes = count * 3 if labelled and text in URGENT_WORDS else count
            for _ in range(takes):
                base = BASE_VOICES[rng.integers(len(BASE_VOICES))]
                variant = variants[rng.integers(len(variants))]
                voice = f"{base}+{variant}" if variant else base
                rate = int(rng.integers(110, 230))
                pitch = int(rng.integers(20, 80))
                jobs.append((text, voice, rate, pitch, text if labelled else OTHER))
    return jobs


def render(jobs: Sequence[tuple[str, str, int, int, str]]) -> list[Clip]:
    """Synthesize every job (threads: espeak-ng runs as a separate process)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        audio = list(pool.map(lambda j: espeak(j[0], j[1], j[2], j[3]), jobs))
    return [Clip(a, j[4], text=j[0], mixed=j[4] == OTHER and contains_command(j[0]))
            for a, j in zip(audio, jobs, strict=True)]


def one_speaker_clips(seed: int) -> tuple[list[Clip], list[Clip], list[Audio]]:
    """(train, held-out) halves of the real one-speaker words, and its noise recordings."""
    if not ONE_SPEAKER.is_dir():
        return [], [], []
    rng = np.random.default_rng(seed)
    train: list[Clip] = []
    held: list[Clip] = []
    rooms: list[Audio] = []
    for folder in sorted(p for p in ONE_SPEAKER.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.wav"))
        order = rng.permutation(len(files))
        for rank, i in enumerate(order):
            pcm, rate = soundfile.read(str(files[i]), dtype="float32")
            assert rate == SR
            pcm = np.asarray(pcm, np.float32)
            if folder.name == "none":
                rooms.append(pcm)
                continue
            label = "stop" if folder.name == "stop" else OTHER
            (train if rank % 2 == 0 else held).append(
                Clip(pcm, label, real=True, text=f"real:{folder.name}"))
    return train, held, rooms


def scenes_of(clips: Sequence[Clip], rng: np.random.Generator, strength: float,
              seed: int) -> list[Scene]:
    """Shuffle the clips into scenes of about SCENE_S seconds."""
    order = rng.permutation(len(clips))
    scenes: list[Scene] = []
    current: list[Clip] = []
    length = 0.0
    for i in order:
        current.append(clips[int(i)])
        length += len(clips[int(i)].pcm) / SR + 0.9
        if length >= SCENE_S:
            scenes.append(Scene(current, seed + len(scenes), strength))
            current, length = [], 0.0
    if current:
        scenes.append(Scene(current, seed + len(scenes), strength))
    return scenes


def embed_all(scenes: Sequence[Scene], babble: Sequence[Audio], rooms: Sequence[Audio],
              workers: int) -> list[tuple[Audio, list[Span]]]:
    """Embeddings and spans of every scene (in order; worker processes)."""
    jobs = [(s, babble, rooms) for s in scenes]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(pool.imap(embed_scene, jobs, chunksize=4))


def examples(embedded: Sequence[tuple[Audio, list[Span]]],
             index: dict[str, int], positive_ms: tuple[int, int] = POSITIVE_MS
             ) -> tuple[Audio, npt.NDArray[np.int64], npt.NDArray[np.int64],
                        npt.NDArray[np.float32]]:
    """All embeddings stacked, and per example: last row, class, weight."""
    rows: list[Audio] = []
    ends: list[npt.NDArray[np.int64]] = []
    ys: list[npt.NDArray[np.int64]] = []
    ws: list[npt.NDArray[np.float32]] = []
    offset = 0
    for emb, spans in embedded:
        labels, weights = step_labels(len(emb), spans, index, positive_ms)
        valid = np.arange(CONTEXT_STEPS - 1, len(emb))
        rows.append(emb)
        ends.append(valid + offset)
        ys.append(labels[valid])
        ws.append(weights[valid])
        offset += len(emb)
    return (np.concatenate(rows), np.concatenate(ends), np.concatenate(ys),
            np.concatenate(ws))


def windows(emb: Audio, last: npt.NDArray[np.int64]) -> Audio:
    """Flattened inputs: the CONTEXT_STEPS embeddings ending at each of ``last``."""
    idx = last[:, None] + np.arange(-CONTEXT_STEPS + 1, 1)[None, :]
    return np.asarray(emb[idx].reshape(len(last), -1), np.float32)


# --------------------------------------------------------------------------- model


def train_mlp(emb: Audio, last: npt.NDArray[np.int64], y: npt.NDArray[np.int64],
              weights: npt.NDArray[np.float32], n_classes: int, hidden: int, epochs: int,
              seed: int, dropout: float, decay: float) -> dict[str, Audio]:
    """Softmax MLP (ReLU hidden layer) trained with Adam, dropout and weight decay."""
    rng = np.random.default_rng(seed)
    d = emb.shape[1] * CONTEXT_STEPS
    params = {
        "w1": (rng.standard_normal((d, hidden)) * math.sqrt(2 / d)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": (rng.standard_normal((hidden, n_classes)) * math.sqrt(1 / hidden)).astype(
            np.float32),
        "b2": np.zeros(n_classes, np.float32),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    lr, batch, step = 1e-3, 256, 0
    keep = np.flatnonzero(weights > 0)
    for epoch in range(epochs):
        order = keep[rng.permutation(len(keep))]
        rate = lr * (0.5 * (1 + math.cos(math.pi * epoch / epochs)))
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            xb = windows(emb, last[idx])
            # Input dropout: the head must not lean on a single embedding step.
            xb = xb * ((rng.random(xb.shape) > dropout / 2) / (1 - dropout / 2))
            yb, wb = y[idx], weights[idx]
            h = np.maximum(xb @ params["w1"] + params["b1"], 0)
            mask = (rng.random(h.shape) > dropout) / (1 - dropout)
            hd = h * mask
            logits = hd @ params["w2"] + params["b2"]
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            g = p.copy()
            g[np.arange(len(yb)), yb] -= 1
            g *= wb[:, None] / wb.sum()
            grads = {"w2": hd.T @ g, "b2": g.sum(axis=0)}
            gh = (g @ params["w2"].T) * mask * (h > 0)
            grads["w1"] = xb.T @ gh
            grads["b1"] = gh.sum(axis=0)
            step += 1
            for k in params:
                grad = grads[k] + decay * params[k] * (k[0] == "w")
                m[k] = 0.9 * m[k] + 0.1 * grad
                v2[k] = 0.999 * v2[k] + 0.001 * grad * grad
                mh = m[k] / (1 - 0.9**step)
                vh = v2[k] / (1 - 0.999**step)
                params[k] = (params[k] - rate * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
        print(f"  epoch {epoch + 1}/{epochs}", flush=True)
    return params


def predict(params: dict[str, Audio], emb: Audio, last: npt.NDArray[np.int64]) -> Audio:
    """Class probabilities of the examples ending at ``last``."""
    out = []
    for i in range(0, len(last), 4096):
        h = np.maximum(windows(emb, last[i : i + 4096]) @ params["w1"] + params["b1"], 0)
        logits = h @ params["w2"] + params["b2"]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        out.append(p / p.sum(axis=1, keepdims=True))
    return np.asarray(np.concatenate(out), np.float32)


# --------------------------------------------------------------------------- tuning


def segment_scores(embedded: Sequence[tuple[Audio, list[Span]]],
                   probs_of: list[Audio], commands: Sequence[str]
                   ) -> list[tuple[str, npt.NDArray[np.float64], str]]:
    """Per clip: its command (or OTHER) and the highest score of every command over the
    steps that belong to it (from its start to 640 ms after its word end)."""
    names = sorted(set(commands) - {OTHER})
    member = np.array([[c == n for c in commands] for n in names], np.float64)  # (C, P)
    out: list[tuple[str, npt.NDArray[np.float64], str]] = []
    for (emb, spans), probs in zip(embedded, probs_of, strict=True):
        raw = probs @ member.T  # (steps, C): summed over each command's phrases
        scores = raw
        if SMOOTH_STEPS > 1:  # as the engine: the lowest of the last SMOOTH_STEPS steps
            scores = np.stack([raw[k:len(raw) - SMOOTH_STEPS + 1 + k]
                               for k in range(SMOOTH_STEPS)]).min(axis=0)
            scores = np.concatenate([np.zeros((SMOOTH_STEPS - 1, len(names))), scores])
            for j, name in enumerate(names):  # ...or one step at ONE_STEP_SCORES
                if name in ONE_STEP_SCORES:
                    sure = raw[:, j] >= ONE_STEP_SCORES[name]
                    scores[sure, j] = raw[sure, j]
        ends = (np.arange(len(emb)) * STEP_SAMPLES + EMBED_SPAN_SAMPLES)[CONTEXT_STEPS - 1 :]
        for start, end, label, text, mixed in spans:
            if mixed:
                continue
            sel = (ends >= start) & (ends <= end + IGNORE_AFTER_MS * SR // 1000)
            if not sel.any():
                continue
            command = OTHER if label == OTHER else commands_of_phrase[label]
            out.append((command, scores[sel].max(axis=0), text))
        # Gaps: background between clips must not fire either.
    return out


commands_of_phrase: dict[str, str] = {}


def choose_thresholds(scored: Sequence[tuple[str, npt.NDArray[np.float64], str]],
                      names: Sequence[str]) -> dict[str, float]:
    """Per command: the lowest threshold keeping false firings on everyday speech within its
    budget (STOP/PAIN favour recall: 1% of clips; the others 0.5%), never below the judge's
    own minimum confidence for that command. Everyday speech: held-out words and sentences,
    not the CONFUSABLE words written to sound like a command (they are reported apart), and
    clips of the other commands."""
    thresholds: dict[str, float] = {}
    for j, name in enumerate(names):
        command = Command(name)
        judge_min = DEFAULT_THRESHOLDS.get(command, FALLBACK_THRESHOLD).min_confidence
        budget = 0.005 if name in ("STOP", "PAIN") else 0.0025
        negatives = np.array([s[j] for c, s, t in scored
                              if c != name and not (c == OTHER and t in CONFUSING)])
        chosen = 0.97
        for thr in np.arange(judge_min, 0.97, 0.01):
            if (negatives >= thr).mean() <= budget:
                chosen = float(thr)
                break
        thresholds[name] = round(chosen, 2)
    return thresholds


def report(title: str, scored: Sequence[tuple[str, npt.NDArray[np.float64], str]],
           names: Sequence[str], thresholds: dict[str, float]) -> None:
    """Detection per command and false firings, at the chosen thresholds."""
    thr = np.array([thresholds[n] for n in names])
    fired = [(c, s >= thr) for c, s, t in scored if not (c == OTHER and t in CONFUSING)]
    negatives = [f for c, f in fired if c == OTHER]
    texts = [t for c, s, t in scored
             if c == OTHER and (s >= thr).any() and t not in CONFUSING]
    close = [(s >= thr).any() for c, s, t in scored if c == OTHER and t in CONFUSING]
    print(f"{title}: {len(scored)} clips")
    if close:
        hits = [t for c, s, t in scored if c == OTHER and t in CONFUSING and (s >= thr).any()]
        print(f"  CONFUSABLE words (top, shop, pane...) with a command: {sum(close)}/{len(close)}"
              f" ({100 * sum(close) / len(close):.0f}%): {hits[:10]}")
    if negatives:
        false = sum(bool(f.any()) for f in negatives)
        print(f"  non-command clips with a command: {false}/{len(negatives)} "
              f"({100 * false / len(negatives):.1f}%): {texts[:12]}")
    for j, name in enumerate(names):
        own = [f for c, f in fired if c == name]
        if own:
            hit = sum(bool(f[j]) for f in own)
            wrong = sum(bool(np.delete(f, j).any()) for f in own)
            print(f"  {name:8s} thr {thresholds[name]:.2f}: detected {hit}/{len(own)} "
                  f"({100 * hit / len(own):.0f}%), another command too {wrong}")


def main(argv: Sequence[str] | None = None) -> int:
    """Build the data, train, choose thresholds on held-out data, write the model."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-phrase", type=int, default=40, help="synthetic takes per phrase")
    parser.add_argument("--per-negative", type=int, default=3, help="takes per negative text")
    parser.add_argument("--real-copies", type=int, default=3, help="real stop takes per scene set")
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.5, help="hidden-layer dropout")
    parser.add_argument("--urgent-boost", type=float, default=1.5,
                        help="extra weight of STOP and PAIN examples (recall first)")
    parser.add_argument("--decay", type=float, default=1e-3, help="weight decay")
    parser.add_argument("--positive-ms", type=int, default=POSITIVE_MS[1],
                        help="steps up to this long after a phrase's end are that phrase")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    phrases, commands = phrase_table()
    commands_of_phrase.update(dict(zip(phrases, commands, strict=True)))
    index = {p: i for i, p in enumerate(phrases)}
    CONFUSING.update(CONFUSABLE)
    own = coach_sentences()
    negatives = list(dict.fromkeys(
        [w for w in CONFUSABLE + EVERYDAY if w not in index] + list(SENTENCES) + own))
    rng = np.random.default_rng(args.seed)

    train_jobs = synth_jobs(phrases[:-1], negatives, TRAIN_VARIANTS, args.per_phrase,
                            args.per_negative, args.seed)
    val_jobs = synth_jobs(phrases[:-1], negatives, HELD_OUT_VARIANTS, 3, 1, args.seed + 1)
    print(f"synthesizing {len(train_jobs)} + {len(val_jobs)} clips "
          f"({len(own)} of the coach's own sentences) ...", flush=True)
    train_clips = render(train_jobs)
    val_clips = render(val_jobs)
    print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    real_train, real_held, rooms = one_speaker_clips(args.seed)
    babble = [c.pcm for c in train_clips if c.label == OTHER][:400]

    train_set = train_clips + [c for c in real_train for _ in range(
        args.real_copies if c.label != OTHER else 1)]
    scenes = scenes_of(train_set, rng, 1.0, args.seed * 100_000)
    # Held out: unseen voices (with noise) and the held-out half of one_speaker (as recorded).
    val_scenes = scenes_of(val_clips, rng, 0.7, args.seed * 100_000 + 50_000)
    real_scenes = scenes_of(real_held, rng, 0.0, args.seed * 100_000 + 80_000)
    print(f"embedding {len(scenes)} + {len(val_scenes)} + {len(real_scenes)} scenes ...",
          flush=True)
    # The embeddings depend only on the data arguments: cached, so the head can be retrained
    # quickly with other settings (delete /tmp/coach-spotter-embedded to recompute).
    clips = clips_digest(train_clips + val_clips)
    print(f"  espeak-ng {espeak_version()}, clips {clips}", flush=True)
    key = hashlib.sha1(json.dumps([DATA_VERSION, args.seed, args.per_phrase, args.per_negative,
                                   args.real_copies, clips]).encode()).hexdigest()[:12]
    cached = EMBED_CACHE / f"{key}.pkl"
    if cached.is_file():
        embedded, val_embedded, real_embedded = pickle.loads(cached.read_bytes())
    else:
        embedded = embed_all(scenes, babble, rooms, args.workers)
        val_embedded = embed_all(val_scenes, babble, rooms, args.workers)
        real_embedded = embed_all(real_scenes, babble, rooms, args.workers)
        EMBED_CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(pickle.dumps((embedded, val_embedded, real_embedded)))
    emb, last, y, w = examples(embedded, index, (0, args.positive_ms))
    mean = emb.mean(axis=0)
    std = emb.std(axis=0) + 1e-3
    emb_n = np.asarray((emb - mean) / std, np.float32)
    # Each phrase class is rare next to [unk]; urgent ones weigh most (never miss them).
    counts = np.bincount(y[w > 0], minlength=len(phrases)).astype(np.float64)
    boost = np.ones(len(phrases), np.float32)
    for i in range(len(phrases) - 1):
        share = counts[index[OTHER]] / max(counts[i], 1.0) / (len(phrases) - 1)
        boost[i] = min(4.0, max(1.0, math.sqrt(share)))
        if commands[i] in ("STOP", "PAIN"):
            boost[i] *= args.urgent_boost
    w = w * boost[y]
    print(f"examples: {len(last)} ({int((y != index[OTHER]).sum())} command steps) "
          f"in {time.perf_counter() - started:.0f} s", flush=True)
    params = train_mlp(emb_n, last, y, w, len(phrases), args.hidden, args.epochs, args.seed,
                       args.dropout, args.decay)
    print(f"trained in {time.perf_counter() - started:.0f} s", flush=True)

    names = sorted(set(commands) - {OTHER})

    def scored_of(sets: Sequence[tuple[Audio, list[Span]]]
                  ) -> list[tuple[str, npt.NDArray[np.float64], str]]:
        probs = []
        for e, _ in sets:
            en = np.asarray((e - mean) / std, np.float32)
            probs.append(predict(params, en, np.arange(CONTEXT_STEPS - 1, len(e))))
        return segment_scores(sets, probs, commands)

    val_scored = scored_of(val_embedded)
    real_scored = scored_of(real_embedded)
    thresholds = choose_thresholds(val_scored + real_scored, names)
    print("thresholds (chosen on held-out synthetic voices + held-out one_speaker half):")
    print("  " + json.dumps(thresholds))
    report("SYNTHETIC held-out voices", val_scored, names, thresholds)
    report("REAL one_speaker held-out half (TUNING set, no result)", real_scored, names,
           thresholds)
    report("training scenes (fit, no result)", scored_of(embedded[:60]), names, thresholds)
    np.savez_compressed(
        args.out,
        w1=params["w1"].astype(np.float16), b1=params["b1"], w2=params["w2"].astype(np.float16),
        b2=params["b2"], mean=mean.astype(np.float32), std=std.astype(np.float32),
        phrases=np.array(phrases), commands=np.array(commands),
        meta=np.array(json.dumps({
            "seed": args.seed, "thresholds": thresholds, "context_steps": CONTEXT_STEPS,
            "smooth_steps": SMOOTH_STEPS,
            "train_clips": len(train_jobs), "real_clips": len(real_train),
            "hidden": args.hidden, "epochs": args.epochs, "front_end": "openwakeword-embedding",
            "espeak_ng": espeak_version(), "clips_sha1": clips,
        })),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
