"""A durable TaskList: every transition and every accepted region result, journaled to SQLite as it happens.

If the coordinator process itself dies (SIGKILL, OOM killer, a power cut of the CI runner's pod), a
new coordinator resumes from the journal: regions whose result was journaled are not run again,
attempts that were in flight are recorded as lost and started afresh, and the aggregate is the same.
Each write is its own committed transaction, so a killed process loses nothing it reported. The notes of
the history (an attempt started, a fault fired, the regions ran together) are journaled too, so that a
resumed run is checked on everything the run it resumes saw. A journal that cannot be read back (damaged
pages, a row that is not ours) is a :class:`JournalError` that names it, and the file is left as it is.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pytest_distproc.errors import DistprocError
from pytest_distproc.tasklist import Event, State, Transition

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY, task TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,
    attempt INTEGER NOT NULL, pid INTEGER, time REAL NOT NULL, event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (region TEXT PRIMARY KEY, summary TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, task TEXT, attempt INTEGER NOT NULL, pid INTEGER,
    time REAL NOT NULL, text TEXT NOT NULL, data TEXT NOT NULL
);
"""
LEFT = "it was left as it is: move it away (or delete it) to start afresh, or run without --distproc-resume"


class JournalError(DistprocError):
    """The journal cannot be used for this scenario (another scenario's, or unreadable)."""


@dataclass
class Journaled:
    """What a previous coordinator left behind."""

    transitions: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Notes of the history (``Event.as_dict`` shape), in the order of their numbers."""


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise JournalError(f"journal {self.path} is damaged or not a journal ({exc}); {LEFT}") from None

    def start(self, identity: str, *, resume: bool) -> Journaled | None:
        """Bind the journal to one scenario; with ``resume``, return what it holds (None if empty).

        Without ``resume`` a run starts afresh: whatever the journal held (another seed's run) is replaced.
        Nothing is written before the whole file was checked, so a damaged journal is never modified."""
        try:
            damage = self.db.execute("PRAGMA quick_check").fetchall()
            if damage != [("ok",)]:
                raise sqlite3.DatabaseError("; ".join(str(row[0]) for row in damage[:3]))
            row = self.db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
            if resume and row is not None and row[0] != identity:
                raise JournalError(f"journal {self.path} belongs to another scenario or seed ({row[0]}), not "
                                   f"{identity}: the scenario, its seed or its plan changed since; delete the journal "
                                   "to start afresh, or run without --distproc-resume")
            if resume and row is not None:
                return self._load()
            with self.db:  # one transaction: the old run's rows go with the new identity, or not at all
                self.db.execute("BEGIN")
                for table in ("transitions", "results", "events"):
                    self.db.execute(f"DELETE FROM {table}")
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (identity,))
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path} is damaged ({exc}); {LEFT}") from None
        return None

    def _load(self) -> Journaled:
        """What the journal holds, each row checked: a row that is not what we wrote is a worded error."""
        found = Journaled()
        for seq, task, before, after, attempt, pid, time, event in self.db.execute(
                "SELECT * FROM transitions ORDER BY seq"):
            where = f"transition {seq!r} of {task!r}"
            for state in (before, after) if before is not None else (after,):
                if state not in State.__members__:
                    self._refuse(f"{where} has an unknown state {state!r} (states: {', '.join(State.__members__)})")
            self._check_row(where, seq=seq, attempt=attempt, pid=pid, time=time, task=task, text=event)
            found.transitions.append({"seq": seq, "task": task, "from": before, "to": after, "attempt": attempt,
                                      "pid": pid, "time": time, "event": event})
        for region, summary, _ in self.db.execute("SELECT * FROM results ORDER BY seq"):
            found.results[region] = self._summary(region, summary)
        for seq, kind, task, attempt, pid, time, text, data in self.db.execute("SELECT * FROM events ORDER BY seq"):
            where = f"note {seq!r} ({kind!r})"
            self._check_row(where, seq=seq, attempt=attempt, pid=pid, time=time, task=task or "", text=text)
            found.events.append({"seq": seq, "kind": kind, "task": task, "attempt": attempt, "pid": pid,
                                 "time": time, "text": text, "data": self._json(where, data, dict)})
        return found

    def _check_row(self, where: str, *, seq: Any, attempt: Any, pid: Any, time: Any, task: Any, text: Any) -> None:
        for name, value, ok in (("number", seq, _is_int(seq)), ("attempt", attempt, _is_int(attempt)),
                                ("pid", pid, pid is None or _is_int(pid)),
                                ("time", time, isinstance(time, (int, float))),
                                ("task", task, isinstance(task, str)), ("event", text, isinstance(text, str))):
            if not ok:
                self._refuse(f"{where} has a bad {name} {value!r}")

    def _summary(self, region: str, text: Any) -> dict[str, Any]:
        summary: dict[str, Any] = self._json(f"the summary of region {region!r}", text, dict)
        return summary  # a skill's summary may hold more than numbers: the checks judge its values

    def _json(self, where: str, text: Any, kind: type) -> Any:
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as exc:
            self._refuse(f"{where} is not JSON ({exc}): {text!r:.80}")
        if not isinstance(value, kind):
            self._refuse(f"{where} is not a JSON {'object' if kind is dict else kind.__name__}: {text!r:.80}")
        return value

    def _refuse(self, problem: str) -> NoReturn:
        raise JournalError(f"journal {self.path} cannot be resumed: {problem}; {LEFT}")

    def _close_quietly(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()

    def transition(self, entry: Transition) -> None:
        self.db.execute(
            "INSERT INTO transitions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # a number is never reused
            (entry.seq, entry.task, entry.from_state.value if entry.from_state else None, entry.to_state.value,
             entry.attempt, entry.pid, entry.time, entry.event),
        )

    def event(self, entry: Event) -> None:
        self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (entry.seq, entry.kind, entry.task, entry.attempt, entry.pid, entry.time, entry.text,
                         json.dumps(dict(entry.data))))

    def result(self, region: str, summary: dict[str, Any], seq: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", (region, json.dumps(summary), seq))

    def close(self) -> None:
        self.db.close()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def replayable(entry: dict[str, Any]) -> tuple[str, State, int | None, str]:
    return entry["task"], State(entry["to"]), entry["pid"], entry["event"]
