"""A user's own coordinator, written against the adapter protocol: plain os.fork, pipes, retries, and
the scenario's task graph (``harness.graph``) run as soon as each task's blockers are final.

Run the shipped scenarios against it:
    pytest --distproc-scenarios --distproc-coordinator scenarios/adapters/careful.py:CarefulCoordinator
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from typing import Any

from pytest_distproc.attempt import stats as summary


class CarefulCoordinator:
    def run(self, harness: Any) -> None:
        policy = harness.policy
        attempts = {r: 0 for r in harness.regions}
        running: dict[int, tuple[str, int, float]] = {}  # read fd -> (region, pid, started)
        results: dict[str, dict[str, Any]] = {}
        values: dict[str, dict[str, Any]] = {}  # task -> its summary, once it completed
        final: dict[str, bool] = {}  # task -> finished for good: True completed, False failed or cancelled

        def advance() -> None:
            """Run every task after the regions whose blockers are final, blockers first (harness.graph's order)."""
            for stage in harness.graph:
                task, blockers = stage["id"], stage["blocked_by"]
                if task in final or not all(b in final for b in blockers):
                    continue
                lost = [b for b in blockers if not final[b]]
                if lost and policy.on_region_failure == "fail":
                    harness.record(task, "CANCELLED", event=f"cancelled: {', '.join(lost)} did not complete")
                    final[task] = False
                    continue
                harness.record(task, "IN_PROGRESS", pid=os.getpid())
                inputs = [values[b] for b in blockers if final[b]]
                problems = [] if inputs else ["every input failed"]
                if stage["kind"] == "validate":
                    problems += [p for p in (summary.validate(i, None) for i in inputs) if p]
                    problems += ["an input is empty"] if any(int(i["count"]) == 0 for i in inputs) else []
                if problems:
                    harness.record(task, "FAILED", event="; ".join(problems))
                    final[task] = False
                    continue
                values[task] = summary.merge(inputs)
                harness.record(task, "COMPLETE", pid=os.getpid())
                final[task] = True

        def launch(region: str) -> None:
            attempts[region] += 1
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: our processor, with the harness's faults inside
                os.close(read_fd)
                try:
                    reply = harness.process(region, attempts[region])
                except Exception as exc:
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                try:
                    os.write(write_fd, json.dumps(reply).encode())
                finally:
                    os._exit(0)
            os.close(write_fd)
            running[read_fd] = (region, pid, time.monotonic())
            harness.record(f"process-region-{region.lower()}", "IN_PROGRESS", pid=pid)

        for region in harness.regions:
            launch(region)
        while running:
            ready, _, _ = select.select(list(running), [], [], 0.05)
            for fd in list(running):
                region, pid, started = running[fd]
                timed_out = time.monotonic() - started > policy.timeout
                if fd not in ready and not timed_out:
                    continue
                payload = b""
                if timed_out and fd not in ready:
                    os.kill(pid, signal.SIGKILL)
                else:
                    while chunk := os.read(fd, 65536):
                        payload += chunk
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                del running[fd]
                task = f"process-region-{region.lower()}"
                why = describe(payload, status, timed_out, harness.expected_records(region))
                who = f"{task} attempt {attempts[region]} (pid {pid})"
                elapsed = f"after {time.monotonic() - started:.2f} s"
                if why is None:
                    results[region] = values[task] = json.loads(payload)
                    harness.record(task, "COMPLETE", pid=pid, event=f"{who} completed {elapsed}")
                    final[task] = True
                else:
                    harness.record(task, "FAILED", pid=pid, event=f"{who} {why} {elapsed}")
                    if attempts[region] <= policy.retries:
                        time.sleep(policy.backoff)
                        launch(region)
                    else:
                        final[task] = False
                advance()  # a stage runs as soon as its own regions are done, while others still run
        advance()
        stages = {s["id"]: values[s["id"]] for s in harness.graph[:-1] if s["id"] in values}
        harness.result(regions=results, total=values.get("aggregate-results"), stages=stages)


def describe(payload: bytes, status: int, timed_out: bool, expected: int) -> str | None:
    """Why an attempt failed, in words; None when its result is a valid summary of every record."""
    if timed_out:
        return "timed out and was killed with SIGKILL"
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    if os.WEXITSTATUS(status):
        return f"crashed with exit code {os.WEXITSTATUS(status)}"
    try:
        reply = json.loads(payload)
    except ValueError:
        return "exited without sending a result"
    if isinstance(reply, dict) and "error" in reply:
        return f"raised {reply['error']}"
    problem = summary.validate(reply, expected)
    return f"returned a {problem}" if problem else None


def make() -> CarefulCoordinator:
    return CarefulCoordinator()
