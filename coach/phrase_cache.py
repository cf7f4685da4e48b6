"""On-disk cache of synthesized phrases, safe under concurrent use and corruption."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from coach.paths import cache_dir

CACHE_FORMAT_VERSION = 1
"""Bump when the stored PCM changes for the same inputs (trimming, tail pause, layout)."""

_MAGIC = b"COACHPHR"
# magic, format version, sample rate (Hz), sample count, text byte length, blake2b-128 of
# text + payload. Little-endian so entries move between machines.
_HEADER = struct.Struct("<8sHIII16s")
_SUFFIX = ".phr"

_log = logging.getLogger(__name__)


def default_phrase_dir() -> Path:
    """Where phrases live by default: ``cache_dir()/phrases``."""
    return cache_dir() / "phrases"


def phrase_key(parts: Mapping[str, object]) -> str:
    """A stable hex key for everything that changes the sound of a phrase."""
    payload = dict(parts)
    payload["cache_format"] = CACHE_FORMAT_VERSION
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _digest(text_bytes: bytes, payload: bytes) -> bytes:
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(text_bytes)
    hasher.update(payload)
    return hasher.digest()


class PhraseCache:
    """Phrases stored as one checksummed file each: int16 mono PCM plus its text.

    Writes go to a temporary file in the same folder, are fsynced, then renamed over the
    entry, so readers never see half a file and concurrent writers of the same phrase both
    succeed. A truncated or corrupted entry is detected by its length and checksum,
    deleted, and reported as missing so the caller synthesizes it again.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_phrase_dir()
        self.corrupt_entries = 0
        """Bad entries found (and deleted) by this instance."""
        self.write_failures = 0
        """Entries that could not be stored (reported once, then counted)."""

    def path_for(self, key: str) -> Path:
        """The file of entry ``key`` (sharded by its first two hex digits)."""
        return self.root / key[:2] / f"{key}{_SUFFIX}"

    def get(self, key: str, text: str) -> tuple[npt.NDArray[np.int16], int] | None:
        """The stored (PCM, sample rate) for ``key``, or None if absent or damaged."""
        path = self.path_for(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            _log.warning("phrase cache: cannot read %s: %s", path, err)
            return None
        entry = self._decode(blob, text)
        if entry is None:
            self.corrupt_entries += 1
            _log.warning("phrase cache: damaged entry %s deleted; synthesizing again", path)
            with contextlib.suppress(OSError):
                path.unlink()
        return entry

    def put(self, key: str, text: str, pcm: npt.NDArray[np.int16], sample_rate_hz: int) -> None:
        """Store a phrase atomically; failures to write are logged, never raised."""
        path = self.path_for(key)
        text_bytes = text.encode("utf-8")
        payload = np.ascontiguousarray(pcm, dtype="<i2").tobytes()
        header = _HEADER.pack(
            _MAGIC,
            CACHE_FORMAT_VERSION,
            sample_rate_hz,
            len(pcm),
            len(text_bytes),
            _digest(text_bytes, payload),
        )
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=path.parent)
            with os.fdopen(fd, "wb") as out:
                out.write(header)
                out.write(text_bytes)
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as err:
            # The cache is an optimisation: a read-only or full disk must not stop a session.
            self.write_failures += 1
            if self.write_failures == 1:
                _log.warning("phrase cache: cannot write %s: %s", path, err)
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    def clear(self) -> int:
        """Delete every entry (and stray temporary files); returns how many files went."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob(f"*/*{_SUFFIX}"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
        return removed

    @staticmethod
    def _decode(blob: bytes, text: str) -> tuple[npt.NDArray[np.int16], int] | None:
        if len(blob) < _HEADER.size:
            return None
        magic, version, rate_hz, samples, text_len, digest = _HEADER.unpack_from(blob)
        if magic != _MAGIC or version != CACHE_FORMAT_VERSION or rate_hz <= 0:
            return None
        text_end = _HEADER.size + text_len
        if len(blob) != text_end + 2 * samples:
            return None
        text_bytes = blob[_HEADER.size : text_end]
        payload = blob[text_end:]
        if text_bytes != text.encode("utf-8") or _digest(text_bytes, payload) != digest:
            return None
        pcm = np.frombuffer(payload, dtype="<i2").astype(np.int16)
        return pcm, int(rate_hz)
