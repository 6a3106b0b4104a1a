"""The ``distproc`` fixture: build and run a scenario inside an ordinary test and assert freely."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_distproc.plugin.running import extensions_for, finished, mismatches_for, run_for
from pytest_distproc.scenario.loader import load_one
from pytest_distproc.scenario.model import Scenario
from pytest_distproc.scenario.yamlsource import dump

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run


class Distproc:
    """Loads scenarios (relative data files resolve beside the test file) and runs them the way a scenario
    item does: the same hooks (backend, aggregate, transitions, run finished, checks), journal and seed.

    >>> run = distproc.run({"regions": {"A": {"records": 10}}, "faults": [{"region": "A", "kind": "raise"}]})
    >>> run.tasks.sequence("process-region-a")
    """

    def __init__(self, node: pytest.Item) -> None:
        self.node = node
        self.runs = 0

    def load(self, scenario: Mapping[str, Any] | str) -> Scenario:
        """A scenario from a dict or a YAML string; a malformed one raises :class:`ScenarioError`."""
        text = scenario if isinstance(scenario, str) else dump(dict(scenario))  # "1e3" stays a string
        name = self.node.name.replace("/", "_")
        return load_one(text, self.node.path.parent / f"{name}.yaml", extensions_for(self.node))

    def run(self, scenario: Mapping[str, Any] | str | Scenario, *, backend: str | None = None) -> Run:
        """Run it over real processes (or ``backend``) and return the run: history, results, transcript.

        An explicit ``backend`` runs our coordinator on it, even under ``--distproc-coordinator``."""
        loaded = scenario if isinstance(scenario, Scenario) else self.load(scenario)
        self.runs += 1
        run = run_for(self.node, loaded, backend=backend, journal_name=f"{self.node.nodeid}-{self.runs}")
        finished(self.node, run)
        return run

    def check(self, run: Run) -> list[str]:
        """The mismatches a scenario item would report: its ``expect``, the invariants of every run, and
        what ``pytest_distproc_check`` hooks (goldens among them) add."""
        return mismatches_for(self.node, run)


@pytest.fixture
def distproc(request: pytest.FixtureRequest) -> Distproc:
    """Build and run fork/join scenarios from a dict or a YAML string inside an ordinary test."""
    node = request.node
    assert isinstance(node, pytest.Item)
    return Distproc(node)
