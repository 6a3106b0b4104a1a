"""Reference pages rendered from their sources, so the docs cannot drift from the code.

* :func:`render_reference`: the scenario reference, from ``schema/scenario.schema.json``;
* :func:`render_hooks`: the hooks reference, from the signatures and docstrings in :mod:`.hookspecs`,
  each with its example from a conftest file the tests run;
* :func:`module_table`: every module of the package with its one job (the first line of its docstring).

``docs/hooks.py`` (a MkDocs hook) calls them on every ``mkdocs build``; nothing generated is committed.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).parent
SCHEMA_PATH = PACKAGE_DIR / "schema" / "scenario.schema.json"
HOOK_EXAMPLES = "docs/examples/hooks/conftest.py"
"""The conftest holding one snippet section per hook (``# --8<-- [start:HOOK]`` ... ``[end:HOOK]``)."""

_ORDER = ("region", "policy", "fault", "expect", "summary")
_CASELESS = re.compile(r"\[([A-Za-z])([A-Za-z])\]")
_ROLE = re.compile(r":(?:class|func|meth|mod|attr):`~?\.?([^`]+)`")


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# -- the scenario reference -------------------------------------------------------------------------


def render_reference(schema: Mapping[str, Any] | None = None) -> str:
    """The scenario reference page (Markdown) for ``schema`` (default: the shipped schema)."""
    schema = schema if schema is not None else load_schema()
    defs: Mapping[str, Any] = schema.get("$defs", {})
    out = [
        "# Scenario reference",
        "",
        "<!-- Generated from pytest_distproc/schema/scenario.schema.json by pytest_distproc/schemadoc.py "
        "on every docs build; edit the schema, not this page. -->",
        "",
        _text(schema.get("description", "")),
        "",
        "This page is generated from the scenario JSON Schema "
        "([scenario.schema.json](scenario.schema.json), draft 2020-12) on every docs build, so it says "
        "exactly what the schema says. Checks that need the whole document or the file system (a fault's "
        "region must exist, data files must be there, ...) are the loader's; see "
        "[The scenario JSON Schema](schema.md).",
        "",
    ]
    objects = [name for name in _ORDER if name in defs] + sorted(
        name for name, node in defs.items()
        if name not in _ORDER and name not in ("scenario", "matrixDocument") and _is_record(node)
    )
    values = [name for name, node in defs.items() if not _is_record(node) and name != "matrixDocument"]
    if "scenario" in defs:
        out += _section("scenario", "The scenario document", defs["scenario"], defs)
    for name in objects:
        out += _section(name, name, defs[name], defs)
    if "matrixDocument" in defs:
        out += _section("matrixDocument", "matrix documents", defs["matrixDocument"], defs)
    if values:
        out += ["## Value types", ""]
        for name in values:
            node = defs[name]
            line = f"- <a id=\"{name.lower()}\"></a>**{name}**: {_type(node, defs)}"
            if node.get("description"):
                line += f". {_text(node['description'])}"
            out.append(line)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _is_record(node: Mapping[str, Any]) -> bool:
    return "properties" in node and ("additionalProperties" in node or "required" in node or "type" in node)


def _section(name: str, title: str, node: Mapping[str, Any], defs: Mapping[str, Any]) -> list[str]:
    out = [f'## {title} {{ #{name.lower()} }}' if title != name else f"## {name}", ""]
    if node.get("description"):
        out += [_text(node["description"]), ""]
    facts = []
    types = node.get("type")
    if isinstance(types, list) and "null" in types:
        facts.append("may be left empty (`null`)")
    required = node.get("required", [])
    if required:
        facts.append("required: " + ", ".join(f"`{key}`" for key in required))
    if node.get("additionalProperties") is False:
        facts.append("no other keys")
    if "propertyNames" in node and "enum" in node["propertyNames"]:
        facts.append("allowed keys: " + ", ".join(f"`{key}`" for key in node["propertyNames"]["enum"]))
    if "minProperties" in node and "maxProperties" in node and node["minProperties"] == node["maxProperties"]:
        facts.append(f"exactly {node['minProperties']} of these keys")
    conditional = _conditional(node)
    if conditional:
        facts.append(conditional)
    if facts:
        out += ["*" + "; ".join(facts) + ".*", ""]
    for key, sub in node.get("properties", {}).items():
        line = f"- **`{key}`**: {_type(sub, defs)}"
        if sub.get("description") and "$ref" not in sub:
            line += f". {_text(sub['description'])}"
        out.append(line)
    out.append("")
    if name == "matrixDocument":
        out += ["All other keys are those of [the scenario document](#scenario), and their values may "
                "hold `${variable}` placeholders.", ""]
    return out


def _conditional(node: Mapping[str, Any]) -> str:
    condition, then = node.get("if"), node.get("then")
    if not isinstance(condition, Mapping) or not isinstance(then, Mapping):
        return ""
    props = condition.get("properties", {})
    when = [f"`{key}` is `{value['const']}`" for key, value in props.items() if isinstance(value, Mapping)
            and "const" in value]
    needs = then.get("required", [])
    if when and needs:
        return "when " + " and ".join(when) + ", " + ", ".join(f"`{key}`" for key in needs) + " is required"
    return ""


def _type(node: Any, defs: Mapping[str, Any]) -> str:
    """A short human reading of one schema node: its type, allowed values and constraints."""
    if not isinstance(node, Mapping):
        return "anything" if node is True else "nothing"
    if "$ref" in node:
        target = str(node["$ref"]).rsplit("/", 1)[-1]
        return f"[{target}](#{target.lower()})"
    if "const" in node:
        return _literal(node["const"])
    if "enum" in node:
        return "one of " + ", ".join(_literal(value) for value in node["enum"])
    if "anyOf" in node:
        return " or ".join(_type(sub, defs) for sub in node["anyOf"])
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    readings = [_one_type(kind, node, defs) for kind in types if kind != "null"]
    text = " or ".join(readings) if readings else "any value"
    limits = _limits(node)
    if limits:
        text += f" ({limits})"
    if "null" in types:
        text += " or `null`"
    return text


def _one_type(kind: str, node: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    if kind == "array" and "items" in node:
        return f"list of {_type(node['items'], defs)}"
    if kind == "object":
        if "patternProperties" in node:
            (pattern, value), *_ = node["patternProperties"].items()
            return f"map of key matching {_pattern(pattern)} to {_type(value, defs)}"
        if isinstance(node.get("additionalProperties"), Mapping) and "properties" not in node:
            keys = node.get("propertyNames", {})
            key = f"key matching {_pattern(keys['pattern'])}" if "pattern" in keys else "name"
            return f"map of {key} to {_type(node['additionalProperties'], defs)}"
        if "properties" in node:
            fields = ", ".join(f"`{key}` ({_type(sub, defs)})" for key, sub in node["properties"].items())
            required = node.get("required", [])
            need = f"; required: {', '.join(f'`{k}`' for k in required)}" if required else ""
            return f"mapping with {fields}{need}"
        return "mapping"
    return {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean"}.get(kind, kind)


def _limits(node: Mapping[str, Any]) -> str:
    parts = []
    if "minimum" in node:
        parts.append(f">= {node['minimum']}")
    if "exclusiveMinimum" in node:
        parts.append(f"> {node['exclusiveMinimum']}")
    if "maximum" in node:
        parts.append(f"<= {node['maximum']}")
    for key, noun in (("minItems", "item"), ("minProperties", "key"), ("minLength", "character")):
        if key in node:
            parts.append(f"at least {node[key]} {noun}{'s' if node[key] != 1 else ''}")
    if "pattern" in node:
        parts.append(f"matching {_pattern(node['pattern'])}")
    if isinstance(node.get("not"), Mapping) and "pattern" in node["not"]:
        parts.append(f"not matching {_pattern(node['not']['pattern'])}")
    return ", ".join(parts)


def _pattern(pattern: str) -> str:
    """A regex in a code span; ``[Kk]``-style classes are folded into one letter, noted as any case."""
    folded = _CASELESS.sub(lambda m: m.group(1).upper() if m.group(1).lower() == m.group(2).lower()
                           else m.group(0), pattern)
    suffix = " (letters in any case)" if folded != pattern else ""
    return _code(folded) + suffix


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return _code(str(value).lower())  # as YAML and JSON write it
    return "`null`" if value is None else _code(str(value))


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _text(text: str) -> str:
    return text.strip()


# -- the hooks reference ----------------------------------------------------------------------------


def hook_functions() -> list[Callable[..., Any]]:
    """Every hook specification in :mod:`pytest_distproc.plugin.hookspecs`, in the order of the file."""
    from pytest_distproc.plugin import hookspecs

    found = [fn for name, fn in vars(hookspecs).items() if name.startswith("pytest_distproc_") and callable(fn)]
    return sorted(found, key=lambda fn: fn.__code__.co_firstlineno)


def render_hooks(example: str = HOOK_EXAMPLES) -> str:
    """The hooks reference page (Markdown): signature, docstring and the tested example of every hook."""
    from pytest_distproc.plugin import hookspecs

    out = [
        "# Hooks reference",
        "",
        "<!-- Generated from pytest_distproc/plugin/hookspecs.py by pytest_distproc/schemadoc.py on every docs "
        "build. -->",
        "",
        _rst_to_md(inspect.getdoc(hookspecs) or ""),
        "",
        f"Every example below is a section of one conftest, `{example}`, shown whole at the end of this "
        "page; `tests/test_docs.py` runs it against scenarios that use every hook.",
        "",
    ]
    for fn in hook_functions():
        name = fn.__name__
        spec: Mapping[str, Any] = getattr(fn, "pytest_spec", None) or {}
        kind = ("first non-`None` result wins (`firstresult`)" if spec.get("firstresult")
                else "every implementation is called; their results are collected in a list")
        out += [
            f"## {name}",
            "",
            "```python",
            f"def {name}({_params(fn)}) -> {_returns(fn)}",
            "```",
            "",
            _rst_to_md(inspect.getdoc(fn) or ""),
            "",
            f"*Called: {kind}.*",
            "",
            "```python",
            f'--8<-- "{example}:{name}"',
            "```",
            "",
        ]
    folder = example.rsplit("/", 1)[0]
    out += ["## The whole example conftest", "", "```python", f'--8<-- "{example}"', "```", "",
            "A scenario beside it uses the skill, the fault kind and the expectation kind it adds:", "",
            "```yaml", f'--8<-- "{folder}/hooks.yaml"', "```", "",
            "```console", f'--8<-- "{folder}/hooks.console"', "```", ""]
    return "\n".join(out)


def _params(fn: Callable[..., Any]) -> str:
    signature = inspect.signature(fn)
    return ", ".join(f"{p.name}: {p.annotation}" if p.annotation is not inspect.Parameter.empty else p.name
                     for p in signature.parameters.values())


def _returns(fn: Callable[..., Any]) -> str:
    annotation = inspect.signature(fn).return_annotation
    return "None" if annotation is inspect.Signature.empty else str(annotation)


def _rst_to_md(text: str) -> str:
    """Docstring reST to Markdown: ``literal`` to `literal`, :class:`x` roles to `x`."""
    return _ROLE.sub(lambda m: f"`{m.group(1)}`", text).replace("``", "`")


# -- the module map ---------------------------------------------------------------------------------


def module_docs(package_dir: Path = PACKAGE_DIR) -> Iterable[tuple[str, str]]:
    """``(module path, first docstring line)`` for every module of the package, sorted by path."""
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = " ".join(doc.split("\n\n", 1)[0].split())
        yield path.relative_to(package_dir.parent).as_posix(), first


def module_table(package_dir: Path = PACKAGE_DIR) -> str:
    """A Markdown list of the package's modules, each with its one job."""
    return "\n".join(f"- `{path}`: {_rst_to_md(first) or '(no docstring)'}"
                     for path, first in module_docs(package_dir)) + "\n"
