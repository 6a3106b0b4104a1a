"""What ships: an sdist whose own tests run, complete metadata, README links that work on the package's index
page, the schema modeline in every document of every shipped YAML file, and docs that agree with the README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import uuid
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from pytest_distproc.scenario.model import Policy
from tests.helpers import MARK, marked_processes

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "pytest_distproc" / "schema" / "scenario.schema.json"
MODELINE = re.compile(r"#\s*yaml-language-server\s*:\s*\$schema=(\S+)\s*")
NO_MODELINE = {"docs/examples/hooks/hooks.yaml": "its kinds come from a conftest.py the schema cannot know"}
SHIPPED_YAML = sorted(p for folder in ("scenarios", "docs/examples") for p in (ROOT / folder).rglob("*")
                      if p.suffix in (".yaml", ".yml") and p.relative_to(ROOT).as_posix() not in NO_MODELINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def pyproject() -> dict[str, object]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    with open(ROOT / "pyproject.toml", "rb") as file:
        data: dict[str, object] = tomllib.load(file)
    return data


def project() -> dict[str, object]:
    table = pyproject()["project"]
    assert isinstance(table, dict)
    return table


def repository() -> str:
    urls = project()["urls"]
    assert isinstance(urls, dict)
    return str(urls["Source"]).rstrip("/")


# --- metadata ------------------------------------------------------------------------------------------


def test_metadata_is_complete() -> None:
    meta = project()
    classifiers = meta["classifiers"]
    assert isinstance(classifiers, list)
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert "Framework :: Pytest" in classifiers
    per_version = r"Programming Language :: Python :: 3\.\d+"
    versions = sorted(c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(per_version, c))
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    assert meta["requires-python"] == ">=3.10"  # the oldest classifier
    keywords = meta["keywords"]
    assert isinstance(keywords, list) and {"pytest", "fault injection"} <= set(keywords)
    urls = meta["urls"]
    assert isinstance(urls, dict) and {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert all(str(url).startswith("https://") for url in urls.values())
    test_extra = pyproject()["project"]["optional-dependencies"]["test"]  # type: ignore[index]
    assert any(str(req).startswith("pytest-cov") for req in test_extra), "tests/test_coverage.py needs pytest-cov"
    assert any(str(req).startswith("build") for req in test_extra), "the sdist test below needs build"


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_links_work_on_the_package_index_page() -> None:
    """PyPI shows README.md without the repository around it: a relative link there is dead. Every link is
    absolute, and each into the repository names a file (and heading) that exists in this tree."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    base = repository()
    targets = LINK.findall(readme)
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert not relative, f"relative links in README.md are dead on the package index page: {relative}"
    for target in targets:
        match = re.fullmatch(re.escape(base) + r"/(?:blob|tree)/main/([^#]+)(?:#(.+))?", target)
        if not match:
            continue
        path = ROOT / match.group(1)
        assert path.exists(), f"README.md links to {target}, but {match.group(1)} is not in the repository"
        if match.group(2):
            headings = [_slug(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines()
                        if line.startswith("#")]
            assert match.group(2) in headings, f"README.md links to {target}: no such heading in {match.group(1)}"
    assert any(t.startswith(base + "/") for t in targets)


# --- the schema modeline -------------------------------------------------------------------------------


def _documents(text: str) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    for line in text.splitlines():
        if re.fullmatch(r"---\s*", line):
            chunks.append([])
        else:
            chunks[-1].append(line)
    return chunks


@pytest.mark.parametrize("path", SHIPPED_YAML, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_document_of_a_shipped_yaml_names_the_schema(path: Path) -> None:
    """The YAML language server reads the modeline per document: after every ``---`` it must be there again."""
    text = path.read_text(encoding="utf-8")
    documents = _documents(text)
    assert len(documents) == len(list(yaml.compose_all(text))), "a '---' inside a document fooled the split"
    for number, lines in enumerate(documents, 1):
        first = next((line for line in lines if line.strip()), "")
        match = MODELINE.fullmatch(first)
        assert match, f"document {number}: the first line must be '# yaml-language-server: $schema=...', got {first!r}"
        where = match.group(1)
        assert (path.parent / where).resolve() == SCHEMA, f"document {number}: {where} is not the schema"


def test_the_shipped_yaml_files_are_found() -> None:
    assert len(SHIPPED_YAML) >= 27 and (ROOT / "scenarios" / "seed.yaml") in SHIPPED_YAML


# --- docs/index.md agrees with README.md ---------------------------------------------------------------


def _setup_commands(page: str) -> list[str]:
    text = (ROOT / page).read_text(encoding="utf-8")
    section = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"^```bash\n(.*?)^```", section, flags=re.M | re.S)]


def _options(page: str) -> set[str]:
    text = (ROOT / page).read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(--distproc-[a-z-]+)", text, flags=re.M))


def test_index_gives_the_readmes_two_set_up_commands() -> None:
    readme = _setup_commands("README.md")
    assert len(readme) == 2, readme
    assert _setup_commands("docs/index.md") == readme


def test_index_lists_every_option_of_the_readme() -> None:
    readme = _options("README.md")
    assert {"--distproc-journal", "--distproc-resume"} <= readme
    missing = readme - _options("docs/index.md")
    assert not missing, f"docs/index.md leaves out {sorted(missing)}"


def test_policy_defaults_are_documented_as_the_model_has_them() -> None:
    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    section = text.split("## Policy defaults", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)`", section, flags=re.M))
    defaults = Policy()
    expected = {}
    for field in fields(Policy):
        value = getattr(defaults, field.name)
        expected[field.name] = f"{value:g}s" if field.name in ("timeout", "backoff") else str(value)
    assert documented == expected
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, value in expected.items():
        assert f"`{name}: {value}`" in readme, f"README.md: policy default `{name}: {value}`"


# --- the sdist -----------------------------------------------------------------------------------------


def test_the_sdist_carries_its_tests_and_they_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the sdist as a packager would, unpack it, and run a fast part of its own suite in it."""
    pytest.importorskip("build", reason="pip install build (in the test extra)")
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path / "src", filter="data")
        else:  # Python 3.10 before 3.10.12
            tar.extractall(tmp_path / "src")
    (unpacked,) = (tmp_path / "src").iterdir()
    for needed in ("conftest.py", "tests/helpers.py", "tests/corpus", "scenarios/seed.yaml", "docs/index.md",
                   "docs/examples", "mkdocs.yml", "MANIFEST.in"):
        assert (unpacked / needed).exists(), f"the sdist lacks {needed}"
    junk = [p.name for p in unpacked.rglob("*")
            if p.name in ("__pycache__", ".coverage") or p.name.startswith(".coverage.")]
    assert not junk, f"the sdist carries build or test leftovers: {junk}"
    mark = uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": str(unpacked), MARK: mark, "PYTHONDONTWRITEBYTECODE": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=unpacked, env=env, capture_output=True, text=True,
                              timeout=600)

    where = run("-c", "import pytest_distproc; print(pytest_distproc.__file__)")
    assert where.stdout.strip() == str(unpacked / "pytest_distproc" / "__init__.py"), where.stdout + where.stderr
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_loader.py")
    assert tests.returncode == 0 and " passed" in tests.stdout, tests.stdout[-3000:] + tests.stderr[-3000:]
    scenarios = run("-m", "pytest", "-p", "no:cacheprovider", "--distproc-scenarios", "scenarios/seed.yaml")
    assert scenarios.returncode == 0 and "1 passed" in scenarios.stdout, scenarios.stdout[-3000:]
    assert not marked_processes(mark)
