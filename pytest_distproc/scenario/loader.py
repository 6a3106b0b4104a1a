"""Plain YAML data -> :class:`Scenario`, collecting every problem of a document at once.

Each problem names the file, the line, the ``$.path`` and what would be accepted, in the spirit of
Hypothesis' validation messages: show the bad value, where it came from, and what to do.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pytest_distproc.attempt import data
from pytest_distproc.attempt import faults as faults_module
from pytest_distproc.attempt.faults import FaultKind
from pytest_distproc.errors import Problem, ScenarioError
from pytest_distproc.scenario import matrix
from pytest_distproc.scenario.extensions import Extensions
from pytest_distproc.scenario.files import NotAFile, kind_of, read_bytes
from pytest_distproc.scenario.graph import parse_tasks
from pytest_distproc.scenario.model import (
    AGGREGATE_TASK,
    BACKENDS,
    CONTEXTS,
    FAULT_COMMON_KEYS,
    FAULT_KIND_KEYS,
    MODEL_FAULT_KINDS,
    ON_REGION_FAILURE,
    OUTCOMES,
    Expect,
    Explore,
    FaultSpec,
    MarkSpec,
    OrderRule,
    Policy,
    RegionSpec,
    Scenario,
    Tolerance,
    region_task,
)
from pytest_distproc.scenario.yamlsource import Document, child_path, parse_documents_safely, yaml11_hint
from pytest_distproc.tasklist import State

T = TypeVar("T")

TOP_KEYS = (
    "name", "description", "seed", "regions", "skill", "context", "backend", "policy", "faults", "expect",
    "explore",
    "coordinator",
    "tasks",
    "marks",
    "claude_code",
    "source",
)
SOURCE_TOP_KEYS = ("claude_code",)
POLICY_KEYS = ("timeout", "retries", "backoff", "on_region_failure", "memory_limit_mb")
EXPLORE_KEYS = ("examples", "faults", "max_faults", "interleavings")
FAULT_KEYS = ("region", "kind", "attempts", "exit_code", "signal", "seconds", "fraction", "message")
MODEL_FAULT_KEYS = ("region", "kind", "status", "count", "agent", "seconds")
CLAUDE_CODE_KEYS = ("script", "timeout", "replay", "live")
EXPECT_KEYS = ("outcome", "status", "transitions", "order", "concurrent", "attempts", "aggregate", "transcript",
               "backoff", "spread", "attempts_on_distinct_nodes")
SPREAD_KEYS = ("min_nodes",)
AGGREGATE_KEYS = ("total", "regions", "missing", "tolerance")
TOLERANCE_KEYS = ("rel", "abs")
ENDING_KINDS = ("raise", "crash", "signal", "hang", "oom")
"""Built-in kinds after which the attempt goes no further (a delay ends it only when it outlasts the timeout)."""
OPEN_REGION_TASK = "process-region-*"
"""What globs are matched against when the regions come from a recording (any region task may exist)."""
SUMMARY_KEYS = ("records", "sum", "mean", "min", "max", "variance")
SOURCE_KEYS = ("records", "file", "inline")
DATA_SUFFIXES = (".jsonl", ".ndjson", ".csv")
SIGNALS = ("KILL", "TERM", "SEGV", "ABRT", "INT", "HUP", "QUIT", "BUS", "FPE", "ILL", "USR1", "USR2")
STATES = tuple(s.value for s in State)
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
ORDER = re.compile(r"^\s*([^\s:<]+):([A-Za-z_]+)\s*<\s*([^\s:<]+):([A-Za-z_]+)\s*$")
ORDER_EXAMPLE = "'process-region-*:COMPLETE < aggregate-results:IN_PROGRESS'"
ORDER_KEYS = ("rule", "vacuous")
MAX_SECONDS = 86_400.0
"""The longest duration a scenario may write (24h): a wait past it never ends in a test run, and far past it
overflows the clocks it is handed to (``1e300`` raised ``OverflowError`` in the coordinator's selector)."""
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
REGION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class LoadedDocument:
    """One document of a scenario file: a scenario, or the error that stops it (never both)."""

    name: str
    line: int
    scenario: Scenario | None = None
    error: ScenarioError | None = None
    foreign: str = ""
    """Why this document is not a scenario at all (no key of the format at its top level); see
    :func:`not_a_scenario`. Such a document still carries its error."""


def load_file(path: str | Path, extensions: Extensions | None = None) -> list[LoadedDocument]:
    """Load every document of a scenario file. Problems never raise: each document carries its own.

    ``extensions``: the skills, fault kinds and expectation kinds the file may name (default: built-ins).
    """
    path = Path(path)
    shown = str(path)
    try:
        raw = read_bytes(path)  # never blocks: a FIFO named like a scenario is refused, not waited on
    except NotAFile as exc:
        return [_failed(path.stem, 1, Problem(shown, None, "$", f"cannot read file: it is {exc}, not a regular "
                                              "file; a scenario is a YAML file"))]
    except OSError as exc:
        return [_failed(path.stem, 1, Problem(shown, None, "$", f"cannot read file: {exc.strerror}"))]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [
            _failed(
                path.stem,
                line,
                Problem(shown, line, "$", f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
                        "save the file as UTF-8"),
            )
        ]
    return load_text(text, path, extensions)


def load_text(text: str, path: str | Path, extensions: Extensions | None = None) -> list[LoadedDocument]:
    """Load scenario documents from YAML ``text`` as if read from ``path`` (data files resolve beside it)."""
    path = Path(path)
    known = extensions or Extensions()
    documents = [d for d in parse_documents_safely(text, str(path)) if d.value is not None or d.problems]
    if not documents:
        problem = Problem(str(path), 1, "$", "no scenario in this file: it is empty or holds only comments; "
                          "write a mapping with at least 'regions', e.g. regions: {A: {records: 10}}")
        return [_failed(path.stem, 1, problem)]
    loaded: list[LoadedDocument] = []
    sources: list[Document] = []
    many = len(documents) > 1
    for index, original in enumerate(documents):
        default_name = f"{path.stem}-{index + 1}" if many else path.stem
        foreign = _foreign(original.value) if original.value is not None else ""
        for doc, suffix in matrix.expand(original, str(path)):
            item = _load_document(doc, path, default_name, known)
            if suffix:
                item = _with_suffix(item, suffix)
            if foreign and item.error is not None:
                item = replace(item, foreign=foreign)
            loaded.append(item)
            sources.append(doc)
    _reject_duplicate_names(loaded, sources, str(path))
    return loaded


SCENARIO_KEYS = (*(k for k in TOP_KEYS if k not in ("name", "description")), "matrix")
"""The keys that make a document a scenario: ``name`` and ``description`` alone do not (a conda
``environment.yml`` or a Helm ``Chart.yaml`` has them too)."""


def not_a_scenario(documents: list[LoadedDocument]) -> str | None:
    """Why a whole file is not a scenario file (None: it is one, or meant to be one).

    Each document is judged on its own top level (:func:`_foreign`); a file is not a scenario file when none
    of its documents is a scenario. In a file where one document is a scenario, the others are judged as
    scenarios too: a stray document there is a mistake, and its errors say why.
    """
    if not documents or not all(d.foreign for d in documents):
        return None
    first = documents[0]
    if len(documents) == 1:
        head = f"no key of the scenario format at its top level ({first.foreign})"
    else:
        head = (f"none of its {len(documents)} documents has a key of the scenario format at its top level "
                f"(line {first.line}: {first.foreign})")
    return (f"not a scenario: {head}; a scenario has regions, and its keys are among {', '.join(SCENARIO_KEYS)}; "
            "the distproc_files ini option chooses which files are scenarios")


def _foreign(value: Any) -> str:
    """Why one document is not a scenario at all, or "" when it is, or means to be, one: its top level (or,
    for a list, one of its mappings) has a key of :data:`SCENARIO_KEYS` or one typo away from one."""
    if isinstance(value, dict):
        keys = [k for k in value if isinstance(k, str)]
        # Any exact key first: a scenario starts with name and description, one typo from no key of the format.
        if any(k in SCENARIO_KEYS for k in keys) or any(_near(k, SCENARIO_KEYS) for k in keys):
            return ""
        shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        return f"its keys are {shown}" if keys else "it is an empty mapping"
    if isinstance(value, list):
        if any(isinstance(item, dict) and not _foreign(item) for item in value):
            return ""  # a list of scenarios: a mistake the loader explains
        return "its top level is a list"
    return f"its top level is {_shown(value)}"


def _near(key: str, choices: tuple[str, ...]) -> bool:
    """``key`` is one of ``choices`` or one typo from one (a letter added, dropped, changed or two swapped)."""
    lowered = key.lower()
    return any(_one_typo(lowered, choice) for choice in choices)


def _one_typo(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _with_suffix(item: LoadedDocument, suffix: str) -> LoadedDocument:
    name = f"{item.name}[{suffix}]"
    scenario = replace(item.scenario, name=name) if item.scenario is not None else None
    return LoadedDocument(name, item.line, scenario=scenario, error=item.error)


def load_one(text: str, path: str | Path = "<string>.yaml", extensions: Extensions | None = None) -> Scenario:
    """Load exactly one scenario or raise :class:`ScenarioError` (for the Python API and tests)."""
    docs = load_text(text, path, extensions)
    if len(docs) != 1:
        raise ScenarioError([Problem(str(path), None, "$", f"expected one YAML document, found {len(docs)}")])
    if docs[0].error is not None:
        raise docs[0].error
    assert docs[0].scenario is not None
    return docs[0].scenario


def _failed(name: str, line: int, problem: Problem) -> LoadedDocument:
    return LoadedDocument(name, line, error=ScenarioError([problem]))


def _reject_duplicate_names(loaded: list[LoadedDocument], documents: list[Document], filename: str) -> None:
    """Two documents with one name would be two test items with one id: the later one becomes an error."""
    first: dict[str, int] = {}
    for index, (doc, source) in enumerate(zip(loaded, documents, strict=True)):
        if doc.name not in first:
            first[doc.name] = doc.line
            continue
        line = source.lines.get("$.name", doc.line)
        problem = Problem(
            filename, line, "$.name",
            f"scenario name {doc.name!r} is already used by the document on line {first[doc.name]}; "
            "names must be unique in a file (they are the test ids): rename one",
        )
        earlier = doc.error.problems if doc.error is not None else []
        error = ScenarioError(sorted([*earlier, problem], key=_by_line))
        loaded[index] = LoadedDocument(f"{doc.name}-line{doc.line}", doc.line, error=error, foreign=doc.foreign)


def _by_line(problem: Problem) -> int:
    return problem.line if problem.line is not None else 0


class _Checker:
    """Walks one document, turning values into model objects and collecting problems."""

    def __init__(self, doc: Document, path: Path, extensions: Extensions) -> None:
        self.doc, self.path, self.file = doc, path, str(path)
        self.extensions = extensions
        self.problems: list[Problem] = list(doc.problems)

    def fail(self, at: str, message: str) -> None:
        if at in self.doc.dropped:  # the YAML layer already said why this value is missing
            return
        self.problems.append(Problem(self.file, self.doc.line_of(at), at, message))

    def mapping(self, value: Any, at: str, keys: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(at, f"expected a mapping, got {_shown(value)}")
            return {}
        if keys is not None:
            for key in value:
                if key not in keys:
                    hint = _close(key, keys)
                    accepted = ", ".join(keys)
                    self.fail(child_path(at, key), f"unknown key {key!r}{hint}; accepted keys: {accepted}")
        return value

    def section(self, top: dict[str, Any], key: str, default: Any) -> Any:
        """An optional section; ``key:`` with nothing after it (null) counts as absent."""
        value = top.get(key)
        return default if value is None else value

    def typed(
        self, value: Any, at: str, kind: type[T], what: str, check: Callable[[T], bool] | None = None
    ) -> T | None:
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = _finite(value)
            value = float(value) if ok else value
        if ok and kind is float and not math.isfinite(value):
            ok = False
        if not ok or (check is not None and not check(value)):
            hint = yaml11_hint(value, "boolean" if kind is bool else "number") if kind in (int, float, bool) else ""
            self.fail(at, f"expected {what}, got {_shown(value)}{hint}")
            return None
        return value  # type: ignore[no-any-return]

    def choice(
        self, value: Any, at: str, choices: tuple[str, ...], what: str = "value", note: str = ""
    ) -> str | None:
        if not isinstance(value, str) or value not in choices:
            hint = _close(value, choices)
            self.fail(at, f"expected one of {', '.join(choices)}{note}, got {_shown(value)}: "
                      f"unknown {what}{hint}")
            return None
        return value

    def duration(self, value: Any, at: str) -> float | None:
        seconds: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = value if value >= 0 else None  # NaN too fails; a 401-digit int stays an int here
        elif isinstance(value, str) and (match := DURATION.match(value)) is not None:
            seconds = float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2) or "s"]
        if seconds is None:
            self.fail(at, "expected a duration like 5s, 250ms, 1.5m or a number of seconds (zero or more), "
                      f"got {_shown(value)}{yaml11_hint(value, 'duration')}")
            return None
        if not seconds <= MAX_SECONDS:
            self.fail(at, f"expected a duration of at most 24h (1440m, {MAX_SECONDS:.0f} s), got {_shown(value)}: "
                      "a wait that long never ends in a test run; write a shorter one, like 5s")
            return None
        return float(seconds)


def _load_document(doc: Document, path: Path, default_name: str, extensions: Extensions) -> LoadedDocument:
    c = _Checker(doc, path, extensions)
    if doc.value is None:  # the YAML layer could not give us a document; it said why
        return LoadedDocument(default_name, doc.line, error=ScenarioError(c.problems))
    if not isinstance(doc.value, dict):
        c.fail("$", f"a scenario is a mapping with at least 'regions', got {_shown(doc.value)}")
        return LoadedDocument(default_name, doc.line, error=ScenarioError(c.problems))
    top = c.mapping(doc.value, "$", TOP_KEYS)
    name = default_name
    if "name" in top:
        given = c.typed(top["name"], "$.name", str, "a name of letters, digits, '-', '_' or '.'",
                        lambda s: bool(NAME.match(s)))
        name = given or default_name

    description = c.typed(c.section(top, "description", ""), "$.description", str, "a string") or ""
    seed = None
    if top.get("seed") is not None:
        seed = c.typed(top["seed"], "$.seed", int, "a non-negative integer", lambda n: n >= 0)
    source = _source(c, top["source"]) if "source" in top else None
    regions, declared = _regions(c, top, path) if "source" not in top or "regions" in top else ([], [])
    skill = _skill(c, c.section(top, "skill", "region-stats"), path)
    backend = c.choice(c.section(top, "backend", "fork"), "$.backend", BACKENDS, "backend") or "fork"
    own_context = "fork" if backend == "claude-code" else _skill_context(c, skill)  # Claude Code reads that SKILL.md
    context = c.choice(c.section(top, "context", own_context), "$.context", CONTEXTS, "context") or "fork"
    coordinator = None
    if "coordinator" in top:
        coordinator = c.typed(top["coordinator"], "$.coordinator", str,
                              "'package.module:factory' or 'file.py:factory' (relative to the scenario)",
                              lambda s: ":" in s)
        target = coordinator.rpartition(":")[0] if coordinator else ""
        if target.endswith(".py") and _inside(c, target, "$.coordinator", "coordinator file") is None:
            coordinator = None  # like every path a scenario names: inside its folder
    policy = _policy(c, c.section(top, "policy", {}))
    faults = _faults(c, c.section(top, "faults", []), declared, policy, backend)
    claude_script, claude_timeout = (_claude_code(c, top.get("claude_code"), backend) if "claude_code" in top
                                     else (None, None))
    claude_replay = _claude_replay(c, top.get("claude_code")) if "claude_code" in top else None
    claude_live = bool(c.typed(top["claude_code"]["live"], "$.claude_code.live", bool, "true or false")) if (
        isinstance(top.get("claude_code"), dict) and "live" in top["claude_code"]) else False
    graph = parse_tasks(top.get("tasks"), declared, c.fail, c.doc.line_of) if "tasks" in top else ()
    expect = _expect(c, c.section(top, "expect", {}), declared, [t.id for t in graph], policy,
                     open_regions="source" in top and "regions" not in top)
    explore = _explore(c, top.get("explore"))
    marks = _marks(c, c.section(top, "marks", []))
    if explore is not None and top.get("expect") is not None:
        c.fail("$.expect", "'expect' does not apply beside 'explore': exploration draws a new fault plan for "
               "every run and checks what must hold for every plan (the invariants, the outcome the plan "
               "implies), so one fixed expectation cannot; remove 'expect', or put it in a document of its "
               "own without 'explore' (a '---' document in the same file). 'faults' beside 'explore' are used: "
               "they stay in every plan")
    if c.problems:
        return LoadedDocument(name, doc.line, error=ScenarioError(sorted(c.problems, key=_by_line)))
    scenario = Scenario(
        name=name, path=path, line=doc.line, regions=tuple(regions), description=description, seed=seed,
        skill=skill, context=context, backend=backend, policy=policy, faults=tuple(faults), expect=expect,
        explore=explore,
        coordinator=coordinator, tasks=graph, marks=marks, claude_script=claude_script,
        claude_timeout=claude_timeout, claude_replay=claude_replay, source=source,
        claude_live=claude_live,
    )
    return LoadedDocument(name, doc.line, scenario=scenario)


def _regions(c: _Checker, top: dict[str, Any], path: Path) -> tuple[list[RegionSpec], list[str]]:
    """The valid regions, and every region id written.

    References (faults, expect) are checked against every id written, so one broken region is one
    problem, not one more for each place that names it.
    """
    example = "e.g. regions: {A: {records: 1000}}"
    if "regions" not in top:
        c.fail("$", f"missing required key 'regions': a mapping of region id -> data, {example}")
        return [], []
    value = top["regions"]
    if not isinstance(value, dict):
        c.fail("$.regions", f"expected a mapping of region id -> data, {example}; got {_shown(value)}")
        return [], []
    if not value:
        c.fail("$.regions", f"needs at least one region, {example}")
        return [], []
    regions: list[RegionSpec] = []
    declared: list[str] = []
    seen_tasks: dict[str, str] = {}
    for region_id, spec in value.items():
        at = child_path("$.regions", region_id)
        declared.append(region_id)
        if not REGION_ID.match(region_id):
            c.fail(at, f"region id {region_id!r} must start with a letter or digit and hold only letters, "
                   "digits, '-' or '_' (it names the task process-region-<id>); rename it")
            continue
        task = region_task(region_id)
        if task in seen_tasks:
            c.fail(at, f"regions {seen_tasks[task]!r} and {region_id!r} both become task {task!r} "
                   "(ids are lower-cased); rename one")
            continue
        seen_tasks[task] = region_id
        body = c.mapping(spec, at, SOURCE_KEYS)
        given = [k for k in SOURCE_KEYS if k in body]
        if len(given) != 1:
            if isinstance(spec, dict):
                got = f"got {' and '.join(given)}" if given else "got none"
                c.fail(at, "a region needs exactly one data source: records (a count), file (JSON Lines or "
                       f"CSV beside the scenario) or inline (a list of records); {got}")
            continue
        line = c.doc.line_of(at)
        kind = given[0]
        if kind == "records":
            count = c.typed(body["records"], f"{at}.records", int, "a non-negative integer (a count of "
                            "generated records)", lambda n: n >= 0)
            if count is not None:
                regions.append(RegionSpec(region_id, records=count, line=line))
        elif kind == "file":
            resolved = _data_file(c, body["file"], f"{at}.file", path)
            if resolved is not None:
                regions.append(RegionSpec(region_id, file=resolved, line=line))
        else:
            rows = _inline(c, body["inline"], f"{at}.inline")
            if rows is not None:
                regions.append(RegionSpec(region_id, inline=rows, line=line))
    return regions, declared


def _data_file(c: _Checker, value: Any, at: str, scenario_path: Path) -> Path | None:
    accepted = f"a path to a {', '.join(DATA_SUFFIXES)} file, relative to the scenario file"
    name = c.typed(value, at, str, accepted, lambda s: bool(s.strip()))
    if name is None:
        return None
    resolved = _inside(c, name, at, "data file", keep="keep data files in the scenario's folder or below it")
    if resolved is None:
        return None
    if resolved.suffix.lower() not in DATA_SUFFIXES:
        c.fail(at, f"data file {name!r} has suffix {resolved.suffix or '(none)'!r}; accepted: "
               f"{', '.join(DATA_SUFFIXES)} (JSON Lines or CSV)")
        return None
    kind = kind_of(resolved)
    if kind is not None:  # a FIFO would block the read below; a directory or a loop would raise
        c.fail(at, f"data file {name!r} is {kind}, not a regular file (looked at {resolved}); give a JSON Lines "
               "or CSV file, relative to the scenario file")
        return None
    if not resolved.is_file():
        c.fail(at, f"data file {name!r} does not exist (looked for {resolved}); paths are relative to "
               "the scenario file")
        return None
    try:
        data.file_values(resolved)  # a bad row is a load error of this scenario, located in both files
    except (data.DataError, OSError, UnicodeDecodeError) as exc:
        c.fail(at, f"bad data in {name!r}: {exc}")
        return None
    return resolved


def _inside(c: _Checker, name: str, at: str, what: str,
            keep: str = "keep it in the scenario's folder or below it, e.g. golden/NAME.txt") -> Path | None:
    """``name`` resolved in the scenario's folder, or a problem saying why not (a file there need not exist):
    every path a scenario names (data files, goldens, skill folders, coordinator files) goes through here."""
    folder = c.path.parent.resolve()
    try:
        resolved = (folder / name).resolve()
    except RuntimeError as exc:  # Python < 3.13 raises this on a symlink loop
        c.fail(at, f"{what} {name!r} is a symlink loop ({exc}); point it at a regular file, relative to the "
               "scenario file")
        return None
    except (OSError, ValueError) as exc:  # e.g. a NUL byte
        c.fail(at, f"{what} {name!r} is not a usable path ({exc}); give a path relative to the scenario file")
        return None
    if not resolved.is_relative_to(folder):
        c.fail(at, f"{what} {name!r} resolves to {resolved}, outside the scenario's folder {folder}; {keep}")
        return None
    return resolved


def _inline(c: _Checker, value: Any, at: str) -> tuple[dict[str, Any], ...] | None:
    if not isinstance(value, list):
        c.fail(at, f"expected a list of records like [{{value: 1.5}}], got {_shown(value)}")
        return None
    rows: list[dict[str, Any]] = []
    for index, row in enumerate(value):
        row_at = f"{at}[{index}]"
        if not isinstance(row, dict) or "value" not in row:
            c.fail(row_at, f"expected a record with a numeric 'value' like {{value: 1.5}}, got {_shown(row)}")
            continue
        number = row["value"]
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not _finite(number):
            c.fail(f"{row_at}.value", f"expected a finite number, got {_shown(number)}")
            continue
        rows.append({**row, "value": float(number)})
    return tuple(rows)


def _skill(c: _Checker, value: Any, path: Path) -> str:
    skill = c.typed(value, "$.skill", str, "region-stats, 'package.module:function' or a skill directory")
    if skill is None:
        return "region-stats"
    if skill in c.extensions.skills:
        return skill
    if re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", skill):
        return skill
    folder_name, hash_sign, script = skill.partition("#")
    home = path.parent.resolve()
    try:
        folder = (home / folder_name).resolve()
        found = (folder / "SKILL.md").is_file()
    except (OSError, ValueError):
        folder, found = home / folder_name, False
    if found and not folder.is_relative_to(home):
        c.fail("$.skill", f"skill directory {folder_name!r} resolves to {folder}, outside the scenario's folder "
               f"{home}; keep skill directories in the scenario's folder or below it")
        return "region-stats"
    if found:
        if script and not (folder / script).is_file():
            c.fail("$.skill", f"skill directory {folder_name!r} has no script {script!r}; "
                   f"scripts there: {', '.join(sorted(p.name for p in folder.iterdir() if p.is_file()))}")
        return f"{folder}{hash_sign}{script}"
    c.fail("$.skill", f"unknown skill {skill!r}: not a registered skill, not 'package.module:function', and "
           f"no skill directory (looked for {folder / 'SKILL.md'}); use one of "
           f"{', '.join(sorted(c.extensions.skills))}, 'package.module:function', or a directory (relative to "
           "the scenario) holding a SKILL.md")
    return "region-stats"


def _skill_context(c: _Checker, skill: str) -> str:
    """A SKILL.md's own ``context`` applies unless the scenario sets one."""
    if not skill.startswith("/"):
        return "fork"
    from pytest_distproc.attempt.skilldir import SkillDir
    from pytest_distproc.errors import SkillError

    try:
        return SkillDir.load(skill).context
    except SkillError as exc:
        c.fail("$.skill", str(exc))
        return "fork"


def _policy(c: _Checker, value: Any) -> Policy:
    body = c.mapping(value, "$.policy", POLICY_KEYS)
    defaults = Policy()
    timeout = defaults.timeout
    if "timeout" in body:
        given = c.duration(body["timeout"], "$.policy.timeout")
        if given is not None and given <= 0:
            c.fail("$.policy.timeout", f"expected a duration greater than zero, like 5s or 250ms, got "
                   f"{_shown(body['timeout'])}")
        timeout = given or defaults.timeout
    retries = defaults.retries
    if "retries" in body:
        retries = c.typed(body["retries"], "$.policy.retries", int, "an integer from 0 to 100",
                          lambda n: 0 <= n <= 100) or 0
    backoff = c.duration(body["backoff"], "$.policy.backoff") if "backoff" in body else defaults.backoff
    on_failure = defaults.on_region_failure
    if "on_region_failure" in body:
        on_failure = c.choice(body["on_region_failure"], "$.policy.on_region_failure", ON_REGION_FAILURE,
                              "on_region_failure") or "fail"
    memory = defaults.memory_limit_mb
    if "memory_limit_mb" in body:
        memory = c.typed(body["memory_limit_mb"], "$.policy.memory_limit_mb", int, "an integer >= 32",
                         lambda n: n >= 32) or memory
    return Policy(timeout, retries, backoff or 0.0, on_failure, memory)


def _explore(c: _Checker, value: Any) -> Explore | None:
    """``explore: {examples: 200, faults: [raise, crash, hang], max_faults: 3}``: search fault plans."""
    if value is None:
        return None
    body = c.mapping(value, "$.explore", EXPLORE_KEYS)
    defaults = Explore()
    builtin = defaults.faults  # exploration simulates the built-in kinds only
    examples = defaults.examples
    if "examples" in body:
        examples = c.typed(body["examples"], "$.explore.examples", int, "a number of plans to try, from 1 to "
                           "100000", lambda n: 1 <= n <= 100_000) or defaults.examples
    kinds = defaults.faults
    if "faults" in body:
        raw = body["faults"]
        if not isinstance(raw, list) or not raw:
            c.fail("$.explore.faults", f"expected a non-empty list of fault kinds like [raise, crash, hang], "
                   f"got {_shown(raw)}; kinds: {', '.join(builtin)}")
        else:
            chosen = [c.choice(k, f"$.explore.faults[{i}]", builtin, "fault kind") for i, k in enumerate(raw)]
            kinds = tuple(dict.fromkeys(k for k in chosen if k)) or defaults.faults
    max_faults = defaults.max_faults
    if "max_faults" in body:
        given = c.typed(body["max_faults"], "$.explore.max_faults", int, "an integer from 0 to 20",
                        lambda n: 0 <= n <= 20)
        max_faults = defaults.max_faults if given is None else given
    interleavings = defaults.interleavings
    if "interleavings" in body:
        flag = c.typed(body["interleavings"], "$.explore.interleavings", bool, "true or false")
        interleavings = defaults.interleavings if flag is None else flag
    return Explore(examples, kinds, max_faults, interleavings)


MARK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MARK_EXAMPLE = "[slow, {xfail: {reason: ..., strict: true}}, {skip: reason}, {skipif: {condition: ..., reason: ...}}]"
MARK_KEYS = {"skip": ("reason",), "skipif": ("condition", "reason"), "xfail": ("condition", "reason", "run", "strict")}
NOT_FOR_SCENARIOS = {
    "parametrize": "a scenario has no function to parametrize: use matrix: for one item per combination",
    "usefixtures": "fixtures do not run for scenario items: use a conftest hook, or the distproc fixture in a test",
}


def _marks(c: _Checker, value: Any) -> tuple[MarkSpec, ...]:
    """``marks:`` as pytest spells them: ``NAME`` or ``{NAME: arguments}`` (a mapping: keyword arguments,
    a list: positional ones, a scalar: one positional); ``skip``, ``skipif`` and ``xfail`` are checked here."""
    if not isinstance(value, list):
        c.fail("$.marks", f"expected a list of pytest marks like {MARK_EXAMPLE}, got {_shown(value)}")
        return ()
    marks = []
    for index, item in enumerate(value):
        at = f"$.marks[{index}]"
        if isinstance(item, dict) and len(item) == 1:
            name, arguments = next(iter(item.items()))
        elif isinstance(item, str):
            name, arguments = item, None
        else:
            c.fail(at, f"a mark is a name like slow, or a mapping of one name to its arguments like "
                   f"{{xfail: {{reason: ..., strict: true}}}}; got {_shown(item)}")
            continue
        where = child_path(at, name) if isinstance(item, dict) else at
        if not isinstance(name, str) or not MARK_NAME.match(name):
            c.fail(at, f"mark name {_shown(name)} must be a Python name (a letter, then letters, digits or "
                   "'_'), as in pytest.mark.NAME")
            continue
        if name in NOT_FOR_SCENARIOS:
            c.fail(at, f"mark {name!r} does not apply to a scenario: {NOT_FOR_SCENARIOS[name]}")
            continue
        before = len(c.problems)
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = {}
        if isinstance(arguments, dict):
            kwargs = {str(k): v for k, v in arguments.items()}
        elif isinstance(arguments, list):
            args = tuple(arguments)
        elif arguments is not None:
            args = (arguments,)
        if name in MARK_KEYS:
            args, kwargs = _builtin_mark(c, name, arguments, where)
        if len(c.problems) == before:
            marks.append(MarkSpec(name, args, kwargs, c.doc.line_of(at)))
    return tuple(marks)


def _builtin_mark(c: _Checker, name: str, arguments: Any, at: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``skip``, ``skipif`` and ``xfail``: the arguments pytest takes, with pytest's checks made at load time."""
    if arguments is None and name != "skipif":
        return (), {}
    if isinstance(arguments, str) and name in ("skip", "skipif"):
        arguments = {"reason" if name == "skip" else "condition": arguments}
    if not isinstance(arguments, dict):
        shapes = {"skip": "{skip: REASON} or {skip: {reason: REASON}}",
                  "skipif": "{skipif: {condition: \"sys.platform == 'darwin'\", reason: REASON}}",
                  "xfail": "xfail, or {xfail: {reason: REASON, strict: true}} (a string there would be a "
                           "condition in pytest's spelling: give it as condition:)"}[name]
        c.fail(at, f"expected {shapes}; got {_shown(arguments)}")
        return (), {}
    body = c.mapping(arguments, at, MARK_KEYS[name])
    kwargs: dict[str, Any] = {}
    for key, value in body.items():
        if key not in MARK_KEYS[name]:
            continue
        where = child_path(at, key)
        if key == "reason":
            reason = c.typed(value, where, str, "a string saying why")
            if reason is not None:
                kwargs[key] = reason
        elif key in ("run", "strict"):
            flag = c.typed(value, where, bool, "true or false")
            if flag is not None:
                kwargs[key] = flag
        elif isinstance(value, bool):
            kwargs[key] = value
        elif isinstance(value, str):
            try:
                compile(value, f"<{name} condition>", "eval")
            except (SyntaxError, ValueError) as exc:
                detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
                c.fail(where, f"condition {value!r} is not a Python expression ({detail}); pytest evaluates "
                       "it with os, sys, platform and config in scope, e.g. \"sys.platform == 'darwin'\"")
                continue
            kwargs[key] = value
        else:
            c.fail(where, f"expected a condition: a Python expression in a string (evaluated by pytest, with os, "
                   f"sys, platform and config in scope) or true/false; got {_shown(value)}")
    if name == "skipif" and "condition" not in body:
        c.fail(at, "missing required key 'condition': a Python expression in a string, e.g. "
               "{skipif: {condition: \"sys.platform == 'darwin'\", reason: ...}}")
    if isinstance(kwargs.get("condition"), bool) and "reason" not in body:
        c.fail(at, f"a true/false condition needs a 'reason' (pytest requires one for {name} with a boolean)")
    condition = kwargs.pop("condition", None)
    return (() if condition is None else (condition,)), kwargs


def _unknown_region(value: Any, declared: list[str]) -> str:
    hint = _close(value, declared)
    if isinstance(value, bool):
        hint = " (YAML reads true/false as booleans: quote the region id)"
    regions = ", ".join(declared) or "(none)"
    shown = repr(value) if isinstance(value, str) else _shown(value)
    return f"unknown region {shown}{hint}; regions of this scenario: {regions}"


def _faults(c: _Checker, value: Any, declared: list[str], policy: Policy, backend: str = "fork") -> list[FaultSpec]:
    if not isinstance(value, list):
        c.fail("$.faults", f"expected a list of faults like [{{region: B, kind: raise}}], "
               f"got {_shown(value)}")
        return []
    faults: list[tuple[int, FaultSpec]] = []
    for index, item in enumerate(value):
        at = f"$.faults[{index}]"
        before = len(c.problems)
        if isinstance(item, dict) and isinstance(item.get("kind"), str) and item["kind"] in MODEL_FAULT_KINDS:
            model_fault = _model_fault(c, c.mapping(item, at, MODEL_FAULT_KEYS), at, declared, backend)
            if model_fault is not None and len(c.problems) == before:
                faults.append((index, model_fault))
            continue
        body = c.mapping(item, at, FAULT_KEYS)
        if not isinstance(item, dict):
            continue
        region = body.get("region")
        if "region" not in body:
            c.fail(at, f"missing required key 'region' (one of {', '.join(declared) or 'the regions'})")
        elif not isinstance(region, (str, int)) or isinstance(region, bool) or str(region) not in declared:
            c.fail(f"{at}.region", _unknown_region(region, declared))
        kind = None
        if "kind" in body:
            kind = c.choice(body["kind"], f"{at}.kind", tuple(c.extensions.fault_kinds), "fault kind")
        else:
            c.fail(at, f"missing required key 'kind' (one of {', '.join(c.extensions.fault_kinds)})")
        if kind is not None:
            _kind_keys(c, body, at, kind)
        attempts: tuple[int, ...] | None = (1,)
        if "attempts" in body:
            raw = body["attempts"]
            if isinstance(raw, str) and raw in ("all", "*"):
                attempts = None
            elif isinstance(raw, list) and raw and all(_is_int(a) and a >= 1 for a in raw):
                attempts = tuple(sorted(set(raw)))
                last = 1 + policy.retries
                beyond = [a for a in attempts if a > last]
                if beyond:
                    c.fail(f"{at}.attempts", f"attempt {', '.join(map(str, beyond))} never runs: a region gets at "
                           f"most 1 + retries = {last} attempt(s) (policy.retries: {policy.retries}), whether "
                           f"on_region_failure is fail or partial; raise policy.retries to {beyond[-1] - 1} or "
                           f"fault an attempt from 1 to {last}")
            else:
                c.fail(f"{at}.attempts", f"expected a list of attempt numbers from 1, like [1, 2], or 'all'; "
                       f"got {_shown(raw)}")
        exit_code = 3
        if "exit_code" in body:
            exit_code = c.typed(body["exit_code"], f"{at}.exit_code", int, "an exit code from 1 to 255",
                                lambda n: 1 <= n <= 255) or 3
        sig = "KILL"
        if "signal" in body:
            raw_sig = body["signal"]
            name = raw_sig.upper().removeprefix("SIG") if isinstance(raw_sig, str) else raw_sig
            sig = c.choice(name, f"{at}.signal", SIGNALS, "signal", " (with or without SIG)") or "KILL"
        seconds = c.duration(body["seconds"], f"{at}.seconds") if "seconds" in body else None
        if kind == "delay" and "seconds" not in body:
            c.fail(at, "a delay fault needs 'seconds', e.g. {kind: delay, seconds: 0.5}")
        fraction = 0.1
        if "fraction" in body:
            fraction = c.typed(body["fraction"], f"{at}.fraction", float,
                               "a fraction between 0 (exclusive) and 1", lambda f: 0 < f <= 1) or 0.1
        message = c.typed(body.get("message", "injected fault"), f"{at}.message", str, "a string") or ""
        if len(c.problems) == before and kind is not None:
            faults.append((index, FaultSpec(str(region), kind, attempts, exit_code, sig, seconds or 0.0, fraction,
                                            message, c.doc.line_of(at))))
    _unreachable_faults(c, faults, policy)
    return [fault for _, fault in faults]


def _model_fault(c: _Checker, body: dict[str, Any], at: str, declared: list[str], backend: str) -> FaultSpec | None:
    """A fault of the claude-code backend that acts in the scripted model or as coordinator misbehaviour."""
    kind = str(body["kind"])
    if backend != "claude-code":
        c.fail(f"{at}.kind", f"a {kind} fault acts only on the claude-code backend (in its scripted model); "
               f"set 'backend: claude-code', or use a processor fault ({', '.join(FAULT_KIND_KEYS)})")
        return None
    allowed = ("region", "kind", *MODEL_FAULT_KINDS[kind])
    for key in body:
        if key in MODEL_FAULT_KEYS and key not in allowed:
            c.fail(child_path(at, key), f"key {key!r} does not apply to a {kind} fault; it takes: {', '.join(allowed)}")
    region = body.get("region")
    if region is not None and str(region) not in declared:
        c.fail(f"{at}.region", _unknown_region(region, declared))
    status = c.typed(body.get("status", 529), f"{at}.status", int, "an HTTP error status from 400 to 599",
                     lambda n: 400 <= n <= 599) or 529
    count = c.typed(body.get("count", 1), f"{at}.count", int, "a number of requests, at least 1",
                    lambda n: n >= 1) or 1
    agent = c.choice(body.get("agent", ""), f"{at}.agent", ("", "main", "coordinator"), "agent") or ""
    if agent and region is not None:
        c.fail(f"{at}.agent", "give 'agent' or 'region', not both: 'region' names that region's forks")
    seconds = c.duration(body["seconds"], f"{at}.seconds") if "seconds" in body else None
    if kind == "api-stall" and not seconds:
        c.fail(at, "an api-stall fault needs 'seconds', e.g. {kind: api-stall, seconds: 2}")
    return FaultSpec("" if region is None else str(region), kind, (1,), seconds=seconds or 0.0, status=status,
                     count=count, agent=agent, line=c.doc.line_of(at))


def _source(c: _Checker, value: Any) -> Path | None:
    """``source: {claude_code: PATH}``: a recorded run (hook log, transcript, or a folder of them), in the folder."""
    body = c.mapping(value, "$.source", SOURCE_TOP_KEYS)
    if "claude_code" not in body:
        if isinstance(value, dict):
            c.fail("$.source", "expected 'claude_code: PATH' (a hook log, a session transcript .jsonl, or a folder "
                   "holding them), e.g. source: {claude_code: recordings/run1/hooks.jsonl}")
        return None
    name = c.typed(body["claude_code"], "$.source.claude_code", str, "a path relative to the scenario: a hook log, "
                   "a session transcript .jsonl, or a folder holding them")
    found = _inside(c, name, "$.source.claude_code", "recording", "copy the recording into the scenario's folder, "
                    "e.g. recordings/run1/") if name else None
    if found is not None and not found.exists():
        c.fail("$.source.claude_code", f"recording {name!r} does not exist at {found}; record a run (see "
               "docs/regression-test-your-skill.md) or fix the path")
        return None
    return found


def _claude_replay(c: _Checker, value: Any) -> Path | None:
    """``claude_code: {replay: CASSETTE}``: the model's replies of a recorded run, served on loopback."""
    if not isinstance(value, dict) or "replay" not in value:
        return None
    if "script" in value:
        c.fail("$.claude_code.replay", "'script' and 'replay' both say what the model answers; keep one")
    name = c.typed(value["replay"], "$.claude_code.replay", str, "a cassette file relative to the scenario, e.g. "
                   "cassettes/run1.jsonl")
    found = _inside(c, name, "$.claude_code.replay", "cassette") if name else None
    if found is not None and not found.is_file():
        c.fail("$.claude_code.replay", f"cassette {name!r} does not exist at {found}; record one (a run's report "
               "dir keeps it as cassette.jsonl, see docs/regression-test-your-skill.md) or fix the path")
        return None
    return found


def _claude_code(c: _Checker, value: Any, backend: str) -> tuple[Path | None, float | None]:
    """``claude_code: {script: FILE, timeout: DURATION}``: a user's script of the model's turns (a Python file in
    the scenario's folder) and how long the whole CLI run may take."""
    body = c.mapping(value, "$.claude_code", CLAUDE_CODE_KEYS)
    if backend != "claude-code":
        c.fail("$.claude_code", "'claude_code' applies only with 'backend: claude-code'; add that, or remove it")
    timeout = c.duration(body["timeout"], "$.claude_code.timeout") if "timeout" in body else None
    return _claude_script(c, body), timeout


def _claude_script(c: _Checker, body: dict[str, Any]) -> Path | None:
    if "script" not in body:
        return None
    name = c.typed(body["script"], "$.claude_code.script", str, "a Python file relative to the scenario, "
                   "e.g. scripts/model.py")
    if not name:
        return None
    found = _inside(c, name, "$.claude_code.script", "model script")
    if found is not None and not found.is_file():
        c.fail("$.claude_code.script", f"model script {name!r} does not exist at {found}; create it (see "
               "docs/claude-code.md, 'Scripting the model') or fix the path")
        return None
    return found


def _kind_keys(c: _Checker, body: dict[str, Any], at: str, kind: str) -> None:
    """Only the keys of ``kind`` (:data:`FAULT_KIND_KEYS`; a plugin kind's ``keys``, when it gives them)."""
    registered = c.extensions.fault_kinds[kind]
    own = FAULT_KIND_KEYS[kind] if registered is faults_module.BUILTIN.get(kind) else registered.keys
    if own is None:  # a plugin kind that does not say which keys it reads: it gets them all
        return
    allowed = (*FAULT_COMMON_KEYS, *own)
    for key in body:
        if key in FAULT_KEYS and key not in allowed:
            owners = [k for k, keys in FAULT_KIND_KEYS.items() if key in keys]
            belongs = f" (it belongs to {' and '.join(owners)} faults)" if owners else ""
            c.fail(child_path(at, key), f"key {key!r} does not apply to a {kind} fault{belongs}; a {kind} "
                   f"fault takes: {', '.join(allowed)}. Remove it, or change the kind")


def _ends_attempt(fault: FaultSpec, kind: FaultKind | None, policy: Policy) -> bool:
    """Whether the attempt ends where ``fault`` acts, so that a fault acting after it never fires."""
    if fault.kind in ENDING_KINDS:
        return True
    if fault.kind == "delay":
        return fault.seconds >= policy.timeout  # killed by the timeout while it sleeps
    return kind is not None and fault.kind not in FAULT_KIND_KEYS and kind.lethal


def _unreachable_faults(c: _Checker, faults: list[tuple[int, FaultSpec]], policy: Policy) -> None:
    """A fault that cannot fire because an earlier one ends the same attempt: refused, with the reason.

    On one attempt, faults act in their phase ('before' the skill, then 'after' it: corrupt), in list order.
    """
    kinds = c.extensions.fault_kinds
    last = 1 + policy.retries
    reported: set[int] = set()
    for attempt in range(1, last + 1):
        firing = [(i, f) for i, f in faults if f.fires_on(attempt)]
        for region in dict.fromkeys(f.region for _, f in firing):
            acting = sorted((p for p in firing if p[1].region == region),
                            key=lambda p: (kinds[p[1].kind].phase != "before" if p[1].kind in kinds else False, p[0]))
            ender = next((p for p in acting if _ends_attempt(p[1], kinds.get(p[1].kind), policy)), None)
            if ender is None:
                continue
            for index, fault in acting[acting.index(ender) + 1:]:
                if index in reported:
                    continue
                reported.add(index)
                c.fail(f"$.faults[{index}]", f"this {fault.kind} fault never fires on region {region} attempt "
                       f"{attempt}: faults[{ender[0]}] ({ender[1].kind}, line {ender[1].line}) ends that attempt "
                       "first (on one attempt, faults act in list order, corrupt after the skill); put it on "
                       "another attempt with 'attempts', or remove one of them")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _expect(c: _Checker, value: Any, declared: list[str], graph: list[str], policy: Policy | None = None, *,
            open_regions: bool = False) -> Expect:
    """``open_regions``: the regions come from a recording (``source:`` without ``regions:``), so any
    ``process-region-*`` task and any region id may be named; the run reports what the recording lacks."""
    body = c.mapping(value, "$.expect", (*EXPECT_KEYS, *c.extensions.expectation_kinds))
    tasks = [region_task(r) for r in declared] + (graph or [AGGREGATE_TASK])
    if open_regions:
        tasks.append(OPEN_REGION_TASK)

    def task_keys(at: str) -> Iterator[tuple[str, Any, str]]:
        key = at.rsplit(".", 1)[1]
        section = body.get(key)
        if section is None:
            return
        for task, item in c.mapping(section, at, None).items():
            where = child_path(at, task)
            if task not in tasks and not (open_regions and task.startswith("process-region-")):
                c.fail(where, f"unknown task {task!r}{_close(task, tasks)}; tasks of this scenario: "
                       f"{', '.join(tasks)}")
                continue
            yield task, item, where

    outcome = None
    if body.get("outcome") is not None:
        outcome = c.choice(body["outcome"], "$.expect.outcome", OUTCOMES, "outcome")
    status = {t: s for t, v, at in task_keys("$.expect.status") if (s := c.choice(v, at, STATES, "state"))}
    transitions: dict[str, tuple[str, ...]] = {}
    for task, seq, at in task_keys("$.expect.transitions"):
        if not isinstance(seq, list) or not seq:
            c.fail(at, f"expected a list of states like [PENDING, IN_PROGRESS, COMPLETE], got {_shown(seq)}")
            continue
        if all(isinstance(s, str) and s in STATES for s in seq):  # the usual case: no path to format
            transitions[task] = tuple(seq)
            continue
        states = [c.choice(s, f"{at}[{i}]", STATES, "state") for i, s in enumerate(seq)]
        if all(states):
            transitions[task] = tuple(s for s in states if s)
    attempts = {
        t: n for t, v, at in task_keys("$.expect.attempts")
        if (n := c.typed(v, at, int, "a non-negative integer", lambda k: k >= 0)) is not None
    }
    order = tuple(_orders(c, c.section(body, "order", []), tasks))
    concurrent = tuple(_globs(c, c.section(body, "concurrent", []), "$.expect.concurrent", tasks))
    aggregate = _aggregate(c, c.section(body, "aggregate", {}), declared, open_regions)
    extra = {key: body[key] for key in c.extensions.expectation_kinds if key in body}
    transcript = None
    if body.get("transcript") is not None:  # a golden file, beside the scenario; it need not exist yet
        name = c.typed(body["transcript"], "$.expect.transcript", str, "a path like golden/NAME.txt, relative "
                       "to the scenario file", lambda t: bool(t.strip()))
        transcript = _inside(c, name, "$.expect.transcript", "golden transcript") if name else None
        kind = kind_of(transcript) if transcript is not None else None
        if kind is not None:  # reading a FIFO would block the check; a directory cannot be compared
            c.fail("$.expect.transcript", f"golden transcript {name!r} is {kind}, not a regular file; remove it "
                   "(--distproc-update-goldens then writes it) or name another file")
            transcript = None
    backoff = _expect_backoff(c, body["backoff"], policy or Policy()) if body.get("backoff") is not None else None
    lines = {at: line for at, line in c.doc.lines.items() if at == "$.expect" or at.startswith("$.expect.")}
    distinct = body.get("attempts_on_distinct_nodes")
    if distinct is not None:
        distinct = c.typed(distinct, "$.expect.attempts_on_distinct_nodes", bool, "true or false")
    return Expect(outcome, status, transitions, order, concurrent, attempts, aggregate, extra, transcript, backoff,
                  lines, min_nodes=_spread(c, body.get("spread")), distinct_nodes=bool(distinct))


def _spread(c: _Checker, value: Any) -> int | None:
    """``spread: {min_nodes: N}``: the attempts of the run land on at least N nodes."""
    if value is None:
        return None
    body = c.mapping(value, "$.expect.spread", SPREAD_KEYS)
    if "min_nodes" not in body:
        c.fail("$.expect.spread", "expected {min_nodes: N}, the least number of nodes the attempts ran on, "
               f"got {_shown(value)}")
        return None
    return c.typed(body["min_nodes"], "$.expect.spread.min_nodes", int, "an integer of at least 1 (nodes)",
                   lambda n: n >= 1)


def _expect_backoff(c: _Checker, value: Any, policy: Policy) -> float | bool | None:
    """``backoff: true`` (at least the policy's backoff) or a duration (at least that long)."""
    at = "$.expect.backoff"
    if policy.retries == 0 and value is not False:
        c.fail(at, "policy.retries is 0: no attempt is ever retried, so there is no gap to check; set "
               "policy.retries, or leave expect.backoff out")
        return None
    if value is True:
        if policy.backoff <= 0:
            c.fail(at, "'backoff: true' checks the gap policy.backoff asks for, but policy.backoff is 0s; set "
                   "policy.backoff (e.g. 200ms), or write the least gap itself, e.g. backoff: 200ms")
            return None
        return True
    if value is False:
        c.fail(at, "expected true (every retry waited at least policy.backoff) or a duration (at least that "
               "long), like 200ms, got false; to check nothing, leave expect.backoff out")
        return None
    least = c.duration(value, at)
    if least is not None and least <= 0:
        c.fail(at, f"expected a duration above zero, like 200ms (every gap is at least 0s), got {_shown(value)}; "
               "or true for the policy's backoff")
        return None
    return least


def _orders(c: _Checker, value: Any, tasks: list[str]) -> Iterator[OrderRule]:
    if not isinstance(value, list):
        c.fail("$.expect.order", f"expected a list of 'TASKGLOB:STATE < TASKGLOB:STATE' rules like "
               f"[{ORDER_EXAMPLE}], got {_shown(value)}")
        return
    for index, rule in enumerate(value):
        at = f"$.expect.order[{index}]"
        vacuous = False
        if isinstance(rule, dict) and any(k in rule for k in ORDER_KEYS):  # {rule: ..., vacuous: true}
            body = c.mapping(rule, at, ORDER_KEYS)
            if "vacuous" in body:
                vacuous = bool(c.typed(body["vacuous"], f"{at}.vacuous", bool, "true or false"))
            if "rule" not in body:
                c.fail(at, f"missing required key 'rule': the order rule, e.g. {{rule: {ORDER_EXAMPLE}, vacuous: "
                       "true}")
                continue
            rule, at = body["rule"], f"{at}.rule"
        match = ORDER.match(rule) if isinstance(rule, str) else None
        if match is None:
            c.fail(at, f"bad order rule {_shown(rule)}: expected 'TASKGLOB:STATE < TASKGLOB:STATE', e.g. "
                   f"{ORDER_EXAMPLE} (quote the rule in YAML)")
            continue
        left_glob, left_state, right_glob, right_state = match.groups()
        ok = True
        for glob, state in ((left_glob, left_state), (right_glob, right_state)):
            if state not in STATES:
                c.fail(at, f"unknown state {state!r}{_close(state.upper(), STATES)} in order rule {rule!r}; "
                       f"states: {', '.join(STATES)}")
                ok = False
            if not _names_a_task(tasks, glob):
                c.fail(at, f"{glob!r} in order rule {rule!r} matches no task; tasks of this scenario: "
                       f"{', '.join(tasks)}")
                ok = False
        if ok:
            yield OrderRule(left_glob, left_state, right_glob, right_state, vacuous)


def _names_a_task(tasks: list[str], glob: str) -> bool:
    return bool(fnmatch.filter(tasks, glob)) or (OPEN_REGION_TASK in tasks and glob.startswith("process-region-"))


def _globs(c: _Checker, value: Any, at: str, tasks: list[str]) -> Iterator[str]:
    if not isinstance(value, list):
        c.fail(at, f"expected a list of task globs like ['process-region-*'], got {_shown(value)}")
        return
    for index, glob in enumerate(value):
        if not isinstance(glob, str) or not _names_a_task(tasks, glob):
            c.fail(f"{at}[{index}]", f"{_shown(glob)} matches no task; tasks of this scenario: "
                   f"{', '.join(tasks)}")
            continue
        yield glob


def _aggregate(c: _Checker, value: Any, declared: list[str], open_regions: bool = False) -> dict[str, Any]:
    body = c.mapping(value, "$.expect.aggregate", AGGREGATE_KEYS)
    result: dict[str, Any] = {}
    if body.get("tolerance") is not None:
        result["tolerance"] = _tolerance(c, body["tolerance"], "$.expect.aggregate.tolerance")
    if "total" in body:
        result["total"] = _summary(c, body["total"], "$.expect.aggregate.total")
    if "regions" in body:
        regions = {}
        for region_id, summary in c.mapping(body["regions"], "$.expect.aggregate.regions", None).items():
            at = child_path("$.expect.aggregate.regions", region_id)
            if region_id not in declared and not open_regions:
                c.fail(at, _unknown_region(region_id, declared))
                continue
            regions[region_id] = _summary(c, summary, at)
        result["regions"] = regions
    if "missing" in body:
        missing = body["missing"]
        if not isinstance(missing, list) or any(
            not isinstance(m, (str, int)) or isinstance(m, bool) or (str(m) not in declared and not open_regions)
            for m in missing
        ):
            ids = ", ".join(declared) or "(none)"
            c.fail("$.expect.aggregate.missing", "expected a list of region ids (regions that must not "
                   f"reach the aggregate) from: {ids}; got {_shown(missing)}")
        else:
            result["missing"] = [str(m) for m in missing]
    return result


def _tolerance(c: _Checker, value: Any, at: str) -> Tolerance:
    """``tolerance: 0.01`` (relative), ``{rel: 0.01}``, ``{abs: 0.5}`` or both; unwritten parts keep the default."""
    default = Tolerance()
    rel_what = "a relative tolerance from 0 to 1, like 0.01 for 1%"
    if not isinstance(value, dict):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value):
            if not 0 <= value <= 1:
                c.fail(at, f"expected {rel_what} (a number alone is relative), got {_shown(value)}; for an "
                       "absolute tolerance write {abs: 0.5}")
                return default
            return Tolerance(float(value), default.absolute, given=True)
        c.fail(at, f"expected {rel_what}, or a mapping like {{rel: 0.01}}, {{abs: 0.5}} or both, got "
               f"{_shown(value)}")
        return default
    body = c.mapping(value, at, TOLERANCE_KEYS)
    if not any(k in body for k in TOLERANCE_KEYS):
        if not body:
            c.fail(at, "expected rel, abs or both, like {rel: 0.01} or {abs: 0.5}, got an empty mapping")
        return default
    rel = default.relative
    if "rel" in body:
        given_rel = c.typed(body["rel"], f"{at}.rel", float, rel_what, lambda r: 0 <= r <= 1)
        rel = default.relative if given_rel is None else given_rel
    absolute = default.absolute
    if "abs" in body:
        given_abs = c.typed(body["abs"], f"{at}.abs", float, "an absolute tolerance of zero or more, like 0.5",
                            lambda a: a >= 0)
        absolute = default.absolute if given_abs is None else given_abs
    return Tolerance(rel, absolute, given=True)


def _summary(c: _Checker, value: Any, at: str) -> dict[str, float]:
    body = c.mapping(value, at, SUMMARY_KEYS)
    out: dict[str, float] = {}
    for key, number in body.items():
        if key not in SUMMARY_KEYS:
            continue
        checked: float | None
        if key == "records":
            checked = c.typed(number, f"{at}.records", int, "a non-negative integer", lambda n: n >= 0)
        else:
            checked = c.typed(number, f"{at}.{key}", float, "a finite number")
        if checked is not None:
            out[key] = checked
    return out


def _finite(number: float) -> bool:
    """A finite number that fits a float: a 401-digit integer does not (``math.isfinite`` raises on it)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
    return f"{text} ({kind})"


def _close(value: Any, choices: list[str] | tuple[str, ...]) -> str:
    if not isinstance(value, str):
        return ""
    same_but_case = [c for c in choices if c.lower() == value.lower()]
    match = same_but_case or difflib.get_close_matches(value, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""
