"""The docs tell the truth: every example they show is a file run here, and ``mkdocs build --strict`` passes.

An example run is a ``docs/examples/**/*.console`` file: its first line is the command (``$ pytest ...``),
the rest an excerpt of what it prints. Each excerpt line must appear, in that order, in the output, after
pids and timings are masked (``(pid <pid>)``, ``<t> s``); ``...`` stands for any text, and a line that is
only ``...`` says that lines were left out. The docs include the console files themselves, so the output
the reader sees is the output this test checks.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_distproc import schemadoc
from tests.helpers import Sandbox

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
CONSOLES = sorted(EXAMPLES.rglob("*.console"))
OUR_PAGES = ("index.md", "getting-started.md", "cookbook.md", "architecture.md")
"""Pages written by hand for this site; ray.md and schema.md predate it and keep their own examples."""
SNIPPET = re.compile(r'^\s*--8<--\s+"([^":]+)(?::[^"]*)?"\s*$')
_PID = re.compile(r"\(pid \d+\)")
_TIME = re.compile(r"\b\d+\.\d+( ?)s\b")


def normalise(output: str) -> list[str]:
    text = _TIME.sub(lambda m: f"<t>{m.group(1)}s", _PID.sub("(pid <pid>)", output))
    return [line.rstrip() for line in text.splitlines()]


def parse_console(path: Path) -> tuple[list[str], list[str]]:
    command, *excerpt = path.read_text(encoding="utf-8").splitlines()
    assert command.startswith("$ pytest "), f"{path}: the first line must be '$ pytest ...', got {command!r}"
    return shlex.split(command[2:])[1:], [line.rstrip() for line in excerpt]


def assert_excerpt(excerpt: list[str], output: str, where: str) -> None:
    lines = normalise(output)
    position = 0
    for wanted in excerpt:
        if wanted.strip() == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in wanted.split("...")))
        for index in range(position, len(lines)):
            if pattern.fullmatch(lines[index]):
                position = index + 1
                break
        else:
            shown = "\n".join(lines[position:])
            pytest.fail(f"{where}: no line matching\n    {wanted}\nafter line {position} of the output:\n{shown}",
                        pytrace=False)


def page_snippets() -> set[str]:
    """Every file a page includes with ``--8<-- "path"`` (hand-written pages and the generated hooks page)."""
    found = set()
    texts = [page.read_text(encoding="utf-8") for page in DOCS.glob("*.md")] + [schemadoc.render_hooks()]
    for text in texts:
        for line in text.splitlines():
            match = SNIPPET.match(line)
            if match:
                found.add(match.group(1))
    return found


@pytest.fixture
def docs_sandbox(sandbox: Sandbox) -> Sandbox:
    """The examples (and the shipped example coordinators) at the same relative paths as in the repo."""
    shutil.copytree(EXAMPLES, sandbox.pytester.path / "docs" / "examples",
                    ignore=shutil.ignore_patterns("__pycache__", "transcripts", "transitions.log"))
    shutil.copytree(ROOT / "scenarios" / "adapters", sandbox.pytester.path / "scenarios" / "adapters",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return sandbox


@pytest.mark.parametrize("console", CONSOLES, ids=[c.relative_to(EXAMPLES).as_posix() for c in CONSOLES])
def test_console_example_prints_what_the_docs_show(docs_sandbox: Sandbox, console: Path) -> None:
    args, excerpt = parse_console(console)
    result = docs_sandbox.run(*args)
    output = result.stdout.str()
    assert_excerpt(excerpt, output, console.relative_to(ROOT).as_posix())
    fails = any(re.search(r"\b\d+ failed\b", line) for line in excerpt)
    assert result.ret == (1 if fails else 0), output
    docs_sandbox.assert_clean()


def test_hook_examples_ran(docs_sandbox: Sandbox) -> None:
    result = docs_sandbox.run("--distproc-scenarios", "docs/examples/hooks/hooks.yaml")
    result.assert_outcomes(passed=1)
    folder = docs_sandbox.pytester.path / "docs" / "examples" / "hooks"
    log = (folder / "transitions.log").read_text().splitlines()
    assert log[-1].endswith("aggregate-results COMPLETE") and all(line.startswith("local-median ") for line in log)
    assert "Total: 5 records" in (folder / "transcripts" / "local-median.txt").read_text()


def test_every_example_file_is_run() -> None:
    commands = " ".join(" ".join(parse_console(c)[0]) for c in CONSOLES)
    runnable = [p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml") or p.name.startswith("test_")]
    missing = [p.relative_to(ROOT).as_posix() for p in runnable if p.relative_to(ROOT).as_posix() not in commands]
    assert not missing, f"examples no console file runs: {missing}"


def test_every_example_file_is_shown_in_the_docs() -> None:
    shown = page_snippets()
    files = [p for p in EXAMPLES.rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and p.name not in (".gitignore", "transitions.log") and "transcripts" not in p.parts]
    missing = [p.relative_to(ROOT).as_posix() for p in files if p.relative_to(ROOT).as_posix() not in shown]
    assert not missing, f"example files no page includes: {missing}"
    dangling = [s for s in shown if not (ROOT / s).is_file()]
    assert not dangling, f"pages include files that do not exist: {dangling}"


@pytest.mark.parametrize("page", OUR_PAGES)
def test_yaml_and_console_blocks_are_included_files(page: str) -> None:
    """A YAML or console block written straight into a page would be an example no test runs."""
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(r"^```(yaml|console|python)\n(.*?)^```", text, flags=re.M | re.S)
    inline = [body for _, body in blocks if not all(SNIPPET.match(line) for line in body.strip().splitlines())]
    assert not inline, f"{page}: put these examples in docs/examples and include them:\n" + "\n---\n".join(inline)


def test_every_hook_has_an_example_section() -> None:
    conftest = (ROOT / schemadoc.HOOK_EXAMPLES).read_text(encoding="utf-8")
    for hook in schemadoc.hook_functions():
        name = hook.__name__
        assert f"# --8<-- [start:{name}]" in conftest and f"# --8<-- [end:{name}]" in conftest, name
        assert f"def {name}(" in conftest, name


def test_scenario_reference_names_every_key_of_the_schema() -> None:
    schema = schemadoc.load_schema()
    page = schemadoc.render_reference(schema)
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert len(keys) > 30
    missing = sorted(k for k in keys if f"`{k}`" not in page)
    assert not missing, f"keys of the schema missing from the reference: {missing}"
    for kind in schema["$defs"]["fault"]["properties"]["kind"]["enum"]:
        assert f"`{kind}`" in page


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (site / "reference" / "index.html").read_text()
    assert "memory_limit_mb" in reference and "on_region_failure" in reference
    hooks = (site / "hooks" / "index.html").read_text()
    assert "pytest_distproc_check" in hooks and "house rule" in hooks  # the example section was included
    for page in site.rglob("*.html"):
        assert "--8&lt;--" not in page.read_text() and "--8<--" not in page.read_text(), page
    architecture = (site / "architecture" / "index.html").read_text()
    assert "run/coordinator.py" in architecture and "attempt/execute.py" in architecture  # the generated tree
    served = (site / "scenario.schema.json").read_bytes()  # generated by docs/hooks.py, not a committed copy
    assert served == (ROOT / "pytest_distproc" / "schema" / "scenario.schema.json").read_bytes()


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_scenarios_validate_against_the_schema(example: Path) -> None:
    """The examples teach the format, so they follow the schema too (hooks/ adds kinds the schema cannot know)."""
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    validator = jsonschema.Draft202012Validator(schemadoc.load_schema())
    for document in yaml.safe_load_all(example.read_text(encoding="utf-8")):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, errors
