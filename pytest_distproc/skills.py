"""Skills: what a region's processor runs. Resolved in the coordinator, called in the child.

A skill is ``fn(records, context) -> summary``: ``records`` is a list of ``{"value": float, ...}``
dicts, ``context`` a plain dict (``region``, ``attempt``, ``seed``, ``workdir``), and the summary a
mapping with count, sum, min, max, mean and variance (see :mod:`pytest_distproc.summary`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from pytest_distproc import data, summary
from pytest_distproc.errors import SkillError

Skill = Callable[[list[dict[str, Any]], Mapping[str, Any]], Mapping[str, Any]]


def region_stats(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, float]:
    """The built-in skill of the original workflow: a mergeable summary of the records' values."""
    return summary.summarize(data.values(records))


BUILTIN: dict[str, Skill] = {"region-stats": region_stats}


def resolve(reference: str) -> Skill:
    """Turn a scenario's ``skill`` into a callable, importing user code here, never in the child."""
    if reference in BUILTIN:
        return BUILTIN[reference]
    if ":" in reference:
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
    raise SkillError(f"skill {reference!r}: skill directories (SKILL.md) are not supported by this version")
