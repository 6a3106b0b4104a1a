"""pytest-distproc: test fork/join coordination with YAML scenarios."""

from pytest_distproc.errors import DistprocError, IllegalTransition, ScenarioError
from pytest_distproc.tasklist import State, TaskList

__all__ = ["DistprocError", "IllegalTransition", "ScenarioError", "State", "TaskList"]
__version__ = "0.1.0"
