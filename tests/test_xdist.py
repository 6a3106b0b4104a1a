"""The shipped scenario suite under pytest-xdist ``-n 2``: all green, spread over both workers, and
every transcript, report row, summary count and golden exactly once (nothing duplicated, nothing lost).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import Sandbox

ROOT = Path(__file__).resolve().parents[1]

# Records which xdist worker ran which item; pytest_distproc_run_finished runs where the scenario ran.
RECORDER = """\
import os

def pytest_runtest_setup(item):
    item.config._distproc_nodeid = item.nodeid

def pytest_distproc_run_finished(config, run):
    worker = getattr(config, "workerinput", {}).get("workerid", "controller")
    line = f"{worker}\\t{config._distproc_nodeid}\\t{run.scenario.name}\\n"
    fd = os.open(os.environ["DISTPROC_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
"""

ITEM = re.compile(r"^\[gw\d\] \[\s*\d+%\] (PASSED|FAILED|ERROR) (\S+::\S+)", re.MULTILINE)


def _copy_shipped(into: Path) -> Path:
    scenarios = into / "scenarios"
    scenarios.mkdir(exist_ok=True)
    for name in ("seed.yaml", "retry.yaml"):
        shutil.copy(ROOT / "scenarios" / name, scenarios / name)
    for folder in ("faults", "data", "golden"):
        if (ROOT / "scenarios" / folder).is_dir():
            shutil.copytree(ROOT / "scenarios" / folder, scenarios / folder)
    return scenarios


@pytest.fixture
def suite(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    sandbox.pytester.makeconftest(RECORDER)
    _copy_shipped(sandbox.pytester.path)
    monkeypatch.setenv("DISTPROC_RECORD", str(sandbox.pytester.path / "ran.tsv"))
    return sandbox


def test_suite_passes_on_two_workers_with_everything_exactly_once(suite: Sandbox) -> None:
    report_dir = suite.pytester.path / "report"
    collected = suite.run("--distproc-scenarios", "--collect-only", "-q")
    expected = [line for line in collected.stdout.lines if "::" in line]
    assert len(expected) >= 20, collected.stdout.str()

    result = suite.run("--distproc-scenarios", "-n", "2", "-v", f"--distproc-report={report_dir}", timeout=300)
    out = result.stdout.str()
    assert result.ret == 0, out[-6000:]
    verdicts = ITEM.findall(out)
    assert Counter(nodeid for _, nodeid in verdicts) == Counter(expected)
    assert {verdict for verdict, _ in verdicts} == {"PASSED"}

    # Spread over both workers, each scenario run exactly once.
    rows = [line.split("\t") for line in (suite.pytester.path / "ran.tsv").read_text().splitlines()]
    ran = Counter(nodeid for _, nodeid, _ in rows)
    assert ran == Counter(expected), "a scenario ran twice or never"
    workers = Counter(worker for worker, _, _ in rows)
    assert set(workers) == {"gw0", "gw1"}, workers

    # Transcripts: printed once per item by the controller, none lost.
    section = out.split("distproc transcripts", 1)[1]
    shown = Counter(re.findall(r"^--- (\S+::\S+)$", section, re.MULTILINE))
    assert shown == Counter(expected)
    assert out.count("distproc transcripts") == 1

    # The one-line summary, once, counting every scenario once.
    summaries = re.findall(r"^distproc: (\d+) scenarios? run \((\d+) passed\)", out, re.MULTILINE)
    assert summaries == [(str(len(expected)), str(len(expected)))], summaries

    # The report directory: one index row and one folder per item, written by whoever ran it.
    index = json.loads((report_dir / "index.json").read_text())
    assert Counter(row["nodeid"] for row in index["scenarios"]) == Counter(expected)
    slugs = [row["slug"] for row in index["scenarios"]]
    assert len(set(slugs)) == len(slugs)
    assert all((report_dir / slug / "summary.json").is_file() for slug in slugs)
    suite.assert_clean()


def test_goldens_are_written_once_and_never_lost_under_two_workers(suite: Sandbox) -> None:
    golden = suite.pytester.path / "scenarios" / "golden"
    if not golden.is_dir() or len(list(golden.iterdir())) < 2:
        pytest.skip("the shipped scenarios name fewer than two golden transcripts")
    before = {p.name: p.read_bytes() for p in golden.iterdir()}
    victim = sorted(before)[0]
    (golden / victim).unlink()

    result = suite.run("--distproc-scenarios", "-n", "2", "--distproc-update-goldens", timeout=300)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out[-4000:]
    result.assert_outcomes(failed=1, passed=len(Counter(
        line.split("\t")[1] for line in (suite.pytester.path / "ran.tsv").read_text().splitlines())) - 1)
    after = {p.name: p.read_bytes() for p in golden.iterdir()}
    assert set(after) == set(before), "a golden was lost or an extra one appeared"
    assert after[victim] == before[victim]  # rewritten from this run: the same normalised transcript
    assert {k: v for k, v in after.items() if k != victim} == {k: v for k, v in before.items() if k != victim}


# -- our own suite under `pytest -n 3 --dist loadfile` (README command 2) -----------------------------------

ORDER_CONFTEST = "from tests.xdist_order import pytest_xdist_make_scheduler  # noqa: F401\n"


@pytest.mark.parametrize("dist", ["loadfile", "loadscope"])
def test_loadfile_hands_the_costliest_files_out_first(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                      dist: str) -> None:
    """xdist alone would start the file of five tests first (most tests first); under loadfile ours starts the
    costliest files first, in tests/xdist_order.py's order; another --dist keeps xdist's order."""
    from tests.xdist_order import COSTLIEST_FIRST

    checkout = str(ROOT)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH", "")])))
    sandbox.pytester.makeconftest(ORDER_CONFTEST)
    slow = list(reversed(COSTLIEST_FIRST[:2]))  # written in the wrong order: the list decides, not the names
    for path in [*slow, "tests/test_many.py"]:
        count = 5 if path.endswith("many.py") else 1
        target = sandbox.pytester.path / path
        target.parent.mkdir(exist_ok=True)
        target.write_text("".join(f"def test_{n}():\n    pass\n" for n in range(count)))
    result = sandbox.run("-n", "1", "--dist", dist, "-v", "tests")
    result.assert_outcomes(passed=7)
    started = list(dict.fromkeys(m.split("::")[0] for m in re.findall(r"(tests/\S+)::", result.stdout.str())))
    if dist == "loadfile":
        assert started == [*COSTLIEST_FIRST[:2], "tests/test_many.py"], result.stdout.str()
    else:
        assert started[0] == "tests/test_many.py", result.stdout.str()
