"""Fault kinds: what each one does inside the processor, and when in the attempt it acts.

A fault announces itself over the result channel *before* it acts, so the coordinator can prove
that every planned fault fired even when the fault kills the process.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

FaultAction = Callable[[Mapping[str, Any], dict[str, Any]], None]
"""``action(fault, state)``: ``state`` holds ``records`` (before) or ``result`` (after) and may be changed."""


class InjectedFault(RuntimeError):
    """The exception a ``raise`` fault throws inside the processor."""


class FaultKind(NamedTuple):
    name: str
    phase: str  # "before" the skill runs, "after" it returned its result, or "node": the backend acts (not the child)
    action: FaultAction
    lethal: bool  # the process does not survive it (the simulated backend must model the death)
    keys: tuple[str, ...] | None = None
    """The fault keys this kind reads beside ``region``, ``kind`` and ``attempts`` (of ``message``,
    ``exit_code``, ``signal``, ``seconds``, ``fraction``); the loader refuses any other. ``None`` (a plugin
    kind that does not say): every fault key is accepted and handed to the action. Built-in kinds follow
    ``pytest_distproc.scenario.model.FAULT_KIND_KEYS``."""


def _raise(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    raise InjectedFault(fault.get("message") or "injected fault")


def _crash(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    os._exit(int(fault.get("exit_code", 3)))


def _signal(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    signum = getattr(signal, "SIG" + str(fault.get("signal", "KILL")))
    if signum not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(signum, signal.SIG_DFL)  # faulthandler or the orphan handler would otherwise catch it
    os.kill(os.getpid(), signum)
    time.sleep(5)  # a caught or ignored signal: fall through to a clear crash
    os._exit(99)


def _hang(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    while True:
        time.sleep(3600)


def _on_the_node(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    """A node fault is the Ray backend's to fire (backends/raynodes.py); an attempt never runs it."""


def _delay(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    time.sleep(float(fault.get("seconds", 0.0)))


def _corrupt(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    result = dict(state.get("result") or {})
    result.pop("variance", None)
    result["sum"] = "garbage"
    state["result"] = result


def _drop(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    records = state["records"]
    rng = random.Random(f"drop:{fault.get('seed', 0)}:{fault.get('region')}:{fault.get('attempt')}")
    lose = max(1, round(len(records) * float(fault.get("fraction", 0.1)))) if records else 0
    doomed = set(rng.sample(range(len(records)), lose))
    state["records"] = [r for i, r in enumerate(records) if i not in doomed]


def _oom(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    hoard = []
    while True:  # the per-attempt address-space limit turns this into MemoryError
        hoard.append(bytearray(32 * 1024 * 1024))


BUILTIN: Mapping[str, FaultKind] = MappingProxyType({
    kind.name: kind
    for kind in (
        FaultKind("raise", "before", _raise, lethal=False),
        FaultKind("crash", "before", _crash, lethal=True),
        FaultKind("signal", "before", _signal, lethal=True),
        FaultKind("hang", "before", _hang, lethal=True),
        FaultKind("delay", "before", _delay, lethal=False),
        FaultKind("corrupt", "after", _corrupt, lethal=False),
        FaultKind("drop", "before", _drop, lethal=False),
        FaultKind("oom", "before", _oom, lethal=False),
        FaultKind("node-loss", "node", _on_the_node, lethal=True),
        FaultKind("node-stall", "node", _on_the_node, lethal=False),
        FaultKind("worker-restart", "node", _on_the_node, lethal=True),
    )
})
"""The kinds every interpreter knows (the fork server too); plugins add theirs per pytest config."""

NODE_FAULTS = ("node-loss", "node-stall", "worker-restart")
"""Faults the backend fires on the node hosting an attempt (``backend: ray`` only), announced like the others."""

_installed: list[Mapping[str, FaultKind]] = [BUILTIN]


def installed() -> Mapping[str, FaultKind]:
    """The kinds of the runs in progress in this process (the latest first): what attempts forked from it act on."""
    if len(_installed) == 1:
        return _installed[0]
    merged: dict[str, FaultKind] = {}
    for table in _installed:
        merged.update(table)
    return merged


@contextlib.contextmanager
def installing(kinds: Mapping[str, FaultKind]) -> Iterator[None]:
    """Make ``kinds`` the ones attempts act on for the span of one run.

    Attempts learn a plugin's fault kind by inheriting the coordinator's memory through fork (a kind's
    action is code, not plain data), so the run installs its config's kinds here and takes them back
    after: nothing leaks into later runs, other folders or in-process pytest sessions.
    """
    entry = MappingProxyType(dict(kinds))  # its own object: runs that end out of order remove their own
    _installed.append(entry)
    try:
        yield
    finally:
        for index, table in enumerate(_installed):
            if table is entry:
                del _installed[index]
                break


def validate(kind: FaultKind) -> FaultKind:
    """A kind a plugin returned, checked before any scenario may name it."""
    if not isinstance(kind, FaultKind):
        raise TypeError(f"a fault kind must be a pytest_distproc.attempt.faults.FaultKind, got {type(kind).__name__}")
    if kind.phase not in ("before", "after"):
        raise ValueError(f"fault kind {kind.name!r}: phase must be 'before' or 'after', got {kind.phase!r}")
    if kind.keys is not None and (not isinstance(kind.keys, tuple) or not all(isinstance(k, str) for k in kind.keys)):
        raise TypeError(f"fault kind {kind.name!r}: keys must be a tuple of fault key names or None, "
                        f"got {kind.keys!r}")
    return kind
