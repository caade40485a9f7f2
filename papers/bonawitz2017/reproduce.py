"""Reproduce the SecAgg evaluation of Bonawitz et al., CCS 2017 (complete graph).

Per-client and server time and the expansion factor for n = 500 and 1000 clients,
d = 100,000, with 0/10/30% of the clients dropping after the share-keys stage (they
never send their masked input, so the server recovers their pairwise masks), next to
the paper's figures. Also the server's *keystream bound*: the keystream bytes the
server must generate (one self mask per survivor plus one pairwise mask per
(dropped, surviving neighbour) pair, ``4 * (d + 1)`` bytes each) divided by this
machine's AES-256-CTR speed, measured in the same run; the target is a server within
2x of it at n = 1000, d = 100,000, 30% dropout.

Run from the repository root::

    python -m papers.bonawitz2017.reproduce            # the paper's sizes (minutes)
    python -m papers.bonawitz2017.reproduce --quick    # n = 100, d = 10,000 (seconds)
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file (python papers/<paper>/reproduce.py): find the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from papers import _common  # noqa: E402

PAPER = "bonawitz2017"

# Bonawitz et al. 2017, Java, one core (secondary source: /work/shared/PEERS.md).
# (clients, dropout) -> seconds; None where the paper gives no figure.
PAPER_CLIENT_SECONDS = {500: 0.85, 1000: 1.7}
PAPER_SERVER_SECONDS: dict[tuple[int, float], float | None] = {
    (500, 0.0): 2.0, (500, 0.1): 62.0, (500, 0.3): 143.0,
    (1000, 0.0): None, (1000, 0.1): 180.0, (1000, 0.3): 414.0,
}
PAPER_EXPANSION = "1.73x (n = 2^10, d = 2^20, 16-bit inputs)"

FULL: dict[str, Any] = {"clients": (500, 1000), "dim": 100_000, "dropouts": (0.0, 0.1, 0.3)}
QUICK: dict[str, Any] = {"clients": (100,), "dim": 10_000, "dropouts": (0.0, 0.1, 0.3)}


def keystream_bytes(result: Any) -> int:
    """Keystream bytes the server generates to unmask a complete-graph round."""
    word = 4  # 32-bit words (the backend's default modulus)
    survivors, dropped = len(result.survivors), len(result.dropped)
    masks = survivors + dropped * survivors  # self masks + (dropped, surviving neighbour) pairs
    return masks * word * (result.dim + 1)


def threshold(clients: int) -> int:
    """A strict majority of the n shares of each secret (n - 1 neighbours and the owner).

    Fixed rather than blindsum's complete-graph default ``ceil(n (1 - dropout))``, so that
    one threshold serves every dropout rate, as in the paper's table.
    """
    return clients // 2 + 1


def crypto_rates(samples: int = 2000) -> dict[str, float]:
    """Operations per CPU-second of the per-pair server work other than the keystream."""
    from secagg import _crypto

    a, b = _crypto.KeyPair.generate(), _crypto.KeyPair.generate()
    t0 = time.thread_time()
    for _ in range(samples):
        shared = a.exchange(b.public_bytes)
    x25519 = samples / (time.thread_time() - t0)
    t0 = time.thread_time()
    for i in range(samples):
        _crypto.derive("pairwise_mask", shared, round_id=0, a=i, b=i + 1)
    hkdf = samples / (time.thread_time() - t0)
    return {"x25519_per_s": x25519, "hkdf_per_s": hkdf}


def run_one(*, clients: int, dim: int, dropout: float, seed: int, progress: bool,
            aes256: float, clock: str) -> dict[str, Any]:
    import secagg
    from secagg import _simulate

    rng = np.random.default_rng(seed)
    schedule = secagg.dropout_schedule(clients, dropout, "masked", rng)
    bar = _common.Progress(f"n={clients} d={dim} drop={dropout:.0%}", enabled=progress)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with _common.clock(_simulate, clock):
        result = secagg.simulate(clients=clients, dim=dim,
                                 backend=secagg.SecAggPlusBackend(neighbours="all", threshold=threshold(clients)),
                                 dropouts=schedule, seed=seed, progress=bar)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    bar.close()
    ks = keystream_bytes(result)
    bound = ks / aes256
    sec = result.seconds
    return {
        "clients": clients, "dim": dim, "dropout": dropout,
        "dropped": len(result.dropped), "survivors": len(result.survivors),
        "neighbours": result.neighbours, "threshold": result.threshold,
        "client_mean_s": sec["client_mean"], "client_max_s": sec["client_max"],
        "client_survivor_s": sec["client_mean_survivors"],
        "server_s": sec["server"], "server_unmask_s": sec["server_stages"].get("unmask", 0.0),
        "clock": clock, "run_wall_s": wall, "process_cpu_s": cpu,
        "paper_client_s": PAPER_CLIENT_SECONDS.get(clients),
        "paper_server_s": PAPER_SERVER_SECONDS.get((clients, dropout)),
        "expansion": result.bytes["expansion"],
        "up_per_client": result.bytes["up_per_client"],
        "down_per_client": result.bytes["down_per_client"],
        "keystream_gb": ks / 1e9, "keystream_bound_s": bound,
        "server_over_bound": sec["server"] / bound,
        "max_abs_error": result.max_abs_error,
        "server_stages": sec["server_stages"],
        "client_stages_mean": sec["client_stages_mean"],
    }


COLUMNS = [
    ("clients", "n"), ("dim", "d"), ("dropout", "dropout"), ("dropped", "dropped"),
    ("client_mean_s", "client s (ours)"), ("client_survivor_s", "surviving client s (ours)"),
    ("paper_client_s", "client s (paper)"),
    ("server_s", "server s (ours)"), ("paper_server_s", "server s (paper)"),
    ("expansion", "expansion (ours)"), ("keystream_gb", "server keystream GB"),
    ("keystream_bound_s", "keystream bound s"), ("server_over_bound", "server / bound"),
    ("max_abs_error", "max abs error"),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 100, d = 10,000 (seconds)")
    parser.add_argument("--clients", type=int, nargs="+", help="override the client counts")
    parser.add_argument("--dim", type=int, help="override d")
    parser.add_argument("--dropouts", type=float, nargs="+", help="override the dropout fractions")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="output folder (default papers/bonawitz2017/out)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time each party by its CPU time (default; robust on a shared "
                             "machine) or by wall-clock time")
    parser.add_argument("--tag", default="", help="suffix of the output files")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    clients = tuple(args.clients or size["clients"])
    dim = int(args.dim or size["dim"])
    dropouts = tuple(args.dropouts if args.dropouts is not None else size["dropouts"])
    command = "python -m papers.bonawitz2017.reproduce " + shlex.join(sys.argv[1:] if argv is None else argv)

    info = _common.banner()
    print(_common.banner_text(info))
    print(f"# command: {command}")
    aes256 = _common.aes_ctr_speed(key_bytes=32)
    aes128 = _common.aes_ctr_speed(key_bytes=16)
    rates = crypto_rates()
    print(f"# AES-256-CTR {aes256 / 1e9:.2f} GB/s, AES-128-CTR {aes128 / 1e9:.2f} GB/s (this run); "
          f"X25519 {rates['x25519_per_s']:,.0f}/s, HKDF {rates['hkdf_per_s']:,.0f}/s")
    out = _common.out_dir(PAPER, args.out)
    stem = ("results_quick" if args.quick else "results") + (f"_{args.tag}" if args.tag else "")
    rows: list[dict[str, Any]] = []
    table = ""
    for n in clients:
        for p in dropouts:
            row = run_one(clients=n, dim=dim, dropout=p, seed=args.seed, progress=not args.no_progress,
                          aes256=aes256, clock=args.clock)
            row["keystream_bound_aes128_s"] = row["keystream_gb"] * 1e9 / aes128
            # the per-pair key agreement and key derivation the server cannot avoid either
            pairs = row["dropped"] * row["survivors"]
            row["pair_crypto_s"] = pairs * (1 / rates["x25519_per_s"] + 1 / rates["hkdf_per_s"])
            rows.append(row)
            print(f"n={n} drop={p:.0%}: client {row['client_mean_s']:.3f} s, server {row['server_s']:.2f} s "
                  f"(unmask {row['server_unmask_s']:.2f} s), keystream bound {row['keystream_bound_s']:.2f} s "
                  f"(AES-128: {row['keystream_bound_aes128_s']:.2f} s), server/bound "
                  f"{row['server_over_bound']:.2f}, pair X25519+HKDF {row['pair_crypto_s']:.2f} s, "
                  f"expansion {row['expansion']:.3f}", flush=True)
            table = _common.markdown_table(rows, COLUMNS)
            _common.write_outputs(out, stem, info=info, command=command, table=table, rows=rows,
                                  extra={"aes256_ctr_bytes_per_s": aes256,
                                         "aes128_ctr_bytes_per_s": aes128, **rates})
    print()
    print(table)
    print(f"\nseconds are per-party {args.clock} time; paper's expansion: {PAPER_EXPANSION}; "
          "paper's times: Java, one core, 2017.")
    print(f"wrote {out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
