"""The one path that runs a scenario, for scenario items, the ``distproc`` fixture and the Python API.

It picks the source of the history: our coordinator, or a user's coordinator through the adapter when
the scenario (``coordinator:``) or the session (``--distproc-coordinator``) names one. Both fill the
same :class:`~pytest_distproc.run.model.Run`, which is all that checks and reports read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from pytest_distproc.run.adapter import run_adapter
from pytest_distproc.run.coordinator import Aggregator, BackendFactory, Coordinator, Observer
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.extensions import Extensions
from pytest_distproc.scenario.model import MODEL_FAULT_KINDS, Scenario


@dataclass(frozen=True)
class RunSettings:
    """Everything about a run that does not come from its scenario."""

    seed: int = 0
    """The session's seed, for a scenario that sets none."""
    backend: str | None = None
    """Run on this backend instead of the scenario's own (``--distproc-backend``)."""
    coordinator: str | None = None
    """A user's coordinator for every scenario (``--distproc-coordinator``), resolved against ``coordinator_base``."""
    coordinator_base: Path = field(default_factory=Path.cwd)
    journal: Path | None = None
    resume: bool = False
    extensions: Extensions = field(default_factory=Extensions)
    observers: tuple[Observer, ...] = ()
    backend_factory: BackendFactory | None = None
    aggregate: Aggregator | None = None
    claude: str | None = None
    """The claude CLI for backend claude-code (``--distproc-claude`` / ini ``distproc_claude``)."""
    claude_live_url: str | None = None
    """``--distproc-claude-live``: backend claude-code asks the real model at this URL (None: scripted)."""


def run_scenario(scenario: Scenario, settings: RunSettings | None = None) -> Run:
    """Run ``scenario`` once, to the end, and return its history and results. Always cleans up."""
    settings = settings or RunSettings()
    if scenario.source is not None:  # a recorded Claude Code run is the history: nothing runs
        from pytest_distproc.claude_code.recording import import_recording

        return import_recording(scenario, scenario.source, scenario.run_seed(settings.seed))
    if (settings.backend or scenario.backend) == "claude-code":
        from pytest_distproc.claude_code.runner import Options, run_claude_code

        options = Options(claude=settings.claude, live_url=settings.claude_live_url)
        return run_claude_code(scenario, scenario.run_seed(settings.seed), options)
    if any(f.kind in MODEL_FAULT_KINDS for f in scenario.faults):  # another backend than the scenario's own
        scenario = replace(scenario, faults=tuple(f for f in scenario.faults if f.kind not in MODEL_FAULT_KINDS))
    reference = settings.coordinator or scenario.coordinator
    if reference:
        base = settings.coordinator_base if settings.coordinator else scenario.path.parent
        return run_adapter(scenario, reference, seed=settings.seed, base=base, extensions=settings.extensions,
                           observers=settings.observers)
    return Coordinator(
        scenario,
        seed=settings.seed,
        backend=settings.backend,
        observers=settings.observers,
        backend_factory=settings.backend_factory,
        aggregate=settings.aggregate,
        journal=settings.journal,
        resume=settings.resume,
        extensions=settings.extensions,
    ).run()
