"""Golden transcripts: ``expect: {transcript: golden/NAME.txt}``, and ``--distproc-update-goldens``.

The transcript is compared after normalising what legitimately changes between runs: pids and
timings are masked, and the region blocks and region result lines are put in a stable order.

With ``--distproc-update-goldens`` a golden that differs (or is missing) is rewritten and its item
FAILS, saying so: CI never passes on an update. Goldens are only ever written, never deleted, so a
partial run (``-k``, ``--lf``, one xdist worker's share) cannot lose one.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_distproc.scenario.files import NotAFile, read_bytes

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run

UPDATE_FLAG = "--distproc-update-goldens"

_PID = re.compile(r"\(pid \d+\)")
_AFTER = re.compile(r"\bafter \d+(?:\.\d+)? s\b")
_SECONDS = re.compile(r"\b\d+\.\d+ ?s\b")
_TASK_LINE = re.compile(r"^\[t\d+\] (\S+):")
_REGION_LINE = re.compile(r"^Region \S+: ")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("distproc", "fork/join scenarios (pytest-distproc)")
    group.addoption(
        UPDATE_FLAG,
        action="store_true",
        default=False,
        help="rewrite golden transcripts (expect.transcript) that differ or are missing; those items fail, "
        "so review the diff and rerun without the flag. Goldens are never deleted.",
    )


def normalise(transcript: str) -> str:
    """The transcript with pids and timings masked and region blocks in a stable (sorted) order."""
    masked = _SECONDS.sub("<t> s", _AFTER.sub("after <t> s", _PID.sub("(pid <pid>)", transcript)))
    lines = masked.replace("\r\n", "\n").rstrip("\n").split("\n")
    # [tN] task blocks (a task line with its indented '!' lines): sort the process-region blocks by task,
    # numbered afresh in that order; region result lines: sort by region id.
    out: list[str] = []
    index = 0
    while index < len(lines):
        if _TASK_LINE.match(lines[index]):
            blocks: list[list[str]] = []
            while index < len(lines) and _TASK_LINE.match(lines[index]):
                block = [_TASK_LINE.sub(lambda m: f"[t] {m.group(1)}:", lines[index])]
                index += 1
                while index < len(lines) and lines[index].startswith("    "):
                    block.append(lines[index])
                    index += 1
                blocks.append(block)
            regions = sorted((b for b in blocks if b[0].startswith("[t] process-region-")), key=lambda b: b[0])
            others = [b for b in blocks if not b[0].startswith("[t] process-region-")]
            for number, block in enumerate([*regions, *others], start=1):
                out.extend([block[0].replace("[t] ", f"[t{number}] ", 1), *block[1:]])
        elif _REGION_LINE.match(lines[index]):
            group = []
            while index < len(lines) and _REGION_LINE.match(lines[index]):
                group.append(lines[index])
                index += 1
            out.extend(sorted(group))
        else:
            out.append(lines[index])
            index += 1
    return "\n".join(out) + "\n"


class GoldenUnreadable(ValueError):
    """A golden that is there but cannot be compared: no regular file, unreadable or not UTF-8."""


def read_golden(path: Path) -> str | None:
    """The golden's text, None when there is none; :class:`GoldenUnreadable` saying why it cannot be read.
    Never blocks: a FIFO (made after the loader checked) is refused, not waited on."""
    try:
        return read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        return None
    except NotAFile as exc:
        raise GoldenUnreadable(f"it is {exc}, not a regular file") from None
    except OSError as exc:
        raise GoldenUnreadable(f"it cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise GoldenUnreadable(f"it is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None


def _shown(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


def check(config: pytest.Config, run: Run) -> list[str]:
    """Mismatches for ``run``'s golden transcript; with the update flag, rewrite it (and still fail)."""
    golden = run.scenario.expect.transcript
    if golden is None:
        return []
    folder = run.scenario.path.parent.resolve()
    try:
        golden = (folder / golden).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        return [f"golden transcript {golden} cannot be resolved ({exc}); make it a regular file"]
    if not golden.is_relative_to(folder):  # the loader refuses these; a Scenario built in Python may not
        return [f"golden transcript {golden} is outside the scenario's folder {folder}: it is neither read nor "
                f"written (not even by {UPDATE_FLAG}); keep goldens in the scenario's folder or below it"]
    actual = normalise(run.transcript)
    shown = _shown(golden, config)
    update = bool(config.getoption("distproc_update_goldens"))
    seedless = "" if run.scenario.seed is not None else (
        " (this scenario sets no seed, so its data changes from run to run: give it a 'seed' to make the "
        "transcript reproducible)")
    try:
        expected = read_golden(golden)
    except GoldenUnreadable as exc:  # never replaced, even by the update flag: goldens are only ever written
        return [f"golden transcript {shown} cannot be compared: {exc}; remove it (then {UPDATE_FLAG} writes it) "
                "or make it a regular UTF-8 file"]
    if expected is not None and expected == actual:
        return []
    if update:
        partial = golden.with_name(f".{golden.name}.{os.getpid()}.tmp")
        try:
            golden.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(actual, encoding="utf-8")
            partial.replace(golden)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            return [f"golden transcript {shown} cannot be written by {UPDATE_FLAG}: {exc.strerror} "
                    f"({exc.filename}); make its folder a writable directory"]
        verb = "written" if expected is None else "updated"
        return [f"golden transcript {shown} {verb} by {UPDATE_FLAG}; review the change, then rerun without "
                f"the flag (an update never passes){seedless}"]
    if expected is None:
        return [f"golden transcript {shown} does not exist; run pytest with {UPDATE_FLAG} to write it from "
                f"this run, review it and commit it{seedless}"]
    diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                        fromfile=f"{shown} (golden)", tofile="this run (normalised)"))
    return [f"transcript differs from golden {shown} (if the change is intended, rerun with {UPDATE_FLAG})"
            f"{seedless}:\n{diff.rstrip()}"]


class GoldenPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_distproc_check(self, config: pytest.Config, run: Run) -> list[str] | None:
        return check(config, run) or None


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(GoldenPlugin(config), "distproc-goldens")

