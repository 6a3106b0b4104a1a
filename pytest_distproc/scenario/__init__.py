"""Scenario documents: the frozen model and the YAML loader that builds it."""

from pytest_distproc.scenario.loader import load_file, load_text
from pytest_distproc.scenario.model import Expect, FaultSpec, Policy, RegionSpec, Scenario

__all__ = ["Expect", "FaultSpec", "Policy", "RegionSpec", "Scenario", "load_file", "load_text"]
