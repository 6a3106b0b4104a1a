"""YAML text -> plain Python data plus a map of ``$.path`` -> line, refusing anything but plain data.

Uses the C-accelerated safe composer when PyYAML has it; we build values from the node graph
ourselves so that duplicate keys, object-constructing tags and alias bombs are errors with a line.

Plain scalars are read as YAML 1.2's core schema reads them (what editors and the JSON Schema see),
not as PyYAML's YAML 1.1 rules do: ``010`` is 10, ``0o10`` is 8, ``1e3`` is 1000.0, only
true/false (any of three casings) are booleans, and ``1:30``, ``1_0``, ``yes`` or ``2001-12-14`` are
strings. :func:`yaml11_hint` tells a user who wrote one of those where a number or boolean belongs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from pytest_distproc.errors import Problem
from pytest_distproc.scenario.model import nearest_line

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

STR_TAG = "tag:yaml.org,2002:str"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
MERGE_TAG = "tag:yaml.org,2002:merge"
FLOAT_TAG = "tag:yaml.org,2002:float"
INT_TAG = "tag:yaml.org,2002:int"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"

# YAML 1.2.2, 10.3.2 "Tag Resolution" (the core schema), one alternative per tag.
_CORE = re.compile(
    r"(?P<null>~|null|Null|NULL|)"
    r"|(?P<bool>true|True|TRUE|false|False|FALSE)"
    r"|(?P<int>[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)"
    r"|(?P<float>[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))"
)
_CORE_TAGS = {"null": NULL_TAG, "bool": BOOL_TAG, "int": INT_TAG, "float": FLOAT_TAG}
_CORE_FIRST = frozenset("~nNtTfF-+.0123456789")  # a plain scalar starting otherwise is a string


def core_tag(text: str) -> str:
    """The tag YAML 1.2's core schema gives a plain scalar (``<<`` stays a merge key, refused later)."""
    if text and text[0] not in _CORE_FIRST:
        return MERGE_TAG if text == "<<" else STR_TAG
    match = _CORE.fullmatch(text)
    return _CORE_TAGS[match.lastgroup] if match and match.lastgroup else STR_TAG


def _core_match(text: str, group: str) -> bool:
    match = _CORE.fullmatch(text)
    return match is not None and match.lastgroup == group


def _construct_int(_loader: Any, node: yaml.ScalarNode) -> int:
    text = node.value
    if not _core_match(text, "int"):  # "!!int 1_0", "!!int 0b1", "!!int 1:30": YAML 1.1 forms
        raise ValueError("not a YAML 1.2 integer: digits, 0o octal or 0x hex")
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


def _construct_float(_loader: Any, node: yaml.ScalarNode) -> float:
    text = node.value
    match = _CORE.fullmatch(text)
    if match is None or match.lastgroup not in ("int", "float") or text.startswith(("0o", "0x")):
        raise ValueError("not a YAML 1.2 number: like 1.5, 1e3, .inf or .nan")
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if text[0] == "-" else math.inf
    if lowered == ".nan":
        return float("nan")  # a new object each time, as float() gives
    return float(text)


def _construct_bool(_loader: Any, node: yaml.ScalarNode) -> bool:
    if not _core_match(node.value, "bool"):
        raise ValueError("YAML 1.2 booleans are true and false")
    return node.value[0] in "tT"


def _construct_null(_loader: Any, node: yaml.ScalarNode) -> None:
    if not _core_match(node.value, "null"):
        raise ValueError("YAML 1.2 nulls are null, ~ or nothing")
    return None


_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_BINARY = re.compile(r"[-+]?0b[01_]+")
_YAML11_BOOLS = {word: word.lower() in ("yes", "on", "y") for word in (
    "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N")}


def yaml11_hint(value: object, want: str) -> str:
    """``"; <why it is a string> : write <this>"`` for a string YAML 1.1 read as a ``want`` value, else ``""``.

    ``want`` is ``"number"``, ``"duration"`` (a number of seconds or ``5s``) or ``"boolean"``. YAML 1.2
    (and so the editor and the JSON Schema) reads ``1:30``, ``1_0``, ``0b11`` and ``yes`` as strings.
    """
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if want == "boolean":
        if text not in _YAML11_BOOLS:
            return ""
        return (f"; {text!r} is a string in YAML 1.2 (yes/no/on/off were booleans in YAML 1.1 only): "
                f"write {str(_YAML11_BOOLS[text]).lower()}")
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    written: str | None = None
    if _SEXAGESIMAL.fullmatch(text):
        number = 0.0
        for part in digits.lstrip("+-").split(":"):
            number = number * 60 + float(part)
        written, why = f"{sign * number:g}", "base-60 numbers like 1:30 were YAML 1.1 only"
    elif _BINARY.fullmatch(text):
        written, why = str(sign * int(digits.lstrip("+-")[2:], 2)), "0b binary numbers were YAML 1.1 only"
    elif "_" in text and core_tag(digits) in (INT_TAG, FLOAT_TAG):
        written, why = digits, "numbers have no '_' separators"
    if written is None:
        return ""
    if want == "duration" and core_tag(written) in (INT_TAG, FLOAT_TAG) and not written.startswith("0"):
        seconds = float(written)
        minutes = f" or {seconds / 60:g}m" if seconds >= 60 and (seconds * 10) % 60 == 0 else ""
        written = f"{written}s{minutes}"
    return f"; {text!r} is a string in YAML 1.2 ({why}): write {written}"


# Scalar tag -> how its text becomes a value (str is the text itself).
_SCALARS: dict[str, Any] = {
    INT_TAG: _construct_int,
    FLOAT_TAG: _construct_float,
    BOOL_TAG: _construct_bool,
    NULL_TAG: _construct_null,
}
PLAIN_TAGS = {STR_TAG, *_SCALARS}
_KINDS = {INT_TAG: "an integer", FLOAT_TAG: "a number", BOOL_TAG: "a boolean", NULL_TAG: "null"}
_MAX_INT_BITS = 14_000  # ~4200 decimal digits: Python will not print more, and 0x... has no digit limit
_CACHE_LIMIT = 50_000
_CACHED_TEXT = 64  # longer scalars (descriptions, block text) are rare and would only hold memory
_RESOLVED: dict[str, str] = {}  # plain scalar text -> tag, shared by every Loader
_VALUES: dict[tuple[str, str], Any] = {}  # (tag, text) -> int, bool or None, shared by every document
_ScalarNode = yaml.ScalarNode


MAX_DEPTH = 64
MAX_NODES = 200_000
_TOP_PATH = re.compile(r"^\$(\.[^.\[]+|\[\d+\])?")


class Loader(_BaseLoader):
    """The safe composer with YAML 1.2 core-schema tag resolution, memoised.

    Scenario files repeat the same few scalars (state names, keys, small numbers): resolving each
    one through regular expressions was a sixth of the time to collect 1,000 files.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is _ScalarNode:
            if not implicit[0]:  # quoted, block or "!"-tagged: a string
                return STR_TAG
            tag = _RESOLVED.get(value)  # only short texts are ever stored
            if tag is None:
                if len(value) > _CACHED_TEXT:
                    return core_tag(value)
                if len(_RESOLVED) > _CACHE_LIMIT:
                    _RESOLVED.clear()
                tag = _RESOLVED[value] = core_tag(value)
            return tag
        return SEQ_TAG if kind is yaml.SequenceNode else MAP_TAG

    # PyYAML calls these around every node for path-based resolvers, which this Loader never has.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


class Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting what YAML 1.2 would not read back as the same value.

    Its YAML 1.1 rules write the string ``"1e3"`` plain, which :class:`Loader` reads as 1000.0. Here a
    string is written plain only when YAML 1.2 reads it back as a string and YAML 1.1 tools do too
    (``'yes'`` and ``'1:30'`` stay quoted for them).
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            tag = core_tag(value)
            return tag if tag != STR_TAG else super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


def dump(data: Any) -> str:
    """``data`` as YAML that :func:`parse_documents` reads back to the same values (keys keep their order)."""
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True)


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
        found = nearest_line(self.lines, path)
        return self.line if found is None else found


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
        items: list[Any] = []
        lines = self.lines
        for index, item in enumerate(node.value):
            sub = f"{path}[{index}]"
            # Scalars are most of a scenario's nodes: what build() gives for one, inline, when its limits
            # hold (over them, build() raises with the blame); the same in _mapping.
            if isinstance(item, _ScalarNode) and depth < MAX_DEPTH and self.count < MAX_NODES:
                if sub not in lines:
                    lines[sub] = item.start_mark.line + 1
                self.count += 1
                items.append(item.value if item.tag == STR_TAG else self._scalar(item, sub))
            else:
                items.append(self.build(item, sub, depth + 1))
        return items

    def _scalar(self, node: yaml.Node, path: str) -> Any:
        tag, text = node.tag, node.value
        if tag == TIMESTAMP_TAG or tag == MERGE_TAG:  # "!!timestamp 2001-12-14"; "<<" as a value
            return str(text)
        construct = _SCALARS.get(tag)
        if construct is None:
            return self._bad_tag(node, path)
        key = (tag, text)
        if key in _VALUES:
            return _VALUES[key]
        try:
            value = construct(self.loader, node)
            if tag == INT_TAG and abs(value).bit_length() > _MAX_INT_BITS:
                raise ValueError(f"too large: more than {_MAX_INT_BITS} bits")
        except (ValueError, KeyError, IndexError, OverflowError) as exc:  # e.g. "!!int abc", 5000 digits
            return self._unreadable_scalar(node, path, exc)
        # Floats are not shared (two NaNs written twice stay two objects), nor long texts (a 4000-digit
        # integer would stay in memory for the session).
        if tag != FLOAT_TAG and len(text) <= _CACHED_TEXT:
            if len(_VALUES) > _CACHE_LIMIT:
                _VALUES.clear()
            _VALUES[key] = value  # an int, bool or None: immutable, so every document may share it
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
            if key_tag == MERGE_TAG:
                self.doc.dropped.add(path)
                self.problem(key_line, path, "merge keys (<<) are not supported; write the keys out")
                continue
            if key_tag not in PLAIN_TAGS or not isinstance(key_node, yaml.ScalarNode):
                self.doc.dropped.add(path)
                shape = type(key_node).__name__.removesuffix("Node").lower()
                self.problem(key_line, path, "mapping keys must be plain scalars (strings or numbers), "
                             f"not a {shape} or a tagged value; write the key as plain text")
                continue
            # The key as written: region ids like true, 01 or 1.0 stay themselves, not True/1/1.0.
            key = str(key_node.value)
            sub = f"{path}.{key}"
            if key in seen:
                self.problem(key_line, sub, f"duplicate key {key!r} (first written on line {seen[key]}); "
                             "keep one")
                continue
            seen[key] = key_line
            self.lines[sub] = key_line
            if isinstance(value_node, _ScalarNode) and depth < MAX_DEPTH and self.count < MAX_NODES:
                self.count += 1  # build() inline for a scalar, as in a sequence
                result[key] = value_node.value if value_node.tag == STR_TAG else self._scalar(value_node, sub)
            else:
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
