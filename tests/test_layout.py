"""The package's tree is its architecture: rooms in layers, no cycles, a lean child side.

Every import statement counts (module level, inside functions, under ``TYPE_CHECKING``): a lazy or
type-only import against the layering is still a dependency a newcomer has to untangle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "pytest_distproc"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

LAYERS = (
    ("errors",),
    ("tasklist",),
    ("attempt",),
    ("scenario",),
    ("backends",),
    ("run", "claude_code"),
    ("report",),
    ("checks",),
    ("explore",),
    ("plugin",),
    ("schemadoc",),
)
"""Rooms from the bottom up (docs/architecture.md): a module imports its own room and the rooms below it."""
ROOT_MAY_IMPORT = {"errors", "tasklist"}
"""What the package's ``__init__`` re-exports: importing the package must stay cheap."""
CHILD_SIDE = (
    "pytest_distproc.attempt.execute",
    "pytest_distproc.attempt.confine",
    "pytest_distproc.attempt.faults",
    "pytest_distproc.attempt.skills",
    "pytest_distproc.attempt.skilldir",
    "pytest_distproc.attempt.data",
    "pytest_distproc.attempt.stats",
    "pytest_distproc.backends.protocol",
    "pytest_distproc.backends.processes",
    "pytest_distproc.backends.forkserver",
    "pytest_distproc.backends.containment",
    "pytest_distproc.backends.guardian",
    "pytest_distproc.claude_code.processor",
)
"""What an attempt's process, the fork server or the guardian loads: never pytest, Hypothesis or PyYAML."""
MAX_FLAT_MODULES = 8


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(PACKAGE))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith(PACKAGE):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) & known for name, path in found.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str) -> int:
    for index, rooms in enumerate(LAYERS):
        if room(module) in rooms:
            return index
    raise AssertionError(f"{module} is in no room of LAYERS; add its room to LAYERS and docs/architecture.md")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan's algorithm), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_walker_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pytest_distproc.run.model import Run\n"
        "def f():\n    from pytest_distproc.attempt import stats as summary\n    import pytest_distproc.errors\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(source)
    known = {"pytest_distproc.run.model", "pytest_distproc.attempt.stats", "pytest_distproc.errors",
             "pytest_distproc.attempt"}
    assert imports_of("pytest_distproc.checks.probe", path, known) == {
        "pytest_distproc.run.model", "pytest_distproc.attempt.stats", "pytest_distproc.errors"}


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(group) for group in found)


def test_imports_follow_the_layers() -> None:
    upward = []
    for module, targets in sorted(graph().items()):
        if module == PACKAGE:
            upward += [f"{module} imports {t}" for t in sorted(targets) if room(t) not in ROOT_MAY_IMPORT]
            continue
        upward += [f"{module} (room {room(module)!r}) imports {t} (room {room(t)!r}, a higher layer)"
                   for t in sorted(targets) if layer(t) > layer(module)]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_few_modules_stay_flat_at_the_top() -> None:
    flat = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert len(flat) <= MAX_FLAT_MODULES, f"{len(flat)} flat modules: {flat}"


@pytest.mark.parametrize("module", CHILD_SIDE)
def test_the_child_side_imports_no_pytest_hypothesis_or_yaml(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest', 'hypothesis', 'yaml'))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} loads {out}"
