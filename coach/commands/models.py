"""``coach models``: list, install, remove and locate Vosk speech models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from coach.errors import CoachError
from coach.listen import models


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``coach models`` and its actions."""
    parser = sub.add_parser(
        "models",
        help="list, install, remove and locate Vosk speech models",
        description="Manage the Vosk speech models used to hear voice commands offline.",
    )
    parser.set_defaults(func=_no_action, models_parser=parser)
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")

    ls = actions.add_parser("list", help="catalog models and which are installed")
    ls.add_argument("--json", action="store_true", help="print JSON for machines")
    ls.add_argument("--lang", help="only models for this language (e.g. en, de, ko)")
    ls.set_defaults(func=run_list)

    inst = actions.add_parser(
        "install",
        help="download and install a catalog model, or install a zip downloaded elsewhere",
        description=(
            "Download NAME from the Vosk model site (resuming an interrupted download), "
            "verify its size and md5 and install it; or install a zip you downloaded on "
            "another machine with --from."
        ),
    )
    inst.add_argument("name", nargs="?", metavar="NAME", help="catalog model name")
    inst.add_argument(
        "--from",
        dest="from_zip",
        metavar="ZIP",
        type=Path,
        help="install this model zip instead of downloading",
    )
    inst.add_argument(
        "--name",
        dest="as_name",
        metavar="NAME",
        help="with --from: the name to install the model under",
    )
    inst.add_argument("--lang", help="with --from: the model's language, if not in the catalog")
    inst.add_argument("--force", action="store_true", help="replace an installed model")
    inst.add_argument("--quiet", action="store_true", help="no progress bar")
    inst.set_defaults(func=run_install)

    rm = actions.add_parser("remove", help="delete an installed model")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(func=run_remove)

    path = actions.add_parser(
        "path",
        help="print the folder of an installed model (or of all models)",
        description=(
            "Print the folder of the installed model NAME; with --lang, the model coach "
            "would use for that language; with neither, the folder models are installed in."
        ),
    )
    path.add_argument("name", nargs="?", metavar="NAME")
    path.add_argument("--lang", help="the model coach would pick for this language")
    path.set_defaults(func=run_path)


def _no_action(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.models_parser
    parser.print_help(sys.stderr)
    return 2


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _rows(lang: str | None) -> list[dict[str, Any]]:
    catalog = models.load_catalog()
    installed = models.installed_models(catalog)
    by_name = {m.name: m for m in installed}
    rows: list[dict[str, Any]] = []
    for entry in catalog:
        if entry.obsolete and entry.name not in by_name:
            continue
        model = by_name.pop(entry.name, None)
        rows.append(
            {
                "name": entry.name,
                "lang": entry.lang,
                "language": entry.lang_text,
                "type": entry.type,
                "size_bytes": entry.size_bytes,
                "md5": entry.md5,
                "url": entry.url,
                "installed": model is not None,
                "path": str(model.path) if model else None,
                "disk_bytes": model.disk_bytes if model else None,
                "source": "catalog",
            }
        )
    for model in by_name.values():
        rows.append(
            {
                "name": model.name,
                "lang": model.lang,
                "language": None,
                "type": None,
                "size_bytes": None,
                "md5": None,
                "url": None,
                "installed": True,
                "path": str(model.path),
                "disk_bytes": model.disk_bytes,
                "source": "package" if model.source == "package" else "local zip",
            }
        )
    if lang:
        rows = [r for r in rows if models.language_match(r["lang"], lang)]
    return rows


def run_list(args: argparse.Namespace) -> int:
    """Print the catalog with install status."""
    rows = _rows(args.lang)
    if args.json:
        print(json.dumps({"models_dir": str(models.models_dir()), "models": rows}, indent=2))
        return 0
    table = Table(title=f"Vosk models (installed in {models.models_dir()})")
    table.add_column("name", no_wrap=True)
    for column in ("lang", "type", "download", "installed"):
        table.add_column(column)
    for row in rows:
        download = _human_bytes(row["size_bytes"]) if row["size_bytes"] else ""
        status = ""
        if row["installed"]:
            status = "package" if row["source"] == "package" else "yes"
        table.add_row(row["name"], row["lang"] or "?", row["type"] or "", download, status)
    Console().print(table)
    if not rows:
        print(f"no models for language {args.lang!r}", file=sys.stderr)
    return 0


def run_install(args: argparse.Namespace) -> int:
    """Install a model from the network or from a zip."""
    if args.from_zip is not None:
        if args.name is not None and args.as_name is not None:
            raise CoachError("give the model name once: either NAME or --name")
        path = models.install_from_zip(
            args.from_zip, name=args.as_name or args.name, lang=args.lang, force=args.force
        )
    else:
        if args.name is None:
            raise CoachError("say which model to install (see `coach models list`), or --from ZIP")
        if args.as_name or args.lang:
            raise CoachError("--name and --lang only apply with --from ZIP")
        path = _install_with_progress(args.name, force=args.force, quiet=args.quiet)
    print(f"installed {path.name} in {path}")
    return 0


def _install_with_progress(name: str, *, force: bool, quiet: bool) -> Path:
    if quiet:
        return models.install(name, force=force)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task: TaskID | None = None

    def on_progress(done: int, total: int) -> None:
        nonlocal task
        # Started on the first byte, so a download that never begins prints no empty bar.
        if task is None:
            progress.start()
            task = progress.add_task(name, total=total, completed=done)
        progress.update(task, completed=done)

    try:
        return models.install(name, force=force, on_progress=on_progress)
    finally:
        if task is not None:
            progress.stop()


def run_remove(args: argparse.Namespace) -> int:
    """Delete an installed model."""
    path = models.remove_model(args.name)
    print(f"removed {path}")
    return 0


def run_path(args: argparse.Namespace) -> int:
    """Print a model folder."""
    if args.name and args.lang:
        raise CoachError("give either NAME or --lang, not both")
    if args.name:
        print(models.model_path(args.name))
    elif args.lang:
        found = models.find_model(args.lang)
        if found is None:
            raise CoachError(
                f"no Vosk model installed for language {args.lang!r}; "
                f"see `coach models list --lang {args.lang}`"
            )
        print(found)
    else:
        print(models.models_dir())
    return 0
