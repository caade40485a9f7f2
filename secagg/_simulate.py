"""Drive one aggregation round of n clients and the server in this process.

Every message crosses the wire encoding (so byte counts are real), every party is
timed separately (server time, per-client time, per stage), and a dropout schedule
says which client vanishes at which stage. This is what the tests, the CLI and the
``papers/`` benchmarks build on.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secagg import _wire
from secagg._backend import AggregateResult, Backend, ClientSession, ServerSession
from secagg._errors import RemoteProtocolError, SecAggError
from secagg._secaggplus import SecAggPlusBackend

__all__ = ["simulate", "drive", "Meter", "SimulationResult", "DROP_STAGES", "dropout_schedule"]

# Short names for the stages at which a client can drop (SecAgg+ names; backends with
# other stages use their own stage names directly).
DROP_STAGES = {
    "advertise": "advertise_keys",
    "share": "share_keys",
    "masked": "masked_input",
    "consistency": "consistency_check",
    "unmask": "unmask",
}

Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    """What one simulated round produced and cost."""

    backend: str
    clients: int
    dim: int
    dropped: tuple[int, ...]
    survivors: tuple[int, ...]
    neighbours: int | None
    threshold: int | None
    aggregate: np.ndarray
    expected: np.ndarray
    total_weight: float
    max_abs_error: float
    seconds: dict[str, Any]
    bytes: dict[str, float]
    # stage -> ids of the clients that stopped answering (or were dropped by the server) there.
    # A client that stops at unmask is not in ``dropped``: its masked input is in the sum.
    dropped_by_stage: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the vectors)."""
        return {
            "backend": self.backend,
            "clients": self.clients,
            "dim": self.dim,
            "dropped": len(self.dropped),
            "survivors": len(self.survivors),
            "dropped_ids": list(self.dropped),
            "dropped_by_stage": {stage: len(ids) for stage, ids in self.dropped_by_stage.items()},
            "neighbours": self.neighbours,
            "threshold": self.threshold,
            "max_abs_error": self.max_abs_error,
            "total_weight": self.total_weight,
            "seconds": self.seconds,
            "bytes": self.bytes,
        }


class Meter:
    """Seconds and bytes of every party, filled in by :func:`drive`.

    ``server`` maps a stage to the server's seconds in it; ``client`` and ``up`` /
    ``down`` are per client id (ids ``0..clients-1``); ``client_stages`` sums the
    clients' seconds per stage.
    """

    def __init__(self, clients: int) -> None:
        self.server: dict[str, float] = defaultdict(float)
        self.client_stages: dict[str, float] = defaultdict(float)
        self.client = np.zeros(clients)
        self.up = np.zeros(clients)
        self.down = np.zeros(clients)
        self.dropped_at: dict[int, str] = {}


def drive(
    server: ServerSession,
    sessions: Mapping[int, ClientSession],
    *,
    vanishes: Callable[[int, str], bool] = lambda cid, stage: False,
    meter: Meter | None = None,
    progress: Progress | None = None,
) -> AggregateResult:
    """Deliver every message, through the wire encoding, until the server is done.

    A client vanishes (the server is told it dropped) when ``vanishes(cid, stage)``
    says so as a request reaches it, or when it refuses or fails (a ``SecAggError``).
    A ``RemoteProtocolError`` from the server means it dropped that client; the round
    goes on. ``meter`` (ids must then be ``0..n-1``) collects seconds and bytes.

    Raises:
        RecoveryError: the round could not finish.
    """
    m = meter if meter is not None else Meter(0)
    clock = time.perf_counter
    while not server.done:
        stage = server.stage
        t0 = clock()
        outbox = server.next_messages()
        if not outbox:
            server.close_stage()
        m.server[stage] += clock() - t0
        for i, (cid, msg) in enumerate(sorted(outbox.items())):
            if progress is not None:
                progress(stage, i, len(outbox))
            t0 = clock()
            if vanishes(cid, stage):
                server.drop(cid)
                m.dropped_at.setdefault(cid, stage)
                m.server[stage] += clock() - t0
                continue
            data = _wire.encode(msg)
            m.server[stage] += clock() - t0
            t0 = clock()
            try:
                reply = sessions[cid].receive(_wire.decode(data, peer="server"))
                rdata = _wire.encode(reply) if reply is not None else None
            except SecAggError:
                rdata = None  # the client refused or failed: to the server it vanished
            spent = clock() - t0
            t0 = clock()
            if rdata is None:
                server.drop(cid)
                m.dropped_at.setdefault(cid, stage)
            else:
                try:
                    server.receive(cid, _wire.decode(rdata, peer=cid))
                except RemoteProtocolError:
                    m.dropped_at.setdefault(cid, stage)  # the server dropped it
            m.server[stage] += clock() - t0
            if meter is not None:
                m.client[cid] += spent
                m.client_stages[stage] += spent
                m.down[cid] += len(data)
                m.up[cid] += len(rdata) if rdata is not None else 0
        if progress is not None and outbox:
            progress(stage, len(outbox), len(outbox))
    t0 = clock()
    result = server.result()
    m.server["result"] += clock() - t0
    return result


def dropout_schedule(clients: int, fraction: float, stage: str, rng: np.random.Generator) -> dict[int, str]:
    """``round(fraction * clients)`` random clients, all dropping at ``stage``.

    Raises:
        ValueError: ``fraction`` outside [0, 1).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"dropout must be in [0, 1), got {fraction}")
    stage = DROP_STAGES.get(stage, stage)
    chosen = rng.choice(clients, size=int(round(fraction * clients)), replace=False)
    return {int(c): stage for c in chosen}


def simulate(
    *,
    clients: int,
    dim: int,
    backend: Backend | None = None,
    dropouts: Mapping[int, str] | None = None,
    inputs: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    seed: int = 0,
    authenticated: bool = False,
    progress: Progress | None = None,
) -> SimulationResult:
    """Run one round; return the aggregate, its error against the plain sum, timings, bytes.

    ``inputs`` is ``(clients, dim)`` (default: uniform in [-1, 1]); ``weights`` are
    per-client (default 1). ``dropouts`` maps a client id to the stage at which it
    stops answering (short names from :data:`DROP_STAGES` are accepted). With
    ``authenticated`` every client gets an Ed25519 identity key and the SecAgg+
    backend runs its signed, consistency-checked variant.

    Raises:
        RecoveryError: the round could not finish (too many dropouts for the threshold).
        ValueError: inconsistent arguments.
    """
    if backend is None:
        backend = SecAggPlusBackend()
    rng = np.random.default_rng(seed)
    if inputs is None:
        inputs = rng.uniform(-1.0, 1.0, size=(clients, dim))
    if inputs.shape != (clients, dim):
        raise ValueError(f"inputs must have shape ({clients}, {dim}), got {inputs.shape}")
    w = np.ones(clients) if weights is None else np.asarray(weights, dtype=np.float64)
    schedule = {cid: DROP_STAGES.get(s, s) for cid, s in (dropouts or {}).items()}
    ids = tuple(range(clients))

    meter = Meter(clients)
    start = time.perf_counter()

    identities: dict[int, Ed25519PrivateKey] = {}
    if authenticated:
        if not hasattr(backend, "identities"):
            raise ValueError(f"the {backend.name} backend has no authenticated variant")
        identities = {cid: Ed25519PrivateKey.generate() for cid in ids}
        public = {cid: k.public_key().public_bytes_raw() for cid, k in identities.items()}
        backend = dataclasses.replace(backend, identities=public)  # type: ignore[type-var]
    t0 = time.perf_counter()
    server = backend.server_session(round_id=0, client_ids=ids, dim=dim, rng=rng)
    meter.server["setup"] += time.perf_counter() - t0
    sessions = {}
    for cid in ids:
        t0 = time.perf_counter()
        extra = {"identity": identities[cid]} if identities else {}
        sessions[cid] = backend.client_session(client_id=cid, vector=inputs[cid], weight=w[cid],
                                               rng=np.random.default_rng([seed, cid]), **extra)
        meter.client[cid] += time.perf_counter() - t0
    result = drive(server, sessions, vanishes=lambda cid, stage: schedule.get(cid) == stage,
                   meter=meter, progress=progress)
    elapsed = time.perf_counter() - start

    contributors = np.array(result.contributors, dtype=np.int64)
    reference = getattr(backend, "reference_sum", None)
    if reference is not None:  # a backend that transforms inputs says what it estimates
        expected = reference(inputs, w, contributors)
    elif getattr(backend, "encoding", "quantize") == "words":  # clients' own words, summed modulo 2^b
        words = inputs[contributors].astype(np.uint64).sum(axis=0, dtype=np.uint64)
        bits = int(getattr(backend, "modulus_bits", 64))
        expected = (words if bits == 64 else words % np.uint64(1 << bits)).astype(np.float64)
    else:
        clip = float(getattr(backend, "clip", np.inf))
        expected = (w[contributors, None] * np.clip(inputs[contributors], -clip, clip)).sum(axis=0) \
            if contributors.size else np.zeros(dim)
    error = float(np.max(np.abs(result.weighted_sum - expected))) if dim else 0.0
    who = contributors if contributors.size else np.arange(clients)
    config = getattr(server, "config", None)
    # expansion: bytes sent against the same vector in the clear at the same word size
    word_bytes = (getattr(config, "modulus_bits", 64) + 7) // 8
    by_stage: dict[str, list[int]] = defaultdict(list)
    for cid, stage in sorted(meter.dropped_at.items()):
        by_stage[stage].append(cid)
    return SimulationResult(
        backend=backend.name,
        clients=clients,
        dim=dim,
        dropped=tuple(sorted(set(ids) - set(result.contributors))),
        survivors=result.contributors,
        neighbours=getattr(config, "neighbours", None),
        threshold=getattr(config, "threshold", None),
        aggregate=result.weighted_sum,
        expected=expected,
        total_weight=result.total_weight,
        max_abs_error=error,
        seconds={
            "server": float(sum(meter.server.values())),
            "client_mean": float(meter.client.mean()),
            "client_max": float(meter.client.max()),
            # the clients whose input is in the sum (they ran every stage); client_mean counts
            # the dropped too, who skipped the later stages
            "client_mean_survivors": float(meter.client[who].mean()),
            "total": elapsed,
            "server_stages": {k: float(v) for k, v in meter.server.items()},
            "client_stages_mean": {k: float(v) / clients for k, v in meter.client_stages.items()},
        },
        dropped_by_stage={stage: tuple(ids) for stage, ids in by_stage.items()},
        bytes={
            "up_per_client": float(meter.up[who].mean()),
            "down_per_client": float(meter.down[who].mean()),
            "up_total": float(meter.up.sum()),
            "down_total": float(meter.down.sum()),
            "expansion": float(meter.up[who].mean() / (word_bytes * dim)) if dim else 0.0,
        },
    )
