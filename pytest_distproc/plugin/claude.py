"""pytest's side of backend claude-code: where the CLI is, its version in the header, and a skip with the reason
when this machine cannot run it (no CLI, or no loopback-only network namespace) instead of another backend."""

from __future__ import annotations

import functools
from pathlib import Path

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


def live_url(config: pytest.Config) -> str | None:
    """The real model's API under ``--distproc-claude-live`` (None: scripted runs)."""
    if not config.getoption("distproc_claude_live", False):
        return None
    from pytest_distproc.claude_code.live import live_url as resolve

    return resolve(config.getoption("distproc_claude_live_url", None))


def skip_unless_live(config: pytest.Config, scenario_live: bool) -> None:
    """A ``claude_code: {live: true}`` scenario runs only when asked: it spends the user's key and needs network."""
    if scenario_live and live_url(config) is None:
        pytest.skip("claude_code.live: runs the real model (your $ANTHROPIC_API_KEY and network); "
                    "pass --distproc-claude-live to run it")


def save_cassette(config: pytest.Config, scenario_name: str, scenario_folder: Path, text: str) -> Path:
    """A live run's cassette: under ``--distproc-report DIR``/cassettes, else beside the scenario in cassettes/."""
    report = config.getoption("distproc_report", None)
    folder = Path(report) / "cassettes" if report else scenario_folder / "cassettes"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{scenario_name}.jsonl"
    path.write_text(text)
    return path


def require_claude_code(claude: str | None) -> None:
    """Skip the test, with the reason, when backend claude-code cannot run here; it never falls back."""
    try:
        cli.version(cli.find_claude(claude))
        problem = namespace_problem()
    except cli.ClaudeNotFound as exc:
        problem = str(exc)
    if problem:  # located at the scenario item, as a skip mark would be, not at this line
        raise pytest.skip.Exception(problem, _use_item_location=True)
