"""What the coordinator remembers about each round (and logs): ids, timings, evaluations."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from secagg import EvaluateResult

__all__ = ["RoundRecord", "RunSummary", "RoundEvent", "evaluation_to_json",
           "evaluation_from_json"]


def evaluation_to_json(result: EvaluateResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"loss": result.loss, "metrics": dict(result.metrics),
            "num_examples": result.num_examples, "num_clients": result.num_clients}


def evaluation_from_json(d: Mapping[str, Any] | None) -> EvaluateResult | None:
    if d is None:
        return None
    return EvaluateResult(loss=float(d["loss"]), metrics=dict(d.get("metrics", {})),
                          num_examples=float(d.get("num_examples", 0.0)),
                          num_clients=int(d.get("num_clients", 0)))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RoundRecord:
    """One round attempt.

    ``server_round`` is the strategy's round number (1-based); ``round_id`` is unique
    over all attempts, failed ones included. ``dropped`` maps a stage name (``"fit"``
    or a backend stage) to the clients dropped there; ``released`` are over-selected
    clients that were not needed. ``latency`` maps a stage to the p50, p99 and max
    seconds from a request to its complete answer.

    Evaluation (strategies that evaluate, after a completed fit): ``server_evaluation``
    is the strategy's own, ``federated_evaluation`` the clients' weighted means,
    aggregated in a separate attempt ``evaluation_round_id``; ``evaluation_dropped``
    maps its stages to the clients dropped there and ``evaluation_detail`` says why
    federated evaluation was skipped or failed. Checkpoints written before these
    fields existed load with their defaults.
    """

    server_round: int
    round_id: int
    status: str
    sampled: tuple[int, ...]
    selected: tuple[int, ...] = ()
    released: tuple[int, ...] = ()
    contributors: tuple[int, ...] = ()
    dropped: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    stage_seconds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    latency: Mapping[str, tuple[float, float, float]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    detail: str = ""
    evaluation_round_id: int | None = None
    server_evaluation: EvaluateResult | None = None
    federated_evaluation: EvaluateResult | None = None
    evaluation_dropped: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    evaluation_detail: str = ""

    @property
    def last_round_id(self) -> int:
        """The largest attempt id this round used (fit, or its evaluation)."""
        return max(self.round_id, self.evaluation_round_id or 0)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def all_dropped(self) -> tuple[int, ...]:
        return tuple(sorted({c for ids in self.dropped.values() for c in ids}))

    def to_json(self) -> dict[str, Any]:
        return {
            "server_round": self.server_round,
            "round_id": self.round_id,
            "status": self.status,
            "sampled": list(self.sampled),
            "selected": list(self.selected),
            "released": list(self.released),
            "contributors": list(self.contributors),
            "dropped": {k: list(v) for k, v in self.dropped.items()},
            "stage_seconds": {k: round(v, 4) for k, v in self.stage_seconds.items()},
            "latency": {k: [round(x, 5) for x in v] for k, v in self.latency.items()},
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
            "evaluation_round_id": self.evaluation_round_id,
            "server_evaluation": evaluation_to_json(self.server_evaluation),
            "federated_evaluation": evaluation_to_json(self.federated_evaluation),
            "evaluation_dropped": {k: list(v) for k, v in self.evaluation_dropped.items()},
            "evaluation_detail": self.evaluation_detail,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RoundRecord:
        return cls(
            server_round=int(d["server_round"]),
            round_id=int(d["round_id"]),
            status=str(d["status"]),
            sampled=tuple(d["sampled"]),
            selected=tuple(d["selected"]),
            released=tuple(d["released"]),
            contributors=tuple(d["contributors"]),
            dropped={k: tuple(v) for k, v in d["dropped"].items()},
            stage_seconds=dict(d["stage_seconds"]),
            latency={k: (v[0], v[1], v[2]) for k, v in d.get("latency", {}).items()},
            seconds=float(d["seconds"]),
            detail=str(d["detail"]),
            evaluation_round_id=(None if d.get("evaluation_round_id") is None
                                 else int(d["evaluation_round_id"])),
            server_evaluation=evaluation_from_json(d.get("server_evaluation")),
            federated_evaluation=evaluation_from_json(d.get("federated_evaluation")),
            evaluation_dropped={k: tuple(v) for k, v in d.get("evaluation_dropped", {}).items()},
            evaluation_detail=str(d.get("evaluation_detail", "")),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """What :meth:`Coordinator.run` returns; ``stopped`` says why training ended
    before ``rounds`` (for example an exhausted privacy budget), empty otherwise."""

    backend: str
    rounds_completed: int
    log: tuple[RoundRecord, ...]
    stopped: str = ""

    @property
    def last_federated_evaluation(self) -> EvaluateResult | None:
        """The federated evaluation of the last round that has one."""
        for rec in reversed(self.log):
            if rec.federated_evaluation is not None:
                return rec.federated_evaluation
        return None

    def dropped_by_round(self) -> dict[int, list[int]]:
        """Clients dropped in each server round, over all its attempts."""
        out: dict[int, set[int]] = {}
        for rec in self.log:
            out.setdefault(rec.server_round, set()).update(rec.all_dropped)
        return {r: sorted(ids) for r, ids in sorted(out.items())}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RoundEvent:
    """Passed to a coordinator observer: ``round_started``, ``stage_started``,
    ``round_finished``. ``index`` counts protocol stages from 1 (0 is ``fit``, or
    ``evaluate`` for the round's federated evaluation, whose stages follow)."""

    kind: str
    server_round: int
    stage: str = ""
    index: int = 0
    clients: tuple[int, ...] = ()
    record: RoundRecord | None = None
