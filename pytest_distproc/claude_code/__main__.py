"""``python -m pytest_distproc.claude_code settings --log FILE``: the settings snippet that installs our hook
recorder in a user's own Claude Code, so their runs can be checked with ``source: {claude_code: FILE}``.

The recorder is the same ``recorder.sh`` the claude-code backend installs: one ``date`` and one ``printf``
append per hook event, no Python start-up (``benchmarks/recorder.py`` measures its cost per event).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_distproc.claude_code.launch import HOOK_EVENTS


def recorder_path() -> Path:
    """The installed ``recorder.sh`` (a file of the package; hooks run it with ``/bin/sh``)."""
    return Path(str(resources.files("pytest_distproc.claude_code").joinpath("recorder.sh")))


def settings(log: Path, *, task_tools: bool = True) -> dict[str, Any]:
    """Claude Code settings that append every hook event the history needs to ``log`` (made absolute: hooks
    run in the session's working directory). ``task_tools`` also turns the task tools on for the session."""
    command = shlex.join(["/bin/sh", str(recorder_path()), str(log.expanduser().resolve())])
    snippet: dict[str, Any] = {"hooks": {event: [{"matcher": "", "hooks": [{"type": "command", "command": command}]}]
                                         for event in HOOK_EVENTS}}
    if task_tools:
        snippet["env"] = {"CLAUDE_CODE_ENABLE_TODO_TOOLS": "1"}
    return snippet


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_distproc.claude_code",
                                     description="Record your own Claude Code runs for pytest-distproc.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("settings", help="print the settings snippet that installs the hook recorder",
                               description="Print Claude Code settings (JSON) whose hooks append each event, "
                               "stamped, to --log. Merge it into .claude/settings.json, or pass the file to "
                               "`claude --settings FILE`.")
    make.add_argument("--log", required=True, type=Path, help="the hook log to append to (JSON Lines)")
    make.add_argument("--no-task-tools", action="store_true",
                      help="leave CLAUDE_CODE_ENABLE_TODO_TOOLS out (the task tools must be on for a history)")
    args = parser.parse_args(argv)
    json.dump(settings(args.log, task_tools=not args.no_task_tools), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
