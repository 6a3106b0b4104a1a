"""pytest-distproc: test fork/join coordination with YAML scenarios.

The names below are imported on first use: the fork server and the guardian run in interpreters of
their own that import this package, and importing the TaskList and the errors here cost each of them
~0.1 s of CPU per pytest session.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_distproc.errors import DistprocError, IllegalTransition, ScenarioError
    from pytest_distproc.tasklist import State, TaskList

__all__ = ["DistprocError", "IllegalTransition", "ScenarioError", "State", "TaskList"]
__version__ = "0.2.0"
_HOME = {"DistprocError": "errors", "IllegalTransition": "errors", "ScenarioError": "errors",
         "State": "tasklist", "TaskList": "tasklist"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'pytest_distproc' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pytest_distproc.{_HOME[name]}"), name)
