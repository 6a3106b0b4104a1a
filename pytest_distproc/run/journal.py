"""A durable TaskList: every transition and every accepted region result, journaled to SQLite as it happens.

If the coordinator process itself dies (SIGKILL, OOM killer, a power cut of the CI runner's pod), a
new coordinator resumes from the journal: regions whose result was journaled are not run again,
attempts that were in flight are recorded as lost and started afresh, and the aggregate is the same.
Each write is its own committed transaction, so a killed process loses nothing it reported.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_distproc.errors import DistprocError
from pytest_distproc.tasklist import State, Transition

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY, task TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,
    attempt INTEGER NOT NULL, pid INTEGER, time REAL NOT NULL, event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (region TEXT PRIMARY KEY, summary TEXT NOT NULL, seq INTEGER NOT NULL);
"""


class JournalError(DistprocError):
    """The journal cannot be used for this scenario (another scenario's, or unreadable)."""


@dataclass
class Journaled:
    """What a previous coordinator left behind."""

    transitions: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


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
            raise JournalError(f"journal {self.path}: {exc}") from None

    def start(self, identity: str, *, resume: bool) -> Journaled | None:
        """Bind the journal to one scenario; with ``resume``, return what it holds (None if empty)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        if row is not None and row[0] != identity:
            raise JournalError(f"journal {self.path} belongs to another scenario or seed ({row[0]}), not {identity}: "
                               "the scenario, its seed or its plan changed since; delete the journal to start "
                               "afresh, or run without --distproc-resume")
        if resume and row is not None:
            return self._load()
        self.db.execute("DELETE FROM transitions")
        self.db.execute("DELETE FROM results")
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (identity,))
        return None

    def _load(self) -> Journaled:
        found = Journaled()
        columns = ("seq", "task", "from", "to", "attempt", "pid", "time", "event")
        for row in self.db.execute("SELECT * FROM transitions ORDER BY seq"):
            found.transitions.append(dict(zip(columns, row, strict=True)))
        for region, summary, _ in self.db.execute("SELECT * FROM results ORDER BY seq"):
            found.results[region] = json.loads(summary)
        return found

    def transition(self, entry: Transition) -> None:
        self.db.execute(
            "INSERT INTO transitions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # a number is never reused
            (entry.seq, entry.task, entry.from_state.value if entry.from_state else None, entry.to_state.value,
             entry.attempt, entry.pid, entry.time, entry.event),
        )

    def result(self, region: str, summary: dict[str, Any], seq: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", (region, json.dumps(summary), seq))

    def close(self) -> None:
        self.db.close()


def replayable(entry: dict[str, Any]) -> tuple[str, State, int | None, str]:
    return entry["task"], State(entry["to"]), entry["pid"], entry["event"]
