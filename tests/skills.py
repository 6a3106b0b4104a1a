"""Skills used by the tests; imported by the coordinator before it forks."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Mapping
from typing import Any

from pytest_distproc.attempt import stats as summary

CALLS: list[str] = []


def environment_probe(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """A region-stats summary plus what the processor could see of its surroundings."""
    CALLS.append(context["region"])
    result: dict[str, Any] = summary.summarize([r["value"] for r in records])
    result["secret_visible"] = int("DISTPROC_SECRET_TOKEN" in os.environ)
    result["own_tmp"] = int(tempfile.gettempdir() == context["workdir"] == os.getcwd())
    result["module_state"] = len(CALLS)
    return result


def isolation_probe(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """Write a secret into our temp dir, then try to see and change every sibling's temp dir."""
    import time
    from pathlib import Path

    CALLS.append(context["region"])
    workdir = Path(context["workdir"])
    (workdir / f"secret-{context['region']}").write_text("mine")
    time.sleep(0.3)  # every region is past the start barrier and has written its secret by now
    seen: list[str] = []
    planted = 0
    for sibling in workdir.parent.iterdir():
        if sibling == workdir or not sibling.is_dir():
            continue
        seen += [p.name for p in sibling.iterdir() if p.name.startswith("secret-")]
        try:
            (sibling / f"planted-by-{context['region']}").write_text("theirs")
            planted += 1
        except OSError:
            pass
    time.sleep(0.3)  # siblings plant now, if they can
    result: dict[str, Any] = summary.summarize([r["value"] for r in records])
    result.update(
        secret_visible=int("DISTPROC_SECRET_TOKEN" in os.environ),
        sibling_files_seen=len(seen),
        planted=planted,
        foreign_files_here=len([p for p in workdir.iterdir() if p.name.startswith("planted-by-")]),
        module_state=len(CALLS),
    )
    return result


def escaping_grandchild(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """Leaves a grandchild behind that escaped the process group with setsid and holds our pipes."""
    import time

    if os.fork() == 0:
        os.setsid()
        time.sleep(60)
        os._exit(0)
    if context["region"] == "B":
        time.sleep(60)  # and hangs, so the timeout kills us while the grandchild lives on
    return summary.summarize([r["value"] for r in records])


def open_fds(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """A summary plus how many fds beyond stdio the processor holds (its channel only, ideally)."""
    result: dict[str, Any] = summary.summarize([r["value"] for r in records])
    targets = []
    for name in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            pass
    own = f"region-{context['region'].lower()}"
    result["sibling_fds"] = len([t for t in targets if "region-" in t and own not in t])
    result["fds"] = len(targets)
    return result


def parent_probe(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """A region-stats summary plus the pid of the process this attempt was forked from."""
    result: dict[str, Any] = summary.summarize([r["value"] for r in records])
    result["parent_pid"] = os.getppid()
    result["hash_seed"] = os.environ.get("PYTHONHASHSEED", "")
    result["gc_frozen"] = gc.get_freeze_count()
    return result


def _double(value: float) -> float:
    return 2 * value


def pool_sum(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """Fans out to a process pool of its own and tears it down: Pool.terminate() SIGTERMs the workers."""
    with multiprocessing.get_context("fork").Pool(2) as pool:
        doubled = pool.map(_double, [r["value"] for r in records])
    return summary.summarize([v / 2 for v in doubled])


def _skills_own_sigterm(signum: int, frame: Any) -> None:
    os._exit(0)


def handler_survives_fork(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """Sets a SIGTERM handler of its own, forks, and reports whether the child kept it."""
    signal.signal(signal.SIGTERM, _skills_own_sigterm)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_fd, b"kept" if signal.getsignal(signal.SIGTERM) is _skills_own_sigterm else b"lost")
        os._exit(0)
    os.close(write_fd)
    answer = os.read(read_fd, 16).decode()
    os.close(read_fd)
    os.waitpid(pid, 0)
    result: dict[str, Any] = summary.summarize([r["value"] for r in records])
    result["child_handler"] = answer
    return result


def hangs_when_checked(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """A summary, except in the oracle's fault-free attempt (attempt 0), where it hangs."""
    import time

    if context["attempt"] == 0:
        time.sleep(60)
    return summary.summarize([r["value"] for r in records])


def says_on_stderr(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """Region A says one line on stderr; every other region says nothing."""
    if context["region"] == "A":
        os.write(2, b"said on stderr\n")
    return dict(summary.summarize([r["value"] for r in records]))


def standby_probe(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """Crashes its first attempt; a later one reports whether a fork server's standby child ran it, and
    how it was isolated (its cgroup joined, its temp dir private, its own dir under the run dir)."""
    from pytest_distproc.attempt import execute

    if context["attempt"] == 1:
        os._exit(3)
    result: dict[str, Any] = summary.summarize([r["value"] for r in records])
    result.update(standby=int(bool(execute.ISOLATION.get("standby"))), cgroup=str(execute.ISOLATION.get("cgroup")),
                  own_dir=int(os.getcwd() == context["workdir"] == tempfile.gettempdir()),
                  region_env=os.environ.get("DISTPROC_REGION", ""), attempt_env=os.environ.get("DISTPROC_ATTEMPT", ""))
    return result
