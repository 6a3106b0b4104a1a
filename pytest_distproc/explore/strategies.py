"""Hypothesis strategies for scenarios: regions, their data, recovery policies and fault plans.

Use them in your own ``@given`` tests, for example to check that your coordinator survives any
plan of up to three faults::

    from hypothesis import given
    from pytest_distproc.explore import strategies as dps
    from pytest_distproc.explore.search import run_plan

    @given(dps.scenarios(max_regions=3))
    def test_any_scenario_keeps_the_invariants(scenario):
        assert run_plan(scenario, ()).mismatches == []

Strategies ending in ``_dicts`` (and :func:`regions`, :func:`region_data`, :func:`policies`) build
plain, YAML-able data in the scenario format; :func:`scenarios` loads such a dict through the real
loader and gives a :class:`~pytest_distproc.scenario.model.Scenario`; :func:`fault_plans` gives
tuples of :class:`~pytest_distproc.scenario.model.FaultSpec` for a scenario you already have.

Fault plans are *coherent*: every planned fault fires. A region gets faults on attempts 1, 2, ...
in a row, never past ``retries + 1`` attempts, and never after a fault it survives (a short
``delay``, a ``drop`` on an empty region), so the every-planned-fault-fired invariant holds by
construction and a finding is always about the coordinator, never about an impossible plan.
Shrinking removes faults, moves them to the first region and towards the first listed kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from hypothesis import strategies as st

from pytest_distproc.attempt import data
from pytest_distproc.scenario.model import FAULT_KINDS, FaultSpec, Scenario

REGION_IDS = ("A", "B", "C", "D", "E", "F", "G", "H")
SIGNALS = ("KILL", "TERM", "SEGV")
EXIT_CODES = (3, 1, 2)
DROP_FRACTIONS = (0.5, 0.1)
DEFAULT_KINDS: tuple[str, ...] = FAULT_KINDS
"""Every fault kind; exploration's default when ``explore.faults`` is not given."""


def values() -> st.SearchStrategy[float]:
    """Record values: finite, with three decimals, like the generated data (keeps float sums exact enough)."""
    return st.integers(-1_000_000, 1_000_000).map(lambda n: n / 1000)


def region_data(*, max_records: int = 50) -> st.SearchStrategy[dict[str, Any]]:
    """One region's data source as YAML data: ``{records: N}`` (generated from the seed) or ``{inline: [...]}``."""
    generated = st.builds(lambda n: {"records": n}, st.integers(0, max_records))
    inline = st.lists(values(), max_size=min(max_records, 20)).map(
        lambda vs: {"inline": [{"value": v} for v in vs]}
    )
    return st.one_of(generated, inline)


def region_ids(*, min_size: int = 1, max_size: int = 4) -> st.SearchStrategy[list[str]]:
    """Region ids ``A``, ``B``, ... (a prefix of :data:`REGION_IDS`, so shrinking drops the last regions)."""
    if not 1 <= min_size <= max_size <= len(REGION_IDS):
        raise ValueError(f"region_ids: need 1 <= min_size <= max_size <= {len(REGION_IDS)}, "
                         f"got min_size={min_size!r}, max_size={max_size!r}")
    return st.integers(min_size, max_size).map(lambda n: list(REGION_IDS[:n]))


def regions(*, min_size: int = 1, max_size: int = 4, max_records: int = 50) -> st.SearchStrategy[dict[str, Any]]:
    """The ``regions:`` mapping: region id -> data source (see :func:`region_data`)."""
    return region_ids(min_size=min_size, max_size=max_size).flatmap(
        lambda ids: st.fixed_dictionaries({rid: region_data(max_records=max_records) for rid in ids})
    )


def policies(*, max_retries: int = 2, timeouts: Sequence[str] = ("1s",)) -> st.SearchStrategy[dict[str, Any]]:
    """The ``policy:`` mapping: timeout (from ``timeouts``), retries, backoff and on_region_failure."""
    return st.fixed_dictionaries({
        "timeout": st.sampled_from(list(timeouts)),
        "retries": st.integers(0, max_retries),
        "backoff": st.sampled_from(["0s", "10ms"]),
        "on_region_failure": st.sampled_from(["fail", "partial"]),
    })


def fails(fault: FaultSpec, records: int, timeout: float) -> bool:
    """Whether the attempt ``fault`` fires on fails (so the region is retried or gives up).

    ``delay`` fails only when it outlasts the timeout and ``drop`` only when there is a record to lose;
    every other kind always fails its attempt.
    """
    if fault.kind == "delay":
        return fault.seconds >= timeout
    if fault.kind == "drop":
        return records > 0
    return True


def _fault_entry(kinds: Sequence[str], regions: int, timeout: float) -> st.SearchStrategy[dict[str, Any]]:
    """One drawn fault, before it is placed on an attempt: region index, kind, its parameters, ``all``."""
    short, long = round(timeout * 0.25, 3), round(timeout * 2, 3)
    return st.fixed_dictionaries({
        "region": st.integers(0, regions - 1),
        "kind": st.sampled_from(list(kinds)),
        "every": st.integers(0, 3).map(lambda n: n == 3),  # a quarter: mostly faults a retry can survive
        "exit_code": st.sampled_from(EXIT_CODES),
        "signal": st.sampled_from(SIGNALS),
        "seconds": st.sampled_from([long, short]),
        "fraction": st.sampled_from(DROP_FRACTIONS),
    })


def place_faults(
    entries: Sequence[Mapping[str, Any]],
    region_ids: Sequence[str],
    counts: Mapping[str, int],
    *,
    retries: int,
    timeout: float,
    closed: Sequence[str] = (),
) -> tuple[FaultSpec, ...]:
    """Turn drawn entries into a coherent plan: each region's faults on attempts 1, 2, ... in a row.

    An entry is skipped (not rejected, so shrinking stays smooth) when its region is ``closed``
    (it has faults of its own already), already survived an attempt, or ran out of attempts.
    ``every`` on a region's first fault makes it ``attempts: all`` (and closes the region).
    """
    plan: list[FaultSpec] = []
    next_attempt = dict.fromkeys(region_ids, 1)
    done = set(closed)
    for entry in entries:
        region = region_ids[int(entry["region"]) % len(region_ids)]
        attempt = next_attempt[region]
        if region in done or attempt > retries + 1:
            continue
        kind = str(entry["kind"])
        params: dict[str, Any] = {}
        if kind == "crash":
            params["exit_code"] = int(entry["exit_code"])
        elif kind == "signal":
            params["signal"] = str(entry["signal"])
        elif kind == "delay":
            params["seconds"] = float(entry["seconds"])
        elif kind == "drop":
            params["fraction"] = float(entry["fraction"])
        every = bool(entry["every"]) and attempt == 1
        fault = FaultSpec(region, kind, None if every else (attempt,), **params)
        plan.append(fault)
        next_attempt[region] = attempt + 1
        if every or not fails(fault, counts.get(region, 0), timeout):
            done.add(region)
    return tuple(plan)


def fault_plans(
    scenario: Scenario,
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_faults: int = 3,
) -> st.SearchStrategy[tuple[FaultSpec, ...]]:
    """Coherent fault plans of at most ``max_faults`` faults of ``kinds`` for ``scenario``'s regions.

    Regions that already have faults in the scenario get no more (their own faults stay as written).
    """
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"fault_plans: kinds must be a non-empty list of {', '.join(FAULT_KINDS)}; "
                         f"got {list(kinds)!r}")
    if max_faults < 0:
        raise ValueError(f"fault_plans: max_faults must be >= 0, got {max_faults!r}")
    ids = [r.id for r in scenario.regions]
    seed = scenario.run_seed(None)
    counts = {r.id: data.count(data.source_of(r, seed)) for r in scenario.regions}
    closed = sorted({f.region for f in scenario.faults})
    policy = scenario.policy
    entry = _fault_entry(kinds, len(ids), policy.timeout)
    return st.lists(entry, max_size=max_faults).map(
        lambda entries: place_faults(entries, ids, counts, retries=policy.retries, timeout=policy.timeout,
                                     closed=closed)
    )


def fault_dict(fault: FaultSpec) -> dict[str, Any]:
    """A :class:`FaultSpec` as it is written in a scenario's ``faults:`` list (defaults left out)."""
    out: dict[str, Any] = {"region": fault.region, "kind": fault.kind,
                           "attempts": "all" if fault.attempts is None else list(fault.attempts)}
    defaults = FaultSpec(fault.region, fault.kind)
    for key in ("exit_code", "signal", "seconds", "fraction", "message"):
        if getattr(fault, key) != getattr(defaults, key) or (key == "seconds" and fault.kind == "delay"):
            out[key] = getattr(fault, key)
    return out


@st.composite
def scenario_dicts(
    draw: st.DrawFn,
    *,
    max_regions: int = 4,
    max_records: int = 50,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_faults: int = 3,
    max_retries: int = 2,
    backend: str = "inline",
) -> dict[str, Any]:
    """A whole scenario as plain YAML data (``yaml.safe_dump`` it to get a scenario file).

    Its faults are a coherent plan (see the module docs). No ``expect``: every run must keep the
    invariants; :func:`pytest_distproc.explore.search.predict` says what its outcome should be.
    """
    body: dict[str, Any] = {
        "name": "generated",
        "seed": draw(st.integers(0, 2**31 - 1)),
        "regions": draw(regions(max_size=max_regions, max_records=max_records)),
        "backend": backend,
        "policy": draw(policies(max_retries=max_retries)),
    }
    scenario = _load(body)
    body["faults"] = [fault_dict(f) for f in draw(fault_plans(scenario, kinds=kinds, max_faults=max_faults))]
    return body


def scenarios(
    *,
    max_regions: int = 4,
    max_records: int = 50,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_faults: int = 3,
    max_retries: int = 2,
    backend: str = "inline",
) -> st.SearchStrategy[Scenario]:
    """Whole :class:`Scenario` objects, built by :func:`scenario_dicts` and loaded by the real loader."""
    return scenario_dicts(max_regions=max_regions, max_records=max_records, kinds=kinds, max_faults=max_faults,
                          max_retries=max_retries, backend=backend).map(_load)


def _load(body: Mapping[str, Any]) -> Scenario:
    from pytest_distproc.scenario.loader import load_one

    return load_one(yaml.safe_dump(dict(body), sort_keys=False), "generated.yaml")
