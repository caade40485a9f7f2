"""SQLite checkpoints: the global model, the round counters, the strategy's state and
the round log.

One transaction per finished round, so a coordinator killed at any instant restarts
from the last completed round with its model and the strategy state that goes with it
(privacy spent, adaptive clip, optimiser moments), never from half of one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from secagg import Parameters, StrategyState
from transport._messages import decode_parameters, encode_parameters
from transport._records import RoundRecord

__all__ = ["Checkpoint", "Store", "encode_state", "decode_state"]

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
CREATE TABLE IF NOT EXISTS strategy_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL,
    arrays BLOB NOT NULL
);
"""
_ARRAY = "__array__"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    completed_rounds: int
    next_round_id: int
    parameters: Parameters
    log: tuple[RoundRecord, ...]
    #: ``None``: no strategy state was stored (none kept, or a checkpoint from before
    #: strategy states were stored)
    strategy_state: StrategyState | None = None


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
        state = self._db.execute(
            "SELECT state, arrays FROM strategy_state WHERE id = 1").fetchone()
        return Checkpoint(
            completed_rounds=row[0], next_round_id=row[1],
            parameters=decode_parameters(row[2]), log=log,
            strategy_state=None if state is None else decode_state(*state),
        )

    def save(
        self, *, completed_rounds: int, next_round_id: int, parameters: Parameters,
        record: RoundRecord, strategy_state: StrategyState | None = None,
    ) -> None:
        """Atomically store the model, the counters, the strategy's state (when given)
        and one round's record (replacing an earlier record of the same round id)."""
        blob = encode_parameters(parameters)
        text = json.dumps(record.to_json(), sort_keys=True)
        state = None if strategy_state is None else encode_state(strategy_state)
        with self._transaction():
            self._db.execute(
                "INSERT INTO model (id, completed_rounds, next_round_id, parameters) "
                "VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "completed_rounds = excluded.completed_rounds, "
                "next_round_id = excluded.next_round_id, parameters = excluded.parameters",
                (completed_rounds, next_round_id, blob),
            )
            self._db.execute(
                "INSERT INTO rounds (round_id, server_round, status, record) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(round_id) DO UPDATE SET server_round = excluded.server_round, "
                "status = excluded.status, record = excluded.record",
                (record.round_id, record.server_round, record.status, text),
            )
            if state is not None:
                self._db.execute(
                    "INSERT INTO strategy_state (id, state, arrays) VALUES (1, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
                    "arrays = excluded.arrays", state)

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


def encode_state(state: StrategyState) -> tuple[str, bytes]:
    """A strategy state as JSON text (arrays replaced by ``{"__array__": i}``) and the
    arrays as one ``BSP2`` blob (``BSP1`` blobs of older checkpoints still load).

    Raises:
        TypeError: a value is neither JSON nor a numeric array.
    """
    arrays: list[np.ndarray] = []

    def walk(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            arrays.append(value)
            return {_ARRAY: len(arrays) - 1}
        if isinstance(value, dict):
            if _ARRAY in value:
                raise TypeError(f"strategy state keys must not be {_ARRAY!r}")
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"strategy state values must be JSON or arrays, got {type(value).__name__}")

    text = json.dumps(walk(state), sort_keys=True)
    return text, encode_parameters(arrays)


def decode_state(text: str, blob: bytes) -> StrategyState:
    """The inverse of :func:`encode_state`.

    Raises:
        ValueError: the text or the blob is malformed, or names a missing array.
    """
    arrays = decode_parameters(blob)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_ARRAY}:
                index = value[_ARRAY]
                if not isinstance(index, int) or not 0 <= index < len(arrays):
                    raise ValueError(f"strategy state names array {index!r} of {len(arrays)}")
                return arrays[index]
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    state = walk(json.loads(text))
    if not isinstance(state, dict):
        raise ValueError("strategy state must be a JSON object")
    return state


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
