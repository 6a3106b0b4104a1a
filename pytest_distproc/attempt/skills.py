"""Skills: what a region's processor runs. Resolved in the coordinator, called in the child.

A skill is ``fn(records, context) -> summary``: ``records`` is a list of ``{"value": float, ...}``
dicts, ``context`` a plain dict (``region``, ``attempt``, ``seed``, ``workdir``), and the summary a
mapping with count, sum, min, max, mean and variance (see :mod:`pytest_distproc.attempt.stats`).

Where skills come from, in the order a name is looked up: the registry (built-ins, the
``pytest_distproc_register_skills`` hook, the ``pytest_distproc.skills`` entry-point group),
``package.module:function``, and a directory holding a ``SKILL.md`` (see :mod:`.skilldir`).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from pytest_distproc.attempt import data
from pytest_distproc.attempt import stats as summary
from pytest_distproc.errors import SkillError

Skill = Callable[[list[dict[str, Any]], Mapping[str, Any]], Mapping[str, Any]]
ENTRY_POINT_GROUP = "pytest_distproc.skills"


def region_stats(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, float]:
    """The built-in skill of the original workflow: a mergeable summary of the records' values."""
    return summary.summarize(data.values(records))


BUILTIN: Mapping[str, Skill] = MappingProxyType({"region-stats": region_stats})
"""The skills every interpreter knows (the fork server too); plugins and conftests add theirs per pytest config."""


def checked(name: str, skill: Skill) -> Skill:
    """A skill a plugin registered, checked before any scenario may name it."""
    if not callable(skill):
        raise SkillError(f"skill {name!r} must be callable, got {type(skill).__name__}")
    return skill


@functools.cache
def entry_point_skills() -> Mapping[str, Skill]:
    """The skills installed packages publish in the ``pytest_distproc.skills`` group (scanned once per
    process: the installed distributions are the same for every config, and scanning costs milliseconds)."""
    from importlib.metadata import entry_points  # here: ~4 MiB the fork server need not map into every child

    found: dict[str, Skill] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in BUILTIN:
            continue
        try:
            found[entry.name] = checked(entry.name, entry.load())
        except Exception as exc:
            raise SkillError(f"entry point {entry.name} = {entry.value} in group {ENTRY_POINT_GROUP} "
                             f"cannot be loaded: {type(exc).__name__}: {exc}") from None
    return MappingProxyType(found)


def resolve(reference: str, registered: Mapping[str, Skill] = BUILTIN) -> Skill:
    """Turn a scenario's ``skill`` into a callable, importing user code here, never in the child.

    ``registered`` is the table of named skills of the scenario's config (built-ins, entry points, hooks).
    """
    if reference in registered:
        return registered[reference]
    if ":" in reference and not os.path.isdir(reference):
        module_name, _, attr = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise SkillError(f"skill {reference!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}; "
                             "is the package installed or on sys.path (rootdir, pythonpath ini)?") from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise SkillError(f"skill {reference!r}: module {module_name!r} has no callable {attr!r}")
        return fn  # type: ignore[no-any-return]
    if os.path.isfile(os.path.join(reference, "SKILL.md")):
        from pathlib import Path

        from pytest_distproc.attempt.skilldir import SkillDir

        skill: Skill = SkillDir.load(Path(reference)).as_skill()
        return skill
    raise SkillError(f"unknown skill {reference!r}; registered: {', '.join(sorted(registered))}; or use "
                     "'package.module:function' or a directory holding a SKILL.md")
