"""Fuzz the scenario loader with mutated scenario documents.

Whatever the text, ``load_text`` returns documents, each either a scenario or a ScenarioError whose
problems are located (file, line, ``$.path``) and worded. It never raises anything else.
"""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_distproc.errors import ScenarioError
from pytest_distproc.scenario.loader import LoadedDocument, load_file, load_text

FOLDER = Path(tempfile.mkdtemp(prefix="distproc-fuzz-"))
atexit.register(shutil.rmtree, FOLDER, ignore_errors=True)
(FOLDER / "data").mkdir()
(FOLDER / "data" / "b.jsonl").write_text('{"value": 1.0}\n{"value": 2.5}\n')
SCENARIO = FOLDER / "fuzz.yaml"

CONTRACT: dict[str, Any] = {
    "name": "seed-three-regions",
    "description": "Three regions, B fails once and is retried.",
    "seed": 42,
    "regions": {
        "A": {"records": 1000},
        "B": {"file": "data/b.jsonl"},
        "C": {"inline": [{"value": 1.5}, {"value": 2}]},
    },
    "skill": "region-stats",
    "context": "fork",
    "backend": "fork",
    "policy": {"timeout": "5s", "retries": 1, "backoff": "0s", "on_region_failure": "fail"},
    "faults": [
        {"region": "B", "kind": "raise", "attempts": [1]},
        {"region": "A", "kind": "signal", "signal": "SIGKILL", "attempts": "all"},
        {"region": "C", "kind": "delay", "seconds": "250ms"},
    ],
    "expect": {
        "outcome": "COMPLETE",
        "status": {"process-region-b": "COMPLETE", "aggregate-results": "COMPLETE"},
        "transitions": {
            "process-region-b": ["PENDING", "IN_PROGRESS", "FAILED", "IN_PROGRESS", "COMPLETE"],
            "aggregate-results": ["BLOCKED", "IN_PROGRESS", "COMPLETE"],
        },
        "order": ["process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"],
        "concurrent": ["process-region-*"],
        "attempts": {"process-region-b": 2},
        "aggregate": {"total": {"records": 1002, "sum": 3.5}, "regions": {"A": {"records": 1000}}},
    },
}
MINIMAL: dict[str, Any] = {"regions": {"A": {"records": 3}}}
PARTIAL: dict[str, Any] = {
    "regions": {"x": {"records": 10}, "y": {"inline": []}},
    "policy": {"timeout": 2, "on_region_failure": "partial", "memory_limit_mb": 64},
    "faults": [
        {"region": "y", "kind": "drop", "fraction": 0.5},
        {"region": "x", "kind": "crash", "exit_code": 9},
    ],
    "expect": {"outcome": "COMPLETE", "aggregate": {"missing": ["y"]}},
}
VALID = [CONTRACT, MINIMAL, PARTIAL]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["5s", "all", "KILL", "COMPLETE", "A", "process-region-a", "../x.jsonl", "*", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        [
            "name",
            "regions",
            "policy",
            "faults",
            "expect",
            "records",
            "file",
            "inline",
            "kind",
            "region",
            "status",
            "order",
            "timeout",
            "retries",
            "<<",
            "value",
        ]
    ),
)
# Characters that tend to break things: tabs, YAML indicators, control characters, a NUL, non-ASCII.
nasty = st.one_of(
    st.sampled_from(
        [
            "\t",
            "\n",
            ":",
            "- ",
            "{",
            "}",
            "[",
            "]",
            "&a ",
            "*a",
            "!!python/object:os.system ",
            "'",
            '"',
            "#",
            "\x00",
            "\x07",
            "\ufeff",
            "é",
            "---\n",
            "? ",
            "%YAML 1.1\n",
            "<<: ",
        ]
    ),
    st.characters(),
)


def _containers(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, (dict, list)):
        out.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            _containers(child, out)
    return out


@st.composite
def mutated_data(draw: st.DrawFn) -> Any:
    """A valid document with a few structural mutations: delete keys, swap types, insert keys."""
    doc = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        containers = _containers(doc, [])
        target = draw(st.sampled_from(containers))
        action = draw(st.sampled_from(["delete", "swap", "insert"]))
        if isinstance(target, dict):
            if action == "insert" or not target:
                target[draw(keys)] = draw(values)
            else:
                key = draw(st.sampled_from(sorted(target)))
                if action == "delete":
                    del target[key]
                else:
                    target[key] = draw(values)
        elif action == "insert" or not target:
            target.insert(draw(st.integers(0, len(target))), draw(values))
        else:
            index = draw(st.integers(0, len(target) - 1))
            if action == "delete":
                del target[index]
            else:
                target[index] = draw(values)
    if draw(st.integers(0, 9)) == 0:  # now and then the whole document is something else
        doc = draw(values)
    return doc


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """YAML text of a mutated document, then text mutations: truncate, insert characters or tabs."""
    parts = [
        yaml.safe_dump(draw(mutated_data()), sort_keys=False, allow_unicode=True)
        for _ in range(draw(st.integers(1, 2)))
    ]
    text = "---\n".join(parts)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["truncate", "insert", "tab-indent", "duplicate-line"]))
        at = draw(st.integers(0, len(text)))
        if action == "truncate":
            text = text[:at]
        elif action == "insert":
            text = text[:at] + "".join(draw(st.lists(nasty, min_size=1, max_size=4))) + text[at:]
        else:
            lines = text.split("\n")
            index = draw(st.integers(0, max(0, len(lines) - 1)))
            if action == "tab-indent":
                lines[index] = "\t" + lines[index].lstrip(" ")
            else:
                lines.insert(index, lines[index])
            text = "\n".join(lines)
    return text


def assert_well_formed(docs: list[LoadedDocument], filename: str) -> None:
    assert isinstance(docs, list) and docs, "a file always yields at least one document (or one error)"
    names = [d.name for d in docs]
    assert len(set(names)) == len(names), f"item names must be unique: {names}"
    for doc in docs:
        assert isinstance(doc, LoadedDocument)
        assert (doc.scenario is None) != (doc.error is None), doc
        if doc.error is not None:
            assert isinstance(doc.error, ScenarioError)
            assert doc.error.problems
            for problem in doc.error.problems:
                assert problem.file == filename
                assert problem.line is None or problem.line >= 1
                assert problem.path.startswith("$"), problem
                assert problem.message.strip(), problem
            str(doc.error)  # renders
        else:
            assert doc.scenario is not None and doc.scenario.regions


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated_text())
def test_mutated_text_never_crashes_the_loader(text: str) -> None:
    assert_well_formed(load_text(text, SCENARIO), str(SCENARIO))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 400))
def test_random_bytes_in_a_file_never_crash_the_loader(noise: bytes, at: int) -> None:
    base = yaml.safe_dump(CONTRACT, sort_keys=False).encode()
    at = min(at, len(base))
    SCENARIO.write_bytes(base[:at] + noise + base[at:])
    assert_well_formed(load_file(SCENARIO), str(SCENARIO))


def test_unmutated_documents_load() -> None:
    for data in VALID:
        docs = load_text(yaml.safe_dump(data, sort_keys=False), SCENARIO)
        assert docs[0].error is None, str(docs[0].error)
