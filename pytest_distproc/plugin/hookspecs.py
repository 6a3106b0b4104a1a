"""Hooks of pytest-distproc, added with ``pytest_addhooks``. Implement any of them in a conftest.py
or a plugin; the plugin's own implementations are ``trylast`` so yours win.

Registration hooks (skills, fault kinds, expectation kinds) are called once per folder, when the first
scenario file there is collected or the ``distproc`` fixture is first used there, with the conftests
that apply to that folder; their names are known to that folder's loader and runs, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_distproc.attempt.faults import FaultKind
    from pytest_distproc.attempt.skills import Skill
    from pytest_distproc.backends.protocol import Backend
    from pytest_distproc.run.model import Run
    from pytest_distproc.scenario.model import Scenario
    from pytest_distproc.tasklist import Transition


@pytest.hookspec(firstresult=True)
def pytest_distproc_make_backend(config: pytest.Config, scenario: Scenario, name: str, run_dir: str) -> Backend | None:
    """Return the backend that runs ``scenario``'s attempts; the first non-None result wins.

    ``name`` is the scenario's ``backend`` (or ``--distproc-backend``; ``inline`` for ``context:
    inline``), ``run_dir`` the run's private temp dir, removed after the run. Ours (trylast) builds
    fork, inline or ray. A backend follows the protocol of :class:`pytest_distproc.backends.Backend`.
    """


def pytest_distproc_register_skills(config: pytest.Config) -> Mapping[str, Skill] | None:
    """Return ``{name: skill}`` to make skills available as ``skill: name``.

    A skill is ``fn(records, context) -> summary`` and runs in the forked child.
    """


def pytest_distproc_fault_kinds(config: pytest.Config) -> list[FaultKind] | None:
    """Return extra :class:`pytest_distproc.attempt.faults.FaultKind` objects, usable as ``kind: NAME`` in faults."""


def pytest_distproc_expectation_kinds(config: pytest.Config) -> Mapping[str, Any] | None:
    """Return ``{key: checker}``: ``expect: {key: value}`` then runs ``checker(run, value) -> list[str]``
    (mismatches; empty when the expectation held)."""


def pytest_distproc_transition(config: pytest.Config, scenario: Scenario, transition: Transition) -> None:
    """Called in the coordinator's loop for every TaskList transition, in history order."""


@pytest.hookspec(firstresult=True)
def pytest_distproc_aggregate(
    config: pytest.Config, scenario: Scenario, summaries: list[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """Merge the surviving regions' summaries into the total; the first non-None result wins.

    Ours (trylast) is :func:`pytest_distproc.attempt.stats.merge`.
    """


def pytest_distproc_run_finished(config: pytest.Config, run: Run) -> None:
    """Called once a scenario's run finished, before its expectations are checked."""


def pytest_distproc_check(config: pytest.Config, run: Run) -> list[str] | None:
    """Return extra mismatches for every ``run`` (a check of your own); all results are joined."""
