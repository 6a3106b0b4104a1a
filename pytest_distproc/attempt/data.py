"""Region records: generated from the seed, inline, JSON Lines or CSV. Used by the child and the oracle."""

from __future__ import annotations

import functools
import json
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_distproc.errors import DistprocError


class DataError(DistprocError):
    """A region's data file has a bad row."""


def source_of(region: Any, seed: int) -> dict[str, Any]:
    """The plain-data description of a region's records that is handed to its processor."""
    if region.records is not None:
        return {"region": region.id, "generate": region.records, "seed": seed}
    if region.file is not None:
        return {"region": region.id, "file": str(region.file)}
    return {"region": region.id, "inline": [dict(r) for r in region.inline or ()]}


def load(source: Mapping[str, Any]) -> list[dict[str, Any]]:
    if "generate" in source:
        rng = random.Random(f"{source['seed']}:{source['region']}")
        return [{"value": round(rng.uniform(0.0, 100.0), 3)} for _ in range(int(source["generate"]))]
    if "inline" in source:
        return [dict(r) for r in source["inline"]]
    return read_file(source["file"])


def count(source: Mapping[str, Any]) -> int:
    if "generate" in source:
        return int(source["generate"])
    if "inline" in source:
        return len(source["inline"])
    return len(file_values(source["file"]))


def values(records: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"]) for r in records]


def source_values(source: Mapping[str, Any]) -> Sequence[float]:
    """The values of a region's records, for the oracle: a data file is read once per process, not per use."""
    if "file" in source:
        return file_values(source["file"])
    return values(load(source))


def file_values(path: str | os.PathLike[str]) -> tuple[float, ...]:
    """The values of a data file's records, read (and checked, row by row) once while the file is unchanged:
    the loader, the coordinator's count and the oracle of one run share one read."""
    stat = os.stat(path)  # ctime too: a copy that keeps mtime and size (cp -p, rsync -a) still changes it
    return _file_values(os.fspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@functools.lru_cache(maxsize=8)
def _file_values(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> tuple[float, ...]:
    return tuple(float(r["value"]) for r in read_file(path))


def read_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A data file's records (paths as plain strings: the fork server and the attempts spare pathlib)."""
    path = os.fspath(path)
    if path.lower().endswith(".csv"):
        return _read_csv(path)
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg}); one JSON object per line") from None
            rows.append(_record(row, path, number))
    return rows


def _read_csv(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as handle:
        import csv  # here: the fork server and every attempt that reads no CSV spare the import

        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "value" not in reader.fieldnames:
            raise DataError(f"{path}:1: CSV needs a header row with a 'value' column, got {reader.fieldnames}")
        return [_record(row, path, number) for number, row in enumerate(reader, start=2)]


def _record(row: Any, path: str, number: int) -> dict[str, Any]:
    if not isinstance(row, dict) or "value" not in row:
        raise DataError(f"{path}:{number}: expected a record with a 'value', got {row!r}")
    try:
        value = float(row["value"])
    except (TypeError, ValueError):
        raise DataError(f"{path}:{number}: 'value' must be a number, got {row['value']!r}") from None
    return {**row, "value": value}
