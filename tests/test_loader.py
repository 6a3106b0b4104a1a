"""The scenario loader's error messages: one table row per kind of mistake (ONE_MISTAKE), each pinning
file:line, $.path and the words that say what was wrong and what is accepted; mistakes that need more than
that have a test of their own. Plus the happy paths of the contract."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from pytest_distproc.attempt.faults import FaultKind
from pytest_distproc.errors import Problem, ScenarioError
from pytest_distproc.scenario.extensions import Extensions
from pytest_distproc.scenario.loader import LoadedDocument, load_file, load_one, load_text
from pytest_distproc.scenario.model import FAULT_COMMON_KEYS, FAULT_KIND_KEYS, Scenario

CORPUS = Path(__file__).parent / "corpus"
OK = "regions:\n  A: {records: 3}\n"


def load(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> list[LoadedDocument]:
    """Write ``text`` as a scenario file in ``tmp_path`` and load it the way collection does."""
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    else:
        path.write_bytes(text)
    return load_file(path)


def problems_of(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> list[Problem]:
    """Every problem of a one-document file (which must not load)."""
    docs = load(tmp_path, text, name)
    assert len(docs) == 1, docs
    assert docs[0].scenario is None
    assert docs[0].error is not None
    return docs[0].error.problems


def the_problem(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> Problem:
    """The single problem of a one-document file: one mistake must make exactly one problem."""
    problems = problems_of(tmp_path, text, name)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def scenario_of(tmp_path: Path, text: str, name: str = "s.yaml") -> Scenario:
    docs = load(tmp_path, text, name)
    assert len(docs) == 1
    assert docs[0].error is None, str(docs[0].error)
    assert docs[0].scenario is not None
    return docs[0].scenario


def check(
    problem: Problem, tmp_path: Path, line: int | None, path: str, *words: str, name: str = "s.yaml"
) -> None:
    """``problem`` sits at ``line`` and ``path`` of the file and its message holds every word."""
    assert problem.file == str(tmp_path / name)
    assert problem.line == line, str(problem)
    assert problem.path == path, str(problem)
    for word in words:
        assert word in problem.message, f"{word!r} not in {problem.message!r}"
    rendered = str(problem)
    where = f"{tmp_path / name}:{line}: {path}: " if line is not None else f"{tmp_path / name}: {path}: "
    assert rendered.startswith(where), rendered


# --- one mistake, one problem: file:line, $.path and the words of its message ---------------------

ONE_MISTAKE = [
    # --- YAML layer ---
    pytest.param(
        "regions:\n  A: {records: 3\nseed: 1\n",
        3,
        "$",
        ["YAML syntax error", "did not find expected ',' or '}'", "fix the YAML"],
        id="yaml_syntax_error",
    ),
    pytest.param(
        "seed: 1\nregions:\n\tA: {records: 3}\n",
        3,
        "$",
        ["YAML syntax error", "tab", "spaces"],
        id="tab_indentation",
    ),
    pytest.param(
        OK + "expect:\n  concurrent:\n    - process-region-a\n\t- aggregate-results\n",
        6,
        "$",
        ["tab", "spaces"],
        id="tab_inside_a_block_sequence",
    ),
    pytest.param(
        "seed: 1\n" + OK + "seed: 2\n",
        4,
        "$.seed",
        ["duplicate key 'seed'", "first written on line 1", "keep one"],
        id="duplicate_keys",
    ),
    pytest.param(
        "regions:\n  A: {records: 3}\n  A: {records: 4}\n",
        3,
        "$.regions.A",
        ["duplicate key 'A'", "line 2"],
        id="duplicate_nested_keys",
    ),
    # 1 and "1" are one key once read as text.
    pytest.param(
        "regions:\n  1: {records: 3}\n  '1': {records: 4}\n",
        3,
        "$.regions.1",
        ["duplicate key '1'"],
        id="duplicate_keys_written_differently",
    ),
    pytest.param(
        "regions: !!python/object:collections.OrderedDict {A: {records: 1}}\n",
        1,
        "$.regions",
        ["YAML tag", "not allowed"],
        id="tagged_mapping_is_refused",
    ),
    pytest.param(
        "regions:\n  A: &a {records: 3}\n  B: {<<: *a}\n",
        3,
        "$.regions.B",
        ["merge keys (<<) are not supported", "write the keys out"],
        id="merge_keys_are_refused",
    ),
    pytest.param(OK + "? [a, b]\n: 1\n", 3, "$", ["mapping keys must be plain scalars"], id="complex_keys_are_refused"),
    pytest.param(
        b"seed: 1\nregions:\n  A: {records: 3}\ndescription: caf\xe9\n",
        4,
        "$",
        ["not UTF-8", "0xe9", "save the file as UTF-8"],
        id="non_utf8_bytes",
    ),
    pytest.param(
        OK + "description: bell\x07\n",
        3,
        "$",
        ["'\\x07'", "not allowed in YAML", "remove it"],
        id="control_character",
    ),
    pytest.param("", 1, "$", ["no scenario in this file", "empty", "regions"], id="empty_file"),
    pytest.param(
        "# to do\n---\n# later\n",
        1,
        "$",
        ["no scenario in this file", "comments"],
        id="file_of_only_comments",
    ),
    pytest.param(
        "- A\n- B\n",
        1,
        "$",
        ["a scenario is a mapping", "regions", "got ['A', 'B'] (list)"],
        id="document_that_is_not_a_mapping",
    ),
    # --- types ---
    pytest.param(
        "regions:\n  A: {records: many}\n",
        2,
        "$.regions.A.records",
        ["expected a non-negative integer", "got 'many' (string)"],
        id="$.regions.A.records-expected a non-negative integer",
    ),
    pytest.param(
        "regions:\n  A: {records: -3}\n",
        2,
        "$.regions.A.records",
        ["non-negative integer", "got -3 (int)"],
        id="$.regions.A.records-non-negative integer",
    ),
    pytest.param(
        "regions:\n  A: {records: 2.5}\n",
        2,
        "$.regions.A.records",
        ["integer", "got 2.5 (float)"],
        id="$.regions.A.records-integer",
    ),
    pytest.param(
        OK + "policy:\n  retries: -1\n",
        4,
        "$.policy.retries",
        ["an integer from 0 to 100", "got -1 (int)"],
        id="$.policy.retries-an integer from 0 to 100",
    ),
    pytest.param(
        OK + "policy:\n  retries: true\n",
        4,
        "$.policy.retries",
        ["integer", "got True (boolean)"],
        id="$.policy.retries-integer",
    ),
    pytest.param(
        OK + "policy:\n  timeout: fast\n",
        4,
        "$.policy.timeout",
        ["expected a duration like 5s, 250ms, 1.5m", "got 'fast' (string)"],
        id="$.policy.timeout-expected a duration like 5s, 250ms, 1.5m",
    ),
    pytest.param(
        OK + "policy:\n  timeout: 0s\n",
        4,
        "$.policy.timeout",
        ["greater than zero", "5s"],
        id="$.policy.timeout-greater than zero",
    ),
    pytest.param(
        OK + "policy:\n  timeout: .inf\n",
        4,
        "$.policy.timeout",
        ["duration", "got inf (float)"],
        id="$.policy.timeout-duration",
    ),
    pytest.param(
        OK + "policy:\n  backoff: -2\n",
        4,
        "$.policy.backoff",
        ["duration", "zero or more", "got -2"],
        id="$.policy.backoff-duration",
    ),
    pytest.param(
        OK + "policy:\n  on_region_failure: ignore\n",
        4,
        "$.policy.on_region_failure",
        ["got 'ignore' (string): unknown on_region_failure", "fail, partial"],
        id="$.policy.on_region_failure-got 'ignore' (string): unknown on_region_failure",
    ),
    pytest.param(
        OK + "policy:\n  memory_limit_mb: 8\n",
        4,
        "$.policy.memory_limit_mb",
        [">= 32", "got 8"],
        id="$.policy.memory_limit_mb->= 32",
    ),
    pytest.param(
        OK + "policy: fast\n",
        3,
        "$.policy",
        ["expected a mapping", "got 'fast' (string)"],
        id="$.policy-expected a mapping",
    ),
    pytest.param(OK + "seed: -1\n", 3, "$.seed", ["non-negative integer", "got -1"], id="$.seed-non-negative integer0"),
    pytest.param(
        OK + "seed: abc\n",
        3,
        "$.seed",
        ["non-negative integer", "got 'abc' (string)"],
        id="$.seed-non-negative integer1",
    ),
    pytest.param(
        OK + "name: two words\n",
        3,
        "$.name",
        ["letters, digits", "got 'two words'"],
        id="$.name-letters, digits",
    ),
    pytest.param(
        OK + "description: [a]\n",
        3,
        "$.description",
        ["a string", "got ['a'] (list)"],
        id="$.description-a string",
    ),
    pytest.param(
        OK + "context: thread\n",
        3,
        "$.context",
        ["got 'thread' (string): unknown context", "fork, inline"],
        id="$.context-got 'thread' (string): unknown context",
    ),
    pytest.param(
        OK + "backend: dask\n",
        3,
        "$.backend",
        ["got 'dask' (string): unknown backend", "fork, inline, ray"],
        id="$.backend-got 'dask' (string): unknown backend",
    ),
    pytest.param(
        OK + "skill: nowhere\n",
        3,
        "$.skill",
        ["unknown skill 'nowhere'", "region-stats", "SKILL.md"],
        id="$.skill-unknown skill 'nowhere'",
    ),
    pytest.param(
        OK + "faults: {region: A}\n",
        3,
        "$.faults",
        ["expected a list of faults", "(mapping)"],
        id="$.faults-expected a list of faults",
    ),
    pytest.param(
        OK + "faults:\n  - raise\n",
        4,
        "$.faults[0]",
        ["expected a mapping", "got 'raise'"],
        id="$.faults[0]-expected a mapping",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: crash, exit_code: 0}\n",
        4,
        "$.faults[0].exit_code",
        ["exit code from 1 to 255", "got 0"],
        id="$.faults[0].exit_code-exit code from 1 to 255",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: drop, fraction: 2}\n",
        4,
        "$.faults[0].fraction",
        ["between 0 (exclusive) and 1", "got 2.0"],
        id="$.faults[0].fraction-between 0 (exclusive) and 1",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: raise, attempts: [0]}\n",
        4,
        "$.faults[0].attempts",
        ["attempt numbers from 1", "'all'", "got [0]"],
        id="$.faults[0].attempts-attempt numbers from 1",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: raise, attempts: sometimes}\n",
        4,
        "$.faults[0].attempts",
        ["'all'", "got 'sometimes'"],
        id="$.faults[0].attempts-'all'",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: delay}\n",
        4,
        "$.faults[0]",
        ["delay fault needs 'seconds'"],
        id="$.faults[0]-delay fault needs 'seconds'",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: delay, seconds: soon}\n",
        4,
        "$.faults[0].seconds",
        ["duration", "got 'soon'"],
        id="$.faults[0].seconds-duration",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: signal, signal: FOO}\n",
        4,
        "$.faults[0].signal",
        ["got 'FOO' (string): unknown signal", "KILL", "SEGV", "with or without SIG"],
        id="$.faults[0].signal-got 'FOO' (string): unknown signal",
    ),
    pytest.param(
        OK + "faults:\n  - {kind: raise}\n",
        4,
        "$.faults[0]",
        ["missing required key 'region'", "A"],
        id="$.faults[0]-missing required key 'region'",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A}\n",
        4,
        "$.faults[0]",
        ["missing required key 'kind'", "raise, crash"],
        id="$.faults[0]-missing required key 'kind'",
    ),
    pytest.param(
        OK + "expect:\n  outcome: DONE\n",
        4,
        "$.expect.outcome",
        ["got 'DONE' (string): unknown outcome", "COMPLETE, FAILED"],
        id="$.expect.outcome-got 'DONE' (string): unknown outcome",
    ),
    pytest.param(
        OK + "expect:\n  attempts: {process-region-a: two}\n",
        4,
        "$.expect.attempts.process-region-a",
        ["non-negative integer", "got 'two'"],
        id="$.expect.attempts.process-region-a-non-negative integer",
    ),
    pytest.param(
        OK + "expect:\n  transitions: {process-region-a: COMPLETE}\n",
        4,
        "$.expect.transitions.process-region-a",
        ["list of states", "got 'COMPLETE' (string)"],
        id="$.expect.transitions.process-region-a-list of states",
    ),
    pytest.param(
        OK + "expect:\n  concurrent: process-region-*\n",
        4,
        "$.expect.concurrent",
        ["list of task globs", "got 'process-region-*'"],
        id="$.expect.concurrent-list of task globs",
    ),
    pytest.param(
        OK + "expect:\n  concurrent: [nothing-*]\n",
        4,
        "$.expect.concurrent[0]",
        ["matches no task", "process-region-a, aggregate-results"],
        id="$.expect.concurrent[0]-matches no task",
    ),
    pytest.param(
        OK + "expect:\n  aggregate: {total: {records: lots}}\n",
        4,
        "$.expect.aggregate.total.records",
        ["non-negative integer", "got 'lots'"],
        id="$.expect.aggregate.total.records-non-negative integer",
    ),
    pytest.param(
        OK + "expect:\n  aggregate: {total: {sum: x}}\n",
        4,
        "$.expect.aggregate.total.sum",
        ["finite number", "got 'x'"],
        id="$.expect.aggregate.total.sum-finite number",
    ),
    pytest.param(
        OK + "expect:\n  aggregate: {missing: [Z]}\n",
        4,
        "$.expect.aggregate.missing",
        ["list of region ids", "from: A", "got ['Z']"],
        id="$.expect.aggregate.missing-list of region ids",
    ),
    pytest.param(
        "regions:\n  A: {inline: [{value: x}]}\n",
        2,
        "$.regions.A.inline[0].value",
        ["finite number", "'x'"],
        id="$.regions.A.inline[0].value-finite number",
    ),
    pytest.param(
        "regions:\n  A: {inline: [1]}\n",
        2,
        "$.regions.A.inline[0]",
        ["record with a numeric 'value'"],
        id="$.regions.A.inline[0]-record with a numeric 'value'",
    ),
    pytest.param(
        "regions:\n  A: {inline: {value: 1}}\n",
        2,
        "$.regions.A.inline",
        ["list of records", "(mapping)"],
        id="$.regions.A.inline-list of records",
    ),
    pytest.param(
        "regions:\n  A: {file: 7}\n",
        2,
        "$.regions.A.file",
        ["path to a .jsonl", "got 7 (int)"],
        id="$.regions.A.file-path to a .jsonl",
    ),
    pytest.param(
        "regions:\n  'A B': {records: 1}\n",
        2,
        "$.regions.A B",
        ["region id 'A B'", "letters, digits"],
        id="$.regions.A B-region id 'A B'",
    ),
    pytest.param(
        "regions:\n  a: {records: 1}\n  A: {records: 1}\n",
        3,
        "$.regions.A",
        ["both become task 'process-region-a'", "rename one"],
        id="$.regions.A-both become task 'process-region-a'",
    ),
    # --- unknown keys and names ---
    pytest.param(
        OK + "polcy:\n  retries: 1\n",
        3,
        "$.polcy",
        ["unknown key 'polcy'", "did you mean 'policy'?", "accepted keys: name,"],
        id="unknown_top_level_key_with_did_you_mean",
    ),
    pytest.param(
        OK + "policy:\n  timout: 5s\n",
        4,
        "$.policy.timout",
        ["unknown key 'timout'", "did you mean 'timeout'?", "accepted keys: timeout, retries"],
        id="unknown_nested_key-policy",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: crash, exitcode: 2}\n",
        4,
        "$.faults[0].exitcode",
        ["unknown key 'exitcode'", "did you mean 'exit_code'?", "accepted keys: region, kind"],
        id="unknown_nested_key-faults",
    ),
    pytest.param(
        OK + "expect:\n  outcomes: COMPLETE\n",
        4,
        "$.expect.outcomes",
        ["unknown key 'outcomes'", "did you mean 'outcome'?", "accepted keys: outcome, status"],
        id="unknown_nested_key-expect",
    ),
    pytest.param(
        OK + "expect:\n  aggregate: {totals: {records: 3}}\n",
        4,
        "$.expect.aggregate.totals",
        ["unknown key 'totals'", "did you mean 'total'?"],
        id="unknown_nested_key-aggregate",
    ),
    pytest.param(
        OK + "expect:\n  aggregate: {total: {count: 3}}\n",
        4,
        "$.expect.aggregate.total.count",
        ["unknown key 'count'", "accepted keys: records, sum"],
        id="unknown_nested_key-summary",
    ),
    pytest.param(
        OK + "faults:\n  - {region: A, kind: crahs}\n",
        4,
        "$.faults[0].kind",
        [
            "got 'crahs' (string): unknown fault kind",
            "did you mean 'crash'?",
            "raise, crash, signal, hang, delay, corrupt, drop, oom",
        ],
        id="unknown_fault_kind",
    ),
    pytest.param(
        OK + "faults:\n  - region: Z\n    kind: raise\n",
        4,
        "$.faults[0].region",
        ["unknown region 'Z'", "regions of this scenario: A"],
        id="unknown_region_in_faults",
    ),
    pytest.param(  # YAML 1.2 reads only true/false as booleans (YAML 1.1 read NO as False too: see below)
        "regions:\n  true: {records: 1}\nfaults:\n  - {region: true, kind: raise}\n",
        4,
        "$.faults[0].region",
        ["unknown region True", "quote the region id", "true"],
        id="region_read_as_boolean_gets_a_quoting_hint",
    ),
    pytest.param(
        OK + "expect:\n  aggregate:\n    regions:\n      a: {records: 3}\n",
        6,
        "$.expect.aggregate.regions.a",
        ["unknown region 'a'", "did you mean 'A'?", "regions of this scenario: A"],
        id="unknown_region_in_expect_aggregate_regions",
    ),
    pytest.param(
        OK + "expect:\n  order:\n    - {a: b}\n",
        5,
        "$.expect.order[0]",
        ["bad order rule", "(mapping)", "quote the rule"],
        id="order_rule_that_is_not_a_string",
    ),
    pytest.param(
        OK + "expect:\n  order: ['process-regoin-*:COMPLETE < aggregate-results:COMPLETE']\n",
        4,
        "$.expect.order[0]",
        ["'process-regoin-*'", "matches no task", "tasks of this scenario: process-region-a, aggregate-results"],
        id="order_glob_matching_no_task",
    ),
    pytest.param(
        OK + "expect:\n  order: ['process-region-*:DONE < aggregate-results:COMPLETE']\n",
        4,
        "$.expect.order[0]",
        ["unknown state 'DONE'", "PENDING, BLOCKED, IN_PROGRESS"],
        id="order_with_unknown_state",
    ),
    pytest.param(
        OK + "expect:\n  order: ['process-region-*:complete < aggregate-results:COMPLETE']\n",
        4,
        "$.expect.order[0]",
        ["unknown state 'complete'", "did you mean 'COMPLETE'?"],
        id="order_with_lower_case_state_suggests_the_right_one",
    ),
    pytest.param(
        OK + "expect:\n  status: {process-region-a: DONE}\n",
        4,
        "$.expect.status.process-region-a",
        ["got 'DONE' (string): unknown state", "PENDING, BLOCKED, IN_PROGRESS, COMPLETE, FAILED, CANCELLED"],
        id="unknown_state_in_status",
    ),
    pytest.param(
        OK + "expect:\n  transitions:\n    process-region-a: [PENDING, RUNNING, COMPLETE]\n",
        5,
        "$.expect.transitions.process-region-a[1]",
        ["got 'RUNNING' (string): unknown state", "IN_PROGRESS"],
        id="unknown_state_in_transitions_names_the_index",
    ),
    # --- regions and data files ---
    pytest.param(
        "regions:\n  A: {}\n",
        2,
        "$.regions.A",
        ["exactly one data source", "records", "file", "inline", "got none"],
        id="region_with_zero_data_sources",
    ),
    pytest.param(
        "regions:\n  A:\n    records: 3\n    inline: [{value: 1}]\n",
        2,
        "$.regions.A",
        ["exactly one data source", "got records and inline"],
        id="region_with_two_data_sources",
    ),
    pytest.param(
        "regions:\n  A: 1000\n",
        2,
        "$.regions.A",
        ["expected a mapping", "got 1000 (int)"],
        id="region_that_is_not_a_mapping",
    ),
    pytest.param(
        "name: lonely\nseed: 1\n",
        1,
        "$",
        ["missing required key 'regions'", "{A: {records: 1000}}"],
        id="missing_regions",
    ),
    pytest.param("seed: 1\nregions: {}\n", 2, "$.regions", ["at least one region"], id="regions_written_but_empty"),
    pytest.param(
        "seed: 1\nregions:\n",
        2,
        "$.regions",
        ["mapping of region id -> data", "got None (null)"],
        id="regions_key_with_no_value",
    ),
    pytest.param(
        "regions:\n  - A\n  - B\n",
        1,
        "$.regions",
        ["mapping of region id -> data", "(list)"],
        id="regions_as_a_list",
    ),
    pytest.param(
        (
            "regions:\n"
            "  B: {file: missing.jsonl}\n"
            "faults:\n"
            "  - {region: B, kind: raise}\n"
            "expect:\n"
            "  status: {process-region-b: COMPLETE}\n"
            "  aggregate: {regions: {B: {records: 1}}}\n"
        ),
        2,
        "$.regions.B.file",
        ["does not exist"],
        id="broken_region_is_not_reported_again_where_it_is_named",
    ),
    pytest.param(
        "regions:\n  A: {file: /etc/passwd.jsonl}\n",
        2,
        "$.regions.A.file",
        ["outside the scenario's folder"],
        id="absolute_data_file_outside_the_folder",
    ),
    pytest.param(
        'regions:\n  A: {file: "b\\0.jsonl"}\n',
        2,
        "$.regions.A.file",
        ["not a usable path", ".jsonl"],
        id="data_file_with_nul_byte",
    ),
]


@pytest.mark.parametrize(("text", "line", "path", "words"), ONE_MISTAKE)
def test_one_mistake_is_one_problem(tmp_path: Path, text: str | bytes, line: int, path: str, words: list[str]) -> None:
    """Each row is one mistake: it makes exactly one problem, at that line and $.path, holding every word."""
    check(the_problem(tmp_path, text), tmp_path, line, path, *words)


# --- YAML layer ------------------------------------------------------------------------------------


def test_tab_inside_a_quoted_string_is_fine(tmp_path: Path) -> None:
    assert scenario_of(tmp_path, OK + 'description: "a\tb"\n').description == "a\tb"


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/object/new:os.system ['echo pwned']",
        "!!python/name:os.system",
        "!!python/tuple [1, 2]",
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!custom thing",
    ],
)
def test_object_constructing_tags_are_refused(tmp_path: Path, tagged: str) -> None:
    p = the_problem(tmp_path, OK + f"description: {tagged}\n")
    check(p, tmp_path, 3, "$.description", "YAML tag", "not allowed", "plain data only", "remove the tag")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("!!int abc", ["'abc' cannot be read as an integer", "not a YAML 1.2 integer"]),
        ("!!int 1_0", ["'1_0' cannot be read as an integer", "not a YAML 1.2 integer"]),
        ("!!bool yes", ["'yes' cannot be read as a boolean", "YAML 1.2 booleans are true and false"]),
        ("!!int ''", ["'' cannot be read as an integer"]),
        ("!!float x", ["'x' cannot be read as a number"]),
        ("!!bool maybe", ["'maybe' cannot be read as a boolean"]),
        ("1" * 5000, ["cannot be read as an integer", "4300 digits", "quote it"]),
        ("0x" + "f" * 5000, ["cannot be read as an integer", "too large"]),
    ],
)
def test_a_scalar_its_tag_cannot_read_is_a_problem_not_a_crash(tmp_path: Path, value: str, words: list[str]) -> None:
    p = the_problem(tmp_path, OK + f"seed: {value}\n")
    check(p, tmp_path, 3, "$.seed", *words)


@pytest.mark.parametrize("anchored", ["!!int abc", "!env HOME"])
def test_a_refused_value_used_through_aliases_is_one_problem(anchored: str) -> None:
    from pytest_distproc.scenario.yamlsource import parse_documents

    (doc,) = parse_documents(f"a: &d {anchored}\nb: [*d, *d, *d]\n", "s.yaml")
    assert [(p.line, p.path) for p in doc.problems] == [(1, "$.a")]
    assert {"$.a", "$.b[0]", "$.b[2]"} <= doc.dropped  # every use is dropped, so nothing piles on later


def test_two_nans_stay_two_values(tmp_path: Path) -> None:
    from pytest_distproc.scenario.yamlsource import parse_documents

    (doc,) = parse_documents("a: [!!float .nan, !!float .nan, .nan]\n", "s.yaml")
    first, second, third = doc.value["a"]
    assert first is not second and first != first and third != third


def test_python_tag_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = OK + f"seed: !!python/object/apply:os.system ['touch {marker}']\n"
    p = the_problem(tmp_path, text)
    check(p, tmp_path, 3, "$.seed", "python/object/apply:os.system", "not allowed")
    assert not marker.exists()


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    p = the_problem(tmp_path, "\n".join(lines) + "\n")
    assert time.monotonic() - started < 5
    assert p.line is not None and 1 <= p.line <= 9
    assert "more than" in p.message and "alias" in p.message and "billion laughs" in p.message


def test_alias_bomb_fails_only_its_own_document(tmp_path: Path) -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [" + ",".join([f"*{p}"] * 10) + "]\n" for p, c in zip("abcdef", "bcdefg", strict=True)
    )
    docs = load(tmp_path, OK + "---\n" + bomb + "---\n" + OK)
    assert [d.scenario is not None for d in docs] == [True, False, True]
    assert docs[1].error is not None and "alias" in str(docs[1].error)


def test_plain_aliases_are_fine(tmp_path: Path) -> None:
    s = scenario_of(tmp_path, "regions:\n  A: &src {records: 3}\n  B: *src\n")
    assert [r.records for r in s.regions] == [3, 3]


def test_deeply_nested_document(tmp_path: Path) -> None:
    p = the_problem(tmp_path, OK + "description: " + "[" * 100 + "]" * 100 + "\n")
    assert p.line == 3
    assert p.path.startswith("$.description[0][0]")
    assert "nested deeper than 64 levels" in p.message


def test_absurdly_deep_document_is_a_clean_problem(tmp_path: Path) -> None:
    started = time.monotonic()
    p = the_problem(tmp_path, OK + "description: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert time.monotonic() - started < 5
    check(p, tmp_path, 3, "$", "nesting depth")


def test_deep_block_nesting(tmp_path: Path) -> None:
    text = OK + "description:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(80)) + "  " * 81 + "x\n"
    p = the_problem(tmp_path, text)
    assert "nested deeper than 64 levels" in p.message and p.path.startswith("$.description.k0.k1")


@pytest.mark.parametrize(("opening", "closing", "step"), [("[", "]", "[0]"), ("{k: ", "}", ".k")])
def test_the_depth_limit_stops_at_the_same_scalar(tmp_path: Path, opening: str, closing: str, step: str) -> None:
    """The builder reads a scalar without a build() call of its own while the limits hold: a scalar at
    depth 64 still loads, one at 65 is refused at its own path (description sits at depth 1)."""
    def nested(levels: int) -> str:
        return OK + "description: " + opening * levels + "x" + closing * levels + "\n"

    shallow = problems_of(tmp_path, nested(63))
    assert [p.path for p in shallow] == ["$.description"] and "expected a string" in shallow[0].message
    deep = the_problem(tmp_path, nested(64))
    check(deep, tmp_path, 3, "$.description" + step * 64, "nested deeper than 64 levels")


@pytest.mark.parametrize(("limit", "blamed"), [(7, None), (6, "$.marks"), (4, "$.marks"), (3, "$.regions")])
def test_the_node_limit_stops_at_the_same_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int,
                                               blamed: str | None) -> None:
    """Seven nodes (keys are not nodes): the mapping, regions, A, 3, the marks list and its two names. Over
    the limit, the entry holding the node past it is blamed, whether that node is a scalar read inline (in a
    list: limit 6, in a mapping: limit 3) or a list (limit 4)."""
    from pytest_distproc.scenario import yamlsource

    monkeypatch.setattr(yamlsource, "MAX_NODES", limit)
    text = OK + "marks: [slow, fast]\n"
    if blamed is None:
        assert [m.name for m in scenario_of(tmp_path, text).marks] == ["slow", "fast"]
        return
    check(the_problem(tmp_path, text), tmp_path, 1 if blamed == "$.regions" else 3, blamed,
          f"more than {limit} YAML nodes")


def test_scalar_values_shared_between_files_keep_their_tag_and_their_problems() -> None:
    """Ints, booleans and nulls are shared by every document read (by tag and text): the same text under
    another tag is another value, and a text a tag cannot read is a problem each time it is read."""
    from pytest_distproc.scenario import yamlsource
    from pytest_distproc.scenario.yamlsource import parse_documents

    for _ in range(2):  # the second read finds the first one's values
        (doc,) = parse_documents("a: 7\nb: !!float 7\nc: !!int 7\nd: '7'\ne: true\nf: !!str true\n", "x.yaml")
        assert [(v, type(v)) for v in doc.value.values()] == [
            (7, int), (7.0, float), (7, int), ("7", str), (True, bool), ("true", str)]
        (bad,) = parse_documents("a: !!int seven\n", "y.yaml")
        assert [(p.line, p.path) for p in bad.problems] == [(1, "$.a")]
    (big,) = parse_documents(f"a: {'9' * 100}\n", "z.yaml")  # read, but not kept for the session
    assert big.value == {"a": int("9" * 100)} and all(text != "9" * 100 for _, text in yamlsource._VALUES)


def test_lone_surrogate_in_text(tmp_path: Path) -> None:
    docs = load_text(OK + "description: a\ud800b\n", tmp_path / "s.yaml")
    assert docs[0].error is not None
    p = docs[0].error.problems[0]
    assert (p.line, p.path) == (3, "$") and "UTF-8" in p.message


def test_unreadable_file(tmp_path: Path) -> None:
    docs = load_file(tmp_path / "nope.yaml")
    assert docs[0].error is not None and "cannot read file" in str(docs[0].error)


# --- unknown keys and names ------------------------------------------------------------------------


def test_unknown_top_level_key_without_close_match(tmp_path: Path) -> None:
    p = the_problem(tmp_path, OK + "zzz: 1\n")
    check(p, tmp_path, 3, "$.zzz", "unknown key 'zzz'", "accepted keys")
    assert "did you mean" not in p.message


def test_unknown_key_in_region_is_reported_with_did_you_mean(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "regions:\n  A: {record: 3}\n")
    assert problems[0].path == "$.regions.A.record"
    assert "did you mean 'records'?" in problems[0].message


def test_region_ids_keep_their_written_text(tmp_path: Path) -> None:
    # YAML 1.1 would read these keys as False, True and 1: region ids are names, not values.
    s = scenario_of(tmp_path, "regions:\n  NO: {records: 1}\n  on: {records: 1}\n  01: {records: 1}\n")
    assert [r.id for r in s.regions] == ["NO", "on", "01"]
    assert s.task_ids == ["process-region-no", "process-region-on", "process-region-01", "aggregate-results"]


@pytest.mark.parametrize("section", ["status", "transitions", "attempts"])
def test_unknown_task_in_expect(tmp_path: Path, section: str) -> None:
    value = {"status": "COMPLETE", "transitions": "[PENDING]", "attempts": "1"}[section]
    p = the_problem(tmp_path, OK + f"expect:\n  {section}:\n    proces-region-a: {value}\n")
    check(
        p,
        tmp_path,
        5,
        f"$.expect.{section}.proces-region-a",
        "unknown task 'proces-region-a'",
        "did you mean 'process-region-a'?",
        "tasks of this scenario: process-region-a, aggregate-results",
    )


@pytest.mark.parametrize(
    "rule",
    [
        "process-region-a COMPLETE < aggregate-results:IN_PROGRESS",
        "process-region-a:COMPLETE",
        "a:COMPLETE << b:COMPLETE",
        "process-region-a:COMPLETE > aggregate-results:IN_PROGRESS",
    ],
)
def test_bad_order_rule_syntax(tmp_path: Path, rule: str) -> None:
    p = the_problem(tmp_path, OK + f"expect:\n  order:\n    - '{rule}'\n")
    check(
        p,
        tmp_path,
        5,
        "$.expect.order[0]",
        "bad order rule",
        "TASKGLOB:STATE < TASKGLOB:STATE",
        "process-region-*:COMPLETE < aggregate-results:IN_PROGRESS",
    )


# --- regions and data files ------------------------------------------------------------------------


def test_data_file_missing(tmp_path: Path) -> None:
    p = the_problem(tmp_path, "regions:\n  B: {file: data/b.jsonl}\n")
    check(
        p,
        tmp_path,
        2,
        "$.regions.B.file",
        "data file 'data/b.jsonl' does not exist",
        str(tmp_path / "data" / "b.jsonl"),
        "relative to the scenario file",
    )


@pytest.mark.parametrize("name", ["../x.jsonl", "data/../../x.jsonl"])
def test_data_file_outside_the_scenario_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "scn"
    folder.mkdir()
    (tmp_path / "x.jsonl").write_text('{"value": 1}\n')
    p = the_problem(folder, f"regions:\n  A: {{file: '{name}'}}\n")
    check(
        p,
        folder,
        2,
        "$.regions.A.file",
        f"data file {name!r}",
        "outside the scenario's folder",
        str(folder),
        "keep data files in the scenario's folder",
    )


@pytest.mark.parametrize("name", ["data/b.txt", "data/b.json", "data/b"])
def test_wrong_data_file_suffix(tmp_path: Path, name: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / name).write_text('{"value": 1}\n')
    p = the_problem(tmp_path, f"regions:\n  A: {{file: {name}}}\n")
    check(p, tmp_path, 2, "$.regions.A.file", f"data file {name!r} has suffix", ".jsonl, .ndjson, .csv")


@pytest.mark.parametrize("name", ["data/b.jsonl", "data/b.ndjson", "data/b.CSV"])
def test_data_files_that_load(tmp_path: Path, name: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / name).write_text("value\n1\n" if name.lower().endswith(".csv") else '{"value": 1}\n')
    s = scenario_of(tmp_path, f"regions:\n  A: {{file: {name}}}\n")
    assert s.regions[0].file == (tmp_path / name).resolve()


# --- several problems, several documents -----------------------------------------------------------


def test_all_problems_of_a_document_at_once(tmp_path: Path) -> None:
    text = """\
        regions:
          A: {records: many}
        policy:
          retries: -1
        faults:
          - {region: A, kind: explode}
        """
    problems = problems_of(tmp_path, text)
    assert [(p.line, p.path) for p in problems] == [
        (2, "$.regions.A.records"),
        (4, "$.policy.retries"),
        (6, "$.faults[0].kind"),
    ]
    error = ScenarioError(problems)
    assert str(error).startswith("invalid scenario (3 problems):")


def test_problems_are_sorted_by_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "bogus: 1\nregions:\n  A: {records: x}\npolcy: {}\n")
    assert [p.line for p in problems] == [1, 3, 4]


def test_multi_document_file_only_the_bad_one_fails(tmp_path: Path) -> None:
    text = "name: one\n" + OK + "---\nname: two\nregions:\n  A: {records: many}\n---\nname: three\n" + OK
    docs = load(tmp_path, text)
    assert [d.name for d in docs] == ["one", "two", "three"]
    assert docs[0].scenario is not None and docs[2].scenario is not None
    assert docs[0].error is None and docs[2].error is None
    assert docs[1].scenario is None and docs[1].error is not None
    (p,) = docs[1].error.problems
    check(p, tmp_path, 7, "$.regions.A.records", "non-negative integer")
    assert docs[2].scenario.line == 9


def test_multi_document_default_names(tmp_path: Path) -> None:
    docs = load(tmp_path, OK + "---\n" + OK, name="pair.yaml")
    assert [d.name for d in docs] == ["pair-1", "pair-2"]


def test_syntax_error_in_a_later_document_keeps_the_earlier_ones(tmp_path: Path) -> None:
    docs = load(tmp_path, "name: one\n" + OK + "---\nname: two\nregions: [\n")
    assert docs[0].scenario is not None
    assert docs[1].error is not None
    (p,) = docs[1].error.problems
    # libyaml notices the open bracket at the end of the text, the line after the last one
    check(p, tmp_path, 7, "$", "YAML syntax error", "at the end of the file", "bracket")


def test_duplicate_scenario_names_in_a_file(tmp_path: Path) -> None:
    text = "name: same\n" + OK + "---\nseed: 1\nname: same\n" + OK
    docs = load(tmp_path, text)
    assert docs[0].scenario is not None
    assert docs[1].scenario is None and docs[1].error is not None
    assert docs[1].name != docs[0].name  # item ids stay unique
    (p,) = docs[1].error.problems
    check(
        p,
        tmp_path,
        6,
        "$.name",
        "scenario name 'same' is already used by the document on line 1",
        "unique",
        "rename one",
    )


def test_duplicate_name_keeps_the_documents_other_problems(tmp_path: Path) -> None:
    text = "name: same\n" + OK + "---\nname: same\nseed: -1\n" + OK
    docs = load(tmp_path, text)
    assert docs[1].error is not None
    assert [p.path for p in docs[1].error.problems] == ["$.name", "$.seed"]


def test_a_refused_value_is_reported_once(tmp_path: Path) -> None:
    # The tag problem says it all; no second "expected a string, got None" for the same value.
    p = the_problem(tmp_path, OK + "description: !env HOME\n")
    assert "YAML tag '!env'" in p.message


def test_load_one_raises_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"s\.yaml:1: \$\.regions\.A: expected a mapping"):
        load_one("regions: {A: 1}\n", tmp_path / "s.yaml")


# --- happy paths -----------------------------------------------------------------------------------

CONTRACT = """\
name: seed-three-regions        # optional; default: file stem (one YAML document = one test item)
description: Three regions, B fails once and is retried.
seed: 42                        # all generated data and fault choices derive from it
regions:                        # region id -> data; each becomes task process-region-<id>
  A: {records: 1000}            # generated records {"value": float}, deterministic from seed
  B: {file: data/b.jsonl}       # JSON Lines or CSV, relative to the scenario file
  C: {inline: [{value: 1.5}, {value: 2}]}
skill: region-stats             # built-in default; or "package.module:function"; or a dir with SKILL.md
context: fork                   # fork (isolated process per attempt, default) | inline (no isolation)
backend: fork                   # fork (default) | inline | ray
policy:
  timeout: 5s                   # per attempt; a hung processor is killed (its whole process group)
  retries: 1                    # extra attempts after a failure
  backoff: 0s
  on_region_failure: fail       # fail: aggregate-results CANCELLED | partial: aggregate survivors
faults:                         # injected inside the processor, keyed by region and attempt
  - {region: B, kind: raise, attempts: [1]}
expect:
  outcome: COMPLETE             # COMPLETE | FAILED (the run as a whole)
  status: {process-region-b: COMPLETE, aggregate-results: COMPLETE}
  transitions:
    process-region-b: [PENDING, IN_PROGRESS, FAILED, IN_PROGRESS, COMPLETE]
    aggregate-results: [BLOCKED, IN_PROGRESS, COMPLETE]
  order:
    - "process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"
  concurrent: ["process-region-*"]
  attempts: {process-region-b: 2}
  aggregate:
    total: {records: 1002}
    regions: {A: {records: 1000}}
"""


def test_contract_example_from_design_loads(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b.jsonl").write_text('{"value": 1.0}\n{"value": 2.5}\n')
    s = scenario_of(tmp_path, CONTRACT, name="contract.yaml")
    assert s.name == "seed-three-regions"
    assert s.description == "Three regions, B fails once and is retried."
    assert s.seed == 42 and s.line == 1
    assert [r.id for r in s.regions] == ["A", "B", "C"]
    assert s.regions[0].records == 1000 and s.regions[0].line == 5
    assert s.regions[1].file == (tmp_path / "data" / "b.jsonl").resolve()
    assert s.regions[2].inline == ({"value": 1.5}, {"value": 2.0})
    assert (s.skill, s.context, s.backend) == ("region-stats", "fork", "fork")
    assert (s.policy.timeout, s.policy.retries, s.policy.backoff, s.policy.on_region_failure) == (
        5.0,
        1,
        0.0,
        "fail",
    )
    (fault,) = s.faults
    assert (fault.region, fault.kind, fault.attempts, fault.line) == ("B", "raise", (1,), 17)
    e = s.expect
    assert e.outcome == "COMPLETE"
    assert e.status == {"process-region-b": "COMPLETE", "aggregate-results": "COMPLETE"}
    assert e.transitions["process-region-b"] == (
        "PENDING",
        "IN_PROGRESS",
        "FAILED",
        "IN_PROGRESS",
        "COMPLETE",
    )
    assert tuple(map(str, e.order)) == ("process-region-*:COMPLETE < aggregate-results:IN_PROGRESS",)
    assert e.concurrent == ("process-region-*",)
    assert e.attempts == {"process-region-b": 2}
    assert e.aggregate == {"total": {"records": 1002}, "regions": {"A": {"records": 1000}}}


def test_defaults(tmp_path: Path) -> None:
    s = scenario_of(tmp_path, OK, name="plain.yaml")
    assert s.name == "plain" and s.seed is None and s.description == ""
    assert (s.skill, s.context, s.backend) == ("region-stats", "fork", "fork")
    assert (s.policy.timeout, s.policy.retries, s.policy.backoff) == (5.0, 0, 0.0)
    assert s.faults == () and s.expect.outcome is None


def test_empty_optional_sections_count_as_absent(tmp_path: Path) -> None:
    s = scenario_of(tmp_path, OK + "policy:\nfaults:\nexpect:\n  order:\n")
    assert s.faults == () and s.policy.timeout == 5.0 and s.expect.order == ()


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("5s", 5.0), ("250ms", 0.25), ("1.5m", 90.0), ("2", 2.0), ("0.5", 0.5), ("'3'", 3.0), ("10 s", 10.0)],
)
def test_durations(tmp_path: Path, written: str, seconds: float) -> None:
    s = scenario_of(
        tmp_path,
        OK + f"policy:\n  timeout: {written}\n  backoff: {written}\n"
        f"faults:\n  - {{region: A, kind: delay, seconds: {written}}}\n",
    )
    assert s.policy.timeout == pytest.approx(seconds)
    assert s.policy.backoff == pytest.approx(seconds)
    assert s.faults[0].seconds == pytest.approx(seconds)


@pytest.mark.parametrize("written", ["all", "'*'"])
def test_attempts_all(tmp_path: Path, written: str) -> None:
    s = scenario_of(tmp_path, OK + f"faults:\n  - {{region: A, kind: raise, attempts: {written}}}\n")
    assert s.faults[0].attempts is None
    assert s.faults[0].fires_on(1) and s.faults[0].fires_on(7)


def test_attempts_list_is_sorted_and_unique(tmp_path: Path) -> None:
    s = scenario_of(tmp_path, OK + "policy: {retries: 2}\nfaults:\n  - {region: A, kind: raise, attempts: [3, 1, 3]}\n")
    assert s.faults[0].attempts == (1, 3)


@pytest.mark.parametrize(
    ("written", "name"),
    [("KILL", "KILL"), ("SIGKILL", "KILL"), ("segv", "SEGV"), ("SigTerm", "TERM"), ("USR1", "USR1")],
)
def test_signal_names_with_or_without_sig(tmp_path: Path, written: str, name: str) -> None:
    s = scenario_of(tmp_path, OK + f"faults:\n  - {{region: A, kind: signal, signal: {written}}}\n")
    assert s.faults[0].signal == name


def test_every_fault_kind_loads(tmp_path: Path) -> None:
    kinds = ["raise", "crash", "signal", "hang", "corrupt", "drop", "oom"]
    faults = (
        "".join(f"  - {{region: A, kind: {k}, attempts: [{n}]}}\n" for n, k in enumerate(kinds, 1))
        + "  - {region: A, kind: delay, seconds: 1, attempts: [8]}\n"
    )
    s = scenario_of(tmp_path, OK + "policy: {retries: 7}\nfaults:\n" + faults)
    assert [f.kind for f in s.faults] == [*kinds, "delay"]


def test_seed_scenarios_of_the_repository_load() -> None:
    root = Path(__file__).parent.parent / "scenarios"
    files = sorted(root.rglob("*.yaml"))
    assert files
    for path in files:
        for doc in load_file(path):
            assert doc.error is None, str(doc.error)


# --- the corpus of broken files --------------------------------------------------------------------

EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_corpus_sidecar_matches_the_files() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.suffix in (".yaml", ".yml")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_corpus(filename: str) -> None:
    want = EXPECTED[filename]
    path = CORPUS / filename
    docs = load_file(path)
    failed = [d for d in docs if d.error is not None]
    assert failed, f"{filename} loaded without problems"
    problems = [p for d in failed for p in d.error.problems]  # type: ignore[union-attr]
    assert all(p.file == str(path) for p in problems)
    matching = [p for p in problems if p.line == want["line"] and p.path == want["path"]]
    assert matching, f"no problem at line {want['line']} {want['path']}:\n" + "\n".join(map(str, problems))
    assert any(want["fragment"] in p.message for p in matching), "\n".join(map(str, matching))
    if "problems" in want:
        assert len(problems) == want["problems"], "\n".join(map(str, problems))


# --- YAML 1.2: numbers, booleans and nulls as the editor and the JSON Schema read them ----------------


@pytest.mark.parametrize(
    ("written", "value"),
    [("010", 10), ("0o10", 8), ("0x1F", 31), ("+7", 7), ("007", 7)],
)
def test_integers_read_as_yaml_1_2(tmp_path: Path, written: str, value: int) -> None:
    s = scenario_of(tmp_path, OK + f"seed: {written}\npolicy: {{retries: {written}}}\n")
    assert (s.seed, s.policy.retries) == (value, value)
    assert type(s.seed) is int


@pytest.mark.parametrize(("written", "seconds"), [("1e3", 1000.0), ("1E3", 1000.0), ("1.5e1", 15.0), (".5", 0.5)])
def test_exponent_floats_read_as_yaml_1_2(tmp_path: Path, written: str, seconds: float) -> None:
    s = scenario_of(tmp_path, OK + f"policy:\n  timeout: {written}\n  backoff: {written}\n")
    assert (s.policy.timeout, s.policy.backoff) == (seconds, seconds)


@pytest.mark.parametrize(("written", "value"), [("true", True), ("True", True), ("TRUE", True), ("False", False)])
def test_booleans_in_three_casings(tmp_path: Path, written: str, value: bool) -> None:
    s = scenario_of(tmp_path, OK + f"explore: {{examples: 2, interleavings: {written}}}\n")
    assert s.explore is not None and s.explore.interleavings is value


@pytest.mark.parametrize("written", ["~", "null", "Null", "NULL", ""])
def test_nulls_in_every_spelling(tmp_path: Path, written: str) -> None:
    s = scenario_of(tmp_path, OK + f"seed: {written}\ndescription: {written}\n")
    assert (s.seed, s.description) == (None, "")


@pytest.mark.parametrize(
    ("key", "written", "words"),
    [
        ("timeout", "1:30", ["got '1:30' (string)", "'1:30' is a string in YAML 1.2", "base-60",
                             "write 90s or 1.5m"]),
        ("backoff", "1_0", ["'1_0' is a string in YAML 1.2", "no '_' separators", "write 10s"]),
        ("retries", "1_0", ["expected an integer from 0 to 100, got '1_0' (string)", "write 10"]),
        ("retries", "0b101", ["0b binary numbers were YAML 1.1 only", "write 5"]),
        ("retries", "0:10", ["base-60", "write 10"]),
        ("memory_limit_mb", "1_024", ["write 1024"]),
    ],
)
def test_yaml_1_1_numbers_are_located_errors_saying_what_to_write(
    tmp_path: Path, key: str, written: str, words: list[str]
) -> None:
    p = the_problem(tmp_path, OK + f"policy:\n  {key}: {written}\n")
    check(p, tmp_path, 4, f"$.policy.{key}", *words)


@pytest.mark.parametrize(("written", "meant"), [("yes", "true"), ("off", "false"), ("No", "false")])
def test_yaml_1_1_booleans_are_strings_and_a_boolean_field_says_what_to_write(
    tmp_path: Path, written: str, meant: str
) -> None:
    p = the_problem(tmp_path, OK + f"explore:\n  interleavings: {written}\n")
    check(p, tmp_path, 4, "$.explore.interleavings", f"got {written!r} (string)", "YAML 1.1", f"write {meant}")


def test_yaml_1_1_booleans_name_regions_in_faults(tmp_path: Path) -> None:
    # YAML 1.1 read `region: NO` and `region: on` as False and True, which matched no region.
    s = scenario_of(tmp_path, "regions:\n  NO: {records: 1}\n  on: {records: 1}\n"
                    "faults:\n  - {region: NO, kind: raise}\n  - {region: on, kind: raise}\n")
    assert [f.region for f in s.faults] == ["NO", "on"]


def test_a_date_is_a_string(tmp_path: Path) -> None:
    s = scenario_of(tmp_path, OK + "description: 2001-12-14\n")
    assert s.description == "2001-12-14"


def test_retries_010_runs_ten_retries(tmp_path: Path) -> None:
    """The editor shows 10; YAML 1.1 made it 8, and the run failed with 9 attempts of 11 planned."""
    from pytest_distproc.run.coordinator import Coordinator

    text = ("regions: {A: {records: 5}}\npolicy: {retries: 010}\n"
            "faults: [{region: A, kind: raise, attempts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]\n")
    s = scenario_of(tmp_path, text)
    assert s.policy.retries == 10
    run = Coordinator(s).run()
    assert [a.ok for a in run.attempts if a.task == "process-region-a"] == [False] * 10 + [True]
    assert run.tasks.sequence("process-region-a")[-1].value == "COMPLETE"


def test_dump_writes_what_the_loader_reads_back() -> None:
    from pytest_distproc.scenario.yamlsource import dump, parse_documents

    data = {"s": ["1e3", "0o10", "1:30", "yes", "<<", "010", "True", "~", "", "1_0", "2001-12-14"],
            "v": [None, True, 1.5, 10, -0.0, 1e20], "1e3": "key"}
    text = dump(data)
    (doc,) = parse_documents(text, "d.yaml")
    assert doc.problems == [] and doc.value == data
    assert "'yes'" in text and "'1:30'" in text  # quoted for YAML 1.1 readers too


# --- issue 18: a fault's own keys, plans that cannot happen, paths inside the scenario's folder ----------------

@pytest.mark.parametrize(("kind", "key", "value"), [
    (kind, key, value)
    for kind, own in FAULT_KIND_KEYS.items()
    for key, value in (("message", "'x'"), ("exit_code", 4), ("signal", "TERM"), ("seconds", 0.2), ("fraction", 0.5))
    if key not in own
])
def test_a_key_of_another_fault_kind_is_refused_with_the_keys_that_apply(
    tmp_path: Path, kind: str, key: str, value: object
) -> None:
    extra = ", seconds: 1" if kind == "delay" else ""
    problem = the_problem(tmp_path, OK + f"faults:\n  - {{region: A, kind: {kind}, {key}: {value}{extra}}}\n")
    allowed = ", ".join((*FAULT_COMMON_KEYS, *FAULT_KIND_KEYS[kind]))
    check(problem, tmp_path, 4, f"$.faults[0].{key}", f"key {key!r} does not apply to a {kind} fault",
          f"a {kind} fault takes: {allowed}")


def test_each_kind_takes_its_own_keys(tmp_path: Path) -> None:
    text = OK + """\
policy: {retries: 4}
faults:
  - {region: A, kind: raise, message: boom, attempts: [1]}
  - {region: A, kind: crash, exit_code: 9, attempts: [2]}
  - {region: A, kind: signal, signal: TERM, attempts: [3]}
  - {region: A, kind: drop, fraction: 0.5, attempts: [4]}
  - {region: A, kind: delay, seconds: 0.1, attempts: [4]}
"""
    assert [f.kind for f in scenario_of(tmp_path, text).faults] == ["raise", "crash", "signal", "drop", "delay"]


def _plugin(keys: tuple[str, ...] | None) -> Extensions:
    return Extensions().adding(fault_kinds=[FaultKind("wobble", "before", lambda f, s: None, False, keys)])


def test_a_plugin_kind_that_names_its_keys_gets_only_those(tmp_path: Path) -> None:
    known = _plugin(("seconds",))
    text = OK + "faults:\n  - {region: A, kind: wobble, seconds: 1}\n"
    assert load_one(text, tmp_path / "s.yaml", known).faults[0].seconds == 1.0
    with pytest.raises(ScenarioError) as refused:
        load_one(OK + "faults:\n  - {region: A, kind: wobble, fraction: 0.5}\n", tmp_path / "s.yaml", known)
    assert "$.faults[0].fraction: key 'fraction' does not apply to a wobble fault (it belongs to drop faults); " \
        "a wobble fault takes: region, kind, attempts, seconds" in str(refused.value)


def test_a_plugin_kind_that_does_not_name_its_keys_takes_every_fault_key(tmp_path: Path) -> None:
    text = OK + "faults:\n  - {region: A, kind: wobble, seconds: 1, fraction: 0.5, exit_code: 4, message: m}\n"
    fault = load_one(text, tmp_path / "s.yaml", _plugin(None)).faults[0]
    assert (fault.seconds, fault.fraction, fault.exit_code, fault.message) == (1.0, 0.5, 4, "m")


def test_an_attempt_beyond_one_plus_retries_is_refused(tmp_path: Path) -> None:
    problem = the_problem(tmp_path, OK + "faults:\n  - {region: A, kind: raise, attempts: [1, 3]}\n")
    check(problem, tmp_path, 4, "$.faults[0].attempts", "attempt 3 never runs",
          "at most 1 + retries = 1 attempt(s) (policy.retries: 0)", "raise policy.retries to 2")
    assert scenario_of(tmp_path, OK + "policy: {retries: 2}\nfaults:\n  - {region: A, kind: raise, attempts: [3]}\n")


@pytest.mark.parametrize(("first", "second", "where"), [
    ("{region: A, kind: crash}", "{region: A, kind: raise}", 1),
    ("{region: A, kind: hang, attempts: all}", "{region: A, kind: drop, attempts: [2]}", 1),
    ("{region: A, kind: corrupt}", "{region: A, kind: oom}", 0),  # corrupt acts after the skill: oom first
    ("{region: A, kind: delay, seconds: 9}", "{region: A, kind: corrupt}", 1),  # past the 5 s timeout
])
def test_a_fault_that_an_earlier_one_keeps_from_firing_is_refused(
    tmp_path: Path, first: str, second: str, where: int
) -> None:
    problems = problems_of(tmp_path, OK + f"policy: {{retries: 1}}\nfaults:\n  - {first}\n  - {second}\n")
    assert [p.path for p in problems] == [f"$.faults[{where}]"], problems
    assert "never fires on region A attempt" in problems[0].message
    assert f"faults[{1 - where}]" in problems[0].message and "ends that attempt first" in problems[0].message


@pytest.mark.parametrize("pair", [
    "{region: A, kind: delay, seconds: 0.1}, {region: A, kind: raise}",  # a short delay, then the raise
    "{region: A, kind: drop}, {region: A, kind: corrupt}",
    "{region: A, kind: raise}, {region: B, kind: raise}",
    "{region: A, kind: raise, attempts: [1]}, {region: A, kind: crash, attempts: [2]}",
])
def test_faults_that_all_fire_load(tmp_path: Path, pair: str) -> None:
    text = "regions: {A: {records: 3}, B: {records: 3}}\npolicy: {retries: 1}\nfaults: [" + pair + "]\n"
    assert len(scenario_of(tmp_path, text).faults) == 2


def test_a_bad_skill_names_the_path_it_tried(tmp_path: Path) -> None:
    problem = the_problem(tmp_path, OK + "skill: skills/nope\n")
    check(problem, tmp_path, 3, "$.skill", f"looked for {tmp_path.resolve() / 'skills' / 'nope' / 'SKILL.md'}")


def test_paths_a_scenario_names_stay_in_its_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "skill").mkdir()
    (tmp_path / "skill" / "SKILL.md").write_text("---\nname: s\n---\n")
    home.mkdir()
    for text, where in (
        (OK + "expect: {transcript: ../t.txt}\n", "$.expect.transcript"),
        (OK + f"expect: {{transcript: {tmp_path / 't.txt'}}}\n", "$.expect.transcript"),
        (OK + "skill: ../skill\n", "$.skill"),
    ):
        problem = the_problem(home, text)
        assert problem.path == where and "outside the scenario's folder" in problem.message, problem
    inside = scenario_of(home, OK + "expect: {transcript: golden/../golden/t.txt}\n")
    assert inside.expect.transcript == home.resolve() / "golden" / "t.txt"
