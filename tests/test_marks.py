"""``marks:`` in YAML and the automatic keywords: what ``-m`` and ``-k`` select, and pytest's own handling of
xfail, skip, skipif and unregistered marks (``--strict-markers``), for scenario items as for test functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_distproc.errors import ScenarioError
from pytest_distproc.scenario.loader import load_one
from pytest_distproc.scenario.model import MarkSpec
from tests.helpers import Sandbox

SMALL = "backend: inline\nregions: {A: {records: 3}, B: {records: 2}}\n"


def test_loader_reads_marks_as_pytest_spells_them() -> None:
    scenario = load_one(SMALL + """\
marks:
  - slow
  - {xfail: {reason: known race, strict: true}}
  - {skip: not today}
  - {skipif: {condition: "sys.platform == 'darwin'", reason: no fork server there}}
  - {timeout: [5]}
  - {custom: {level: 3}}
""")
    assert scenario.marks == (
        MarkSpec("slow", line=4),
        MarkSpec("xfail", (), {"reason": "known race", "strict": True}, line=5),
        MarkSpec("skip", (), {"reason": "not today"}, line=6),
        MarkSpec("skipif", ("sys.platform == 'darwin'",), {"reason": "no fork server there"}, line=7),
        MarkSpec("timeout", (5,), {}, line=8),
        MarkSpec("custom", (), {"level": 3}, line=9),
    )


@pytest.mark.parametrize(("marks", "located"), [
    ("slow", "s.yaml:3: $.marks: expected a list of pytest marks like [slow, {xfail: {reason: ..., strict: true}}"),
    ("\n  - slow\n  - {xfail: {strict: 'yes'}}",
     "s.yaml:5: $.marks[1].xfail.strict: expected true or false, got 'yes' (string)"),
    ("[{xfail: known bug}]", "s.yaml:3: $.marks[0].xfail: expected xfail, or {xfail: {reason: REASON, strict: true}}"),
    ("[{skipif: {reason: r}}]", "s.yaml:3: $.marks[0].skipif: missing required key 'condition'"),
    ("[{skipif: {condition: 'sys.platform ==', reason: r}}]",
     "s.yaml:3: $.marks[0].skipif.condition: condition 'sys.platform ==' is not a Python expression"),
    ("[{skipif: {condition: true}}]", "s.yaml:3: $.marks[0].skipif: a true/false condition needs a 'reason'"),
    ("[{parametrize: [x, [1]]}]", "s.yaml:3: $.marks[0]: mark 'parametrize' does not apply to a scenario: "
     "a scenario has no function to parametrize: use matrix:"),
    ("[{slow: null, fast: null}]", "s.yaml:3: $.marks[0]: a mark is a name like slow, or a mapping of one name"),
    ("['has space']", "s.yaml:3: $.marks[0]: mark name 'has space' (string) must be a Python name"),
    ("[{xfail: {reason: r, raises: OSError}}]",
     "s.yaml:3: $.marks[0].xfail.raises: unknown key 'raises'; accepted keys: condition, reason, run, strict"),
])
def test_bad_marks_are_located_errors(marks: str, located: str) -> None:
    with pytest.raises(ScenarioError) as excinfo:
        load_one(SMALL + f"marks: {marks}\n", "s.yaml")
    assert located in str(excinfo.value)


def _scenario(sandbox: Sandbox, name: str, extra: str) -> None:
    sandbox.scenario(name, f"name: {name}\n{SMALL}{extra}")


def test_marks_drive_m_xfail_skip_and_skipif(sandbox: Sandbox) -> None:
    sandbox.pytester.makeini("[pytest]\ndistproc_scenarios = scenarios\nmarkers =\n    slow: long scenarios\n")
    _scenario(sandbox, "slow-one", "marks: [slow]\n")
    _scenario(sandbox, "plain", "")
    # wrong expectation: fails, and the xfail mark turns that into xfailed
    _scenario(sandbox, "known-bug", "marks: [{xfail: {reason: bug 12, strict: true}}]\nexpect: {outcome: FAILED}\n")
    # passes, but strict: XPASS(strict) fails, as pytest does for a function
    _scenario(sandbox, "fixed-bug", "marks: [{xfail: {reason: bug 13, strict: true}}]\n")
    _scenario(sandbox, "skipped", "marks: [{skip: not today}]\n")
    _scenario(sandbox, "on-linux", "marks: [{skipif: {condition: \"sys.platform.startswith('linux')\", "
                                   "reason: skipped on linux}}]\n")
    _scenario(sandbox, "never", "marks: [{skipif: {condition: \"sys.platform == 'nowhere'\", reason: r}}]\n")

    selected = sandbox.run("--distproc-scenarios", "--strict-markers", "-m", "slow")
    selected.assert_outcomes(passed=1, deselected=6)

    everything = sandbox.run("--distproc-scenarios", "--strict-markers", "-rsxX")
    everything.assert_outcomes(passed=3, failed=1, skipped=2, xfailed=1)
    out = everything.stdout.str()
    # pytest's own wording and locations (a skip mark's line is left out, as for a function)
    assert "SKIPPED [1] scenarios/skipped.yaml: not today" in out
    assert "SKIPPED [1] scenarios/on-linux.yaml:1: skipped on linux" in out
    assert "XFAIL scenarios/known-bug.yaml::known-bug - bug 12" in out
    assert "[XPASS(strict)] bug 13" in out

    not_distproc = sandbox.run("--distproc-scenarios", "--strict-markers", "-m", "not distproc")
    not_distproc.assert_outcomes(deselected=7)
    sandbox.assert_clean()


def test_an_unregistered_mark_is_what_pytest_makes_of_it(sandbox: Sandbox) -> None:
    """Under --strict-markers: a collection error naming the YAML line, beside pytest's own for a function;
    without it: pytest's PytestUnknownMarkWarning, located at the YAML line. The plugin's own mark is registered."""
    _scenario(sandbox, "nightly", "marks:\n  - {nightly: {hour: 3}}\n")
    _scenario(sandbox, "plain", "")
    sandbox.pytester.makepyfile(test_fn="import pytest\n\n@pytest.mark.nightly\ndef test_f():\n    pass\n")
    strict = sandbox.run("--distproc-scenarios", "scenarios", "test_fn.py", "--strict-markers")
    assert strict.ret == pytest.ExitCode.INTERRUPTED
    out = strict.stdout.str()
    assert "scenarios/nightly.yaml:5: $.marks[0]: 'nightly' not found in `markers` configuration option; " \
           "register it in the ini option markers" in out
    assert "ERROR scenarios/nightly.yaml" in out and "ERROR test_fn.py" in out
    assert "ERROR scenarios/plain.yaml" not in out  # the distproc mark on every item is registered
    assert "Traceback" not in out

    lenient = sandbox.run("--distproc-scenarios", "scenarios", "-W", "default")
    lenient.assert_outcomes(passed=2, warnings=1)
    assert ("scenarios/nightly.yaml:5: PytestUnknownMarkWarning: $.marks[0]: Unknown pytest.mark.nightly - "
            "is this a typo?") in lenient.stdout.str()
    sandbox.assert_clean()


def test_keywords_for_fault_kinds_regions_and_backend(sandbox: Sandbox) -> None:
    sandbox.scenario("crashy", """\
        name: crashy
        regions: {A: {records: 3}, B: {records: 3}}
        policy: {retries: 1}
        faults: [{region: B, kind: crash}]
        """)
    sandbox.scenario("hangs", """\
        name: hangs
        backend: inline
        regions: {North: {records: 3}, South: {records: 3}}
        faults: [{region: South, kind: hang}]
        """)
    sandbox.scenario("plain", "name: plain\nregions: {C: {records: 3}}\n")
    sandbox.scenario("search", "name: search\nregions: {A: {records: 3}}\nexplore: {faults: [signal]}\n")

    def selected(*args: str) -> list[str]:
        result = sandbox.run("--distproc-scenarios", "--collect-only", "-q", *args)
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED), result.stdout.str()
        return sorted(line.rpartition("::")[2] for line in result.stdout.lines if "::" in line)

    assert selected("-k", "crash") == ["crashy"]
    assert selected("-k", "hang or signal") == ["hangs", "search"]
    assert selected("-k", "not crash and not hang and not explore") == ["plain"]
    assert selected("-k", "process-region-south") == ["hangs"]
    assert selected("-k", "region-c") == ["plain"]
    assert selected("-k", "process-region-b and crash") == ["crashy"]
    assert selected("-k", "backend-inline") == ["hangs"]
    assert selected("-k", "backend-fork") == ["crashy", "plain", "search"]
    assert selected("-k", "backend-inline", "--distproc-backend", "inline") == ["crashy", "hangs", "plain", "search"]
    assert selected("-m", "distproc") == ["crashy", "hangs", "plain", "search"]


def test_matrix_expansions_carry_their_own_keywords(tmp_path: Path) -> None:
    from pytest_distproc.scenario.loader import load_text

    docs = load_text("name: m\nmatrix: {kind: [raise, crash]}\nregions: {A: {records: 1}}\n"
                     "marks: [slow]\nfaults: [{region: A, kind: '${kind}'}]\n", tmp_path / "m.yaml")
    assert [(d.name, [f.kind for f in d.scenario.faults], [m.name for m in d.scenario.marks])
            for d in docs if d.scenario] == [("m[raise]", ["raise"], ["slow"]), ("m[crash]", ["crash"], ["slow"])]
