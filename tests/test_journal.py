"""A durable TaskList: kill the coordinator with SIGKILL at several points, resume, same aggregate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.rundir import sweep_stale_run_dirs
from pytest_distproc.scenario.loader import load_one
from pytest_distproc.tasklist import State
from tests.helpers import MARK, marked_processes

SCENARIO = """\
name: durable
seed: 9
regions: {A: {records: 300}, B: {records: 200}, C: {records: 100}}
policy: {retries: 1}
faults: [{region: B, kind: delay, seconds: 0.4}, {region: C, kind: delay, seconds: 0.8}]
"""

CRASHER = """
import os, signal, sys
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.scenario.loader import load_one

kill_at = int(sys.argv[2])
seen = []

def killer(transition):
    seen.append(transition)
    if len(seen) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

scenario = load_one(open(sys.argv[1]).read(), sys.argv[1])
resume = len(sys.argv) > 4
Coordinator(scenario, journal=sys.argv[3], observers=(killer,), resume=resume).run()
print("finished without being killed")
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return {**os.environ, "TMPDIR": str(tmp), MARK: tmp_path.name}


# Transitions, counted: creations are 1-4; the regions start at 5-7 and complete (A first, C last)
# at 8-10; aggregate-results goes IN_PROGRESS at 11 and COMPLETE at 12.
@pytest.mark.parametrize("kill_at", [5, 7, 8, 9, 10, 11, 12])
def test_resume_after_sigkill_gives_the_same_aggregate(tmp_path: Path, env: dict[str, str], kill_at: int) -> None:
    scenario_file = tmp_path / "durable.yaml"
    scenario_file.write_text(SCENARIO)
    journal = tmp_path / "journal.sqlite"
    crashed = subprocess.run([sys.executable, "-c", CRASHER, str(scenario_file), str(kill_at), str(journal)],
                             env=env, capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr

    _wait_until_gone(tmp_path.name)
    scenario = load_one(SCENARIO, scenario_file)
    before = _journaled_complete(journal)

    resumed = Coordinator(scenario, journal=journal, resume=True).run()
    clean = Coordinator(scenario).run()

    assert resumed.outcome == "COMPLETE"
    assert resumed.total == clean.total
    rerun = {a.region for a in resumed.attempts}
    assert not rerun & before, f"regions {rerun & before} were journaled complete but ran again"
    assert rerun == {"A", "B", "C"} - before
    assert [e.kind for e in resumed.tasks.events].count("resumed") == 1
    aggregate = resumed.tasks.sequence("aggregate-results")
    assert aggregate[0] is State.BLOCKED and aggregate[-1] is State.COMPLETE
    assert aggregate.count(State.COMPLETE) == 1
    from pytest_distproc.checks import expectations

    assert expectations.check_invariants(resumed) == []
    assert list(Path(env["TMPDIR"]).iterdir()) == []  # the killed coordinator's run dir was swept


def _journaled_complete(journal: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(journal) as db:
        return {row[0] for row in db.execute("SELECT region FROM results")}


def _wait_until_gone(mark: str, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not marked_processes(mark), "children of the killed coordinator outlived it"


def test_journal_of_another_scenario_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    Coordinator(load_one(SCENARIO, tmp_path / "a.yaml"), journal=journal).run()
    other = load_one(SCENARIO.replace("seed: 9", "seed: 10"), tmp_path / "a.yaml")
    from pytest_distproc.run.journal import JournalError

    with pytest.raises(JournalError, match="belongs to another scenario or seed"):
        Coordinator(other, journal=journal, resume=True).run()


def test_stale_run_dirs_of_dead_coordinators_are_swept(env: dict[str, str]) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = Path(env["TMPDIR"]) / f"distproc-{dead.stdout.strip()}-abc"
    stale.mkdir()
    alive = Path(env["TMPDIR"]) / f"distproc-{os.getpid()}-abc"
    alive.mkdir()
    assert sweep_stale_run_dirs() == [str(stale)]
    assert alive.exists()


def test_resume_from_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ndistproc_scenarios = scenarios\n")
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "durable.yaml").write_text(textwrap.dedent(SCENARIO))
    first = pytester.runpytest_subprocess("--distproc-scenarios", "--distproc-journal", "journals")
    first.assert_outcomes(passed=1)
    again = pytester.runpytest_subprocess("--distproc-scenarios", "--distproc-journal", "journals",
                                          "--distproc-resume", "-v")
    again.assert_outcomes(passed=1)
    assert len(list((pytester.path / "journals").glob("*.sqlite"))) == 1
    usage = pytester.runpytest_subprocess("--distproc-scenarios", "--distproc-resume")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR
    usage.stderr.fnmatch_lines(["*--distproc-resume needs --distproc-journal DIR*"])


def _crash(scenario_file: Path, journal: Path, kill_at: int, env: dict[str, str], *, resume: bool = False) -> None:
    args = [sys.executable, "-c", CRASHER, str(scenario_file), str(kill_at), str(journal)]
    args += ["resume"] if resume else []
    crashed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr


def test_resuming_twice_keeps_every_row_and_every_retry(tmp_path: Path, env: dict[str, str]) -> None:
    text = SCENARIO.replace("retries: 1", "retries: 0")
    scenario_file = tmp_path / "durable.yaml"
    scenario_file.write_text(text)
    journal = tmp_path / "journal.sqlite"
    _crash(scenario_file, journal, 8, env)  # A complete; B and C in flight
    _crash(scenario_file, journal, 3, env, resume=True)  # lost, lost, restarted B: killed again
    _wait_until_gone(tmp_path.name)
    resumed = Coordinator(load_one(text, scenario_file), journal=journal, resume=True).run()
    assert resumed.outcome == "COMPLETE", resumed.transcript  # losses with a coordinator are not retries
    assert resumed.total == Coordinator(load_one(text, scenario_file)).run().total
    import sqlite3

    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT task, to_state FROM transitions ORDER BY seq").fetchall()
    assert rows.count(("process-region-a", "COMPLETE")) == 1
    assert [t for t, state in rows if state == "COMPLETE"].count("aggregate-results") == 1
    assert [e.seq for e in resumed.tasks.transitions] == sorted({e.seq for e in resumed.tasks.transitions})


def test_a_changed_scenario_refuses_its_old_journal_without_touching_it(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    Coordinator(load_one(SCENARIO, tmp_path / "a.yaml"), journal=journal).run()
    import sqlite3

    with sqlite3.connect(journal) as db:
        before = db.execute("SELECT * FROM transitions").fetchall()
    changed = load_one(SCENARIO.replace("C: {records: 100}", "C: {records: 100}, D: {records: 5}"), tmp_path / "a.yaml")
    from pytest_distproc.run.journal import JournalError

    with pytest.raises(JournalError, match="belongs to another scenario or seed"):
        Coordinator(changed, journal=journal, resume=True).run()
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT * FROM transitions").fetchall() == before
