"""Which files are scenarios: the ``distproc_files`` ini option, and YAML files that are not scenarios at all
(a docker-compose.yaml beside them) skipped with the reason, while a misspelt scenario still fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_distproc.plugin import file_matcher
from pytest_distproc.scenario.loader import load_text, not_a_scenario
from tests.helpers import Sandbox

GOOD = """\
name: good
backend: inline
regions: {A: {records: 3}}
"""
COMPOSE = """\
services:
  web: {image: nginx, ports: ["8080:80"]}
volumes: {data: {}}
"""
MISSPELT = """\
regoins: {A: {records: 3}}
expect: {outcome: COMPLETE}
"""


def _verdict(text: str) -> str | None:
    return not_a_scenario(load_text(text, Path("/tmp/x.yaml")))


@pytest.mark.parametrize("text", [
    COMPOSE,
    "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Service\n",  # every document foreign
    "name: env\nchannels: [defaults]\ndependencies: [python]\n",  # a conda environment.yml: name alone is no sign
    "- item\n- other\n",
    "just text\n",
])
def test_files_that_are_not_scenarios(text: str) -> None:
    reason = _verdict(text)
    assert reason is not None and reason.startswith("not a scenario: ")
    assert "the distproc_files ini option chooses which files are scenarios" in reason


@pytest.mark.parametrize("text", [
    GOOD,
    MISSPELT,
    "regoins: {A: {records: 3}}\n",  # one typo away from 'regions' is a scenario with a mistake
    "name: x\nfault: [{region: A, kind: raise}]\n",
    "services: {}\n---\n" + GOOD,  # a file holding a scenario is a scenario file: its stray document is an error
    "- regions: {A: {records: 3}}\n",  # a list of scenarios is a mistake the loader explains
    "services: [\n",  # not YAML: nothing to judge, the syntax error is reported
])
def test_files_that_are_scenarios_or_meant_to_be(text: str) -> None:
    assert _verdict(text) is None


def test_the_reason_names_the_keys_found() -> None:
    assert _verdict(COMPOSE) == (
        "not a scenario: no key of the scenario format at its top level (its keys are services, volumes); a "
        "scenario has regions, and its keys are among seed, regions, skill, context, backend, policy, faults, "
        "expect, explore, coordinator, tasks, marks, claude_code, source, matrix; the distproc_files ini option "
        "chooses which files are "
        "scenarios"
    )
    many = _verdict("apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Service\n")
    assert many is not None and "none of its 2 documents has a key of the scenario format at its top level " \
                                "(line 1: its keys are apiVersion, kind)" in many


def test_compose_file_is_skipped_with_its_reason_and_a_misspelt_scenario_still_fails(sandbox: Sandbox) -> None:
    sandbox.scenario("good", GOOD)
    sandbox.scenario("docker-compose", COMPOSE)
    sandbox.scenario("misspelt", MISSPELT)
    result = sandbox.run("--distproc-scenarios", "-rs")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "*misspelt.yaml:1: $.regoins: unknown key 'regoins' (did you mean 'regions'?)*",
        "SKIPPED [[]1[]] scenarios/docker-compose.yaml:1: not a scenario: no key of the scenario format at its top "
        "level (its keys are services, volumes); *",
    ])
    assert "Traceback" not in result.stdout.str()


def test_distproc_files_chooses_the_scenario_files(sandbox: Sandbox) -> None:
    sandbox.pytester.makeini("[pytest]\ndistproc_scenarios = scenarios\ndistproc_files = *.scenario.yaml\n")
    sandbox.scenario("good.scenario", GOOD)
    sandbox.scenario("broken", MISSPELT)  # not a *.scenario.yaml: not read at all
    result = sandbox.run("--distproc-scenarios", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["scenarios/good.scenario.yaml::good PASSED*"])
    # a file named on the command line is read whatever its name
    named = sandbox.run("--distproc-scenarios", "scenarios/broken.yaml")
    named.assert_outcomes(failed=1)


def test_an_empty_distproc_files_is_a_usage_error(sandbox: Sandbox) -> None:
    sandbox.pytester.makeini("[pytest]\ndistproc_scenarios = scenarios\ndistproc_files =\n")
    sandbox.scenario("good", GOOD)
    result = sandbox.run("--distproc-scenarios")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the distproc_files ini option is empty, so no file would be a scenario*"])


@pytest.mark.parametrize("pattern", ["*.yaml", "*.scenario.yaml", "s0*.y?ml", "[ab].yaml", "*", "**", ".*", "..",
                                     "*.YAML", "sub/*.yaml", "/abs/*.yaml", "x/../*.yaml"])
@pytest.mark.parametrize("path", ["/t/a.yaml", "/t/b.yml", "/t/sub/a.yaml", "/abs/q.yaml", "/t/.hidden.yaml",
                                  "/t/A.YAML", "/t/c.scenario.yaml", "/t/s012.yml", "/t/a.yaml.bak", "/t/a\nb.yaml"])
def test_file_matcher_matches_as_path_match_does(pattern: str, path: str) -> None:
    assert file_matcher((pattern,))(Path(path)) == Path(path).match(pattern)
    assert file_matcher(("*.never", pattern))(Path(path)) == Path(path).match(pattern)


def test_distproc_files_is_read_per_session(pytester: pytest.Pytester) -> None:
    """The matcher is prepared once per ini value: two sessions of one process, with other patterns, collect
    other files."""
    (pytester.path / "scenarios").mkdir()
    for name in ("one.a", "two.b"):
        (pytester.path / "scenarios" / f"{name}.yaml").write_text(GOOD.replace("good", name.split(".")[0]))
    for pattern, found, missed in (("*.a.yaml", "one", "two"), ("*.b.yaml", "two", "one")):
        pytester.makeini(f"[pytest]\ndistproc_files = {pattern}\n")
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q",
                                              "--distproc-scenarios", "scenarios")
        result.stdout.fnmatch_lines([f"scenarios/{found}.*.yaml::{found}", "1 test collected*"])
        assert f"::{missed}" not in result.stdout.str()
