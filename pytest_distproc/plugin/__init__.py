"""pytest glue only: options, ini, collection, report header, terminal summary."""

from __future__ import annotations

import fnmatch
import functools
import itertools
import os
import random
import re
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_distproc.attempt import stats as summary
from pytest_distproc.backends import containment
from pytest_distproc.plugin import hookspecs
from pytest_distproc.plugin.fixture import distproc
from pytest_distproc.plugin.items import MARK, PLAN_SECTION, SECTION, ScenarioFile
from pytest_distproc.plugin.running import SEED_KEY
from pytest_distproc.scenario.model import BACKENDS

if TYPE_CHECKING:
    from pytest_distproc.backends.protocol import Backend

SUFFIXES = (".yaml", ".yml")
FILE_PATTERNS = ("*.yaml", "*.yml")
__all__ = ["distproc"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("distproc", "fork/join scenarios (pytest-distproc)")
    group.addoption(
        "--distproc-scenarios",
        action="store_true",
        default=False,
        help="collect YAML scenarios: under the given paths, else the distproc_scenarios ini paths.",
    )
    group.addoption(
        "--distproc-seed",
        type=int,
        default=None,
        help="seed for scenarios that set none (default: random, printed in the header).",
    )
    group.addoption(
        "--distproc-backend",
        choices=BACKENDS,
        default=None,
        help="run every scenario on this backend instead of its own 'backend'.",
    )
    group.addoption(
        "--distproc-ray-address",
        default=None,
        metavar="ADDR",
        help="Ray cluster (GCS host:port) for the ray backend; default: ini distproc_ray_address, "
        "else the environment's DISTPROC_RAY_ADDRESS, else a private local Ray on 127.0.0.1.",
    )
    parser.addini("distproc_ray_address", "Ray cluster address (host:port) for the ray backend", default="")
    group.addoption(
        "--distproc-claude",
        default=None,
        metavar="PATH",
        help="the claude CLI for backend claude-code; default: ini distproc_claude, else $DISTPROC_CLAUDE, "
        "else claude on PATH.",
    )
    parser.addini("distproc_claude", "the claude CLI for backend claude-code (a path)", default="")
    group.addoption(
        "--distproc-claude-live",
        action="store_true",
        default=False,
        help="run backend claude-code scenarios with the real model (your $ANTHROPIC_API_KEY and network, "
        "outside the loopback-only namespace) and save each run's cassette for replay; never the default.",
    )
    group.addoption(
        "--distproc-claude-live-url",
        default=None,
        metavar="URL",
        help="the Messages API a live run asks; default: $ANTHROPIC_BASE_URL, else https://api.anthropic.com.",
    )
    group.addoption(
        "--distproc-coordinator",
        default=None,
        metavar="MODULE:FACTORY",
        help="run every scenario with your own coordinator through the adapter protocol "
        "(module:factory or path/to/file.py:factory).",
    )
    group.addoption(
        "--distproc-journal",
        default=None,
        metavar="DIR",
        help="journal every scenario's TaskList history and results to SQLite files in DIR as they happen; "
        "write --distproc-journal=DIR (pytest reads a separate DIR as a test path while finding its rootdir).",
    )
    group.addoption(
        "--distproc-resume",
        action="store_true",
        default=False,
        help="resume each scenario from its journal in --distproc-journal DIR: completed regions are not run again.",
    )
    parser.addini("distproc_scenarios", "paths searched by --distproc-scenarios when none are given",
                  type="args", default=["scenarios"])
    parser.addini("distproc_files", "glob patterns of the files --distproc-scenarios reads as scenarios (the file "
                  "name, or with a '/' the end of its path); a file named on the command line is read whatever "
                  "its name", type="args", default=list(FILE_PATTERNS))


def pytest_configure(config: pytest.Config) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    seed = config.getoption("distproc_seed")
    if workerinput is not None and "distproc_seed" in workerinput:
        seed = workerinput["distproc_seed"]
    elif seed is None:
        seed = random.Random().randrange(2**31)
    config.stash[SEED_KEY] = int(seed)
    _refuse_journal_after_a_space(config)
    config.addinivalue_line("markers", f"{MARK}: a YAML scenario collected by pytest-distproc (on every scenario item)")
    config.pluginmanager.register(_Transcripts(config), "distproc-transcripts")
    if config.getoption("distproc_resume") and not config.getoption("distproc_journal"):
        raise pytest.UsageError("--distproc-resume needs --distproc-journal DIR: the journals to resume from")
    if config.getoption("distproc_scenarios") and not config.getini("distproc_files"):
        raise pytest.UsageError("--distproc-scenarios: the distproc_files ini option is empty, so no file would be "
                                "a scenario; set glob patterns, e.g. distproc_files = *.yaml *.yml")
    if config.getoption("distproc_scenarios") and config.args_source is not pytest.Config.ArgsSource.ARGS:
        roots = [str(config.rootpath / p) for p in config.getini("distproc_scenarios")]
        missing = [r for r in roots if not Path(r).exists()]
        if missing:
            raise pytest.UsageError(
                f"--distproc-scenarios: no scenario folder at {', '.join(missing)}; pass paths "
                "(pytest --distproc-scenarios PATH) or set the distproc_scenarios ini option"
            )
        config.args = roots
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistSeed(), "distproc-xdist-seed")


def _refuse_journal_after_a_space(config: pytest.Config) -> None:
    """pytest finds its rootdir and ini file before it loads plugins and their options (pytest issue #1435), so
    in ``--distproc-journal DIR`` it read DIR as a test path there; with DIR outside the invocation dir, it
    looked for the ini file from their common ancestor and missed the checkout's. ``--distproc-journal=DIR``
    is one argument: refused with that fix, as pytest-html and pytest-cov document ``--html=PATH``."""
    args, here = [str(a) for a in config.invocation_params.args], config.invocation_params.dir.resolve()
    for flag, value in itertools.pairwise(args):
        if flag != "--distproc-journal" or not (here / value).exists():
            continue
        if not (here / value).resolve().is_relative_to(here):
            raise pytest.UsageError(
                f"--distproc-journal {value}: pytest reads a value after a space as a test path while it finds its "
                f"rootdir and ini file (before plugins add options), and {value} lies outside {here}, so the ini "
                f"file was looked for in the wrong place; write --distproc-journal={value} (one argument)")


class _XdistSeed:
    """Forwards the session seed to xdist workers, as pytest-randomly does."""

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["distproc_seed"] = node.config.stash[SEED_KEY]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    """A scenario file: its name matches ``distproc_files``, or it is a YAML file named on the command line."""
    config = parent.config
    if not config.getoption("distproc_scenarios"):
        return None
    named = file_path.suffix in SUFFIXES and parent.session.isinitpath(file_path)
    if named or file_matcher(tuple(config.getini("distproc_files")))(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


@functools.lru_cache(maxsize=8)
def file_matcher(patterns: tuple[str, ...]) -> Callable[[Path], bool]:
    """Whether ``path.match(pattern)`` for any of ``patterns``, prepared once per ini value (asked for every
    file a session visits). A POSIX pattern without '/' matches the file name alone, so those are one
    regular expression on the name, not a path parsed from the pattern per file; the others go to
    ``PurePath.match`` as they are."""
    name_only = [p for p in patterns if os.name == "posix" and "/" not in p and p not in ("", ".")]
    rest = [p for p in patterns if p not in name_only]
    names = re.compile("|".join(fnmatch.translate(p) for p in name_only)).match if name_only else None

    def matches(path: Path) -> bool:
        return (names is not None and names(path.name) is not None) or any(path.match(p) for p in rest)

    return matches


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, pytest.CollectReport,
                                                                         pytest.CollectReport]:
    """A skipped scenario file (not a scenario) is reported at the file, not at our code that skipped it."""
    report = yield
    if isinstance(collector, ScenarioFile) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (str(collector.path), 1, report.longrepr[2])
    return report


@pytest.hookimpl(trylast=True)
def pytest_distproc_make_backend(config: pytest.Config, scenario: Any, name: str, run_dir: str) -> Backend:
    from pytest_distproc.backends import make_backend

    address = (config.getoption("distproc_ray_address") or config.getini("distproc_ray_address")
               or os.environ.get("DISTPROC_RAY_ADDRESS") or None)
    return make_backend(name, run_dir, ray_address=address)


@pytest.hookimpl(trylast=True)
def pytest_distproc_aggregate(config: pytest.Config, scenario: Any, summaries: list[Any]) -> dict[str, float]:
    return summary.merge(summaries)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Stop this process's fork server once the tests ran, not at interpreter exit: under coverage's
    ``patch = subprocess`` it writes its data file as it leaves, and pytest-cov (a wrapper around this
    one) combines the data files right after the loop. See docs/cookbook.md, "Coverage of your skill"."""
    try:
        return (yield)
    finally:
        from pytest_distproc.backends import forkserver

        forkserver.close_shared()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not config.getoption("distproc_scenarios"):
        return None
    seed = config.stash[SEED_KEY]
    backend = config.getoption("distproc_backend") or "per scenario (default fork)"
    lines = [f"distproc: seed {seed} for scenarios without one (rerun with --distproc-seed={seed}); backend {backend}",
             f"distproc: containment {containment.tier().describe()}"]
    from pytest_distproc.plugin.claude import header_line

    lines.append(header_line(config))
    return lines


class _Transcripts:
    """Collects transcripts from reports (so it works on the xdist controller) and prints them with -v."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.transcripts: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            texts = [text for name, text in report.sections if SECTION in name or PLAN_SECTION in name]
            if texts:
                self.transcripts.append((report.nodeid, "".join(sorted(texts, key=lambda t: not t.startswith("#")))))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        reportchars = getattr(self.config.option, "reportchars", "") or ""
        if not self.transcripts or self.config.option.verbose < 1 or "A" in reportchars or "P" in reportchars:
            return
        terminalreporter.section("distproc transcripts")
        for nodeid, content in sorted(self.transcripts):
            terminalreporter.write_line(f"--- {nodeid}")
            for line in content.rstrip("\n").splitlines():
                terminalreporter.write_line(line)
            terminalreporter.write_line("")


# Report directory, terminal totals, golden transcripts, GitHub annotations and junitxml/pytest-html/allure
# live in their own modules. outputs first: reportdir imports it, and pytest can rewrite only a plugin module
# not imported yet.
pytest_plugins = [
    "pytest_distproc.plugin.outputs",
    "pytest_distproc.plugin.annotations",
    "pytest_distproc.plugin.reportdir",
    "pytest_distproc.checks.goldens",
]
