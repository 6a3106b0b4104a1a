"""The Ray nodes a run uses, and the node faults: what a node is called, and killing or stalling one.

A node fault acts on a node's processes from the driver (``node-loss``: SIGKILL to its raylet and
everything under it; ``node-stall``: SIGSTOP to the same, SIGCONT later), so it needs the driver to
be on the node's machine, as the user who runs it, and the node must not be the head (its GCS is the
cluster) nor the node the driver is attached to (its raylet is the driver's). ``worker-restart``
needs no such access: the launcher actor kills itself. :func:`refusal` says what is missing.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_distproc.attempt.faults import NODE_FAULTS

__all__ = ["NODE_FAULTS", "Node"]
HOST_FAULTS = ("node-loss", "node-stall")  # need the driver on the node's machine, as its user


@dataclass(eq=False)
class Node:
    """One Ray node with our launcher actor on it."""

    id: str
    """Ray's node id (hex)."""
    name: str
    """Short and stable: the first 6 hex digits of the id."""
    launcher: Any
    launcher_pid: int
    raylet: int
    """The raylet's pid (the launcher worker's parent), on the node's machine."""
    boot: str
    uid: int
    tmp: str
    """The launcher's temp dir: where its children's roots are."""
    head: bool = False
    driver: bool = False
    """The node the driver is attached to."""
    lost: str = ""
    """Why it is gone (our node-loss, or Ray told us), or empty."""
    stopped: list[int] = field(default_factory=list)
    """The pids a node-stall stopped and has not continued yet."""

    @property
    def label(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


def describe(ready: dict[str, Any], launcher: Any, head_id: str, driver_id: str) -> Node:
    node_id = str(ready["node"])
    return Node(node_id, node_id[:6], launcher, int(ready["pid"]), int(ready["raylet"]), str(ready["boot"]),
                int(ready["uid"]), str(ready["tmp"]), head=node_id == head_id, driver=node_id == driver_id)


def refusal(kind: str, nodes: list[Node], address: str) -> str:
    """Why ``kind`` cannot run on this cluster, or empty: a fault needs a node to act on and one to survive."""
    alive = [n for n in nodes if not n.lost]
    if len(alive) < 2:
        return (f"fault {kind} needs a Ray cluster of at least 2 nodes (one to act on, one for the retries), "
                f"but the cluster at {address} has {len(alive)}; add a node (`ray start --address=...`, "
                "see docs/ray.md)")
    if kind in HOST_FAULTS and not [n for n in alive if actionable(n)]:
        listed = "; ".join(f"{n.name}: {why_not(n)}" for n in alive)
        return (f"fault {kind} needs a Ray node this pytest process may {'kill' if kind == 'node-loss' else 'stop'}: "
                f"a worker node (not the head, not the driver's own) on this machine, run by this user "
                f"(uid {os.getuid()}); the cluster at {address} has none ({listed}). On a multi-machine "
                "cluster run pytest on a node's machine as the user that started Ray (docs/ray.md)")
    return ""


def why_not(node: Node) -> str:
    if node.head:
        return "the head node"
    if node.driver:
        return "the node this driver is attached to"
    if node.boot != _boot_id():
        return "on another machine"
    if node.uid != os.getuid() and os.getuid() != 0:
        return f"run by uid {node.uid}"
    if not _alive(node.raylet):
        return "its raylet is not visible from here"
    return ""


def actionable(node: Node) -> bool:
    return not node.lost and not why_not(node)


def kill(node: Node, why: str) -> None:
    """node-loss: SIGKILL the node's raylet and every process under it (its workers, our children)."""
    node.lost = why
    for pid in [node.raylet, *descendants(node.raylet)]:
        _signal(pid, signal.SIGKILL)


def stall(node: Node, seconds: float) -> threading.Timer:
    """node-stall: SIGSTOP the raylet and everything under it, SIGCONT after ``seconds`` (a timer)."""
    pids = [node.raylet, *descendants(node.raylet)]
    for pid in pids:
        _signal(pid, signal.SIGSTOP)
    node.stopped = pids
    timer = threading.Timer(seconds, resume, (node,))
    timer.daemon = True
    timer.start()
    return timer


def resume(node: Node) -> None:
    """SIGCONT whatever a stall stopped (also when the run ends early: never leave a node stopped)."""
    pids, node.stopped = node.stopped, []
    for pid in pids:
        _signal(pid, signal.SIGCONT)


def descendants(pid: int) -> list[int]:
    """Every live process under ``pid``, from /proc (children of children included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
