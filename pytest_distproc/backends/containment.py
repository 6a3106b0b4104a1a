"""Containment that does not rely on the skill: a cgroup per attempt, killed whole, whatever its sessions.

Why: a process group holds only the processes that stay in it. A skill can ``setpgid`` into its
parent's group or ``setsid`` away, and a ``killpg`` then misses it. A cgroup is joined by the attempt
before its skill runs and cannot be left without privileges the attempt gives up, so killing the
cgroup kills everything the attempt started. The tier is detected at run time, best first:

- ``cgroup2``: a cgroup v2 hierarchy we can create groups in (``cgroup.kill``, or freeze and kill);
- ``cgroup1``: the v1 ``pids`` hierarchy (with ``freezer`` when mounted, so a fork bomb holds still);
- ``none``: process groups, the coordinator and fork server as child subreapers, and the sweeps.

``DISTPROC_CONTAINMENT`` (``auto``, ``cgroup2``, ``cgroup1``, ``none``) narrows the choice. When
pytest itself dies (SIGKILL, SIGTERM, pytest-timeout's ``os._exit``), its guardian process
(:mod:`.guardian`) kills the groups and removes the run dirs. Lean on purpose: the guardian imports it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import NamedTuple

CHOICE_ENV = "DISTPROC_CONTAINMENT"
TIERS = ("cgroup2", "cgroup1", "none")
PREFIX = "distproc-"
KILL_ROUNDS = 200


class Tier(NamedTuple):
    """The containment chosen for this process: its name and the base group dir in each hierarchy."""

    name: str
    bases: tuple[str, ...] = ()
    """``<mount><our own cgroup>/distproc-<pid>``: v2 has one; v1 has ``pids`` and maybe ``freezer``."""
    reason: str = ""
    """Why the better tiers were not taken (for the report header and the docs)."""

    def describe(self) -> str:
        where = f" ({', '.join(self.bases)})" if self.bases else ""
        return f"{self.name}{where}" + (f"; {self.reason}" if self.reason else "")


_CHOSEN: dict[int, Tier] = {}


def tier() -> Tier:
    """This process's containment, detected once (per pid: a forked coordinator detects its own)."""
    pid = os.getpid()
    if pid not in _CHOSEN:
        _CHOSEN.clear()
        _CHOSEN[pid] = _detect()
    return _CHOSEN[pid]


def _detect() -> Tier:
    wanted = os.environ.get(CHOICE_ENV, "auto").strip().lower() or "auto"
    order = TIERS if wanted not in TIERS else (wanted,)
    reasons = [] if wanted in (*TIERS, "auto") else [f"{CHOICE_ENV}={wanted!r} is not one of auto, {', '.join(TIERS)}"]
    mounts = _cgroup_mounts()
    own = _own_cgroups()
    for name in order:
        if name == "none":
            break
        if name == "cgroup2":
            roots = [m for m, kind in mounts if kind == "cgroup2"]
            candidates = [[os.path.join(m + own.get("", "/"), f"{PREFIX}{os.getpid()}")] for m in roots[:1]]
        else:
            found = {kind: m for m, kind in mounts if kind in ("pids", "freezer")}
            candidates = [[os.path.join(found[k] + own.get(k, "/"), f"{PREFIX}{os.getpid()}")
                           for k in ("pids", "freezer") if k in found]] if "pids" in found else []
        if not candidates:
            reasons.append(f"{name}: not mounted")
            continue
        problem = _make_bases(candidates[0])
        if problem is None:
            return Tier(name, tuple(candidates[0]), "; ".join(reasons))
        reasons.append(f"{name}: {problem}")
    return Tier("none", (), "; ".join(reasons) or f"{CHOICE_ENV}={wanted}")


def _make_bases(bases: list[str]) -> str | None:
    """Check that we may create our base groups and move processes into them; the problem, or None.
    The probe leaves nothing: :class:`RunGroups` creates the bases when a run needs them."""
    sweep_stale(bases)
    made = []
    try:
        for base in bases:
            os.mkdir(base)
            made.append(base)
        _probe_join(made)
    except FileExistsError:
        return None  # ours already (this pid made it before, e.g. in a process that then forked us)
    except OSError as exc:
        return exc.strerror if isinstance(exc.strerror, str) else str(exc)
    finally:
        for base in made:
            remove_tree(base, wait=1.0)
    return None


def _probe_join(groups: list[str]) -> None:
    """Fork a throwaway child that moves into ``groups``: write access is not enough (cgroup v2 refuses
    a move under a group whose controllers forbid it, a delegated tree one that crosses its root)."""
    import warnings

    with warnings.catch_warnings():  # Python 3.12+ warns when a threaded process forks; the child only writes
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
        pid = os.fork()
    if pid == 0:
        code = 0
        for group in groups:
            code |= 0 if _write(os.path.join(group, "cgroup.procs"), "0") else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise PermissionError(f"a process cannot be moved into {', '.join(groups)}")


def _cgroup_mounts() -> list[tuple[str, str]]:
    """(mount point, kind) of every cgroup hierarchy: kind ``cgroup2`` or the v1 controller names."""
    found = []
    try:
        with open("/proc/self/mounts") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 4:
                    continue
                if fields[2] == "cgroup2":
                    found.append((fields[1], "cgroup2"))
                elif fields[2] == "cgroup":
                    found += [(fields[1], option) for option in fields[3].split(",") if option in ("pids", "freezer")]
    except OSError:
        pass
    return found


def _own_cgroups() -> dict[str, str]:
    """Our cgroup path in each hierarchy ("" for v2, else the controller), from /proc/self/cgroup."""
    own: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as handle:
            for line in handle:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    own[controller] = path
    except (OSError, ValueError):
        pass
    return own


def sweep_stale(bases: list[str]) -> None:
    """Kill and remove base groups of coordinators that died (a SIGKILLed pytest whose guardian died too)."""
    for base in bases:
        parent = os.path.dirname(base)
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            owner = name[len(PREFIX):]
            if name.startswith(PREFIX) and owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                kill(os.path.join(parent, name))
                remove_tree(os.path.join(parent, name), wait=1.0)


# -- one group: kill everything in it, then remove it ------------------------------------------------


def procs(group: str) -> list[int]:
    try:
        with open(os.path.join(group, "cgroup.procs")) as handle:
            return [int(p) for p in handle.read().split()]
    except (OSError, ValueError):
        return []


def populated(group: str) -> bool:
    """Whether a live process is left in ``group`` or below it."""
    try:
        with open(os.path.join(group, "cgroup.events")) as handle:
            return "populated 1" in handle.read()
    except FileNotFoundError:
        pass  # cgroup v1: walk the tree
    except OSError:
        return False
    for path, _dirs, _files in os.walk(group):
        if any(_alive(pid) for pid in procs(path)):
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def kill(group: str, freezer: str | None = None) -> None:
    """SIGKILL every process in ``group`` and below, whatever its session or process group.

    cgroup v2 ``cgroup.kill`` does it in the kernel, atomically against forks. Elsewhere the group is
    frozen first where a freezer exists (``freezer``: the v1 twin of a ``pids`` group; v2 freezes
    itself), so a forking process cannot outrun the kill; then every listed process is killed, round
    after round, until none is left.
    """
    if not os.path.isdir(group):
        return
    if _write(os.path.join(group, "cgroup.kill"), "1"):
        return
    if freezer is None and os.path.exists(os.path.join(group, "cgroup.freeze")):
        freezer = group
    frozen = freezer is not None and os.path.isdir(freezer) and _freeze(freezer, True)
    for _ in range(KILL_ROUNDS):
        live = [pid for g in {group, freezer or group} for path, _d, _f in os.walk(g) for pid in procs(path)
                if _alive(pid)]
        if not live:
            break
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if frozen:
            break  # frozen processes cannot fork: one round killed them all; they die once thawed
        time.sleep(0.001)
    if frozen and freezer is not None:
        _freeze(freezer, False)


def _freeze(group: str, on: bool) -> bool:
    """Freeze or thaw ``group`` (v2 ``cgroup.freeze``, v1 ``freezer.state``); True once it holds still."""
    if os.path.exists(os.path.join(group, "cgroup.freeze")):
        if not _write(os.path.join(group, "cgroup.freeze"), "1" if on else "0"):
            return False
        probe, wanted = os.path.join(group, "cgroup.events"), "frozen 1" if on else "frozen 0"
    else:
        if not _write(os.path.join(group, "freezer.state"), "FROZEN" if on else "THAWED"):
            return False
        probe, wanted = os.path.join(group, "freezer.state"), "FROZEN" if on else "THAWED"
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            with open(probe) as handle:
                if wanted in handle.read():
                    return True
        except OSError:
            return False
        time.sleep(0.001)
    return False


def remove_tree(base: str, *, wait: float = 0.0) -> bool:
    """rmdir ``base`` and every group below it, deepest first; waits up to ``wait`` seconds for the
    killed processes to leave. True when nothing is left."""
    try:
        os.rmdir(base)  # the common case: an attempt's group, with no group below it
        return True
    except FileNotFoundError:
        return True
    except OSError:
        pass
    deadline = time.monotonic() + wait
    while True:
        try:
            for path, _dirs, _files in sorted(os.walk(base), key=lambda entry: -entry[0].count(os.sep)):
                os.rmdir(path)
            return True
        except FileNotFoundError:
            if not os.path.exists(base):
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)


def _write(path: str, text: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, text.encode())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


# -- the coordinator, hidden from its attempts ------------------------------------------------------

_HIDDEN = {"depth": 0, "was": 1}


def hide(on: bool) -> None:
    """While a run lasts, this process is not dumpable: its /proc files (fd, mem, environ) and ptrace
    need ``CAP_SYS_PTRACE`` then, which no attempt has (as root, the capabilities an attempt dropped
    suffice; not as an ordinary user, whose attempts share our uid). Restored after the last run, so a
    debugger can attach to pytest between runs."""
    from pytest_distproc.attempt import confine  # here: the guardian, which imports this module, needs no ctypes

    libc = confine._LIBC
    if libc is None:
        return
    if on:
        if _HIDDEN["depth"] == 0:
            _HIDDEN["was"] = libc.prctl(confine.PR_GET_DUMPABLE, 0, 0, 0, 0)
            libc.prctl(confine.PR_SET_DUMPABLE, 0, 0, 0, 0)
        _HIDDEN["depth"] += 1
    elif _HIDDEN["depth"] > 0:
        _HIDDEN["depth"] -= 1
        if _HIDDEN["depth"] == 0 and _HIDDEN["was"] == 1:
            libc.prctl(confine.PR_SET_DUMPABLE, 1, 0, 0, 0)


# -- a run's groups ----------------------------------------------------------------------------------


class RunGroups:
    """One run's cgroups: ``<base>/r<N>/<task>-a<attempt>`` in each hierarchy of the tier.

    The attempt creates and joins its own groups (:func:`pytest_distproc.attempt.confine.join`), in
    parallel and before its skill runs; the coordinator kills and removes them.
    """

    _runs = 0

    def __init__(self) -> None:
        self.tier = tier()
        RunGroups._runs += 1
        self.dirs = tuple(os.path.join(base, f"r{RunGroups._runs}") for base in self.tier.bases)
        self.doomed: set[str] = set()  # killed attempt groups whose processes may not have left yet
        for path in self.dirs:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError:
                self.dirs = ()
                break

    def paths(self, name: str) -> list[str]:
        """The groups an attempt named ``name`` joins (none without cgroups)."""
        return [os.path.join(path, name) for path in self.dirs]

    def kill(self, name: str) -> None:
        """Kill everything attempt ``name`` started (its groups stay until :meth:`finish`)."""
        _kill_twins(self.paths(name))

    def finish(self, name: str) -> None:
        """The attempt ended: remove its groups; kill first what it left running in them (their rmdir
        fails while a process is in them), and remove those later, once the killed have left."""
        paths = self.paths(name)
        if not all(remove_tree(path) for path in paths):
            _kill_twins(paths)
            self.doomed.update(paths)
        for path in list(self.doomed):
            if remove_tree(path):
                self.doomed.discard(path)

    def close(self) -> None:
        """Kill whatever is left in the run's groups and remove them all."""
        clear(list(self.dirs))
        self.doomed.clear()


def clear(paths: list[str], wait: float = 5.0) -> bool:
    """Kill everything in a group (given in each hierarchy) and remove it, killing again each round:
    a process that joined after a kill (an attempt still setting up) is killed by the next."""
    deadline = time.monotonic() + wait
    while True:
        _kill_twins(paths)
        if all(remove_tree(path) for path in paths):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _kill_twins(paths: list[str]) -> None:
    """Kill one group given in every hierarchy of the tier: the first, frozen through a v1 freezer twin."""
    if paths:
        kill(paths[0], next((p for p in paths[1:] if os.path.exists(os.path.join(p, "freezer.state"))), None))
