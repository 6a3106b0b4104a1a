"""pytest's side of backend claude-code: where the CLI is, its version in the header, and a skip with the reason
when this machine cannot run it (no CLI, or no loopback-only network namespace) instead of another backend."""

from __future__ import annotations

import functools

import pytest

from pytest_distproc.claude_code import cli
from pytest_distproc.claude_code.netns import NoLoopbackNamespace, in_loopback_namespace, interfaces


def claude_path(config: pytest.Config) -> str | None:
    """``--distproc-claude``, else ini ``distproc_claude`` (relative to the rootdir), else None."""
    given = config.getoption("distproc_claude") or None
    if given is None and config.getini("distproc_claude"):
        given = str(config.rootpath / str(config.getini("distproc_claude")))
    return given


def header_line(config: pytest.Config) -> str:
    try:
        path = cli.find_claude(claude_path(config))
        return f"distproc: claude-code backend: Claude Code {cli.version(path)} at {path}"
    except cli.ClaudeNotFound as exc:
        return f"distproc: claude-code backend unavailable: {exc}"


@functools.lru_cache(maxsize=1)
def namespace_problem() -> str | None:
    """Why this process cannot make a loopback-only network namespace (None: it can), asked once."""
    try:
        in_loopback_namespace(interfaces)
    except NoLoopbackNamespace as exc:
        return str(exc)
    return None


def require_claude_code(claude: str | None) -> None:
    """Skip the test, with the reason, when backend claude-code cannot run here; it never falls back."""
    try:
        cli.version(cli.find_claude(claude))
        problem = namespace_problem()
    except cli.ClaudeNotFound as exc:
        problem = str(exc)
    if problem:  # located at the scenario item, as a skip mark would be, not at this line
        raise pytest.skip.Exception(problem, _use_item_location=True)
