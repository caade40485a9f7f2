"""SQLite checkpoints: the global model, the round counters and the round log.

One transaction per finished round, so a coordinator killed at any instant restarts
from the last completed round with its model, never from half of one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from pathlib import Path

from secagg import Parameters
from transport._messages import decode_parameters, encode_parameters
from transport._records import RoundRecord

__all__ = ["Checkpoint", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    completed_rounds INTEGER NOT NULL,
    next_round_id INTEGER NOT NULL,
    parameters BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    round_id INTEGER NOT NULL UNIQUE,
    server_round INTEGER NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL
);
"""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    completed_rounds: int
    next_round_id: int
    parameters: Parameters
    log: tuple[RoundRecord, ...]


class Store:
    """The coordinator's state in ``<state_dir>/coordinator.sqlite``."""

    FILENAME = "coordinator.sqlite"

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(state_dir) / self.FILENAME
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def load(self) -> Checkpoint | None:
        """The last checkpoint, or ``None`` for a fresh state directory."""
        row = self._db.execute(
            "SELECT completed_rounds, next_round_id, parameters FROM model WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        log = tuple(
            RoundRecord.from_json(json.loads(text))
            for (text,) in self._db.execute("SELECT record FROM rounds ORDER BY seq")
        )
        return Checkpoint(
            completed_rounds=row[0], next_round_id=row[1],
            parameters=decode_parameters(row[2]), log=log,
        )

    def save(
        self, *, completed_rounds: int, next_round_id: int, parameters: Parameters,
        record: RoundRecord,
    ) -> None:
        """Atomically store the model, the counters and one round's record."""
        blob = encode_parameters(parameters)
        text = json.dumps(record.to_json(), sort_keys=True)
        with self._transaction():
            self._db.execute(
                "INSERT INTO model (id, completed_rounds, next_round_id, parameters) "
                "VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "completed_rounds = excluded.completed_rounds, "
                "next_round_id = excluded.next_round_id, parameters = excluded.parameters",
                (completed_rounds, next_round_id, blob),
            )
            self._db.execute(
                "INSERT INTO rounds (round_id, server_round, status, record) VALUES (?, ?, ?, ?)",
                (record.round_id, record.server_round, record.status, text),
            )

    def reserve_round_id(self, round_id: int, parameters: Parameters) -> None:
        """Record that ``round_id`` is in use before the round starts.

        ``parameters`` are stored only when there is no checkpoint yet.
        """
        with self._transaction():
            self._db.execute(
                "INSERT INTO model (id, completed_rounds, next_round_id, parameters) "
                "VALUES (1, 0, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "next_round_id = MAX(next_round_id, excluded.next_round_id)",
                (round_id + 1, encode_parameters(parameters)),
            )

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
