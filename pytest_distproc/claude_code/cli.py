"""Finding the ``claude`` CLI: ``--distproc-claude PATH``, ini ``distproc_claude``, ``$DISTPROC_CLAUDE``, then PATH.

Its version goes in the report header, and a missing CLI is a clear error that says how to install the
version our observations were made with.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from pytest_distproc.errors import DistprocError

PINNED_VERSION = "2.1.328"
INSTALL = f"npm install @anthropic-ai/claude-code@{PINNED_VERSION}"


class ClaudeNotFound(DistprocError):
    """No usable ``claude`` CLI: the claude-code backend cannot run (scenario items on it are skipped)."""


def find_claude(given: str | None = None) -> str:
    """The CLI's absolute path: ``given`` (option or ini), else ``$DISTPROC_CLAUDE``, else ``claude`` on PATH."""
    named = given or os.environ.get("DISTPROC_CLAUDE")
    where = "--distproc-claude / distproc_claude" if given else "$DISTPROC_CLAUDE"
    if named:
        found = shutil.which(named)
        if not found:
            raise ClaudeNotFound(f"the claude CLI named by {where} ({named}) is not an executable file; "
                                 f"install it with `{INSTALL}` and name node_modules/.bin/claude")
        return os.path.abspath(found)
    found = shutil.which("claude")
    if not found:
        raise ClaudeNotFound(f"backend claude-code needs the claude CLI, and none is on PATH: install it with "
                             f"`{INSTALL}` and pass --distproc-claude node_modules/.bin/claude (or ini "
                             f"distproc_claude, or $DISTPROC_CLAUDE)")
    return os.path.abspath(found)


@functools.lru_cache(maxsize=8)
def version(path: str) -> str:
    """``2.1.328`` for ``2.1.328 (Claude Code)``; the CLI's own words when it says something else."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClaudeNotFound(f"{path} --version failed: {exc}; reinstall with `{INSTALL}`") from None
    words = (out.stdout or out.stderr).strip()
    if out.returncode != 0 or not words:
        raise ClaudeNotFound(f"{path} --version exited {out.returncode}: {words[:200]}; reinstall with `{INSTALL}`")
    return words.split()[0] if words.endswith("(Claude Code)") else words
