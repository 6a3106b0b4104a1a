"""YAML scenario files as ``pytest.File`` and one ``pytest.Item`` per scenario document."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest._code.code import (
    ExceptionInfo,
    ReprExceptionInfo,
    ReprFileLocation,
    ReprTracebackNative,
    TerminalRepr,
)

from pytest_distproc.errors import DistprocError, Problem, ScenarioError
from pytest_distproc.plugin.running import SEED_KEY, extensions_for, finished, located_mismatches_for, run_for
from pytest_distproc.scenario.loader import LoadedDocument, load_file, not_a_scenario
from pytest_distproc.scenario.model import MarkSpec, Scenario

if TYPE_CHECKING:  # the run-time modules load on the first run, not at pytest start-up
    from pytest_distproc.run.model import Run

SECTION = "distproc transcript"
PLAN_SECTION = "distproc fault plan"
MARK = "distproc"
"""The mark on every scenario item (``-m distproc``, ``-m "not distproc"``); the plugin registers it."""


class ScenarioFailed(AssertionError):
    """A scenario ran but its history or output did not match: every mismatch, at once.

    An ``AssertionError`` so that tools around pytest (allure, pytest-json-report, junitxml) call it a
    failure, not an error. ``lines`` holds the YAML line each mismatch points at (its ``expect`` key; the
    document's first line for an invariant, given as None), ``first`` the index of the mismatch the failure
    is located at: the first failing ``expect`` key in the file.
    """

    def __init__(self, run: Run, mismatches: list[str], lines: list[int | None] | None = None) -> None:
        self.run, self.mismatches = run, mismatches
        self.keyed = [line is not None for line in lines] if lines is not None else [False] * len(mismatches)
        self.lines = [line if line is not None else run.scenario.line for line in lines or [None] * len(mismatches)]
        super().__init__("\n".join(mismatches))

    @property
    def first(self) -> int:
        """Index of the mismatch at the first failing ``expect`` key in the file (ties: the first reported);
        the first mismatch when only invariants failed."""
        keyed = [i for i in range(len(self.mismatches)) if self.keyed[i]]
        return min(keyed, key=lambda i: (self.lines[i], i)) if keyed else 0

    def located(self, path: str | Path | None = None) -> list[str]:
        """``FILE:LINE: mismatch`` per mismatch, in the order the checks found them."""
        shown = str(path if path is not None else self.run.scenario.path)
        return [f"{shown}:{line}: {message}" for line, message in zip(self.lines, self.mismatches, strict=True)]

    def render(self, style: str = "long", path: str | Path | None = None) -> str:
        """The failure as text. ``style`` is pytest's ``--tb``: ``line`` one line per mismatch, ``short``
        the mismatches and the timeline, anything else (``auto``, ``long``, ``native``) everything."""
        from pytest_distproc.report.text import timeline, transitions_table

        run = self.run
        shown = str(path if path is not None else run.scenario.path)
        located = self.located(shown)
        if style == "line":
            return "\n".join(located)
        count = len(self.mismatches)
        parts = [f"scenario {run.scenario.name!r} failed: {self.mismatches[self.first]}"]
        if count > 1:
            parts.append(f"all {count} mismatches:")
            parts.extend(f"  - {m}" for m in located)
        elif count == 1:
            parts.append(f"  at {shown}:{self.lines[0]}")
        parts += ["", "timeline:", timeline(run)]
        if style == "short":
            return "\n".join(parts)
        if run.planned_faults:
            parts += ["", f"fault plan (seed {run.seed}):"]
            parts += [f"  {f['kind']} in region {f['region']} on attempt {f['attempt']}" for f in run.planned_faults]
        parts += ["", "transcript:", run.transcript.rstrip(), "",
                  "transitions:", transitions_table(run), "", f"seed: {run.seed}  backend: {run.backend}"]
        stacks = [a for a in run.attempts if a.timed_out and a.stack]
        for record in stacks:
            parts += ["", f"stack of hung {record.task} attempt {record.attempt} (pid {record.pid}):", record.stack]
        return "\n".join(parts)


def _longrepr(text: str, path: str | Path, line: int, message: str) -> ReprExceptionInfo:
    """A failure as pytest's own shape: the text as a native traceback (it survives xdist's report
    serialization) and a crash location (``-r`` lines, ``--tb=line``, json-report's ``crash``, junitxml)."""
    native = ReprTracebackNative([text + "\n"] if text else [])
    return ReprExceptionInfo(reprtraceback=native, reprcrash=ReprFileLocation(str(path), line, message))


def _more(count: int) -> str:
    return f" (and {count - 1} more)" if count > 1 else ""


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[ScenarioItem]:
        extensions = extensions_for(self)
        try:
            documents = load_file(self.path, extensions)
        except Exception as exc:  # a bug of ours must fail this file's item, not stop the session's collection
            problem = Problem(str(self.path), 1, "$", "pytest-distproc failed to load this file "
                              f"({type(exc).__name__}: {exc}); this is a bug in pytest-distproc: please report it "
                              "with the file")
            documents = [LoadedDocument(self.path.stem, 1, error=ScenarioError([problem]))]
        reason = not_a_scenario(documents)
        if reason is not None:  # a docker-compose.yaml beside the scenarios: skipped, with the reason (-rs)
            pytest.skip(reason)
        for document in documents:
            item = ScenarioItem.from_parent(self, name=document.name, document=document)
            if document.scenario is not None:
                item.label(document.scenario)
            yield item

    def mark(self, index: int, spec: MarkSpec) -> pytest.MarkDecorator:
        """``pytest.mark.NAME(...)`` for ``marks[index]``, as pytest makes it for a test function: an unknown
        name warns (located at the YAML line), and is a collection error of this file under --strict-markers."""
        at = f"$.marks[{index}]"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                decorator: pytest.MarkDecorator = getattr(pytest.mark, spec.name)
            except pytest.fail.Exception as exc:
                raise self.CollectError(f"{self.path}:{spec.line or 1}: {at}: {exc.msg}; register it in the ini "
                                        f"option markers (markers = {spec.name}: what it means), as for any "
                                        "test") from None
        for warning in caught:
            warnings.warn_explicit(f"{at}: {warning.message}", warning.category, str(self.path), spec.line or 1)
        return decorator.with_args(*spec.args, **spec.kwargs)



class ScenarioItem(pytest.Item):
    def __init__(self, *, document: LoadedDocument, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.document = document
        self.run_result: Run | None = None
        self.run_properties: list[tuple[str, object]] = []
        """``distproc.*`` facts of the last run, for the call report (plugin/outputs.py publishes them)."""

    @property
    def scenario(self) -> Scenario | None:
        return self.document.scenario

    def label(self, scenario: Scenario) -> None:
        """The scenario's ``marks:`` (``-m``), and keywords for ``-k``: every fault kind it injects (``crash``;
        with ``explore:``, the kinds plans may use, and ``explore``), every region's task
        (``process-region-b``) and the backend it runs on (``backend-fork``)."""
        backend = self.config.getoption("distproc_backend") or scenario.backend
        words = {f"backend-{backend}", *(region.task for region in scenario.regions),
                 *(fault.kind for fault in scenario.faults)}
        if scenario.explore is not None:
            words |= {"explore", *scenario.explore.faults}
        self.extra_keyword_matches.update(words)
        for word in words:
            self.keywords[word] = True
        self.add_marker(MARK)
        parent = self.parent
        assert isinstance(parent, ScenarioFile)
        for index, spec in enumerate(scenario.marks):
            self.add_marker(parent.mark(index, spec))

    def runtest(self) -> None:
        self.run_properties = []
        if self.document.error is not None:
            raise self.document.error
        scenario = self.document.scenario
        assert scenario is not None
        if scenario.explore is not None:  # search fault plans (pytest_distproc.explore.search) instead of one run
            self._explore(scenario)
            return
        run = run_for(self, scenario)
        self.run_result = run
        self._check(run)

    def _check(self, run: Run) -> None:
        try:  # after the item holds its run (reports read it): a raising hook loses neither the run nor its story
            finished(self, run)
        except BaseException:
            self.add_report_section("call", SECTION, run.transcript)
            raise
        found = located_mismatches_for(self, run)
        self.run_properties.extend([("distproc.outcome", run.outcome), ("distproc.seed", run.seed),
                                    ("distproc.attempts", len(run.attempts)),
                                    ("distproc.faults", len(run.faults_fired))])
        if found:  # the transcript goes into the failure report, printed once (not also as a section)
            expect, default = run.scenario.expect, run.scenario.line
            lines = [(expect.line_of(at) or default) if at is not None else None for at, _ in found]
            raise ScenarioFailed(run, [message for _, message in found], lines)
        if run.planned_faults:
            plan = "".join(f"# fault plan: {f['kind']} in region {f['region']} on attempt {f['attempt']}\n"
                           for f in run.planned_faults)
            self.add_report_section("call", PLAN_SECTION, f"# seed {run.seed}\n{plan}")
        self.add_report_section("call", SECTION, run.transcript)

    def _explore(self, scenario: Scenario) -> None:
        from pytest_distproc.explore.search import ExplorationFailed, explore

        result = explore(scenario, seed=self.config.stash[SEED_KEY], extensions=extensions_for(self))
        self.add_report_section("call", SECTION, f"explored {result.runs} runs of {scenario.name!r} in "
                                f"{result.seconds:.2f} s ({result.runs_per_minute:.0f} runs/minute)\n")
        self.run_properties.append(("distproc.explored", result.runs))
        if result.finding is not None:
            raise ExplorationFailed(result.finding)

    def repr_failure(
        self, excinfo: ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        error = excinfo.value
        tbstyle = str(style or self.config.getoption("tbstyle", "auto"))
        if isinstance(error, ScenarioFailed):
            index, shown = error.first, self._shown_path()
            text = error.render(tbstyle, shown)
            if tbstyle == "line":  # pytest prints the crash line itself, after this text: each mismatch once
                text = "\n".join(line for i, line in enumerate(error.located(shown)) if i != index)
            return _longrepr(text, shown, error.lines[index],
                             error.mismatches[index] + _more(len(error.mismatches)))
        if isinstance(error, ScenarioError):
            problems = sorted(error.problems, key=lambda p: p.line or 0)
            first = problems[0]
            text = "\n".join(str(p) for p in problems[1:]) if tbstyle == "line" else error.render()
            return _longrepr(text, self._shown_path(), first.line or self.document.line,
                             f"{first.path}: {first.message}{_more(len(problems))}")
        shown, line = self._shown_path(), self.document.line
        if isinstance(error, DistprocError):
            head = str(error).strip().splitlines()
            return _longrepr(f"{shown}:{line}: {error}", shown, line, head[0] if head else type(error).__name__)
        if isinstance(error, pytest.fail.Exception):  # stopped from outside (pytest-timeout) or by a hook
            reason = " ".join(str(error.msg or "stopped").split())
            return _longrepr(f"{shown}:{line}: scenario {self.name!r} stopped: {reason}", shown, line, reason)
        return super().repr_failure(excinfo, style=style)

    def _shown_path(self) -> str:
        """The scenario file as the user typed it: relative to where pytest was started, when inside it."""
        try:
            return str(self.path.relative_to(self.config.invocation_params.dir))
        except ValueError:
            return str(self.path)

    def annotations(self, excinfo: ExceptionInfo[BaseException]) -> list[tuple[str, int, str]]:
        """Where a failure points in the YAML (file, line, message): one per failing scenario, at its first
        failing ``expect`` key, and one per problem of a malformed one. For CI annotations."""
        error = excinfo.value
        if isinstance(error, ScenarioFailed):
            index = error.first
            text = "\n".join([f"scenario {error.run.scenario.name!r} failed: {error.mismatches[index]}",
                              *(f"- {m}" for i, m in enumerate(error.mismatches) if i != index)])
            return [(str(self.path), error.lines[index], text)]
        if isinstance(error, ScenarioError):
            return [(p.file, p.line or self.document.line, f"{p.path}: {p.message}") for p in error.problems]
        if isinstance(error, (DistprocError, pytest.fail.Exception)):
            message = str(error.msg if isinstance(error, pytest.fail.Exception) else error)
            return [(str(self.path), self.document.line, f"scenario {self.name!r}: {message}")]
        return []

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.document.line - 1, f"scenario: {self.name}"
