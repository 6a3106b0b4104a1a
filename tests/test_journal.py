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
from tests.helpers import MARK, Sandbox, marked_processes

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
    rerun = {a.region for a in resumed.attempts if not a.inherited}
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


# --- issue 19: a clean run resumes clean, journals of another run or damaged ones are worded ---------------

CLEAN = """\
name: clean
seed: 5
regions: {A: {records: 30}, B: {records: 20}, C: {records: 10}}
policy: {retries: 1}
faults: [{region: B, kind: raise, attempts: [1]}]
expect:
  concurrent: ["process-region-*"]
  attempts: {process-region-b: 2}
  transcript: golden/clean.txt
"""


def test_resuming_the_journal_of_a_clean_run_passes_every_check(sandbox: Sandbox) -> None:
    # the "running together" proof, the fault that fired and the failed attempt's line of the transcript
    # live in the journal too: a resumed run shows what the run it resumes saw
    sandbox.scenario("clean", CLEAN)
    journal = "--distproc-journal=journals"
    sandbox.run("--distproc-scenarios", journal, "--distproc-update-goldens").assert_outcomes(failed=1)
    ran = sandbox.run("--distproc-scenarios", journal, "-rA")
    ran.assert_outcomes(passed=1)
    failed_line = next(line for line in ran.outlines if "! process-region-b attempt 1 (pid" in line)
    resumed = sandbox.run("--distproc-scenarios", journal, "--distproc-resume", "-rA")
    resumed.assert_outcomes(passed=1)
    assert failed_line in resumed.outlines  # the same pid: read from the journal, not run again
    sandbox.assert_clean()


def test_a_second_ordinary_run_of_a_seedless_scenario_journals_afresh(sandbox: Sandbox) -> None:
    sandbox.scenario("seedless", "regions: {A: {records: 5}, B: {records: 5}}\n")
    for seed in ("1", "2"):  # a seedless scenario takes the session's seed: each run is another run
        sandbox.run("--distproc-scenarios", "--distproc-journal=journals", f"--distproc-seed={seed}"
                    ).assert_outcomes(passed=1)
    resumed = sandbox.run("--distproc-scenarios", "--distproc-journal=journals", "--distproc-seed=1",
                          "--distproc-resume")
    resumed.assert_outcomes(failed=1)  # the journal holds seed 2's run now: resuming it as seed 1 is refused
    resumed.stdout.fnmatch_lines(["*belongs to another scenario or seed*"])


def test_items_whose_ids_differ_only_in_punctuation_get_journals_of_their_own(sandbox: Sandbox) -> None:
    sandbox.scenario("a b", "name: x\nseed: 1\nregions: {A: {records: 5}}\n")
    sandbox.scenario("a_b", "name: x\nseed: 2\nregions: {A: {records: 6}}\n")
    sandbox.run("--distproc-scenarios", "--distproc-journal=journals").assert_outcomes(passed=2)
    assert len(list((sandbox.pytester.path / "journals").glob("*.sqlite"))) == 2
    sandbox.run("--distproc-scenarios", "--distproc-journal=journals", "--distproc-resume").assert_outcomes(passed=2)


def _page_damage(journal: Path) -> None:
    """Garbage over the middle of the file's last page: the header stays readable, a table does not."""
    data = bytearray(journal.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    start = len(data) - page + 8
    data[start:start + 200] = b"\xff" * 200
    journal.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "words"), [
    ("pages", "damaged"),
    ("UPDATE results SET summary = '{not json' WHERE region = 'A'", "summary of region 'A'"),
    ("UPDATE results SET summary = '[1, 2]' WHERE region = 'A'", "summary of region 'A'"),
    ("UPDATE transitions SET to_state = 'DONE' WHERE seq = 5", "unknown state 'DONE'"),
    ("UPDATE transitions SET attempt = 'x' WHERE seq = 5", "attempt"),
])
@pytest.mark.parametrize("resume", [True, False])
def test_a_damaged_journal_is_a_worded_error_and_is_never_modified(tmp_path: Path, damage: str, words: str,
                                                                     resume: bool) -> None:
    import hashlib
    import sqlite3

    from pytest_distproc.run.journal import JournalError

    journal = tmp_path / "j.sqlite"
    Coordinator(load_one(SCENARIO, tmp_path / "a.yaml"), journal=journal).run()
    if damage == "pages":
        _page_damage(journal)
    else:
        with sqlite3.connect(journal) as db:
            db.execute(damage)
        db.close()
    before = hashlib.sha256(journal.read_bytes()).hexdigest()
    if not resume and damage != "pages":  # a row a resume cannot read does not stop a run that starts afresh
        assert Coordinator(load_one(SCENARIO, tmp_path / "a.yaml"), journal=journal).run().outcome == "COMPLETE"
        return
    with pytest.raises(JournalError) as caught:
        Coordinator(load_one(SCENARIO, tmp_path / "a.yaml"), journal=journal, resume=resume).run()
    message = str(caught.value)
    assert str(journal) in message and words in message and "left as it is" in message, message
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.sqlite"]


def test_a_journal_dir_after_a_space_outside_the_checkout_is_refused_with_the_fix(
        sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> None:
    # pytest finds its rootdir and ini file before plugins add their options: `--distproc-journal DIR` made it
    # read DIR as a test path, so the checkout's ini file (and its distproc_scenarios) went unseen
    sandbox.scenario("s", "seed: 1\nregions: {A: {records: 5}}\n")
    outside = tmp_path_factory.mktemp("journals outside")
    spaced = sandbox.run("--distproc-scenarios", "--distproc-journal", str(outside))
    assert spaced.ret == pytest.ExitCode.USAGE_ERROR, spaced.stdout.str()
    spaced.stderr.fnmatch_lines([f"*--distproc-journal {outside}*write --distproc-journal={outside}*"])
    joined = sandbox.run("--distproc-scenarios", f"--distproc-journal={outside}")
    joined.assert_outcomes(passed=1)
    assert len(list(outside.glob("*.sqlite"))) == 1
