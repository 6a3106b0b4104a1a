"""Mergeable summaries of a region's values: count, sum, min, max, mean, variance.

Merging uses Chan et al.'s pairwise update of the second moment, so merging region summaries
gives (up to float rounding) the summary computed over all records at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

FIELDS = ("count", "sum", "min", "max", "mean", "variance")


def summarize(values: Iterable[float]) -> dict[str, float]:
    data = values if isinstance(values, (list, tuple)) else list(values)
    count = len(data)
    if count == 0:
        return empty()
    total = math.fsum(data)
    mean = total / count
    m2 = math.fsum((v - mean) ** 2 for v in data)
    return {"count": count, "sum": total, "min": min(data), "max": max(data), "mean": mean, "variance": m2 / count}


def empty() -> dict[str, float]:
    return {"count": 0, "sum": 0.0, "min": math.nan, "max": math.nan, "mean": math.nan, "variance": math.nan}


def merge(parts: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    result = empty()
    m2 = 0.0
    for part in parts:
        n_b = int(part["count"])
        if n_b == 0:
            continue
        n_a = int(result["count"])
        if n_a == 0:
            result = {k: float(part[k]) if k != "count" else n_b for k in FIELDS}
            m2 = float(part["variance"]) * n_b
            continue
        n = n_a + n_b
        delta = float(part["mean"]) - result["mean"]
        m2 = m2 + float(part["variance"]) * n_b + delta * delta * n_a * n_b / n
        result = {
            "count": n,
            "sum": result["sum"] + float(part["sum"]),
            "min": min(result["min"], float(part["min"])),
            "max": max(result["max"], float(part["max"])),
            "mean": result["mean"] + delta * n_b / n,
            "variance": m2 / n,
        }
    return result


def close(a: float, b: float, rel: float = 1e-9, abs_tol: float = 1e-9) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def validate(result: Any, expected_count: int | None) -> str | None:
    """Why ``result`` is not a summary of ``expected_count`` records, or None if it is one.

    The coordinator calls this before it counts a result: a corrupt or short result is a failed
    attempt, never a wrong total.
    """
    if not isinstance(result, Mapping):
        return f"corrupt result: expected a mapping of {', '.join(FIELDS)}, got {type(result).__name__}"
    missing = [k for k in FIELDS if k not in result]
    if missing:
        return f"corrupt result: missing {', '.join(missing)}"
    for key in FIELDS:
        value = result[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"corrupt result: {key}={value!r} is not a number"
    count = result["count"]
    if not math.isfinite(count) or count != int(count) or count < 0:
        return f"corrupt result: count={_short(count)} is not a record count"
    if count > 0:
        numbers = [float(result[k]) for k in ("sum", "min", "max", "mean", "variance")]
        if not all(math.isfinite(n) for n in numbers):
            return "corrupt result: non-finite statistics"
        if not (result["min"] - 1e-9 <= result["mean"] <= result["max"] + 1e-9):
            return f"corrupt result: mean={result['mean']!r} outside [min, max]"
        if not close(result["sum"], result["mean"] * count, rel=1e-6, abs_tol=1e-6):
            return "corrupt result: sum != mean * count"
        if result["variance"] < -1e-9:
            return "corrupt result: negative variance"
    if expected_count is not None and int(count) != expected_count:
        word = "short" if count < expected_count else "inflated"
        return f"{word} result: {_short(int(count))} of {expected_count} records"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


PRINTED_DECIMALS = {"sum": 2, "mean": 4, "min": 4, "max": 4}
"""The decimals :func:`line` rounds each field to (variance is not printed)."""


def line(label: str, summary: Mapping[str, Any]) -> str:
    """``Region A: 1000 records, sum=..., mean=..., min=..., max=...`` as in the original skill's report."""
    count = int(summary["count"])
    if count == 0:
        return f"{label}: 0 records"
    shown = ", ".join(f"{k}={float(summary[k]):.{d}f}" for k, d in PRINTED_DECIMALS.items())
    return f"{label}: {count} records, {shown}"
