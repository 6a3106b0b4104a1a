"""``tasks:``: task graphs beyond one level of regions, checked for unknown ids and cycles at load time.

```yaml
regions: {A: ..., B: ..., C: ..., D: ...}
tasks:
  europe:   {blocked_by: [process-region-a, process-region-b]}   # kind: aggregate (the default)
  americas: {blocked_by: [process-region-c, process-region-d]}
  check-a:  {kind: validate, blocked_by: [process-region-a]}
  aggregate-results: {blocked_by: [europe, americas, check-a]}
```

Without ``tasks:`` (or when it leaves ``aggregate-results`` out), ``aggregate-results`` is blocked
by every task nothing else waits for. ``aggregate`` merges its blockers' summaries; ``validate``
checks them (valid and not empty) and passes their merge on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pytest_distproc.scenario.model import AGGREGATE_TASK, TASK_KINDS, TaskSpec, region_task

TASK_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
REGION_PREFIX = "process-region-"
"""Task ids starting with it are the regions' tasks: a ``tasks:`` entry may not take one (nor the schema)."""
TASK_KEYS = ("blocked_by", "kind", "description")

Fail = Callable[[str, str], None]


def parse_tasks(value: Any, region_ids: list[str], fail: Fail, line_of: Callable[[str], int]) -> tuple[TaskSpec, ...]:
    """The explicit tasks plus ``aggregate-results``, in a creation order where blockers come first."""
    region_tasks = [region_task(r) for r in region_ids]
    raw: dict[str, dict[str, Any]] = {}
    if value is not None:
        if not isinstance(value, dict):
            fail("$.tasks", f"expected a mapping of task id -> {{blocked_by: [...]}}, got {value!r}")
            return default_graph(region_tasks)
        for task_id, body in value.items():
            at = f"$.tasks.{task_id}"
            if not TASK_ID.match(str(task_id)):
                fail(at, f"task id {task_id!r} must be lower-case letters, digits, '-' or '_'")
                continue
            if task_id in region_tasks:
                fail(at, f"{task_id!r} is a region's task; it is created from regions: and cannot be redefined")
                continue
            if str(task_id).startswith(REGION_PREFIX):
                fail(at, f"task id {task_id!r} starts with {REGION_PREFIX!r}, which names the regions' own tasks "
                     "(created from regions:); rename it")
                continue
            if not isinstance(body, dict):
                fail(at, f"expected a mapping like {{blocked_by: [process-region-a]}}, got {body!r}")
                continue
            unknown = [k for k in body if k not in TASK_KEYS]
            for key in unknown:
                fail(f"{at}.{key}", f"unknown key {key!r}; accepted keys: {', '.join(TASK_KEYS)}")
            raw[str(task_id)] = body
    known = set(region_tasks) | set(raw) | {AGGREGATE_TASK}
    specs: dict[str, TaskSpec] = {}
    for task_id, body in raw.items():
        at = f"$.tasks.{task_id}"
        kind = body.get("kind", "aggregate")
        if kind not in TASK_KINDS:
            fail(f"{at}.kind", f"expected one of {', '.join(TASK_KINDS)}, got {kind!r}")
            continue
        blockers = body.get("blocked_by")
        if not isinstance(blockers, list) or not blockers or not all(isinstance(b, str) for b in blockers):
            fail(f"{at}.blocked_by", f"expected a non-empty list of task ids, got {blockers!r}")
            continue
        bad = [b for b in blockers if b not in known]
        if bad:
            fail(f"{at}.blocked_by", f"unknown task(s) {', '.join(map(repr, bad))}; "
                 f"tasks of this scenario: {', '.join(sorted(known))}")
            continue
        if AGGREGATE_TASK in blockers and task_id != AGGREGATE_TASK:
            fail(f"{at}.blocked_by", f"{AGGREGATE_TASK} is the final task; nothing can wait for it")
            continue
        specs[task_id] = TaskSpec(task_id, kind, tuple(dict.fromkeys(blockers)), str(body.get("description", "")),
                                  line_of(at))
    if AGGREGATE_TASK not in specs:
        waited_for = {b for s in specs.values() for b in s.blocked_by}
        sinks = [t for t in [*region_tasks, *specs] if t not in waited_for]
        specs[AGGREGATE_TASK] = TaskSpec(AGGREGATE_TASK, "aggregate", tuple(sinks))
    cycle = find_cycle(specs)
    if cycle:
        fail(f"$.tasks.{cycle[0]}.blocked_by", "blocked_by forms a cycle: " + " -> ".join(cycle))
        return default_graph(region_tasks)
    for region, count in paths_to_the_end(specs, region_tasks).items():
        if count != 1:
            consumers = [s.id for s in specs.values() if region in s.blocked_by]
            where = f"$.tasks.{consumers[-1]}.blocked_by" if consumers else "$.tasks"
            what = "never reaches" if count == 0 else f"reaches {AGGREGATE_TASK} by {count} paths: it would be counted"
            fail(where, f"{region} {what} {AGGREGATE_TASK}; its records would be lost" if count == 0 else
                 f"{region} {what} {count} times; let each region feed the total through exactly one task")
    return tuple(specs[t] for t in topological(specs))


def paths_to_the_end(specs: dict[str, TaskSpec], region_tasks: list[str]) -> dict[str, int]:
    """For each region task, how many ways its summary reaches ``aggregate-results`` (must be one)."""
    consumers: dict[str, list[str]] = {}
    for spec in specs.values():
        for blocker in spec.blocked_by:
            consumers.setdefault(blocker, []).append(spec.id)
    memo: dict[str, int] = {}

    def count(task: str) -> int:
        if task == AGGREGATE_TASK:
            return 1
        if task not in memo:
            memo[task] = sum(count(c) for c in consumers.get(task, ()))
        return memo[task]

    return {r: count(r) for r in region_tasks}


def default_graph(region_tasks: list[str]) -> tuple[TaskSpec, ...]:
    return (TaskSpec(AGGREGATE_TASK, "aggregate", tuple(region_tasks)),)


def find_cycle(specs: dict[str, TaskSpec]) -> list[str]:
    """One cycle among the non-region tasks, as a path that ends where it starts; [] if none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(task: str) -> list[str]:
        state[task] = 1
        path.append(task)
        for blocker in specs[task].blocked_by if task in specs else ():
            if state.get(blocker) == 1:
                return [*path[path.index(blocker):], blocker]
            if blocker not in state:
                found = visit(blocker)
                if found:
                    return found
        state[task] = 2
        path.pop()
        return []

    for task in specs:
        if task not in state:
            found = visit(task)
            if found:
                return found
    return []


def topological(specs: dict[str, TaskSpec]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(task: str) -> None:
        if task in seen or task not in specs:
            return
        seen.add(task)
        for blocker in specs[task].blocked_by:
            visit(blocker)
        order.append(task)

    for task in specs:
        visit(task)
    order.remove(AGGREGATE_TASK)
    return [*order, AGGREGATE_TASK]
