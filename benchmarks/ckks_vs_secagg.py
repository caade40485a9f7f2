"""CKKS against SecAgg+ (and the plain baseline) on the same input, in one process.

Every backend is driven the same way, through the Backend interface and the wire codec
(``secagg.encode``/``secagg.decode``), one client reply at a time so that at most one
client's upload is in memory. Times are CPU seconds of this process (TenSEAL runs with
one thread), split by server stage; bytes are encoded message sizes.

    nice .venv/bin/python benchmarks/ckks_vs_secagg.py --clients 10 100 --dim 1000000

Columns: ``client s`` is the mean CPU time of one client over the stages every client
answers (CKKS: pack + encrypt + serialise; SecAgg+: all four); ``B/float up`` is one
client's upload per input float; ``setup s`` is the server's time before the stage in
which the vectors arrive (SecAgg+: key advertisement and sharing; CKKS: none),
``server add s`` its time in that stage (CKKS: parse, check and add ciphertexts;
SecAgg+: add masked vectors), ``finish s`` everything after it (CKKS: the key holder's
decryption and the server's unpacking; SecAgg+: unmasking);
``max err`` is the largest error of the weighted mean against NumPy in float64, ``err
sum`` that of the weighted sum. ``ckks`` has every client hold the key (seeded
secret-key ciphertexts), ``ckks-pk`` only client 1 (the others encrypt under the
public key). Wire encode/decode is outside the timings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np

import secagg


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    backend: str
    clients: int
    dim: int
    client_s: float
    bytes_per_float_up: float
    setup_s: float
    server_add_s: float
    finish_s: float
    max_err: float
    max_err_sum: float
    stages: dict[str, dict[str, float]]
    note: str = ""


_MAX_WEIGHT = 99


def _client_input(seed: int, cid: int, dim: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng([seed, cid])
    return rng.uniform(-1.0, 1.0, dim), float(rng.integers(1, _MAX_WEIGHT + 1))


def _make_backends(names: list[str], neighbours: int | str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name == "ckks":  # every client a key holder: seeded secret-key ciphertexts
            out[name] = secagg.CKKSBackend.generate()
        elif name == "ckks-pk":  # one key holder (client 1), the rest encrypt under the public key
            out[name] = secagg.CKKSBackend.generate(key_holders=(1,))
        elif name == "plain":
            out[name] = secagg.PlainBackend()
        elif name == "secagg+":  # its defaults: complete graph, t = k // 2 + 1, 32-bit words
            cls = getattr(secagg, "SecAggPlusBackend", None)
            out[name] = None if cls is None else cls(max_weight=_MAX_WEIGHT, neighbours=neighbours)
        else:
            raise SystemExit(f"unknown backend {name!r}")
    return out


def run(backend: Any, *, clients: int, dim: int, seed: int) -> Row:
    """One round with ``clients`` clients of ``dim`` floats each, nobody dropping."""
    ids = tuple(range(1, clients + 1))
    rng = np.random.default_rng(seed)
    server = backend.server_session(round_id=1, client_ids=ids, dim=dim, rng=rng)
    sessions: dict[int, Any] = {}
    want = np.zeros(dim)
    total_w = 0.0
    for cid in ids:  # inputs are regenerated from the seed, never all kept
        x, w = _client_input(seed, cid, dim)
        want += w * x
        total_w += w
        sessions[cid] = backend.client_session(
            client_id=cid, vector=x, weight=w, rng=np.random.default_rng([seed, cid, 1])
        )
    del x
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    while not server.done:
        stage = server.stage
        t = time.process_time()
        out = server.next_messages()
        stats[stage]["server_s"] += time.process_time() - t
        if not out:
            server.close_stage()
            continue
        for cid, msg in out.items():
            down = secagg.encode(msg)
            t = time.process_time()
            reply = sessions[cid].receive(secagg.decode(down))
            stats[stage]["client_s"] += time.process_time() - t
            stats[stage]["replies"] += 1
            up = secagg.encode(reply)
            stats[stage]["bytes_down"] += len(down)
            stats[stage]["bytes_up"] += len(up)
            del reply, down
            t = time.process_time()
            server.receive(cid, secagg.decode(up, peer=cid))
            stats[stage]["server_s"] += time.process_time() - t
            del up
    t = time.process_time()
    res = server.result()
    stats["done"]["server_s"] += time.process_time() - t
    err = float(np.max(np.abs(res.mean - want / total_w)))
    err_sum = float(np.max(np.abs(res.weighted_sum - want)))
    client_stages = [s for s in stats if stats[s]["replies"] >= clients]
    client_s = sum(stats[s]["client_s"] for s in client_stages) / clients
    up = sum(stats[s]["bytes_up"] for s in client_stages) / clients / dim
    order = list(stats)
    upload = max(order, key=lambda s: stats[s]["bytes_up"])  # where the vectors arrive

    def server_time(stages: list[str]) -> float:  # plus a lone key holder's decryption
        return sum(stats[s]["server_s"] + (0 if s in client_stages else stats[s]["client_s"])
                   for s in stages)

    return Row(
        backend=backend.name, clients=clients, dim=dim, client_s=client_s,
        bytes_per_float_up=up, setup_s=server_time(order[: order.index(upload)]),
        server_add_s=stats[upload]["server_s"],
        finish_s=server_time(order[order.index(upload) + 1 :]),
        max_err=err, max_err_sum=err_sum, stages={s: dict(v) for s, v in stats.items()},
    )


def _table(rows: list[Row]) -> str:
    head = (f"{'backend':<9}{'clients':>8}{'dim':>10}{'client s':>10}{'B/float up':>12}"
            f"{'setup s':>9}{'server add s':>14}{'finish s':>10}{'max err':>11}{'err sum':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.note:
            lines.append(f"{r.backend:<9}{r.clients:>8}{r.dim:>10}  {r.note}")
            continue
        lines.append(
            f"{r.backend:<9}{r.clients:>8}{r.dim:>10}{r.client_s:>10.3f}{r.bytes_per_float_up:>12.2f}"
            f"{r.setup_s:>9.3f}{r.server_add_s:>14.3f}{r.finish_s:>10.3f}{r.max_err:>11.2e}{r.max_err_sum:>11.2e}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--dim", type=int, default=1_000_000)
    ap.add_argument("--backends", nargs="+", default=["ckks", "ckks-pk", "secagg+", "plain"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--neighbours", default="all",
                    help="SecAgg+ neighbours k per client, or 'all' (complete graph)")
    ap.add_argument("--json", action="store_true", help="print rows as JSON")
    args = ap.parse_args(argv)
    neighbours = args.neighbours if args.neighbours == "all" else int(args.neighbours)
    backends = _make_backends(args.backends, neighbours)
    rows = []
    for n in args.clients:
        for name, backend in backends.items():
            if backend is None:
                rows.append(Row(backend=name, clients=n, dim=args.dim, client_s=0.0,
                                bytes_per_float_up=0.0, setup_s=0.0, server_add_s=0.0, finish_s=0.0,
                                max_err=0.0, max_err_sum=0.0, stages={},
                                note="not available: secagg.SecAggPlusBackend is not on this branch"))
                continue
            print(f"running {name} with {n} clients x {args.dim} floats...", file=sys.stderr)
            row = run(backend, clients=n, dim=args.dim, seed=args.seed)
            rows.append(dataclasses.replace(row, backend=name))
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    else:
        print(_table(rows))
        if "ckks" in backends:
            p = backends["ckks"].keys.params
            print(f"\nckks: N={p.poly_modulus_degree}, one {p.data_prime_bits}-bit prime, "
                  f"scale 2^{p.scale_bits}, {p.slots} slots; weights uniform in 1..99")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
