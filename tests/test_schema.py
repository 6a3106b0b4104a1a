"""The scenario JSON Schema: valid draft 2020-12, accepts every shipped scenario, and agrees with the
loader on a set of valid and invalid documents. (That the docs site serves this same file is checked by
``tests/test_docs.py::test_mkdocs_build_strict``.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # the real validator (in the 'test' extra)
import pytest

from pytest_distproc.attempt import faults
from pytest_distproc.scenario import loader
from pytest_distproc.scenario.model import (
    BACKENDS,
    CONTEXTS,
    FAULT_COMMON_KEYS,
    FAULT_KIND_KEYS,
    ON_REGION_FAILURE,
    OUTCOMES,
)
from pytest_distproc.scenario.yamlsource import parse_documents_safely

ROOT = Path(__file__).resolve().parents[1]


def _schema() -> dict[str, Any]:
    text = resources.files("pytest_distproc").joinpath("schema/scenario.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _validator() -> Any:
    return jsonschema.Draft202012Validator(_schema())


def test_schema_is_valid_draft_2020_12() -> None:
    schema = _schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_enums_follow_the_loader() -> None:
    defs = _schema()["$defs"]
    assert defs["fault"]["properties"]["kind"]["enum"] == list(faults.BUILTIN)
    assert defs["expect"]["properties"]["status"]["additionalProperties"]["enum"] == list(loader.STATES)
    assert [v for v in defs["scenario"]["properties"]["backend"]["enum"] if v] == list(BACKENDS)
    assert [v for v in defs["scenario"]["properties"]["context"]["enum"] if v] == list(CONTEXTS)
    assert defs["policy"]["properties"]["on_region_failure"]["enum"] == list(ON_REGION_FAILURE)
    assert [v for v in defs["expect"]["properties"]["outcome"]["enum"] if v] == list(OUTCOMES)
    assert set(defs["scenario"]["properties"]) == set(loader.TOP_KEYS)
    assert set(defs["policy"]["properties"]) == set(loader.POLICY_KEYS)
    assert set(defs["fault"]["properties"]) == set(loader.FAULT_KEYS)
    assert set(defs["expect"]["properties"]) == set(loader.EXPECT_KEYS)


def test_each_fault_kinds_keys_follow_the_one_table() -> None:
    """scenario/model.py's FAULT_KIND_KEYS is the table: the loader reads it, the schema must say the same."""
    fault = _schema()["$defs"]["fault"]
    in_schema = {
        rule["if"]["properties"]["kind"]["const"]: rule["then"]["propertyNames"]["enum"]
        for rule in fault["allOf"] if "propertyNames" in rule["then"]
    }
    assert in_schema == {kind: [*FAULT_COMMON_KEYS, *own] for kind, own in FAULT_KIND_KEYS.items()}
    assert list(FAULT_KIND_KEYS) == list(faults.BUILTIN)
    assert {*FAULT_COMMON_KEYS, *(k for own in FAULT_KIND_KEYS.values() for k in own)} == set(loader.FAULT_KEYS)


SHIPPED = sorted(p for p in (ROOT / "scenarios").rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_scenario_is_valid_against_the_schema(path: Path) -> None:
    validator = _validator()
    for document in parse_documents_safely(path.read_text(encoding="utf-8"), str(path)):
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document.value)]
        assert not errors, f"{path}:{document.line}: {errors}"


BASE = "regions: {A: {records: 10}, B: {records: 5}}\n"

# (id, YAML document, valid?) -- the schema and the loader must both give the verdict.
EXAMPLES: list[tuple[str, str, bool]] = [
    ("minimal", BASE, True),
    ("full", BASE + """\
name: full-1
description: every section
seed: 3
skill: region-stats
context: fork
backend: inline
policy: {timeout: 250ms, retries: 2, backoff: 0.5, on_region_failure: partial, memory_limit_mb: 64}
faults:
  - {region: A, kind: crash, exit_code: 9, attempts: [1, 2]}
  - {region: B, kind: signal, signal: sigterm, attempts: [1]}
  - {region: A, kind: drop, fraction: 0.5, attempts: [3]}
  - {region: A, kind: delay, seconds: 1.5s, attempts: [3]}
  - {region: B, kind: raise, message: gone, attempts: [2]}
expect:
  outcome: COMPLETE
  status: {process-region-a: COMPLETE, aggregate-results: COMPLETE}
  transitions: {process-region-b: [PENDING, IN_PROGRESS, COMPLETE]}
  order: ["process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"]
  concurrent: ["process-region-*"]
  attempts: {process-region-a: 3}
  aggregate: {total: {records: 15, sum: 1.5}, regions: {A: {records: 10}}, missing: [B]}
  transcript: golden/full.txt
""", True),
    ("null-sections", BASE + "description:\nfaults:\npolicy:\nexpect:\n", True),
    ("inline-region", "regions: {C: {inline: [{value: 1.5}, {value: 2, other: x}]}}\n", True),
    ("matrix", BASE + "matrix: {kind: [raise, crash]}\nfaults: [{region: A, kind: '${kind}'}]\n", True),
    ("no-regions", "name: x\n", False),
    ("empty-regions", "regions: {}\n", False),
    ("regions-list", "regions: [A, B]\n", False),
    ("unknown-top-key", BASE + "retries: 1\n", False),
    ("bad-name", BASE + "name: 'has space'\n", False),
    ("negative-seed", BASE + "seed: -1\n", False),
    ("seed-string", BASE + "seed: abc\n", False),
    ("bad-region-id", "regions: {'-A': {records: 1}}\n", False),
    ("two-sources", "regions: {A: {records: 1, inline: [{value: 1}]}}\n", False),
    ("no-source", "regions: {A: {}}\n", False),
    ("records-negative", "regions: {A: {records: -1}}\n", False),
    ("records-string", "regions: {A: {records: many}}\n", False),
    ("inline-no-value", "regions: {A: {inline: [{v: 1}]}}\n", False),
    ("unknown-context", BASE + "context: thread\n", False),
    ("unknown-backend", BASE + "backend: k8s\n", False),
    ("timeout-zero", BASE + "policy: {timeout: 0s}\n", False),
    ("timeout-word", BASE + "policy: {timeout: five seconds}\n", False),
    ("retries-too-many", BASE + "policy: {retries: 101}\n", False),
    ("unknown-policy-key", BASE + "policy: {retry: 1}\n", False),
    ("on-failure", BASE + "policy: {on_region_failure: ignore}\n", False),
    ("memory-small", BASE + "policy: {memory_limit_mb: 8}\n", False),
    ("fault-kind", BASE + "faults: [{region: A, kind: explode}]\n", False),
    ("fault-no-kind", BASE + "faults: [{region: A}]\n", False),
    ("fault-no-region", BASE + "faults: [{kind: raise}]\n", False),
    ("fault-key", BASE + "faults: [{region: A, kind: raise, when: 1}]\n", False),
    ("fault-attempt-zero", BASE + "faults: [{region: A, kind: raise, attempts: [0]}]\n", False),
    ("fault-exit-code", BASE + "faults: [{region: A, kind: crash, exit_code: 0}]\n", False),
    ("fault-signal", BASE + "faults: [{region: A, kind: signal, signal: NOPE}]\n", False),
    ("delay-no-seconds", BASE + "faults: [{region: A, kind: delay}]\n", False),
    ("fraction-zero", BASE + "faults: [{region: A, kind: drop, fraction: 0}]\n", False),
    ("faults-mapping", BASE + "faults: {region: A, kind: raise}\n", False),
    ("outcome", BASE + "expect: {outcome: DONE}\n", False),
    ("state", BASE + "expect: {status: {process-region-a: DONE}}\n", False),
    ("transitions-empty", BASE + "expect: {transitions: {process-region-a: []}}\n", False),
    ("order-syntax", BASE + "expect: {order: ['process-region-a before aggregate-results']}\n", False),
    ("order-state", BASE + "expect: {order: ['process-region-*:DONE < aggregate-results:IN_PROGRESS']}\n", False),
    ("order-vacuous", BASE + "expect: {order: [{rule: 'process-region-a:FAILED < aggregate-results:COMPLETE', "
     "vacuous: true}]}\n", True),
    ("order-vacuous-key", BASE + "expect: {order: [{rule: 'process-region-a:FAILED < aggregate-results:COMPLETE', "
     "vacous: true}]}\n", False),
    ("order-vacuous-flag", BASE + "expect: {order: [{rule: 'process-region-a:FAILED < aggregate-results:COMPLETE', "
     "vacuous: 1}]}\n", False),
    ("timeout-past-a-day", BASE + "policy: {timeout: 1e300}\n", False),
    ("attempts-negative", BASE + "expect: {attempts: {process-region-a: -1}}\n", False),
    ("expect-key", BASE + "expect: {total: 15}\n", False),
    ("aggregate-key", BASE + "expect: {aggregate: {sum: 1}}\n", False),
    ("summary-key", BASE + "expect: {aggregate: {total: {count: 15}}}\n", False),
    ("transcript-list", BASE + "expect: {transcript: [a.txt]}\n", False),
    ("transcript-empty", BASE + "expect: {transcript: ''}\n", False),
    ("tolerance", BASE + "expect: {aggregate: {total: {sum: 1.5}, tolerance: 0.01}}\n", True),
    ("tolerance-mapping", BASE + "expect: {aggregate: {tolerance: {rel: 0.01, abs: 0.5}}}\n", True),
    ("tolerance-over-one", BASE + "expect: {aggregate: {tolerance: 2}}\n", False),
    ("tolerance-key", BASE + "expect: {aggregate: {tolerance: {relative: 0.01}}}\n", False),
    ("tolerance-abs-negative", BASE + "expect: {aggregate: {tolerance: {abs: -1}}}\n", False),
    ("tolerance-empty", BASE + "expect: {aggregate: {tolerance: {}}}\n", False),
    ("tolerance-word", BASE + "expect: {aggregate: {tolerance: 1%}}\n", False),
    ("backoff", BASE + "policy: {retries: 1, backoff: 200ms}\nexpect: {backoff: true}\n", True),
    ("backoff-duration", BASE + "policy: {retries: 1}\nexpect: {backoff: 50ms}\n", True),
    ("backoff-false", BASE + "policy: {retries: 1}\nexpect: {backoff: false}\n", False),
    ("backoff-zero", BASE + "policy: {retries: 1}\nexpect: {backoff: 0s}\n", False),
    ("matrix-empty", BASE + "matrix: {}\n", False),
    ("hang-seconds", BASE + "faults: [{region: A, kind: hang, seconds: 0.2}]\n", False),
    ("raise-exit-code", BASE + "faults: [{region: A, kind: raise, exit_code: 4}]\n", False),
    ("crash-fraction", BASE + "faults: [{region: A, kind: crash, fraction: 0.5}]\n", False),
    ("raise-signal", BASE + "faults: [{region: A, kind: raise, signal: TERM}]\n", False),
    ("explore-faults", BASE + "explore: {examples: 3}\nfaults: [{region: A, kind: raise}]\n", True),
    ("explore-expect", BASE + "explore: {examples: 3}\nexpect: {outcome: FAILED}\n", False),
    ("explore-null-expect", BASE + "explore: {examples: 3}\nexpect:\n", True),
    ("transcript-absolute", BASE + "expect: {transcript: /tmp/t.txt}\n", False),
    ("transcript-up", BASE + "expect: {transcript: ../t.txt}\n", False),
    ("data-file-up", "regions: {A: {file: ../x.jsonl}}\n", False),
    ("data-file-suffix", "regions: {A: {file: x.txt}}\n", False),
    ("inline-inf", "regions: {A: {inline: [{value: .inf}]}}\n", False),
    ("inline-nan", "regions: {A: {inline: [{value: .nan}]}}\n", False),
    ("sum-minus-inf", BASE + "expect: {aggregate: {total: {sum: -.inf}}}\n", False),
    ("seconds-inf", BASE + "faults: [{region: A, kind: delay, seconds: .inf}]\n", False),
    ("task-region-prefix", BASE + "tasks: {process-region-x: {blocked_by: [process-region-a]}}\n", False),
    ("not-a-mapping", "- regions\n", False),
    ("marks", BASE + """\
marks:
  - slow
  - xfail
  - {xfail: {reason: known race, strict: true, run: false}}
  - {xfail: {condition: "sys.platform == 'win32'", reason: r}}
  - {skip: not today}
  - {skip: {reason: not today}}
  - {skipif: "sys.version_info < (3, 10)"}
  - {skipif: {condition: "sys.platform == 'darwin'", reason: r}}
  - {skipif: {condition: false, reason: never}}
  - {timeout: [5]}
  - {custom: {level: 3}}
  - {flaky: 2}
""", True),
    ("marks-null", BASE + "marks:\n", True),
    ("marks-not-a-list", BASE + "marks: slow\n", False),
    ("mark-two-names", BASE + "marks: [{slow: null, fast: null}]\n", False),
    ("mark-bad-name", BASE + "marks: ['has space']\n", False),
    ("mark-underscore", BASE + "marks: [_private]\n", False),
    ("mark-number", BASE + "marks: [3]\n", False),
    ("mark-parametrize", BASE + "marks: [{parametrize: [x, [1, 2]]}]\n", False),
    ("mark-usefixtures", BASE + "marks: [{usefixtures: tmp_path}]\n", False),
    ("xfail-string", BASE + "marks: [{xfail: known bug}]\n", False),
    ("xfail-raises", BASE + "marks: [{xfail: {reason: r, raises: OSError}}]\n", False),
    ("xfail-strict-string", BASE + "marks: [{xfail: {strict: 'yes please'}}]\n", False),
    ("xfail-bool-no-reason", BASE + "marks: [{xfail: {condition: true}}]\n", False),
    ("skip-list", BASE + "marks: [{skip: [a]}]\n", False),
    ("skipif-no-condition", BASE + "marks: [{skipif: {reason: r}}]\n", False),
    ("skipif-bool-no-reason", BASE + "marks: [{skipif: {condition: true}}]\n", False),
    ("skipif-number", BASE + "marks: [{skipif: 3}]\n", False),
]

# Beyond JSON Schema: references between parts of one document, and the file system. The schema
# accepts these; the loader rejects them with file:line (listed so that the difference is explicit).
LOADER_ONLY: list[tuple[str, str]] = [
    ("fault-unknown-region", BASE + "faults: [{region: Z, kind: raise}]\n"),
    ("expect-unknown-task", BASE + "expect: {status: {process-region-z: COMPLETE}}\n"),
    ("order-glob-matches-nothing", BASE + "expect: {order: ['x-*:COMPLETE < aggregate-results:IN_PROGRESS']}\n"),
    ("missing-data-file", "regions: {A: {file: nowhere.jsonl}}\n"),
    ("unknown-skill", BASE + "skill: no-such-skill\n"),
    ("backoff-true-without-policy-backoff", BASE + "policy: {retries: 1}\nexpect: {backoff: true}\n"),
    ("backoff-without-retries", BASE + "expect: {backoff: 50ms}\n"),
    ("skipif-condition-syntax", BASE + "marks: [{skipif: {condition: 'sys.platform ==', reason: r}}]\n"),
    ("attempt-beyond-retries", BASE + "faults: [{region: A, kind: raise, attempts: [2]}]\n"),
    ("fault-never-fires", BASE + "faults: [{region: A, kind: crash}, {region: A, kind: raise}]\n"),
    ("transcript-up-in-the-middle", BASE + "expect: {transcript: golden/../../t.txt}\n"),
    ("seed-float", BASE + "seed: 5.0\n"),
    ("regions-equal-but-for-case", "regions: {A: {records: 1}, a: {records: 1}}\n"),
    ("task-cycle", BASE + "tasks: {eu: {blocked_by: [process-region-a, us]}, us: {blocked_by: [eu]}}\n"),
]


def _schema_ok(text: str, tmp_path: Path) -> bool:
    documents = parse_documents_safely(text, str(tmp_path / "s.yaml"))
    assert len(documents) == 1 and not documents[0].problems, documents[0].problems
    return bool(_validator().is_valid(documents[0].value))


def _loader_ok(text: str, tmp_path: Path) -> bool:
    documents = loader.load_text(text, tmp_path / "s.yaml")
    return all(d.error is None for d in documents)


@pytest.mark.parametrize(("text", "valid"), [(t, v) for _, t, v in EXAMPLES], ids=[i for i, _, _ in EXAMPLES])
def test_schema_and_loader_agree(text: str, valid: bool, tmp_path: Path) -> None:
    assert _loader_ok(text, tmp_path) is valid, "loader"
    assert _schema_ok(text, tmp_path) is valid, "schema"


@pytest.mark.parametrize("text", [t for _, t in LOADER_ONLY], ids=[i for i, _ in LOADER_ONLY])
def test_cross_references_are_the_loaders_job(text: str, tmp_path: Path) -> None:
    assert _schema_ok(text, tmp_path)
    assert not _loader_ok(text, tmp_path)


def test_docs_explain_the_editor_modeline() -> None:
    text = (ROOT / "docs" / "schema.md").read_text()
    assert "# yaml-language-server: $schema=" in text
    for name in ("seed.yaml", "retry.yaml"):
        assert (ROOT / "scenarios" / name).read_text().startswith(
            "# yaml-language-server: $schema=../pytest_distproc/schema/scenario.schema.json\n")


# --- a real schema client over every scenario we ship or show, and over the bad-input corpus ----------------
#
# check-jsonschema (python-jsonschema behind a YAML 1.2 reader, ruamel.yaml) reads each YAML document of
# scenarios/, docs/examples/ and tests/corpus/ as an editor's schema client would. Wherever the schema can decide,
# its verdict must be the loader's. It cannot decide a document that is not YAML a client can read (a syntax
# error, a tab, a duplicate key, a Python tag, an alias bomb, bytes that are not UTF-8: our YAML layer refuses
# those before any schema), and it cannot see what lies outside one value's shape: the cases below, each with
# the reason (docs/schema.md lists the same rules). Every exception must still happen: a stale entry fails.

SCHEMA_FILE = ROOT / "pytest_distproc" / "schema" / "scenario.schema.json"
CLIENT_FILES = sorted(
    p for folder in ("scenarios", "docs/examples", "tests/corpus") for p in (ROOT / folder).rglob("*")
    if p.suffix in (".yaml", ".yml")
)
SCHEMA_CANNOT: dict[str, str] = {
    # document (path#index of its document in the file) -> why only the loader refuses it
    "docs/examples/hooks/hooks.yaml#0": "names a skill, a fault kind and an expectation kind its conftest adds: "
    "valid with them; the shipped schema and a loader without that conftest both refuse it",
    "tests/corpus/data-file-missing.yaml#0": "the file system: the data file does not exist",
    "tests/corpus/transcript-outside-deep.yaml#0": "a path that leaves the folder after a '..' in the middle "
    "(the schema refuses absolute paths and a leading '..'; symlinks it cannot see either)",
    "tests/corpus/duplicate-names.yaml#1": "two documents of one file with one name",
    "tests/corpus/order-glob-no-task.yaml#0": "a glob must match a task of this scenario",
    "tests/corpus/unknown-aggregate-region.yaml#0": "a region named in expect must be a region of this scenario",
    "tests/corpus/unknown-fault-region.yaml#0": "a fault's region must be a region of this scenario",
    "tests/corpus/unknown-task-status.yaml#0": "a task named in expect must be a task of this scenario",
    "tests/corpus/unknown-task-transitions.yaml#0": "a task named in expect must be a task of this scenario",
    "tests/corpus/skill-dir-outside.yaml#0": "a skill directory outside the scenario's folder (a skill is a "
    "name, a module path or a directory: the schema cannot tell them apart)",
    "tests/corpus/skill-unknown.yaml#0": "a skill must be registered, importable or a directory with a SKILL.md",
    "tests/corpus/fault-attempt-beyond-retries.yaml#0": "attempts against policy.retries (two sections)",
    "tests/corpus/fault-attempt-beyond-partial.yaml#0": "attempts against policy.retries (two sections)",
    "tests/corpus/fault-never-fires.yaml#0": "two faults on one attempt (two list items)",
    "tests/corpus/regions-one-task.yaml#0": "regions A and a become one task (keys equal but for case)",
    "tests/corpus/coordinator-outside.yaml#0": "a coordinator file leaving the folder ('coordinator' is one "
    "string, a module path or a file path: the schema cannot tell them apart)",
    "tests/corpus/seed-float.yaml#0": "JSON does not tell 5.0 from 5: the schema's integer accepts 5.0",
    "tests/corpus/retries-underscore.yaml#0": "check-jsonschema's YAML reader (ruamel.yaml) reads 1_0 as the integer "
    "10, which YAML 1.2's core schema leaves a string (docs/schema.md, How values are read)",
    "tests/corpus/seed-binary.yaml#0": "check-jsonschema's YAML reader reads 0b101 as the integer 5, which YAML "
    "1.2's core schema leaves a string",
    "tests/corpus/expect-backoff-no-policy-backoff.yaml#0": "expect.backoff: true against policy.backoff "
    "(two sections)",
    "tests/corpus/tasks-cycle.yaml#0": "a cycle in blocked_by",
    "tests/corpus/tasks-region-lost.yaml#0": "a region whose task never reaches aggregate-results",
}


def _documents(path: Path) -> list[tuple[int, str]]:
    """The YAML documents of a file as (first line, text), split on '---' lines; [] when it is not YAML a
    client reads."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    if any(d.problems for d in parse_documents_safely(text, str(path))):
        return []
    documents, line = [], 1
    for chunk in re.split(r"(?m)^---[ \t]*(?:#.*)?\n", text):
        if parse_documents_safely(chunk, str(path)):  # not only comments
            documents.append((line, chunk))
        line += chunk.count("\n") + 1
    return documents


def _client_verdicts(documents: dict[str, str], folder: Path) -> dict[str, bool]:
    """Run check-jsonschema once over every document; ``{key: valid}``."""
    names = {}
    for number, (key, text) in enumerate(documents.items()):
        file = folder / f"doc{number}.yaml"
        file.write_text(text, encoding="utf-8")
        names[file.name] = key
    command = [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA_FILE), "--output-format",
               "json", *sorted(names)]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(done.stdout)
    assert not report["parse_errors"], report["parse_errors"]
    refused = {names[e["filename"]] for e in report["errors"]}
    return {key: key not in refused for key in names.values()}


def test_a_real_schema_client_agrees_with_the_loader(tmp_path: Path) -> None:
    documents: dict[str, str] = {}
    loaded: dict[str, bool] = {}
    for path in CLIENT_FILES:
        found = _documents(path)
        # the loader reads the whole file (names must be unique in it): a document is refused if it has a problem
        problems = [p for d in loader.load_file(path) if d.error is not None for p in d.error.problems]
        if not found:  # not YAML a client reads: no schema decides it, and the loader must refuse it
            assert problems, f"{path}: the loader accepts a file no schema client can read"
            continue
        ends = [start for start, _ in found[1:]] + [10**9]
        for index, ((start, text), end) in enumerate(zip(found, ends, strict=True)):
            key = f"{path.relative_to(ROOT)}#{index}"
            documents[key] = text
            loaded[key] = not any(start <= (p.line or 0) < end for p in problems)
    assert len(documents) > 60, sorted(documents)
    schema = _client_verdicts(documents, tmp_path)
    disagree = []
    for key in documents:
        if key in SCHEMA_CANNOT:
            if loaded[key] or (not schema[key] and not key.startswith("docs/examples/hooks/")):
                disagree.append(f"{key}: listed as loader-only, but loader ok={loaded[key]}, schema ok={schema[key]}")
        elif loaded[key] != schema[key]:
            disagree.append(f"{key}: loader ok={loaded[key]}, schema ok={schema[key]}")
    stale = sorted(set(SCHEMA_CANNOT) - set(documents))
    assert not stale, f"exceptions for documents that no longer exist: {stale}"
    assert not disagree, "\n".join(disagree)
