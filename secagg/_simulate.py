"""Drive one aggregation round of n clients and the server in this process.

Every message crosses the wire encoding (so byte counts are real), every party is
timed separately (server time, per-client time, per stage), and a dropout schedule
says which client vanishes at which stage. This is what the tests, the CLI and the
``papers/`` benchmarks build on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secagg import _wire
from secagg._backend import Backend
from secagg._errors import RemoteProtocolError, SecAggError
from secagg._secaggplus import SecAggPlusBackend

__all__ = ["simulate", "SimulationResult", "DROP_STAGES", "dropout_schedule"]

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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the vectors)."""
        return {
            "backend": self.backend,
            "clients": self.clients,
            "dim": self.dim,
            "dropped": len(self.dropped),
            "survivors": len(self.survivors),
            "dropped_ids": list(self.dropped),
            "neighbours": self.neighbours,
            "threshold": self.threshold,
            "max_abs_error": self.max_abs_error,
            "total_weight": self.total_weight,
            "seconds": self.seconds,
            "bytes": self.bytes,
        }


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

    server_time: dict[str, float] = defaultdict(float)
    client_time = np.zeros(clients)
    stage_client_time: dict[str, float] = defaultdict(float)
    up = np.zeros(clients)
    down = np.zeros(clients)
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
    server_time["setup"] += time.perf_counter() - t0
    sessions = {}
    for cid in ids:
        t0 = time.perf_counter()
        extra = {"identity": identities[cid]} if identities else {}
        sessions[cid] = backend.client_session(client_id=cid, vector=inputs[cid], weight=w[cid],
                                               rng=np.random.default_rng([seed, cid]), **extra)
        client_time[cid] += time.perf_counter() - t0
    while not server.done:
        stage = server.stage
        t0 = time.perf_counter()
        outbox = server.next_messages()
        server_time[stage] += time.perf_counter() - t0
        if not outbox:
            t0 = time.perf_counter()
            server.close_stage()
            server_time[stage] += time.perf_counter() - t0
            continue
        for i, (cid, msg) in enumerate(sorted(outbox.items())):
            if progress is not None:
                progress(stage, i, len(outbox))
            t0 = time.perf_counter()
            if schedule.get(cid) == stage:
                server.drop(cid)
                server_time[stage] += time.perf_counter() - t0
                continue
            data = _wire.encode(msg)
            server_time[stage] += time.perf_counter() - t0
            down[cid] += len(data)
            t0 = time.perf_counter()
            try:
                reply = sessions[cid].receive(_wire.decode(data, peer="server"))
                rdata = _wire.encode(reply) if reply is not None else None
            except SecAggError:
                reply = rdata = None  # the client refused or failed: to the server it vanished
            elapsed = time.perf_counter() - t0
            client_time[cid] += elapsed
            stage_client_time[stage] += elapsed
            t0 = time.perf_counter()
            if rdata is None:
                server.drop(cid)
            else:
                up[cid] += len(rdata)
                # A RemoteProtocolError means the server dropped that client; the round goes on.
                with contextlib.suppress(RemoteProtocolError):
                    server.receive(cid, _wire.decode(rdata, peer=cid))
            server_time[stage] += time.perf_counter() - t0
        if progress is not None:
            progress(stage, len(outbox), len(outbox))
    t0 = time.perf_counter()
    result = server.result()
    server_time["result"] += time.perf_counter() - t0
    total = time.perf_counter() - start

    contributors = np.array(result.contributors, dtype=np.int64)
    reference = getattr(backend, "reference_sum", None)
    if reference is not None:  # a backend that transforms inputs says what it estimates
        expected = reference(inputs, w, contributors)
    elif getattr(backend, "encoding", "quantize") == "words":  # clients' own words, summed modulo 2^b
        total = inputs[contributors].astype(np.uint64).sum(axis=0, dtype=np.uint64)
        bits = int(getattr(backend, "modulus_bits", 64))
        expected = (total if bits == 64 else total % np.uint64(1 << bits)).astype(np.float64)
    else:
        clip = float(getattr(backend, "clip", np.inf))
        expected = (w[contributors, None] * np.clip(inputs[contributors], -clip, clip)).sum(axis=0) \
            if contributors.size else np.zeros(dim)
    error = float(np.max(np.abs(result.weighted_sum - expected))) if dim else 0.0
    who = contributors if contributors.size else np.arange(clients)
    config = getattr(server, "config", None)
    # expansion: bytes sent against the same vector in the clear at the same word size
    word_bytes = (getattr(config, "modulus_bits", 64) + 7) // 8
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
            "server": float(sum(server_time.values())),
            "client_mean": float(client_time.mean()),
            "client_max": float(client_time.max()),
            "total": total,
            "server_stages": {k: float(v) for k, v in server_time.items()},
            "client_stages_mean": {k: float(v) / clients for k, v in stage_client_time.items()},
        },
        bytes={
            "up_per_client": float(up[who].mean()),
            "down_per_client": float(down[who].mean()),
            "up_total": float(up.sum()),
            "down_total": float(down.sum()),
            "expansion": float(up[who].mean() / (word_bytes * dim)) if dim else 0.0,
        },
    )
