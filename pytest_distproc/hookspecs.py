"""Hooks of pytest-distproc, added with ``pytest_addhooks``; implement them in a conftest.py or plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_distproc.coordinator import Run
    from pytest_distproc.scenario.model import Scenario
    from pytest_distproc.tasklist import Transition


@pytest.hookspec(firstresult=True)
def pytest_distproc_make_backend(config: pytest.Config, scenario: Scenario) -> str | None:
    """Name the backend for ``scenario`` (``fork``, ``inline``, ``ray``); first non-None wins.

    Ours is ``trylast`` and answers the scenario's own ``backend`` (or ``--distproc-backend``).
    """


def pytest_distproc_transition(config: pytest.Config, scenario: Scenario, transition: Transition) -> None:
    """Called in the coordinator's loop for every TaskList transition, in history order."""


def pytest_distproc_run_finished(config: pytest.Config, run: Run) -> None:
    """Called once a scenario's run finished, before its expectations are checked."""


def pytest_distproc_check(config: pytest.Config, run: Run) -> list[str] | None:
    """Return extra mismatches for ``run`` (an expectation kind of your own); all results are joined."""


__all__ = ["Any"]
