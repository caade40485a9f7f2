"""``blindsum simulate``: one secure aggregation round in this process."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _neighbours(text: str) -> int | str:
    if text == "all":
        return text
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer or 'all'")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="run one secure aggregation round of N clients in this process",
        description="Run one SecAgg+ round in this process with inputs uniform in [-1, 1] "
        "and report the error against the plain sum, timings and bytes.",
    )
    p.add_argument("--clients", type=int, required=True, help="number of clients N")
    p.add_argument("--dim", type=int, required=True, help="length D of each client's vector")
    p.add_argument("--dropout", type=_fraction, default=0.0, help="fraction of clients that drop")
    p.add_argument("--drop-stage", choices=("advertise", "share", "masked", "unmask"), default="masked",
                   help="the stage at which they drop (default: masked, after sharing keys)")
    p.add_argument("--neighbours", type=_neighbours, default="all",
                   help="neighbours K per client, or 'all' for the complete graph (default)")
    p.add_argument("--threshold", type=int, default=None, help="shares T needed to recover a secret")
    p.add_argument("--seed", type=int, default=0, help="seed for inputs, dropouts and the graph")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    import secagg

    if args.clients < 2 or args.dim < 1:
        raise ValueError("--clients must be >= 2 and --dim >= 1")
    backend = secagg.SecAggPlusBackend(neighbours=args.neighbours, threshold=args.threshold)
    schedule = secagg.dropout_schedule(args.clients, args.dropout, args.drop_stage,
                                       np.random.default_rng([args.seed, 1]))
    progress = None
    if not args.json and sys.stderr.isatty():
        from transport._progress import ProgressBar

        progress = ProgressBar()
    result = secagg.simulate(clients=args.clients, dim=args.dim, backend=backend, dropouts=schedule,
                             seed=args.seed, progress=progress)
    summary = result.to_dict()
    if args.json:
        print(json.dumps(summary))
    else:
        print(_table(summary))
    return 0


def _table(s: dict[str, Any]) -> str:
    sec, byt = s["seconds"], s["bytes"]
    rows = [
        ("backend", s["backend"]),
        ("clients", s["clients"]),
        ("dimension", s["dim"]),
        ("neighbours k / threshold t", f"{s['neighbours']} / {s['threshold']}"),
        ("dropped", f"{s['dropped']} ({s['survivors']} survivors)"),
        ("max |error| of the sum", f"{s['max_abs_error']:.3g}"),
        ("server seconds", f"{sec['server']:.3f}"),
        ("client seconds (mean / max)", f"{sec['client_mean']:.4f} / {sec['client_max']:.4f}"),
        ("total seconds", f"{sec['total']:.2f}"),
        ("bytes up per client", f"{byt['up_per_client']:,.0f} ({byt['expansion']:.2f}x the vector in the clear)"),
        ("bytes down per client", f"{byt['down_per_client']:,.0f}"),
    ]
    stages = ", ".join(f"{k} {v:.3f}" for k, v in sec["server_stages"].items())
    rows.append(("server seconds by stage", stages))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
