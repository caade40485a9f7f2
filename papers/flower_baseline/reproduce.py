"""blindsum's SecAgg+ against Flower's own SecAgg+ at equal (n, d, k, t, dropout).

Flower runs in its own virtual environment (``.venv-flwr`` beside the project's, made by
``make papers``, or ``--flwr-python``
or ``$FLWR_PYTHON``): :mod:`papers.flower_baseline._flower_runner` drives its
``SecAggPlusWorkflow`` and ``secaggplus_mod`` in one process and reports server and
per-client CPU time (process CPU time, so Flower's Shamir worker threads count).
blindsum runs here through ``secagg.simulate`` with every party timed by its process
CPU time too. Dropouts happen after the share-keys stage (the dropped
clients never send a masked vector), so both servers must recover pairwise masks.

Equal parameters: Flower's ``num_shares`` counts the client itself, so Flower's
``num_shares = k + 1`` is blindsum's ``neighbours = k``; ``num_shares = 1.0`` (the
complete graph, as in PEERS.md) is blindsum's ``neighbours = "all"``; the threshold
``t`` is the same number of shares in both (Flower's ``0.5`` is ``round(n / 2)``).

    python -m papers.flower_baseline.reproduce            # n=50 d=1e4, n=100 d=1e5 (minutes)
    python -m papers.flower_baseline.reproduce --quick    # n=20, d=1000 (seconds)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (python papers/<paper>/reproduce.py): find the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from papers import _common  # noqa: E402

PAPER = "flower_baseline"
# Flower's own virtual environment, beside the project's; `make papers` creates it.
DEFAULT_FLWR_PYTHON = str(Path(__file__).resolve().parents[2] / ".venv-flwr" / "bin" / "python")
FLWR_SETUP = ("make flower-venv (python3 -m venv .venv-flwr && .venv-flwr/bin/pip install "
              "flwr==1.42.0), or pass --flwr-python / set FLWR_PYTHON to a Python that has flwr")

# Flower 1.42 on these machines (PEERS.md): (n, d, dropout) -> (server CPU s, per-client CPU s).
PEERS_FLOWER = {(50, 10_000, 0.0): (8.2, 0.25), (50, 10_000, 0.3): (12.1, None),
                (100, 100_000, 0.0): (57.8, 0.96), (100, 100_000, 0.3): (83.8, None)}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    clients: int
    dim: int
    dropout: float
    neighbours: int | None  # None: complete graph
    threshold: int | None  # None: round(n / 2), Flower's 0.5 of n shares

    def flower_args(self) -> list[str]:
        shares = "1.0" if self.neighbours is None else str(self.neighbours + 1)
        thr = "0.5" if self.threshold is None else str(self.threshold)
        return ["--clients", str(self.clients), "--dim", str(self.dim), "--dropout", str(self.dropout),
                "--num-shares", shares, "--threshold", thr]

    def blindsum_kt(self) -> tuple[int | str, int]:
        k: int | str = "all" if self.neighbours is None else self.neighbours
        t = self.threshold if self.threshold is not None else max(round(0.5 * self.clients), 2)
        return k, t

    @property
    def graph(self) -> str:
        return "complete" if self.neighbours is None else f"k={self.neighbours}"


FULL = (
    Case(clients=50, dim=10_000, dropout=0.0, neighbours=None, threshold=None),
    Case(clients=50, dim=10_000, dropout=0.3, neighbours=None, threshold=None),
    Case(clients=100, dim=100_000, dropout=0.0, neighbours=None, threshold=None),
    Case(clients=100, dim=100_000, dropout=0.3, neighbours=None, threshold=None),
    Case(clients=100, dim=100_000, dropout=0.3, neighbours=30, threshold=12),
)
QUICK = (
    Case(clients=20, dim=1000, dropout=0.0, neighbours=None, threshold=None),
    Case(clients=20, dim=1000, dropout=0.3, neighbours=None, threshold=None),
    # k = 8, t = 3: each of the k + 1 = 9 shares' holders can lose at most the 6 dropped
    # clients, so t survive whatever Flower's (unseeded) ring order; with k = 6 about one
    # quick run in eleven halted with Flower's "Insufficient available nodes".
    Case(clients=20, dim=1000, dropout=0.3, neighbours=8, threshold=3),
)


def flower_python(override: str | None) -> str:
    """The Python of Flower's virtual environment; raises if it is missing or lacks flwr."""
    path = override or os.environ.get("FLWR_PYTHON") or DEFAULT_FLWR_PYTHON
    if not Path(path).exists():
        raise _common.MissingDependency(f"Flower's virtual environment is missing: {path} does not "
                                        f"exist. Create it with: {FLWR_SETUP}")
    probe = subprocess.run([path, "-c", "import flwr; print(flwr.__version__)"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise _common.MissingDependency(f"{path} cannot import flwr ({probe.stderr.strip()[-200:]}). "
                                        f"Install it with: {FLWR_SETUP}")
    return path


def flower_banner(python: str) -> dict[str, Any]:
    """The hardware/software banner, with the flwr version of Flower's own venv.

    flwr is never installed beside blindsum, so the banner's package list takes its
    version from ``python`` (the one that runs Flower), not from this interpreter.
    """
    info = _common.banner()
    version = subprocess.run([python, "-c", "import flwr; print(flwr.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    info["packages"]["flwr"] = version
    info["flwr_python"] = python
    info["flwr_version"] = version
    return info


def run_flower(python: str, case: Case, seed: int) -> dict[str, Any]:
    cmd = [python, "-m", "papers.flower_baseline._flower_runner", *case.flower_args(),
           "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=_common.REPO, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Flower run failed ({shlex.join(cmd)}):\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run_blindsum(case: Case, seed: int, progress: bool) -> dict[str, Any]:
    import numpy as np

    import secagg
    from secagg import _simulate

    k, t = case.blindsum_kt()
    rng = np.random.default_rng(seed)
    schedule = secagg.dropout_schedule(case.clients, case.dropout, "masked", rng)
    bar = _common.Progress(f"blindsum n={case.clients} d={case.dim} {case.graph} drop={case.dropout:.0%}",
                           enabled=progress)
    cpu0 = time.process_time()
    with _common.clock(_simulate, "cpu"):
        res = secagg.simulate(clients=case.clients, dim=case.dim,
                              backend=secagg.SecAggPlusBackend(neighbours=k, threshold=t),
                              dropouts=schedule, seed=seed, progress=bar)
    bar.close()
    return {"server_cpu_s": res.seconds["server"], "client_mean_cpu_s": res.seconds["client_mean"],
            "total_cpu_s": time.process_time() - cpu0, "neighbours": res.neighbours,
            "threshold": res.threshold, "up_per_client": res.bytes["up_per_client"],
            "down_per_client": res.bytes["down_per_client"], "max_abs_error_sum": res.max_abs_error}


COLUMNS = [
    ("clients", "n"), ("dim", "d"), ("graph", "graph"), ("t", "t"), ("dropout", "dropout"),
    ("flwr_server_s", "Flower server CPU s"), ("bs_server_s", "blindsum server CPU s"),
    ("server_ratio", "server ratio"),
    ("flwr_client_s", "Flower client CPU s"), ("bs_client_s", "blindsum client CPU s"),
    ("client_ratio", "client ratio"),
    ("flwr_total_s", "Flower round CPU s"), ("bs_total_s", "blindsum round CPU s"),
    ("total_ratio", "round ratio"),
    ("flwr_up", "Flower up B/client"), ("bs_up", "blindsum up B/client"),
    ("peers_flwr_server_s", "PEERS.md Flower server s"),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 20, d = 1000 (seconds)")
    parser.add_argument("--flwr-python", help=f"Python with flwr (default $FLWR_PYTHON or {DEFAULT_FLWR_PYTHON})")
    parser.add_argument("--only", type=int, nargs="+", help="run only these case numbers (0-based)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="output folder (default papers/flower_baseline/out)")
    parser.add_argument("--tag", default="", help="suffix of the output files")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    command = "python -m papers.flower_baseline.reproduce " + shlex.join(sys.argv[1:] if argv is None else argv)
    python = flower_python(args.flwr_python)
    cases: tuple[Case, ...] = QUICK if args.quick else FULL
    if args.only:
        cases = tuple(cases[i] for i in args.only)
    info = flower_banner(python)
    print(_common.banner_text(info))
    print(f"# Flower {info['flwr_version']} from {python}; command: {command}")
    out = _common.out_dir(PAPER, args.out)
    stem = ("results_quick" if args.quick else "results") + (f"_{args.tag}" if args.tag else "")
    rows: list[dict[str, Any]] = []
    table = ""
    for i, case in enumerate(cases):
        print(f"[{i + 1}/{len(cases)}] Flower n={case.clients} d={case.dim} {case.graph} "
              f"drop={case.dropout:.0%} ...", file=sys.stderr, flush=True)
        fl = run_flower(python, case, args.seed)
        bs = run_blindsum(case, args.seed, progress=not args.no_progress)
        peers = PEERS_FLOWER.get((case.clients, case.dim, case.dropout)) if case.neighbours is None else None
        row = {
            "clients": case.clients, "dim": case.dim, "graph": case.graph, "t": bs["threshold"],
            "dropout": case.dropout, "dropped": fl["dropped"],
            "flwr_server_s": fl["server_cpu_s"], "bs_server_s": bs["server_cpu_s"],
            "server_ratio": fl["server_cpu_s"] / bs["server_cpu_s"],
            "flwr_client_s": fl["client_mean_cpu_s"], "bs_client_s": bs["client_mean_cpu_s"],
            "client_ratio": fl["client_mean_cpu_s"] / bs["client_mean_cpu_s"],
            "flwr_total_s": fl["total_cpu_s"], "bs_total_s": bs["total_cpu_s"],
            "total_ratio": fl["total_cpu_s"] / bs["total_cpu_s"],
            "flwr_up": fl["up_per_client"], "bs_up": bs["up_per_client"],
            "peers_flwr_server_s": peers[0] if peers else None,
            "flower": fl, "blindsum": bs,
        }
        rows.append(row)
        print(f"  server {row['flwr_server_s']:.2f} s vs {row['bs_server_s']:.3f} s ({row['server_ratio']:.0f}x), "
              f"client {row['flwr_client_s']:.3f} s vs {row['bs_client_s']:.4f} s ({row['client_ratio']:.0f}x), "
              f"round {row['total_ratio']:.0f}x", flush=True)
        table = _common.markdown_table(rows, COLUMNS)
        _common.write_outputs(out, stem, info=info, command=command, table=table, rows=rows)
    print()
    print(table)
    print("\nCPU seconds (process CPU time per party, one party at a time); ratio = Flower / blindsum.")
    print(f"wrote {out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
