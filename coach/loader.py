"""Routine loading: safe YAML to a validated Routine, with every problem pointed at FILE:LINE:COL.

Routine files are small, hand-written YAML. Loading refuses anything a routine
never needs and an attacker might use: files over 1 MB, YAML aliases (the
"billion laughs" expansion), deep nesting, custom tags. Every problem in a
file is reported at once, each pointing at the line and column of the
offending key or value.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from coach.errors import CoachError
from coach.routine import Routine

MAX_FILE_BYTES = 1024 * 1024
"""Routine files larger than this (1 MB) are refused before parsing."""
MAX_DEPTH = 16
"""Deepest nesting of mappings and lists; routines need 5."""
DEFAULT_ROUTINE_ID = "beginner"
"""The gentle floor session: lying on your back only, 5 reps a side."""

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a routine file, at a 1-based line and column when known."""

    file: str
    line: int | None
    col: int | None
    path: str
    """Dotted field path, e.g. ``exercises[0].hold_s``; empty for file-level problems."""
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RoutineError(CoachError):
    """A routine file with problems; the message lists them all, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


# -- built-in routines ---------------------------------------------------------------------


def _builtin_dir() -> Traversable:
    return resources.files("coach").joinpath("routines")


def builtin_ids() -> list[str]:
    """Ids of the routines shipped with coach, sorted."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _builtin_dir().iterdir()
        if entry.is_file() and entry.name.endswith(".yaml")
    )


def load_builtin(routine_id: str) -> Routine:
    """The built-in routine ``routine_id`` (CoachError if there is none)."""
    if routine_id not in builtin_ids():
        raise CoachError(
            f"no built-in routine '{routine_id}'; built-in routines: {', '.join(builtin_ids())}"
        )
    entry = _builtin_dir().joinpath(f"{routine_id}.yaml")
    return parse_routine(entry.read_bytes(), str(entry))


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))


def resolve_routine(ref: str) -> Routine:
    """A built-in routine id or a routine file path, loaded and validated."""
    ids = builtin_ids()
    if ref in ids and not _looks_like_path(ref):
        return load_builtin(ref)
    path = Path(ref)
    if path.exists():
        return load_routine(path)
    raise CoachError(
        f"no routine '{ref}': not a built-in routine ({', '.join(ids)}) and no such file"
    )


# -- files ---------------------------------------------------------------------------------


def load_routine(path: str | Path) -> Routine:
    """Read, parse and validate the routine file at ``path`` (RoutineError on any problem)."""
    name = str(path)
    path = Path(path)
    try:
        if path.is_dir():
            raise RoutineError([Problem(name, None, None, "", "is a directory, not a routine")])
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RoutineError([_too_big(name, size)])
        with path.open("rb") as stream:
            # Read one byte past the limit: stat() can be wrong (pipes, /proc, a growing file).
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise RoutineError([Problem(name, None, None, "", "no such file")]) from None
    except OSError as err:
        reason = err.strerror or str(err)
        raise RoutineError([Problem(name, None, None, "", f"cannot read: {reason}")]) from None
    return parse_routine(data, name)


def _too_big(name: str, size: int) -> Problem:
    return Problem(
        name,
        None,
        None,
        "",
        f"file is {size:,} bytes; routine files are limited to {MAX_FILE_BYTES:,} bytes (1 MB)"
        " and this one was not parsed",
    )


def parse_routine(data: bytes | str, filename: str = "<routine>") -> Routine:
    """Parse and validate routine YAML; ``filename`` is only used in problem reports."""
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise RoutineError([_too_big(filename, len(data))])
        text = _decode(data, filename)
    else:
        text = data
    text = text.removeprefix("\ufeff")
    document = _Document(filename, text)
    value = document.parse()
    problems = list(document.problems)
    if value is not None:
        try:
            routine = Routine.model_validate(value)
        except ValidationError as err:
            problems.extend(
                document.problem_for(error)
                for error in err.errors()
                if tuple(error["loc"]) not in document.unreadable
            )
        else:
            if not problems:
                return routine
    problems.sort(key=lambda p: (p.line or 0, p.col or 0))
    raise RoutineError(problems)


def _decode(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        col = len(data[line_start : err.start].decode("utf-8")) + 1
        bad = data[err.start]
        raise RoutineError(
            [
                Problem(
                    filename,
                    line,
                    col,
                    "",
                    f"not valid UTF-8 (byte 0x{bad:02x} at offset {err.start}); "
                    "save the file as UTF-8",
                )
            ]
        ) from None


# -- YAML ----------------------------------------------------------------------------------


class _Refused(Exception):
    """YAML the routine loader will not compose, at ``mark``."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _RoutineYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and deep nesting while composing nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            # Refused outright, before any expansion: this is what stops alias bombs.
            raise _Refused(
                event.start_mark,
                f"YAML aliases (*{event.anchor}) are not allowed in routine files; "
                "write the value out in full",
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    event.start_mark, f"nested more than {MAX_DEPTH} levels deep; routines need 5"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class _Document:
    """One routine file: its YAML node tree, the values built from it, and where each sits."""

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        self.text = text
        self.problems: list[Problem] = []
        self.values: dict[Loc, yaml.Node] = {}
        """Value node of every location in the document."""
        self.keys: dict[Loc, yaml.Node] = {}
        """Key node of every mapping entry."""
        self._loader: _RoutineYamlLoader | None = None
        self.unreadable: set[Loc] = set()
        """Locations already reported as unreadable YAML: validation errors there add nothing."""

    def _add(self, mark: yaml.Mark | None, loc: Loc, message: str) -> None:
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        self.problems.append(Problem(self.filename, line, col, format_loc(loc), message))

    def parse(self) -> object | None:
        """The document as plain Python values, or None if it is not a usable mapping."""
        try:
            loader = _RoutineYamlLoader(self.text)
        except yaml.reader.ReaderError as err:
            # The reader checks every character up front, before any parsing.
            self._add(self._mark_at(err.position), (), _reader_message(err))
            return None
        self._loader = loader
        try:
            return self._parse_with(loader)
        finally:
            loader.dispose()

    def _parse_with(self, loader: _RoutineYamlLoader) -> object | None:
        try:
            root = loader.get_single_node()
        except _Refused as err:
            self._add(err.mark, (), err.message)
            return None
        except yaml.MarkedYAMLError as err:
            self._add(err.problem_mark, (), _yaml_message(err))
            return None
        except yaml.reader.ReaderError as err:
            self._add(self._mark_at(err.position), (), _reader_message(err))
            return None
        except yaml.YAMLError as err:
            self._add(None, (), f"invalid YAML: {err}")
            return None
        blank = isinstance(root, yaml.ScalarNode) and root.value == "" and not root.style
        if root is None or blank:
            self._add(
                yaml.Mark("", 0, 0, 0, "", 0),
                (),
                "the file is empty; a routine is a mapping that starts like 'id: my-routine'",
            )
            return None
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            self._add(
                root.start_mark,
                (),
                f"the top level must be a mapping of fields (id:, title:, exercises: ...), "
                f"not {kind}",
            )
            return None
        return self._build(root, ())

    def _mark_at(self, position: int) -> yaml.Mark:
        line = self.text.count("\n", 0, position)
        col = position - (self.text.rfind("\n", 0, position) + 1)
        return yaml.Mark("", position, line, col, "", 0)

    def _build(self, node: yaml.Node, loc: Loc) -> object:
        self.values[loc] = node
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._add(node.start_mark, loc, f"YAML tags ({node.tag}) are not allowed here")
                self.unreadable.add(loc)
            mapping: dict[str, object] = {}
            first: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._add(key_node.start_mark, loc, "a key must be a plain name")
                    continue
                # The key as written: 'yes:' is the field 'yes', not True.
                key = str(key_node.value)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._add(key_node.start_mark, loc, "YAML merge keys (<<) are not allowed")
                    continue
                if key in first:
                    self._add(
                        key_node.start_mark,
                        (*loc, key),
                        f"duplicate key '{key}' (first given on line "
                        f"{first[key].start_mark.line + 1}); give each field once",
                    )
                first.setdefault(key, key_node)
                self.keys[(*loc, key)] = key_node
                mapping[key] = self._build(value_node, (*loc, key))
            return mapping
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._add(node.start_mark, loc, f"YAML tags ({node.tag}) are not allowed here")
                self.unreadable.add(loc)
            return [self._build(item, (*loc, index)) for index, item in enumerate(node.value)]
        assert self._loader is not None
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as err:
            self._add(node.start_mark, loc, f"cannot read this value: {err.problem}")
            self.unreadable.add(loc)
            return None

    def problem_for(self, error: ErrorDetails) -> Problem:
        """A pydantic error as a Problem at the position of the node it concerns."""
        loc: Loc = tuple(error["loc"])
        node = self.keys.get(loc) if error["type"] == "extra_forbidden" else None
        if node is None:
            # The deepest location that exists: for a missing field, its parent mapping.
            for depth in range(len(loc), -1, -1):
                node = self.values.get(loc[:depth])
                if node is not None:
                    break
        mark = node.start_mark if node is not None else None
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return Problem(self.filename, line, col, format_loc(loc), describe(error))


def _yaml_message(err: yaml.MarkedYAMLError) -> str:
    message = f"invalid YAML: {err.problem or err}"
    if err.problem and "another document" in err.problem:
        return "invalid YAML: a routine file holds one document; remove the second '---'"
    if err.problem and "'\\t'" in err.problem:
        message += "; indent with spaces, not tabs"
    if err.context and err.context_mark is not None:
        message += f" ({err.context} at line {err.context_mark.line + 1})"
    return message


def _reader_message(err: yaml.reader.ReaderError) -> str:
    char = err.character
    code = ord(char) if isinstance(char, str) else char
    return f"invalid YAML: character U+{code:04X} is not allowed in YAML text"


# -- messages ------------------------------------------------------------------------------


def format_loc(loc: Loc) -> str:
    """A pydantic location as a field path: ``exercises[0].rep[1].say``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unwrap(annotation: Any) -> Any:
    """The model or list type inside Optional[...] / Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = options[0]
        else:
            return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The routine model class found at ``loc`` (None if it is not a model)."""
    current: Any = Routine
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            if typing.get_origin(current) is not list:
                return None
            current = typing.get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    # 'lying' for 'lying_on_back': a prefix is a better hint than edit distance.
    close = close or [choice for choice in choices if word and choice.startswith(word)][:1]
    return f"; did you mean '{close[0]}'?" if close else ""


def describe(error: ErrorDetails) -> str:
    """A short, plain message for one pydantic error."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error["input"]
    loc = tuple(error["loc"])
    got = f" (got {_show(value)})"
    if kind == "missing":
        return f"missing required field '{loc[-1]}'"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = list(model.model_fields) if model is not None else []
        hint = _suggest(str(loc[-1]), known)
        if not hint and known:
            hint = f" (known fields: {', '.join(known)})"
        return f"unknown field '{loc[-1]}'{hint}"
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']:g}{got}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']:g}{got}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']:g}{got}"
    if kind == "less_than":
        return f"must be less than {ctx['lt']:g}{got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is too long (at most {ctx['max_length']} characters)"
    if kind == "too_short":
        return "must not be empty" if not value else f"needs at least {ctx['min_length']} items"
    if kind == "too_long":
        return f"has too many items (at most {ctx['max_length']})"
    if kind == "string_pattern_mismatch":
        if loc and loc[-1] == "language":
            return f"must be a language tag like 'en' or 'en-GB'{got}"
        return f"must be an id of lower-case letters, digits, '-' and '_'{got}"
    if kind == "enum":
        choices = [choice.strip("'") for choice in str(ctx.get("expected", "")).split("'")]
        choices = [c for c in choices if c and c not in (", ", " or ")]
        hint = _suggest(str(value), choices) if isinstance(value, str) else ""
        return f"must be one of {', '.join(choices)}{got}{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number{got}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number{got}"
    if kind in ("string_type",):
        return f"must be text{got}; put it in quotes if it is meant as text"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{got}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping of fields (name: value){got}"
    if kind == "list_type":
        return f"must be a list (lines starting with '- '){got}"
    return str(error["msg"]).removeprefix("Value error, ")
