"""The scenario contract (v1) as frozen dataclasses. Only plain, picklable data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_KINDS = ("raise", "crash", "signal", "hang", "delay", "corrupt", "drop", "oom")
CONTEXTS = ("fork", "inline")
BACKENDS = ("fork", "inline", "ray")
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
        return f"{self.kind}{detail} in region {self.region} on {when}"


@dataclass(frozen=True)
class OrderRule:
    """``TASKGLOB:STATE < TASKGLOB:STATE``: for every matching pair, the left task's last entry into the left
    state precedes the right task's first entry into the right state. Parsed once, by the loader."""

    left: str
    left_state: str
    right: str
    right_state: str

    def __str__(self) -> str:
        return f"{self.left}:{self.left_state} < {self.right}:{self.right_state}"


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
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)
    """Where each ``$.expect...`` path was written (1-based line), so a failure can point at its key."""

    def line_of(self, path: str) -> int | None:
        """Line of ``path`` (a ``$.expect...`` path) or of its nearest written ancestor; None if unknown."""
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return None


@dataclass(frozen=True)
class Explore:
    """``explore:``: run Hypothesis over fault plans for this scenario instead of one run."""

    examples: int = 100
    faults: tuple[str, ...] = FAULT_KINDS  # the kinds a plan may use
    max_faults: int = 3
    interleavings: bool = True  # also draw the delivery order and work times (simulated backend)


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
    tasks: tuple[TaskSpec, ...] = ()
    """Tasks after the regions, blockers first, ``aggregate-results`` last (empty: the default graph)."""

    def run_seed(self, session_seed: int | None) -> int:
        """The seed a run of this scenario uses: its own ``seed``, else the session's, else 0."""
        return self.seed if self.seed is not None else (session_seed or 0)
    """A user's coordinator (``module:factory`` or ``file.py:factory``) run through the adapter protocol."""

    @property
    def task_ids(self) -> list[str]:
        return [r.task for r in self.regions] + [t.id for t in self.graph]

    @property
    def graph(self) -> tuple[TaskSpec, ...]:
        """The tasks after the regions; by default ``aggregate-results`` blocked by every region."""
        return self.tasks or (TaskSpec(AGGREGATE_TASK, "aggregate", tuple(r.task for r in self.regions)),)

    def region(self, region_id: str) -> RegionSpec:
        return next(r for r in self.regions if r.id == region_id)
