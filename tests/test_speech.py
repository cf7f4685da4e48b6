"""Speech synthesis through real pyttsx3 + espeak-ng: phrases, trimming and the workarounds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from speech_support import (
    LateFileEngine,
    envelope_similarity,
    needs_espeak,
    profile,
    reference_speech,
)

from coach.errors import CoachError
from coach.speech import (
    SAMPLE_RATE_HZ,
    TRIM_LEAD_MS,
    TRIM_TAIL_MS,
    Phrase,
    Pyttsx3Backend,
    Synthesizer,
    quiet_stdout,
    trim_silence,
    wav_is_complete,
)

pytestmark = [pytest.mark.speech, needs_espeak]

KNEE = "Bend your knee."
TOES = "Now point your toes away, slowly."


@pytest.fixture(scope="module")
def backend() -> Iterator[Pyttsx3Backend]:
    real = Pyttsx3Backend()
    yield real
    real.close()


@pytest.fixture(scope="module", params=["direct", "runAndWait"])
def both_paths(request: pytest.FixtureRequest) -> Iterator[Pyttsx3Backend]:
    """The espeak fast path and pyttsx3's public save_to_file + runAndWait path."""
    real = Pyttsx3Backend(direct=request.param == "direct")
    yield real
    real.close()


def test_phrase_is_float32_mono_in_range_at_native_rate(backend: Pyttsx3Backend) -> None:
    synth = Synthesizer(profile(), use_cache=False, backend=backend)
    phrase = synth.synthesize(KNEE)
    assert isinstance(phrase, Phrase)
    assert phrase.sample_rate_hz == SAMPLE_RATE_HZ == 22050
    assert phrase.pcm.dtype == np.float32 and phrase.pcm.ndim == 1
    assert float(np.abs(phrase.pcm).max()) <= 1.0
    assert float(np.abs(phrase.pcm).max()) > 0.1  # real speech, not silence
    assert phrase.duration_ms == round(len(phrase.pcm) * 1000 / 22050)
    assert synth.speech_ms(KNEE) == phrase.duration_ms


def test_consecutive_phrases_are_each_the_right_sentence(both_paths: Pyttsx3Backend) -> None:
    """pyttsx3 writes only the last of two queued saves: each call must get its own text."""
    voice = profile(sentence_pause_ms=0)
    synth = Synthesizer(voice, use_cache=False, backend=both_paths)
    knee, toes = synth.synthesize(KNEE), synth.synthesize(TOES)
    for phrase in (knee, toes):
        ref = reference_speech(phrase.text, "gmw/en-us", voice.rate_wpm, voice.volume)
        # espeak-ng seeds its noise per process, so compare lengths and loudness contours.
        assert abs(len(phrase.pcm) - len(ref)) < 0.03 * len(ref)
        assert envelope_similarity(phrase.pcm, ref) > 0.9
    assert abs(knee.duration_ms - toes.duration_ms) > 500
    assert envelope_similarity(knee.pcm, toes.pcm) < 0.8


def test_threads_share_the_engine_one_utterance_at_a_time(backend: Pyttsx3Backend) -> None:
    voice = profile(sentence_pause_ms=0)
    texts = [KNEE, TOES, "Relax.", "Switch to the other leg now, gently."]
    results: dict[str, Phrase] = {}
    synth = Synthesizer(voice, use_cache=False, backend=backend)

    def speak(text: str) -> None:
        results[text] = synth.synthesize(text)

    threads = [threading.Thread(target=speak, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for text in texts:
        ref = reference_speech(text, "gmw/en-us", voice.rate_wpm, voice.volume)
        assert abs(len(results[text].pcm) - len(ref)) < 0.03 * len(ref), text


def test_nothing_reaches_stdout(
    both_paths: Pyttsx3Backend, capfd: pytest.CaptureFixture[str]
) -> None:
    """pyttsx3 prints 'Audio saved to ...' on every save; coach's stdout must stay clean."""
    Synthesizer(profile(), use_cache=False, backend=both_paths).synthesize("Breathe in.")
    print("mine")
    out, _ = capfd.readouterr()
    assert out == "mine\n"


def test_quiet_stdout_silences_c_level_writes(capfd: pytest.CaptureFixture[str]) -> None:
    import os

    with quiet_stdout():
        os.write(1, b"from C\n")
        print("from python")
    os.write(1, b"after\n")
    out, _ = capfd.readouterr()
    assert out == "after\n"


def test_file_is_complete_when_returned(both_paths: Pyttsx3Backend) -> None:
    """The whole sentence is there: as long as espeak-ng's own command line makes it."""
    pcm, rate_hz = both_paths.render(TOES, voice_id="gmw/en-us", rate_wpm=160, volume=0.9)
    assert rate_hz == 22050
    ref = reference_speech(TOES, "gmw/en-us", 160, 0.9)
    spoken = trim_silence(pcm, 22050)
    assert abs(len(spoken) - len(ref)) < 0.03 * len(ref)
    assert envelope_similarity(spoken, ref) > 0.9


def test_waits_for_finished_utterance_not_run_and_wait(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With an engine whose runAndWait returns while the WAV is half written, the backend
    still returns every sample (and swallows the engine's print)."""
    pcm = (np.sin(np.arange(22050) / 7.0) * 8000).astype(np.int16)
    fake = LateFileEngine(pcm)
    late = Pyttsx3Backend("espeak", engine_factory=lambda _name: fake)
    try:
        out, rate_hz = late.render("anything", voice_id=None, rate_wpm=150, volume=1.0)
    finally:
        for thread in fake.threads:
            thread.join()
        late.close()
    assert fake.complete_when_run_returned == [False]
    assert rate_hz == 22050
    np.testing.assert_array_equal(out, pcm)
    assert capfd.readouterr().out == ""


def test_wav_is_complete_reads_the_header(tmp_path: Path) -> None:
    import soundfile

    path = tmp_path / "x.wav"
    soundfile.write(str(path), np.zeros(1000, np.int16), 22050, subtype="PCM_16")
    assert wav_is_complete(path)
    blob = path.read_bytes()
    path.write_bytes(blob[:-100])
    assert not wav_is_complete(path)
    assert not wav_is_complete(tmp_path / "missing.wav")


def test_engine_that_fails_to_start_names_the_package() -> None:
    def broken(_name: str) -> object:
        # What pyttsx3's espeak driver raises when libespeak-ng cannot be loaded.
        raise RuntimeError("This means you probably do not have eSpeak or eSpeak-ng installed!")

    with pytest.raises(CoachError, match="espeak-ng") as err:
        Pyttsx3Backend("espeak", engine_factory=broken)
    assert "apt install espeak-ng" in err.value.message


def test_trimmed_to_the_sentence_plus_the_profile_pause(backend: Pyttsx3Backend) -> None:
    pause_ms = 300
    phrase = Synthesizer(
        profile(sentence_pause_ms=pause_ms), use_cache=False, backend=backend
    ).synthesize(KNEE)
    pcm = phrase.pcm
    pause_n = pause_ms * 22050 // 1000
    assert not pcm[-pause_n:].any()  # the pause is exact digital silence
    speech = pcm[:-pause_n]
    loud = np.flatnonzero(np.abs(speech) > 64 / 32768)
    # Only the documented margins remain around the sentence.
    assert loud[0] <= TRIM_LEAD_MS * 22050 // 1000
    assert len(speech) - 1 - loud[-1] <= TRIM_TAIL_MS * 22050 // 1000
    # The sound starts and ends quietly (no click at the cut).
    assert abs(speech[0]) < 0.01 and abs(speech[-1]) < 0.01


def test_each_utterance_gets_its_own_rate(both_paths: Pyttsx3Backend) -> None:
    """pyttsx3's runAndWait can cancel a queued rate change; alternate rates to prove not."""
    lengths: dict[int, list[int]] = {110: [], 220: []}
    for rate_wpm in (110, 220, 110, 220, 110, 220):
        pcm, _ = both_paths.render(TOES, voice_id="gmw/en-us", rate_wpm=rate_wpm, volume=0.9)
        lengths[rate_wpm].append(len(trim_silence(pcm, 22050)))
    assert min(lengths[110]) > 1.6 * max(lengths[220])
    assert max(lengths[110]) - min(lengths[110]) < 0.02 * max(lengths[110])


def test_whitespace_does_not_change_the_phrase_and_empty_text_is_silent(
    backend: Pyttsx3Backend,
) -> None:
    synth = Synthesizer(profile(), use_cache=False, backend=backend)
    assert synth.synthesize("  Bend   your\nknee. ").text == KNEE
    assert synth.cache_key(" Bend your  knee.") == synth.cache_key(KNEE)
    empty = synth.synthesize("   ")
    assert empty.duration_ms == 0 and len(empty.pcm) == 0


def test_unknown_system_voice_falls_back_to_engine_default(
    backend: Pyttsx3Backend, caplog: pytest.LogCaptureFixture
) -> None:
    voice = profile(system_voices={"linux": ["no-such-voice"]})
    synth = Synthesizer(voice, use_cache=False, backend=backend)
    assert synth.voice.voice_id is None
    assert "default voice" in caplog.text
    assert synth.synthesize("Hello.").duration_ms > 200


def test_phrases_are_read_only(backend: Pyttsx3Backend) -> None:
    phrase = Synthesizer(profile(), use_cache=False, backend=backend).synthesize("Rest.")
    with pytest.raises(ValueError):
        phrase.pcm[0] = 1.0


def test_context_manager_closes_its_own_backend() -> None:
    with Synthesizer(profile(), use_cache=False) as synth:
        assert synth.speech_ms("Rest.") > 100
    with pytest.raises(CoachError, match="closed"):
        synth._backend.render("x", voice_id=None, rate_wpm=150, volume=1.0)


def test_a_new_pyttsx3_engine_gets_the_profile_settings_again() -> None:
    """pyttsx3 resets espeak (rate 200) when it builds a new engine; settings must follow."""
    import gc

    first = Pyttsx3Backend()
    slow = first.render(TOES, voice_id="gmw/en-us", rate_wpm=110, volume=0.9)[0]
    first.close()
    del first
    gc.collect()
    second = Pyttsx3Backend()
    try:
        again = second.render(TOES, voice_id="gmw/en-us", rate_wpm=110, volume=0.9)[0]
    finally:
        second.close()
    assert abs(len(trim_silence(again, 22050)) - len(trim_silence(slow, 22050))) < 500


MISSING_ESPEAK = """
import ctypes, sys
real_load = ctypes.cdll.LoadLibrary
def load(name, *args, **kwargs):
    if "espeak" in str(name):
        raise OSError(f"{name}: cannot open shared object file")
    return real_load(name, *args, **kwargs)
ctypes.cdll.LoadLibrary = load  # as if libespeak-ng were not installed
from coach.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_missing_espeak_library_is_a_clear_error() -> None:
    """The real pyttsx3 import path, with libespeak-ng unloadable: one line, exit 2."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", MISSING_ESPEAK, "voices"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("coach: speech synthesizer 'espeak' is unavailable")
    assert "apt install espeak-ng" in last
    assert "calm" in done.stdout  # the profiles are still listed
