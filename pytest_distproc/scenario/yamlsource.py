"""YAML text -> plain Python data plus a map of ``$.path`` -> line, refusing anything but plain data.

Uses the C-accelerated safe composer when PyYAML has it; we build values from the node graph
ourselves so that duplicate keys, object-constructing tags and alias bombs are errors with a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from pytest_distproc.errors import Problem

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]

PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MAX_DEPTH = 64
MAX_NODES = 200_000


@dataclass
class Document:
    """One YAML document: its value, the line it starts on, and where each ``$.path`` was written."""

    value: Any
    line: int
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

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


def parse_documents(text: str, filename: str) -> list[Document]:
    """Every document of ``text``; raises nothing but returns problems on a document or one syntax problem."""
    loader = Loader(text)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            doc = Document(None, node.start_mark.line + 1)
            builder = _Builder(loader, doc, filename)
            doc.value = builder.build(node, "$", 0)
            documents.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or "invalid YAML"
        if "\t" in text and "tab" in str(exc).lower() or (mark is not None and _tab_near(text, mark.line)):
            what += " (tabs cannot indent YAML: use spaces)"
        ctx = f" {exc.context}" if exc.context else ""
        bad = Document(None, line or 1)
        bad.problems.append(Problem(filename, line, "$", f"YAML syntax error: {what}{ctx}; fix the YAML"))
        return [*documents, bad]
    except yaml.YAMLError as exc:
        bad = Document(None, 1)
        bad.problems.append(Problem(filename, None, "$", f"YAML error: {exc}"))
        return [*documents, bad]
    finally:
        loader.dispose()
    return documents


def _tab_near(text: str, line_index: int) -> bool:
    lines = text.splitlines()
    return any("\t" in lines[i] for i in range(max(0, line_index - 1), min(len(lines), line_index + 1)))


class _Builder:
    def __init__(self, loader: Any, doc: Document, filename: str) -> None:
        self.loader, self.doc, self.filename = loader, doc, filename
        self.count = 0

    def problem(self, line: int, path: str, message: str) -> None:
        self.doc.problems.append(Problem(self.filename, line, path, message))

    def build(self, node: yaml.Node, path: str, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.doc.lines.setdefault(path, line)
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig(line, path)
        if depth > MAX_DEPTH:
            self.problem(line, path, f"nested deeper than {MAX_DEPTH} levels; scenarios are shallow documents")
            return None
        if isinstance(node, yaml.MappingNode):
            if node.tag != MAP_TAG:
                return self._bad_tag(node, path)
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != SEQ_TAG:
                return self._bad_tag(node, path)
            return [self.build(item, child_path(path, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag not in PLAIN_TAGS:
            if node.tag == "tag:yaml.org,2002:timestamp":
                return str(node.value)
            return self._bad_tag(node, path)
        return self.loader.construct_object(node, deep=True)

    def _bad_tag(self, node: yaml.Node, path: str) -> None:
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
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(key_line, path, "merge keys (<<) are not supported; write the keys out")
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in PLAIN_TAGS:
                self.problem(key_line, path, "mapping keys must be plain scalars (strings or numbers)")
                continue
            key = self.loader.construct_object(key_node, deep=True)
            key = str(key) if not isinstance(key, str) else key
            sub = child_path(path, key)
            if key in seen:
                self.problem(key_line, sub, f"duplicate key {key!r} (first written on line {seen[key]}); keep one")
                continue
            seen[key] = key_line
            self.doc.lines[sub] = key_line
            result[key] = self.build(value_node, sub, depth + 1)
        return result


class _TooBig(Exception):
    def __init__(self, line: int, path: str) -> None:
        self.line, self.path = line, path


def parse_documents_safely(text: str, filename: str) -> list[Document]:
    """Like :func:`parse_documents` but turns an oversized document (an alias bomb) into a problem."""
    try:
        return parse_documents(text, filename)
    except _TooBig as big:
        bad = Document(None, big.line)
        bad.problems.append(
            Problem(filename, big.line, big.path, f"document expands to more than {MAX_NODES} YAML nodes; "
                    "is an alias (*name) repeated many times? scenarios are small documents")
        )
        return [bad]
