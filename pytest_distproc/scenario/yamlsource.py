"""YAML text -> plain Python data plus a map of ``$.path`` -> line, refusing anything but plain data.

Uses the C-accelerated safe composer when PyYAML has it; we build values from the node graph
ourselves so that duplicate keys, object-constructing tags and alias bombs are errors with a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from pytest_distproc.errors import Problem

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

STR_TAG = "tag:yaml.org,2002:str"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SafeConstructor = yaml.constructor.SafeConstructor
# Plain scalar tag -> how PyYAML's safe constructor turns the text into a value (str is the text itself).
_SCALARS: dict[str, Any] = {
    "tag:yaml.org,2002:int": _SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": _SafeConstructor.construct_yaml_float,
    "tag:yaml.org,2002:bool": _SafeConstructor.construct_yaml_bool,
    "tag:yaml.org,2002:null": _SafeConstructor.construct_yaml_null,
}
PLAIN_TAGS = {STR_TAG, *_SCALARS}
FLOAT_TAG = "tag:yaml.org,2002:float"
INT_TAG = "tag:yaml.org,2002:int"
_KINDS = {INT_TAG: "an integer", FLOAT_TAG: "a number", "tag:yaml.org,2002:bool": "a boolean"}
_MAX_INT_BITS = 14_000  # ~4200 decimal digits: Python will not print more, and 0x... has no digit limit
_CACHE_LIMIT = 50_000
_CACHED_TEXT = 64  # longer scalars (descriptions, block text) are rare and would only hold memory
_RESOLVED: dict[tuple[str, Any], str] = {}  # (text, implicit flags) -> tag, shared by every Loader


MAX_DEPTH = 64
MAX_NODES = 200_000
_TOP_PATH = re.compile(r"^\$(\.[^.\[]+|\[\d+\])?")


class Loader(_BaseLoader):
    """The safe loader with its implicit-tag lookup memoised.

    Scenario files repeat the same few scalars (state names, keys, small numbers): resolving each
    one through PyYAML's regular expressions was a sixth of the time to collect 1,000 files.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and len(value) <= _CACHED_TEXT:
            key = (value, implicit)
            tag = _RESOLVED.get(key)
            if tag is None:
                if len(_RESOLVED) > _CACHE_LIMIT:
                    _RESOLVED.clear()
                tag = _RESOLVED[key] = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            return tag
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


@dataclass
class Document:
    """One YAML document: its value, the line it starts on, and where each ``$.path`` was written.

    ``dropped`` holds the paths whose value the builder refused (a tag, a merge key, too deep): it
    already reported them, so the checker stays quiet about them instead of piling on.
    """

    value: Any
    line: int
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)

    def line_of(self, path: str) -> int:
        """Line of ``path`` or of its nearest written ancestor."""
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return self.line


def child_path(parent: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{parent}[{key}]"
    return f"{parent}.{key}"


def _line_at(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _failed_document(filename: str, line: int | None, path: str, message: str) -> Document:
    bad = Document(None, line or 1)
    bad.problems.append(Problem(filename, line, path, message))
    return bad


def parse_documents(text: str, filename: str) -> list[Document]:
    """Every document of ``text``; raises nothing but returns problems on a document or one syntax problem.

    A syntax error ends the stream (the parser cannot resynchronise), so documents before it are
    kept and everything after it is reported as that one problem.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        message = (f"character {text[exc.start]!r} cannot be stored as UTF-8 (a lone surrogate); "
                   "remove it and save the file as UTF-8")
        return [_failed_document(filename, _line_at(text, exc.start), "$", message)]
    loader = Loader(text)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node() said there is one
                break
            doc = Document(None, node.start_mark.line + 1)
            builder = _Builder(loader, doc, filename)
            try:
                doc.value = builder.build(node, "$", 0)
            except _Unreadable as bad:  # this document only: the stream itself is fine
                doc = _failed_document(filename, bad.line, bad.path, bad.message)
                doc.line = node.start_mark.line + 1
            documents.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        where = f" (column {mark.column + 1})" if mark is not None else ""
        if mark is not None and mark.index >= len(text.rstrip()):
            where = " (at the end of the file: is a bracket or quote left open?)"
        what = exc.problem or "invalid YAML"
        ctx = f" {exc.context}" if exc.context else ""
        hint = "fix the YAML (check indentation, quotes and brackets around this line)"
        if mark is not None and _tab_at(text, mark.line, mark.column):
            hint = "YAML indents with spaces only: replace the tab with spaces"
        message = f"YAML syntax error: {what}{ctx}{where}; {hint}"
        documents.append(_failed_document(filename, line, "$", message))
    except yaml.reader.ReaderError as exc:
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        message = f"character {char!r} is not allowed in YAML ({exc.reason}); remove it"
        documents.append(_failed_document(filename, _line_at(text, exc.position), "$", message))
    except yaml.YAMLError as exc:
        documents.append(_failed_document(filename, None, "$", f"YAML error: {exc}; fix the YAML"))
    except RecursionError:
        documents.append(_failed_document(
            filename, None, "$", f"document is nested too deeply to read; scenarios are shallow (at most "
            f"{MAX_DEPTH} levels)",
        ))
    finally:
        loader.dispose()
    return documents


def _tab_at(text: str, line_index: int, column: int) -> bool:
    """Whether the error position is a tab, or the line is indented with one."""
    lines = text.split("\n")
    if not 0 <= line_index < len(lines):
        return False
    line = lines[line_index]
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    return "\t" in indent or line[column : column + 1] == "\t"


class _Builder:
    """Node graph -> plain values, writing down the line of every ``$.path`` on the way."""

    def __init__(self, loader: Any, doc: Document, filename: str) -> None:
        self.loader, self.doc, self.filename = loader, doc, filename
        self.lines = doc.lines
        self.count = 0
        # (tag, text) -> value: scalars are immutable and scenario files repeat them a lot.
        self.scalars: dict[tuple[str, str], Any] = {}
        self.reported: set[int] = set()  # ids of refused nodes: an alias used 1000 times is one problem

    def problem(self, line: int, path: str, message: str) -> None:
        self.doc.problems.append(Problem(self.filename, line, path, message))

    def build(self, node: yaml.Node, path: str, depth: int) -> Any:
        line = node.start_mark.line + 1
        if path not in self.lines:
            self.lines[path] = line
        self.count += 1
        if self.count > MAX_NODES:
            # Blame the top-level entry that explodes: the exact node inside it is an accident of order.
            top = _TOP_PATH.match(path)
            blamed = top.group(0) if top else path
            raise _Unreadable(
                self.lines.get(blamed, line), blamed,
                f"document expands to more than {MAX_NODES} YAML nodes; is an alias (*name) "
                "repeated many times (a 'billion laughs' document)? scenarios are small: write the data out "
                "or use a data file",
            )
        if depth > MAX_DEPTH:
            raise _Unreadable(
                line, path, f"nested deeper than {MAX_DEPTH} levels; scenarios are shallow documents, "
                "flatten this value",
            )
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            if tag == STR_TAG:
                return node.value
            return self._scalar(node, path)
        if isinstance(node, yaml.MappingNode):
            if tag != MAP_TAG:
                return self._bad_tag(node, path)
            return self._mapping(node, path, depth)
        if tag != SEQ_TAG:
            return self._bad_tag(node, path)
        return [self.build(item, f"{path}[{index}]", depth + 1) for index, item in enumerate(node.value)]

    def _scalar(self, node: yaml.Node, path: str) -> Any:
        tag, text = node.tag, node.value
        if tag == TIMESTAMP_TAG:
            return str(text)
        construct = _SCALARS.get(tag)
        if construct is None:
            return self._bad_tag(node, path)
        key = (tag, text)
        if key in self.scalars:
            return self.scalars[key]
        try:
            value = construct(self.loader, node)
            if tag == INT_TAG and abs(value).bit_length() > _MAX_INT_BITS:
                raise ValueError(f"too large: more than {_MAX_INT_BITS} bits")
        except (ValueError, KeyError, IndexError, OverflowError) as exc:  # e.g. "!!int abc", 5000 digits
            return self._unreadable_scalar(node, path, exc)
        if tag != FLOAT_TAG:  # floats are not shared: two NaNs written twice stay two objects
            self.scalars[key] = value
        return value

    def _unreadable_scalar(self, node: yaml.Node, path: str, exc: Exception) -> None:
        if self._reported(node, path):
            return None
        kind = _KINDS.get(node.tag, "value")
        shown = repr(node.value) if len(node.value) <= 40 else repr(node.value[:37]) + "..."
        detail = str(exc).split(";")[0][:90] if isinstance(exc, ValueError) else ""
        reason = f" ({detail})" if detail else ""
        self.problem(
            node.start_mark.line + 1, path,
            f"{shown} cannot be read as {kind}{reason}; write it as {kind}, or quote it without the tag to "
            "keep it a string",
        )
        return None

    def _reported(self, node: yaml.Node, path: str) -> bool:
        """Drop the value at ``path``; True when its node was reported already (an alias used again)."""
        self.doc.dropped.add(path)
        if id(node) in self.reported:
            return True
        self.reported.add(id(node))
        return False

    def _bad_tag(self, node: yaml.Node, path: str) -> None:
        if self._reported(node, path):
            return None
        self.problem(
            node.start_mark.line + 1,
            path,
            f"YAML tag {node.tag!r} is not allowed: scenarios hold plain data only "
            "(mappings, lists, strings, numbers, booleans, null); remove the tag",
        )
        return None

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key_tag = key_node.tag
            if key_tag == "tag:yaml.org,2002:merge":
                self.doc.dropped.add(path)
                self.problem(key_line, path, "merge keys (<<) are not supported; write the keys out")
                continue
            if key_tag not in PLAIN_TAGS or not isinstance(key_node, yaml.ScalarNode):
                self.doc.dropped.add(path)
                shape = type(key_node).__name__.removesuffix("Node").lower()
                self.problem(key_line, path, "mapping keys must be plain scalars (strings or numbers), "
                             f"not a {shape} or a tagged value; write the key as plain text")
                continue
            # The key as written: region ids like NO, on, 01 or 1.0 stay themselves, not False/True/1/1.0.
            key = str(key_node.value)
            sub = f"{path}.{key}"
            if key in seen:
                self.problem(key_line, sub, f"duplicate key {key!r} (first written on line {seen[key]}); "
                             "keep one")
                continue
            seen[key] = key_line
            self.lines[sub] = key_line
            result[key] = self.build(value_node, sub, depth + 1)
        return result


class _Unreadable(Exception):
    """A document too big or too deep to turn into a value; it fails with this one problem."""

    def __init__(self, line: int, path: str, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


def parse_documents_safely(text: str, filename: str) -> list[Document]:
    """Kept for callers of the old name: :func:`parse_documents` now never raises on bad input."""
    return parse_documents(text, filename)
