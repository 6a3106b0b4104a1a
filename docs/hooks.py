"""MkDocs hooks: pages rendered from their sources at build time, so they cannot drift from the code.

``reference.md`` comes from the scenario JSON Schema and ``hooks.md`` from ``hookspecs.py`` (both through
``pytest_distproc.schemadoc``); ``<!-- modules -->`` in a page becomes the list of the package's modules.
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from pytest_distproc import schemadoc

MODULES_MARKER = "<!-- modules -->"


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "reference.md", content=schemadoc.render_reference()))
    files.append(File.generated(config, "hooks.md", content=schemadoc.render_hooks()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return markdown.replace(MODULES_MARKER, schemadoc.module_table())
