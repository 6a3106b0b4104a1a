"""MkDocs hooks: pages and files produced from their sources at build time, so they cannot drift from the code.

``reference.md`` comes from the scenario JSON Schema and ``hooks.md`` from ``plugin/hookspecs.py`` (both through
``pytest_distproc.schemadoc``); ``scenario.schema.json`` is the package's schema file, served as it is;
``<!-- modules -->`` in a page becomes the tree of the package's rooms and modules, in the layer order that
``tests/test_layout.py`` enforces.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from pytest_distproc import schemadoc

MODULES_MARKER = "<!-- modules -->"
LAYOUT_TEST = Path(__file__).resolve().parent.parent / "tests" / "test_layout.py"


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "reference.md", content=schemadoc.render_reference()))
    files.append(File.generated(config, "hooks.md", content=schemadoc.render_hooks()))
    files.append(File.generated(config, "scenario.schema.json",
                                content=schemadoc.SCHEMA_PATH.read_text(encoding="utf-8")))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if MODULES_MARKER not in markdown:
        return markdown
    return markdown.replace(MODULES_MARKER, module_tree())


def layout_constants(path: Path = LAYOUT_TEST) -> dict[str, Any]:
    """``LAYERS`` and ``CHILD_SIDE`` as ``tests/test_layout.py`` defines them (read, not imported)."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("LAYERS", "CHILD_SIDE"):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def module_tree() -> str:
    """The package as a nested list: rooms from the bottom layer up, each module with its one job.

    A module's job is the first line of its docstring; a room's is its ``__init__``'s. Modules that
    ``CHILD_SIDE`` lists (loaded by an attempt's process or the fork server) are marked *child side*.
    """
    constants = layout_constants()
    child_side = {name.split(".", 1)[1].replace(".", "/") + ".py" for name in constants["CHILD_SIDE"]}
    jobs = {path.split("/", 1)[1]: schemadoc._rst_to_md(first) or "(no docstring)"
            for path, first in schemadoc.module_docs()}
    out = [f"- `pytest_distproc/__init__.py`: {jobs.pop('__init__.py')}"]
    for number, rooms in enumerate(constants["LAYERS"], start=1):
        for room in rooms:
            flat = f"{room}.py"
            if flat in jobs:
                out.append(f"- `{flat}` (layer {number}): {jobs.pop(flat)}")
                continue
            init = f"{room}/__init__.py"
            entry = f", its `{init}`" if _has_code(schemadoc.PACKAGE_DIR / init) else ""
            out.append(f"- `{room}/` (layer {number}){entry}: {jobs.pop(init, '(no docstring)')}")
            for path in sorted(p for p in jobs if p.startswith(f"{room}/")):
                tag = " (child side)" if path in child_side else ""
                out.append(f"    - `{path}`{tag}: {jobs.pop(path)}")
    if jobs:
        raise ValueError(f"modules in no room of LAYERS in tests/test_layout.py: {sorted(jobs)}")
    return "\n".join(out) + "\n"


def _has_code(path: Path) -> bool:
    """Whether a room's ``__init__`` defines something (then it is a module of its own, not just a label)."""
    tree = ast.parse(path.read_text(encoding="utf-8")) if path.is_file() else ast.Module(body=[], type_ignores=[])
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in tree.body)
