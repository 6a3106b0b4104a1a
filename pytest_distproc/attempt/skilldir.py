"""Skills packaged as a directory with a ``SKILL.md``, the way agent skills are shipped.

The front matter names the skill, its ``context`` (fork | inline) and the ``processor`` script run
for each region. The script gets the region's args on its command line
(``--region A --records records.jsonl --attempt 1 --seed 42``, records as JSON Lines in the attempt's
temp dir) and prints the region's summary as one JSON object on its last stdout line.
A scenario may name another script of the directory: ``skill: path/to/skill#other.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_distproc.errors import SkillError

FRONT_KEYS = ("name", "description", "context", "processor", "allowed-tools", "license", "metadata")


@dataclass(frozen=True)
class SkillDir:
    path: Path
    name: str
    context: str
    processor: Path
    description: str = ""

    @classmethod
    def load(cls, reference: Path | str) -> SkillDir:
        folder, _, script = str(reference).partition("#")
        path = Path(folder)
        manifest = path / "SKILL.md"
        try:
            text = manifest.read_text(encoding="utf-8")
        except OSError as exc:
            raise SkillError(f"{manifest}: cannot read: {exc.strerror}") from None
        front = _front_matter(text, manifest)
        context = str(front.get("context", "fork"))
        if context not in ("fork", "inline"):
            raise SkillError(f"{manifest}: context must be fork or inline, got {context!r}")
        chosen = script or front.get("processor")
        if not chosen:
            raise SkillError(f"{manifest}: name the script to run per region in the front matter "
                             "(processor: process_region.py) or in the scenario (skill: DIR#script.py)")
        processor = (path / str(chosen)).resolve()
        if not processor.is_relative_to(path.resolve()) or not processor.is_file():
            raise SkillError(f"{manifest}: processor {chosen!r} is not a file inside {path}")
        return cls(path, str(front.get("name", path.name)), context, processor, str(front.get("description", "")))

    def as_skill(self) -> Any:
        return _ScriptSkill(str(self.processor))


def _front_matter(text: str, manifest: Path) -> dict[str, Any]:
    if not text.startswith("---"):
        raise SkillError(f"{manifest}:1: SKILL.md must start with YAML front matter between '---' lines")
    end = text.find("\n---", 3)
    if end < 0:
        raise SkillError(f"{manifest}:1: front matter is not closed by a '---' line")
    import yaml  # here, in the coordinator: the attempt's side of the fork never maps PyYAML

    try:
        front = yaml.safe_load(text[3:end])
    except yaml.YAMLError as exc:
        raise SkillError(f"{manifest}: front matter is not valid YAML: {exc}") from None
    if not isinstance(front, dict):
        raise SkillError(f"{manifest}:2: front matter must be a mapping (name: ..., processor: ...)")
    return front


@dataclass(frozen=True)
class _ScriptSkill:
    """Runs the processor script as a subprocess of the (already isolated) region child."""

    script: str

    def __call__(self, records: list[dict[str, Any]], context: Mapping[str, Any]) -> Any:
        records_path = os.path.join(str(context["workdir"]), "records.jsonl")
        with open(records_path, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
        command = [self.script] if os.access(self.script, os.X_OK) and not self.script.endswith(".py") else [
            sys.executable, self.script]
        command += ["--region", str(context["region"]), "--records", records_path,
                    "--attempt", str(context["attempt"]), "--seed", str(context["seed"])]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-3:]
            raise SkillError(f"processor {Path(self.script).name} exited with code {done.returncode}: "
                             + " | ".join(tail))
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            raise SkillError(f"processor {Path(self.script).name} printed no JSON summary on its last line") from None
