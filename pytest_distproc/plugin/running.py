"""What a scenario item and the ``distproc`` fixture share: a run's settings from the config and the hooks
that apply to a node, the run itself, and the checks an item reports. One path, so both behave alike."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_distproc.checks import expectations
from pytest_distproc.plugin.claude import claude_path, live_url, require_claude_code, save_cassette, skip_unless_live
from pytest_distproc.scenario.extensions import Extensions
from pytest_distproc.scenario.model import Scenario

if TYPE_CHECKING:  # the run-time modules load on the first run, not at pytest start-up
    from pytest_distproc.run.model import Run
    from pytest_distproc.run.runner import RunSettings

Node = pytest.Item | pytest.Collector
SEED_KEY = pytest.StashKey[int]()
"""The session's seed for scenarios that set none (``--distproc-seed``, else random; xdist workers get the
controller's)."""
EXTENSIONS_KEY = pytest.StashKey[dict[Path, Extensions]]()


def extensions_for(node: Node) -> Extensions:
    """Built-ins plus what the registration hooks answer for ``node``'s folder, asked once per folder:
    the conftests that apply to a folder are the same for every file in it."""
    cache = node.config.stash.setdefault(EXTENSIONS_KEY, {})
    folder = node.path.parent
    found = cache.get(folder)
    if found is None:
        hook, config = node.ihook, node.config
        found = cache[folder] = Extensions().adding(
            skills=[item for found in hook.pytest_distproc_register_skills(config=config)
                    for item in (found or {}).items()],
            fault_kinds=[kind for kinds in hook.pytest_distproc_fault_kinds(config=config) for kind in kinds or ()],
            expectation_kinds=[item for found in hook.pytest_distproc_expectation_kinds(config=config)
                               for item in (found or {}).items()],
        )
    return found


def settings_for(node: Node, scenario: Scenario, *, backend: str | None = None,
                 journal_name: str | None = None) -> RunSettings:
    """The settings of a run of ``scenario`` for ``node`` (a scenario item, or a test using the fixture)."""
    from pytest_distproc.run.runner import RunSettings

    config, hook = node.config, node.ihook
    journal_dir = config.getoption("distproc_journal")
    exact = journal_name or node.nodeid  # the digest keeps 'a b.yaml::x' and 'a_b.yaml::x' apart
    name = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', exact)}-{hashlib.sha256(exact.encode()).hexdigest()[:8]}"
    return RunSettings(
        seed=config.stash[SEED_KEY],
        backend=backend or config.getoption("distproc_backend"),
        coordinator=config.getoption("distproc_coordinator"),
        claude=claude_path(config),
        claude_live_url=live_url(config),
        coordinator_base=config.invocation_params.dir,
        journal=Path(journal_dir) / f"{name}.sqlite" if journal_dir else None,
        resume=bool(config.getoption("distproc_resume")),
        extensions=extensions_for(node),
        observers=(lambda t: hook.pytest_distproc_transition(config=config, scenario=scenario, transition=t),),
        backend_factory=lambda name, run_dir: hook.pytest_distproc_make_backend(
            config=config, scenario=scenario, name=name, run_dir=run_dir
        ),
        aggregate=lambda summaries: hook.pytest_distproc_aggregate(config=config, scenario=scenario,
                                                                   summaries=summaries),
    )


def run_for(node: Node, scenario: Scenario, *, backend: str | None = None,
            journal_name: str | None = None) -> Run:
    """Run ``scenario`` as ``node`` does. An explicit ``backend`` (the fixture's argument) asks for our
    coordinator on that backend: it wins over ``--distproc-coordinator``."""
    from pytest_distproc.run.runner import run_scenario

    settings = settings_for(node, scenario, backend=backend, journal_name=journal_name)
    on_claude_code = scenario.source is None and (settings.backend or scenario.backend) == "claude-code"
    if on_claude_code:
        skip_unless_live(node.config, scenario.claude_live)
        require_claude_code(settings.claude)
    if backend is not None:
        settings = dataclasses.replace(settings, coordinator=None)
    run = run_scenario(scenario, settings)
    if on_claude_code and settings.claude_live_url and "cassette.jsonl" in run.artefacts:
        saved = save_cassette(node.config, scenario.name, scenario.path.parent, run.artefacts["cassette.jsonl"])
        run.notes.append(f"the live model's replies are saved in {saved}: replay them with claude_code: "
                         f"{{replay: ...}}")
    return run


def finished(node: Node, run: Run) -> None:
    """Tell the ``pytest_distproc_run_finished`` hooks, once the run is recorded where reports find it."""
    node.ihook.pytest_distproc_run_finished(config=node.config, run=run)


def mismatches_for(node: Node, run: Run) -> list[str]:
    """Every mismatch an item reports: the scenario's ``expect``, the invariants, and ``pytest_distproc_check``."""
    return [message for _, message in located_mismatches_for(node, run)]


def located_mismatches_for(node: Node, run: Run) -> list[tuple[str | None, str]]:
    """:func:`mismatches_for`, each with the ``$.expect...`` path it breaks (None: an invariant or a hook's)."""
    found = expectations.locate(run, extensions_for(node).expectation_kinds)
    for extra in node.ihook.pytest_distproc_check(config=node.config, run=run):
        found.extend((None, message) for message in extra or [])
    return found
