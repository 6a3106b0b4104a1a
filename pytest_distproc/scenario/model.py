"""The scenario contract (v1) as frozen dataclasses. Only plain, picklable data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

FAULT_KINDS = ("raise", "crash", "signal", "hang", "delay", "corrupt", "drop", "oom")
FAULT_COMMON_KEYS = ("region", "kind", "attempts")
"""The keys every fault takes, whatever its kind."""
FAULT_KIND_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "raise": ("message",),
    "crash": ("exit_code",),
    "signal": ("signal",),
    "hang": (),
    "delay": ("seconds",),
    "corrupt": (),
    "drop": ("fraction",),
    "oom": (),
    "node-loss": (),
    "node-stall": ("seconds",),
    "worker-restart": (),
})
"""Each built-in fault kind's own keys beside :data:`FAULT_COMMON_KEYS`: the one table the loader and the
JSON Schema follow (``tests/test_schema.py`` checks the schema against it). A key outside a kind's keys is an
error, never silently ignored. A plugin's kind declares its keys in ``FaultKind.keys`` (unset: any fault key)."""
CONTEXTS = ("fork", "inline")
BACKENDS = ("fork", "inline", "ray", "claude-code")
MODEL_FAULT_KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "api-error": ("status", "count", "agent"),
    "api-stall": ("seconds", "agent"),
    "early-aggregate": (),
    "skip-complete": (),
})
"""Faults of backend claude-code that act outside the processor: in the scripted model (``api-error``,
``api-stall``, on ``agent`` main or coordinator, or on a region's forks) or as coordinator misbehaviour
(``early-aggregate``: aggregate-results started before its blockers complete; ``skip-complete``: a region,
the last one unless ``region`` names it, never marked completed). Keys beside ``kind``, ``region`` and
``attempts``."""
ON_REGION_FAILURE = ("fail", "partial")
OUTCOMES = ("COMPLETE", "FAILED")
AGGREGATE_TASK = "aggregate-results"


def region_task(region_id: str) -> str:
    """``A`` -> ``process-region-a``: the task id of a region, as the original skill names it."""
    return f"process-region-{region_id.lower()}"


@dataclass(frozen=True)
class RegionSpec:
    """Where a region's records come from: exactly one of ``records``, ``file``, ``inline``."""

    id: str
    records: int | None = None
    file: Path | None = None
    inline: tuple[Mapping[str, Any], ...] | None = None
    line: int | None = None

    @property
    def task(self) -> str:
        return region_task(self.id)


TASK_KINDS = ("aggregate", "validate")


@dataclass(frozen=True)
class TaskSpec:
    """A task beyond the regions' own: run in the coordinator once its blockers finished."""

    id: str
    kind: str = "aggregate"
    blocked_by: tuple[str, ...] = ()
    description: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Policy:
    timeout: float = 5.0
    retries: int = 0
    backoff: float = 0.0
    on_region_failure: str = "fail"
    memory_limit_mb: int = 256


@dataclass(frozen=True)
class FaultSpec:
    """A fault injected inside the processor of ``region`` on the listed attempts (1-based)."""

    region: str
    kind: str
    attempts: tuple[int, ...] | None = (1,)  # None: every attempt
    exit_code: int = 3
    signal: str = "KILL"
    seconds: float = 0.0
    fraction: float = 0.1
    message: str = "injected fault"
    line: int | None = None
    status: int = 529
    """``api-error``: the HTTP status the model answers with."""
    count: int = 1
    """``api-error``: how many requests of the agent get it."""
    agent: str = ""
    """``api-error``/``api-stall``: ``main`` or ``coordinator`` (default: the region's forks, else coordinator)."""

    def fires_on(self, attempt: int) -> bool:
        return self.attempts is None or attempt in self.attempts

    def describe(self) -> str:
        detail = {
            "crash": f" exit_code={self.exit_code}",
            "signal": f" SIG{self.signal}",
            "delay": f" {self.seconds:g}s",
            "drop": f" fraction={self.fraction:g}",
        }.get(self.kind, "")
        when = "every attempt" if self.attempts is None else "attempt " + ",".join(map(str, self.attempts))
        if self.kind in MODEL_FAULT_KINDS:
            target = f"region {self.region}'s fork" if self.region else self.agent or "the coordinator"
            detail = {"api-error": f" {self.status} x{self.count}",
                      "api-stall": f" {self.seconds:g}s"}.get(self.kind, "")
            return f"{self.kind}{detail} on {target}"
        return f"{self.kind}{detail} in region {self.region} on {when}"


def nearest_line(lines: Mapping[str, int], path: str) -> int | None:
    """The line where ``path`` (``$.a.b[0]``) or its nearest ancestor with a line was written."""
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return None


@dataclass(frozen=True)
class OrderRule:
    """``TASKGLOB:STATE < TASKGLOB:STATE``: for every matching pair, the left task's last entry into the left
    state precedes the right task's first entry into the right state. Parsed once, by the loader."""

    left: str
    left_state: str
    right: str
    right_state: str
    vacuous: bool = False
    """``{rule: ..., vacuous: true}``: a pair a side of which never happened passes. By default such a pair is
    a mismatch: the rule was never put to the test."""

    def __str__(self) -> str:
        return f"{self.left}:{self.left_state} < {self.right}:{self.right_state}"


@dataclass(frozen=True)
class Tolerance:
    """How ``expect.aggregate`` compares sum, mean, min, max and variance (``records`` compare exactly).

    A value holds when ``|got - expected| <= max(relative * max(|got|, |expected|), absolute)``, Python's
    ``math.isclose``. The default, relative 1e-9 with an absolute 1e-12 for values at zero, allows the few
    units in the last place by which a merged total differs from one summed another way, and nothing a lost,
    doubled or changed record could hide in. ``expect: {aggregate: {tolerance: ...}}`` replaces either part.
    """

    relative: float = 1e-9
    absolute: float = 1e-12
    given: bool = False
    """True when the scenario wrote ``tolerance:`` (the message then names it instead of the default)."""

    def allows(self, got: float, expected: float) -> bool:
        return math.isclose(got, expected, rel_tol=self.relative, abs_tol=self.absolute)

    def describe(self) -> str:
        """The rule in words, for a mismatch: ``relative 1e-09 or absolute 1e-12, the default; ...``."""
        rule = f"relative {self.relative:g} or absolute {self.absolute:g}"
        if self.given:
            return f"{rule}, from expect.aggregate.tolerance"
        return f"{rule}, the default; expect.aggregate.tolerance changes it"


@dataclass(frozen=True)
class Expect:
    outcome: str | None = None
    status: Mapping[str, str] = field(default_factory=dict)
    transitions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    order: tuple[OrderRule, ...] = ()
    concurrent: tuple[str, ...] = ()
    attempts: Mapping[str, int] = field(default_factory=dict)
    aggregate: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Values of expectation kinds that plugins registered (``pytest_distproc_expectation_kinds``)."""
    transcript: Path | None = None
    """Golden transcript file (``expect: {transcript: golden/NAME.txt}``), resolved beside the scenario."""
    backoff: float | bool | None = None
    """``expect.backoff``: every retry waited at least this many seconds after its failure (True: the
    policy's ``backoff``), measured on the history's times."""
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)
    """Where each ``$.expect...`` path was written (1-based line), so a failure can point at its key."""
    min_nodes: int | None = None
    """``expect.spread: {min_nodes: N}``: the attempts ran on at least N distinct nodes (backend ray)."""
    distinct_nodes: bool = False
    """``expect.attempts_on_distinct_nodes: true``: no region ran two of its attempts on the same node."""

    def line_of(self, path: str) -> int | None:
        """Line of ``path`` (a ``$.expect...`` path) or of its nearest written ancestor; None if unknown."""
        return nearest_line(self.lines, path)


@dataclass(frozen=True)
class Explore:
    """``explore:``: run Hypothesis over fault plans for this scenario instead of one run."""

    examples: int = 100
    faults: tuple[str, ...] = FAULT_KINDS  # the kinds a plan may use
    max_faults: int = 3
    interleavings: bool = True  # also draw the delivery order and work times (simulated backend)


@dataclass(frozen=True)
class MarkSpec:
    """A pytest mark from ``marks:``, as pytest spells it: ``slow`` is ``pytest.mark.slow``,
    ``{xfail: {reason: r, strict: true}}`` is ``pytest.mark.xfail(reason="r", strict=True)``,
    ``{NAME: [a, b]}`` passes positional arguments. The plugin applies it with ``item.add_marker``."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    line: int
    regions: tuple[RegionSpec, ...]
    description: str = ""
    seed: int | None = None
    skill: str = "region-stats"
    context: str = "fork"
    backend: str = "fork"
    policy: Policy = field(default_factory=Policy)
    faults: tuple[FaultSpec, ...] = ()
    expect: Expect = field(default_factory=Expect)
    explore: Explore | None = None
    coordinator: str | None = None
    """A user's coordinator (``module:factory`` or ``file.py:factory``) run through the adapter protocol."""
    tasks: tuple[TaskSpec, ...] = ()
    """Tasks after the regions, blockers first, ``aggregate-results`` last (empty: the default graph)."""
    marks: tuple[MarkSpec, ...] = ()
    """pytest marks from ``marks:`` (``-m slow``, ``xfail``, ``skip``, ``skipif``), in the order written."""
    claude_script: Path | None = None
    """``claude_code: {script: FILE}``: the user's model script on backend claude-code (None: the ideal coordinator)."""
    claude_replay: Path | None = None
    """``claude_code: {replay: CASSETTE}``: the model answers from this cassette (a recorded run, replayed)."""
    claude_live: bool = False
    """``claude_code: {live: true}``: runs only under ``--distproc-claude-live`` (the real model), else skipped."""
    source: Path | None = None
    """``source: {claude_code: PATH}``: a recorded Claude Code run is the history (no run of ours); ``regions``
    may then be empty: the recording's ``process-region-*`` tasks are the regions."""
    claude_timeout: float | None = None
    """``claude_code: {timeout: ...}``: the whole CLI run's limit (None: derived from the regions and the policy)."""

    def run_seed(self, session_seed: int | None) -> int:
        """The seed a run of this scenario uses: its own ``seed``, else the session's, else 0."""
        return self.seed if self.seed is not None else (session_seed or 0)

    @property
    def task_ids(self) -> list[str]:
        return [r.task for r in self.regions] + [t.id for t in self.graph]

    @property
    def graph(self) -> tuple[TaskSpec, ...]:
        """The tasks after the regions; by default ``aggregate-results`` blocked by every region."""
        return self.tasks or (TaskSpec(AGGREGATE_TASK, "aggregate", tuple(r.task for r in self.regions)),)

    def region(self, region_id: str) -> RegionSpec:
        return next(r for r in self.regions if r.id == region_id)
