"""The names a scenario may use beyond the built-ins: skills, fault kinds, expectation kinds.

One :class:`Extensions` per pytest config and folder (the plugin builds it from the registration hooks
that apply to a scenario file and keeps it in ``config.stash``), handed to the loader, the run and the
checks. Never a module global: a conftest's fault kind must not leak into another folder's scenarios,
nor into the next in-process pytest session.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pytest_distproc.attempt import faults, skills
from pytest_distproc.attempt.faults import FaultKind
from pytest_distproc.attempt.skills import Skill

Checker = Callable[[Any, Any], list[str]]
"""``checker(run, value) -> mismatches`` for ``expect: {name: value}`` (empty when it held)."""


@functools.cache
def _builtin_skills() -> Mapping[str, Skill]:
    """Built-ins and installed entry points: fixed for the process (entry points are scanned once), and a
    read-only view, so every default :class:`Extensions` (one per file loaded without any) shares it."""
    return MappingProxyType({**skills.BUILTIN, **skills.entry_point_skills()})


@dataclass(frozen=True)
class Extensions:
    """Named skills, fault kinds and expectation kinds, built-ins first, then what plugins added."""

    skills: Mapping[str, Skill] = field(default_factory=_builtin_skills)
    fault_kinds: Mapping[str, FaultKind] = field(default_factory=lambda: faults.BUILTIN)
    expectation_kinds: Mapping[str, Checker] = field(default_factory=lambda: MappingProxyType({}))

    def adding(
        self,
        *,
        skills: Iterable[tuple[str, Skill]] = (),
        fault_kinds: Iterable[FaultKind] = (),
        expectation_kinds: Iterable[tuple[str, Checker]] = (),
    ) -> Extensions:
        """A copy with more names; a later name replaces an earlier one (a conftest may override a built-in)."""
        from pytest_distproc.attempt.skills import checked

        return Extensions(
            MappingProxyType({**self.skills, **{name: checked(name, skill) for name, skill in skills}}),
            MappingProxyType({**self.fault_kinds, **{k.name: faults.validate(k) for k in fault_kinds}}),
            MappingProxyType({**self.expectation_kinds, **dict(expectation_kinds)}),
        )
