"""``matrix:`` expands one scenario document into one document per combination of values.

```yaml
name: fault-matrix
matrix: {kind: [raise, crash, hang], region: [A, B]}
faults: [{region: "${region}", kind: "${kind}"}]
```

gives six items, ``fault-matrix[raise-A]`` ... ``fault-matrix[hang-B]``. A string that is exactly
``${var}`` takes the value with its type; ``${var}`` inside a longer string is replaced as text.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from typing import Any

from pytest_distproc.errors import Problem
from pytest_distproc.scenario.yamlsource import Document

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_COMBINATIONS = 1000


def expand(doc: Document, filename: str) -> list[tuple[Document, str]]:
    """``[(document, id suffix)]``: the document itself (suffix ``""``) when it has no matrix."""
    if not isinstance(doc.value, dict) or "matrix" not in doc.value:
        return [(doc, "")]
    body = {k: v for k, v in doc.value.items() if k != "matrix"}
    matrix = doc.value["matrix"]
    problems: list[Problem] = []

    def fail(path: str, message: str) -> None:
        problems.append(Problem(filename, doc.line_of(path), path, message))

    axes: list[tuple[str, list[Any]]] = []
    if not isinstance(matrix, dict) or not matrix:
        fail("$.matrix", "expected a mapping of variable -> list of values, "
             "e.g. {kind: [raise, crash], region: [A, B]}")
    else:
        for name, values in matrix.items():
            at = f"$.matrix.{name}"
            if not VARIABLE.match(str(name)):
                fail(at, f"matrix variable {name!r} must be a name of letters, digits and '_'")
            elif not isinstance(values, list) or not values:
                fail(at, f"expected a non-empty list of values, got {values!r}")
            elif any(isinstance(v, (dict, list)) for v in values):
                fail(at, "matrix values must be plain scalars (strings, numbers, booleans)")
            else:
                axes.append((str(name), values))
    total = 1
    for _, values in axes:
        total *= len(values)
    if total > MAX_COMBINATIONS:
        fail("$.matrix", f"expands to {total} scenarios; at most {MAX_COMBINATIONS} per document")
    names = {name for name, _ in axes}
    for path, text in _strings(body, "$"):
        for variable in PLACEHOLDER.findall(text):
            if variable not in names and not problems:
                fail(path, f"unknown matrix variable ${{{variable}}}; variables: {', '.join(sorted(names)) or 'none'}")
    if problems:
        return [(replace(doc, value=None, problems=[*doc.problems, *problems]), "")]
    expanded = []
    for combination in itertools.product(*(values for _, values in axes)):
        bindings = dict(zip((name for name, _ in axes), combination, strict=True))
        suffix = "-".join(_id(v) for v in combination)
        expanded.append((replace(doc, value=_substitute(body, bindings)), suffix))
    return expanded


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{path}[{i}]")]
    return []


def _substitute(value: Any, bindings: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return bindings[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(bindings[m.group(1)]), value)
    if isinstance(value, dict):
        return {str(_substitute(k, bindings)): _substitute(v, bindings) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, bindings) for v in value]
    return value


def _id(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(value)) or "_"
