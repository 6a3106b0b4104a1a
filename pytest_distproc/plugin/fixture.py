"""The ``distproc`` fixture: build and run a scenario inside an ordinary test and assert freely."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from pytest_distproc.checks import expectations
from pytest_distproc.plugin.items import SEED_KEY
from pytest_distproc.scenario.loader import load_one
from pytest_distproc.scenario.model import Scenario

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run


class Distproc:
    """Loads scenarios (relative data files resolve beside the test file) and runs them.

    >>> run = distproc.run({"regions": {"A": {"records": 10}}, "faults": [{"region": "A", "kind": "raise"}]})
    >>> run.tasks.sequence("process-region-a")
    """

    def __init__(self, config: pytest.Config, folder: Path, name: str) -> None:
        self.config, self.folder, self.name = config, folder, name

    def load(self, scenario: Mapping[str, Any] | str) -> Scenario:
        """A scenario from a dict or a YAML string; a malformed one raises :class:`ScenarioError`."""
        text = scenario if isinstance(scenario, str) else yaml.safe_dump(dict(scenario), sort_keys=False)
        return load_one(text, self.folder / f"{self.name}.yaml")

    def run(self, scenario: Mapping[str, Any] | str | Scenario, *, backend: str | None = None) -> Run:
        """Run it over real processes (or ``backend``) and return the run: history, results, transcript."""
        from pytest_distproc.run.coordinator import Coordinator

        loaded = scenario if isinstance(scenario, Scenario) else self.load(scenario)
        hook = self.config.hook
        return Coordinator(
            loaded,
            seed=self.config.stash.get(SEED_KEY, 0),
            backend=backend,
            backend_factory=lambda name, run_dir: hook.pytest_distproc_make_backend(
                config=self.config, scenario=loaded, name=name, run_dir=run_dir
            ),
        ).run()

    @staticmethod
    def check(run: Run) -> list[str]:
        """The mismatches a scenario item would report: its ``expect`` plus the invariants of every run."""
        return expectations.check(run)


@pytest.fixture
def distproc(request: pytest.FixtureRequest) -> Distproc:
    """Build and run fork/join scenarios from a dict or a YAML string inside an ordinary test."""
    return Distproc(request.config, request.path.parent, request.node.name.replace("/", "_"))
