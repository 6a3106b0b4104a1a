"""Golden transcripts: compare normalised, update-and-fail, never delete, under -k and -n 2."""

from __future__ import annotations

import shutil
from pathlib import Path

from pytest_distproc.checks.goldens import normalise
from tests.helpers import Sandbox

ROOT = Path(__file__).resolve().parents[1]

ONE = """\
name: golden-{name}
seed: 7
regions: {{A: {{records: 20}}, B: {{records: 30}}}}
policy: {{retries: 1}}
faults: [{{region: B, kind: raise, attempts: [1]}}]
expect:
  transcript: golden/{name}.txt
"""


def _two(sandbox: Sandbox) -> tuple[Path, Path]:
    sandbox.scenario("first", ONE.format(name="first"))
    sandbox.scenario("second", ONE.format(name="second"))
    folder = sandbox.pytester.path / "scenarios" / "golden"
    return folder / "first.txt", folder / "second.txt"


def test_normalise_masks_pids_and_timings_and_orders_regions() -> None:
    text = (
        "Distributed Processing: COORDINATING\n"
        "[t1] process-region-b: IN_PROGRESS -> FAILED -> IN_PROGRESS -> COMPLETE\n"
        "    ! process-region-b attempt 1 (pid 4242) raised X: y after 0.31 s\n"
        "[t2] process-region-a: IN_PROGRESS -> COMPLETE\n"
        "[t3] aggregate-results: BLOCKED -> IN_PROGRESS -> COMPLETE\n\n=== AGGREGATED RESULTS ===\n"
        "Region B: 2 records, sum=3.00\nRegion A: 1 records, sum=1.00\n\nTotal: 3 records, sum=4.00\n"
    )
    assert normalise(text) == (
        "Distributed Processing: COORDINATING\n"
        "[t1] process-region-a: IN_PROGRESS -> COMPLETE\n"
        "[t2] process-region-b: IN_PROGRESS -> FAILED -> IN_PROGRESS -> COMPLETE\n"
        "    ! process-region-b attempt 1 (pid <pid>) raised X: y after <t> s\n"
        "[t3] aggregate-results: BLOCKED -> IN_PROGRESS -> COMPLETE\n\n=== AGGREGATED RESULTS ===\n"
        "Region A: 1 records, sum=1.00\nRegion B: 2 records, sum=3.00\n\nTotal: 3 records, sum=4.00\n"
    )
    assert normalise(normalise(text)) == normalise(text)


def test_missing_golden_fails_and_says_how_to_write_it(sandbox: Sandbox) -> None:
    first, _ = _two(sandbox)
    result = sandbox.run("--distproc-scenarios", "-k", "first")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*golden transcript scenarios/golden/first.txt does not exist; run pytest with "
                                 "--distproc-update-goldens to write it*"])
    assert not first.exists()


def test_update_writes_and_fails_then_the_next_run_passes(sandbox: Sandbox) -> None:
    first, second = _two(sandbox)
    assert not second.exists()
    result = sandbox.run("--distproc-scenarios", "--distproc-update-goldens")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*golden transcript scenarios/golden/first.txt written by "
                                 "--distproc-update-goldens; review the change*"])
    text = first.read_text()
    assert "(pid <pid>)" in text and "after <t> s" in text and "Total: 50 records" in text
    assert sandbox.run("--distproc-scenarios").ret == 0
    # an update with nothing to change passes: only differing goldens are rewritten (and fail)
    sandbox.run("--distproc-scenarios", "--distproc-update-goldens").assert_outcomes(passed=2)
    sandbox.assert_clean()


def test_a_changed_transcript_fails_with_a_diff(sandbox: Sandbox) -> None:
    first, _ = _two(sandbox)
    sandbox.run("--distproc-scenarios", "--distproc-update-goldens", "-k", "first")
    first.write_text(first.read_text().replace("Total: 50 records", "Total: 51 records"))
    result = sandbox.run("--distproc-scenarios", "-k", "first")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*transcript differs from golden scenarios/golden/first.txt (if the change is intended, rerun with "
        "--distproc-update-goldens)*",
        "*-Total: 51 records*",
        "*+Total: 50 records*",
    ])


def test_partial_update_touches_only_selected_goldens_and_deletes_none(sandbox: Sandbox) -> None:
    first, second = _two(sandbox)
    sandbox.run("--distproc-scenarios", "--distproc-update-goldens")
    stale = second.read_text().replace("Total: 50", "Total: 99")
    second.write_text(stale)
    unused = first.parent / "unused.txt"
    unused.write_text("no scenario names me\n")
    before = first.read_text()
    first.write_text("something old\n")

    result = sandbox.run("--distproc-scenarios", "--distproc-update-goldens", "-k", "first")

    result.assert_outcomes(failed=1)
    assert first.read_text() == before
    assert second.read_text() == stale  # not selected: left alone
    assert unused.exists()  # goldens are never deleted


def test_goldens_under_xdist(sandbox: Sandbox) -> None:
    first, second = _two(sandbox)
    result = sandbox.run("--distproc-scenarios", "-n", "2", "--distproc-update-goldens")
    result.assert_outcomes(failed=2)
    assert first.exists() and second.exists()
    sandbox.run("--distproc-scenarios", "-n", "2").assert_outcomes(passed=2)
    sandbox.assert_clean()


def test_shipped_goldens_match_the_shipped_scenarios(sandbox: Sandbox) -> None:
    target = sandbox.pytester.path / "scenarios"
    target.mkdir()
    for name in ("seed.yaml", "retry.yaml"):
        shutil.copy(ROOT / "scenarios" / name, target / name)
    shutil.copytree(ROOT / "scenarios" / "data", target / "data")
    shutil.copytree(ROOT / "scenarios" / "golden", target / "golden")
    result = sandbox.run("--distproc-scenarios", "-n", "2")
    result.assert_outcomes(passed=2)


def test_a_transcript_that_is_not_a_path_is_a_scenario_error(sandbox: Sandbox) -> None:
    sandbox.scenario("bad", "regions: {A: {records: 1}}\nexpect:\n  transcript: [golden.txt]\n")
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*bad.yaml:3: $.expect.transcript: expected a path like golden/NAME.txt*"])


def test_a_golden_outside_the_scenarios_folder_is_refused_and_never_written(sandbox: Sandbox) -> None:
    sandbox.scenario("up", ONE.format(name="x").replace("golden/x.txt", "../outside.txt"))
    sandbox.scenario("absolute", ONE.format(name="y").replace("golden/y.txt", str(sandbox.pytester.path / "abs.txt")))
    result = sandbox.run("--distproc-scenarios", "--distproc-update-goldens")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*up.yaml:7: $.expect.transcript: golden transcript '../outside.txt' resolves to *outside.txt, outside the "
        "scenario's folder *",
    ])
    result.stdout.fnmatch_lines(["*absolute.yaml:7: $.expect.transcript: golden transcript '*abs.txt' resolves to*"])
    assert not (sandbox.pytester.path / "outside.txt").exists()
    assert not (sandbox.pytester.path / "abs.txt").exists()


def test_the_update_flag_never_writes_outside_the_folder_of_a_scenario_built_in_python(sandbox: Sandbox) -> None:
    """The loader refuses such a path; a Scenario made in Python (the API, a fixture) meets the same wall."""
    sandbox.pytester.makepyfile(test_api="""
        import dataclasses
        from pathlib import Path

        from pytest_distproc.checks import goldens
        from pytest_distproc.run.runner import run_scenario
        from pytest_distproc.scenario.loader import load_one

        def test_it(request, tmp_path):
            home = tmp_path / "scenarios"
            home.mkdir()
            scenario = load_one("seed: 1\\nbackend: inline\\nregions: {A: {records: 3}}\\n", home / "s.yaml")
            outside = tmp_path / "outside.txt"
            scenario = dataclasses.replace(
                scenario, expect=dataclasses.replace(scenario.expect, transcript=Path("../outside.txt")))
            problems = goldens.check(request.config, run_scenario(scenario))
            assert not outside.exists()
            assert len(problems) == 1 and "outside the scenario's folder" in problems[0], problems
            assert "not even by --distproc-update-goldens" in problems[0]
    """)
    result = sandbox.run("test_api.py", "--distproc-update-goldens")
    result.assert_outcomes(passed=1)
