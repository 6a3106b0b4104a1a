"""YAML scenario files as ``pytest.File`` and one ``pytest.Item`` per scenario document."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest._code.code import ExceptionInfo, TerminalRepr

from pytest_distproc.errors import DistprocError, ScenarioError
from pytest_distproc.plugin.running import SEED_KEY, extensions_for, finished, mismatches_for, run_for
from pytest_distproc.scenario.loader import LoadedDocument, load_file, not_a_scenario
from pytest_distproc.scenario.model import MarkSpec, Scenario

if TYPE_CHECKING:  # the run-time modules load on the first run, not at pytest start-up
    from pytest_distproc.run.model import Run

SECTION = "distproc transcript"
PLAN_SECTION = "distproc fault plan"
MARK = "distproc"
"""The mark on every scenario item (``-m distproc``, ``-m "not distproc"``); the plugin registers it."""


class ScenarioFailed(Exception):
    """A scenario ran but its history or output did not match: every mismatch, at once."""

    def __init__(self, run: Run, mismatches: list[str]) -> None:
        self.run, self.mismatches = run, mismatches
        super().__init__("\n".join(mismatches))

    def render(self) -> str:
        from pytest_distproc.report.text import timeline, transitions_table

        run = self.run
        count = len(self.mismatches)
        head = f"scenario {run.scenario.name!r} failed: {self.mismatches[0]}"
        parts = [head]
        if count > 1:
            parts.append(f"all {count} mismatches:")
            parts.extend(f"  - {m}" for m in self.mismatches)
        parts += ["", "timeline:", timeline(run), "", "transcript:", run.transcript.rstrip(), "",
                  "transitions:", transitions_table(run), "", f"seed: {run.seed}  backend: {run.backend}"]
        stacks = [a for a in run.attempts if a.timed_out and a.stack]
        for record in stacks:
            parts += ["", f"stack of hung {record.task} attempt {record.attempt} (pid {record.pid}):", record.stack]
        return "\n".join(parts)


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[ScenarioItem]:
        documents = load_file(self.path, extensions_for(self))
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
        if run.planned_faults:
            plan = "".join(f"# fault plan: {f['kind']} in region {f['region']} on attempt {f['attempt']}\n"
                           for f in run.planned_faults)
            self.add_report_section("call", PLAN_SECTION, f"# seed {run.seed}\n{plan}")
        self.add_report_section("call", SECTION, run.transcript)
        finished(self, run)  # after the item holds its run and transcript: a raising hook loses neither
        mismatches = mismatches_for(self, run)
        self.run_properties.extend([("distproc.outcome", run.outcome), ("distproc.seed", run.seed),
                                    ("distproc.attempts", len(run.attempts)),
                                    ("distproc.faults", len(run.faults_fired))])
        if mismatches:
            raise ScenarioFailed(run, mismatches)

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
        if isinstance(error, ScenarioFailed):
            return error.render()
        if isinstance(error, ScenarioError):
            return error.render()
        if isinstance(error, DistprocError):
            return f"{self.path}:{self.document.line}: {error}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.document.line - 1, f"scenario: {self.name}"
