"""``blindsum simulate`` (one secure round in this process) and ``blindsum params``."""

from __future__ import annotations

import argparse
import json
import math
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


# The SecAgg+ stage names of --drop-stage and what they mean for the other backends.
_CKKS_STAGES = {"masked": "encrypted_input", "unmask": "decrypt"}
_PLAIN_STAGES = {"masked": "collect"}


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
    p.add_argument("--neighbours", type=_neighbours, default=None,
                   help="neighbours K per client (even), or 'all' for the complete graph; by default "
                        "the parameter finder chooses K and T from --dropout, --corrupt and --threat")
    p.add_argument("--threshold", type=int, default=None,
                   help="shares T (of the K + 1 each secret has) needed to recover a secret")
    p.add_argument("--corrupt", type=_fraction, default=0.05,
                   help="fraction of clients that may collude with the server, for choosing K and T "
                        "(default 0.05)")
    p.add_argument("--threat", choices=("semi-honest", "semi-malicious"), default="semi-honest",
                   help="server threat model for choosing K and T (default semi-honest)")
    p.add_argument("--seed", type=int, default=0, help="seed for inputs, dropouts and the graph")
    p.add_argument("--authenticated", action="store_true",
                   help="signed keys and a consistency check (protects against a malicious server)")
    p.add_argument("--backend", choices=("secagg+", "ckks", "plain"), default="secagg+",
                   help="how the sum is computed: SecAgg+ masking (default), CKKS homomorphic "
                        "encryption (needs the ckks extra), or in the clear")
    p.add_argument("--dp", choices=("dgauss", "skellam"), default=None,
                   help="distributed DP: every client adds its share of discrete noise")
    p.add_argument("--noise-multiplier", type=float, default=1.0,
                   help="with --dp: noise std of the sum over the expected survivors, in units of --clip")
    p.add_argument("--clip", type=float, default=None,
                   help="with --dp: L2 clip of each client's update (default sqrt(D), the norm bound of "
                        "inputs in [-1, 1])")
    p.add_argument("--bits", type=int, default=20, help="with --dp: SecAgg+ modulus 2^bits (default 20)")
    p.add_argument("--delta", type=float, default=1e-5, help="with --dp: delta of the reported epsilon")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_run)

    q = sub.add_parser(
        "params",
        help="choose SecAgg+ neighbours K and threshold T for N clients",
        description="Choose the neighbour count K and threshold T as Google's production SecAgg "
        "does: 40-bit statistical security against the corrupt clients and 20-bit correctness "
        "under the expected dropout (falls back to the complete graph when no sparse graph works).",
    )
    q.add_argument("--clients", type=int, required=True, help="number of clients N")
    q.add_argument("--dropout", type=_fraction, required=True, help="expected fraction of clients that drop")
    q.add_argument("--corrupt", type=_fraction, required=True,
                   help="fraction of clients that may collude with the server")
    q.add_argument("--threat", choices=("semi-honest", "semi-malicious"), default="semi-honest",
                   help="semi-honest (curious) or semi-malicious server (default semi-honest)")
    q.add_argument("--security-bits", type=int, default=40, help="statistical security (default 40)")
    q.add_argument("--correctness-bits", type=int, default=20, help="correctness (default 20)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(handler=_params)


def _params(args: argparse.Namespace) -> int:
    import secagg

    found = secagg.find_parameters(clients=args.clients, dropout=args.dropout, corrupt=args.corrupt,
                                   threat=args.threat, security_bits=args.security_bits,
                                   correctness_bits=args.correctness_bits)

    out = {
        "clients": found.clients,
        "neighbours": found.neighbours,
        "threshold": found.threshold,
        "complete_graph": found.complete,
        "threat": found.threat.value,
        "dropout": args.dropout,
        "corrupt": args.corrupt,
        "minimum_survivors": found.minimum_survivors,
        "log2_disconnection": found.log2_disconnection,
        "log2_corrupt_reconstruction": found.log2_corrupt_reconstruction,
        "log2_too_few_survivors": found.log2_too_few_survivors,
    }
    if args.json:  # -inf (an impossible event) and NaN are printed as null
        print(json.dumps(_finite(out), allow_nan=False))
        return 0
    share = 100.0 * found.neighbours / max(1, found.clients - 1)
    print(f"neighbours K = {found.neighbours} ({share:.1f}% of the other clients"
          f"{', complete graph' if found.complete else ''})")
    print(f"threshold  T = {found.threshold} of the K + 1 shares of each secret")
    print(f"rounds with fewer than {found.minimum_survivors} survivors should be aborted")
    return 0


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    import secagg

    if args.clients < 2 or args.dim < 1:
        raise ValueError("--clients must be >= 2 and --dim >= 1")
    backend: secagg.Backend
    stage = args.drop_stage
    if args.backend != "secagg+":
        if args.dp is not None or args.authenticated:
            raise ValueError(f"--dp and --authenticated need --backend secagg+, not {args.backend}")
        stages = {"ckks": _CKKS_STAGES, "plain": _PLAIN_STAGES}[args.backend]
        if stage not in stages:
            raise ValueError(f"--drop-stage {stage} does not exist for the {args.backend} backend; "
                             f"use one of {', '.join(stages)}")
        stage = stages[stage]
        backend = secagg.CKKSBackend.generate() if args.backend == "ckks" else secagg.PlainBackend()
    elif args.dp is not None:
        from dp._ddp_backend import DistributedDPBackend

        clip = args.clip if args.clip is not None else float(np.sqrt(args.dim))
        backend = DistributedDPBackend(mechanism=args.dp, noise_multiplier=args.noise_multiplier, clip=clip,
                                       bits=args.bits, expected_dropout=args.dropout,
                                       neighbours=args.neighbours or "all", threshold=args.threshold)
    else:
        backend = secagg.SecAggPlusBackend(neighbours=args.neighbours, threshold=args.threshold,
                                           dropout=args.dropout, corrupt=args.corrupt, threat=args.threat)
    schedule = secagg.dropout_schedule(args.clients, args.dropout, stage,
                                       np.random.default_rng([args.seed, 1]))
    progress = None
    if not args.json and sys.stderr.isatty():
        from transport._progress import ProgressBar

        progress = ProgressBar()
    try:
        result = secagg.simulate(clients=args.clients, dim=args.dim, backend=backend, dropouts=schedule,
                                 seed=args.seed, authenticated=args.authenticated, progress=progress)
    except secagg.RecoveryError as exc:  # too many dropouts: the round fails, nothing is released
        if progress is not None:
            print(file=sys.stderr)  # end the progress bar's line
        raise RuntimeError(f"the round failed: {exc}") from exc
    summary = result.to_dict()
    if args.dp is not None:
        summary["dp"] = _dp_summary(backend, result, args)
    if args.json:
        print(json.dumps(_finite(summary), allow_nan=False))
    else:
        print(_table(summary))
    return 0


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no inf or NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dp_summary(backend: Any, result: Any, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from dp import distributed_epsilon, noise_std_target

    _, cfg = backend.round_parameters(num_clients=args.clients, dim=args.dim)
    epsilon, order = distributed_epsilon(cfg, delta=args.delta)
    return {
        "mechanism": args.dp,
        "noise_multiplier": args.noise_multiplier,
        "clip": backend.clip,
        "bits": args.bits,
        "expected_clients": cfg.expected_clients,
        "min_clients": cfg.min_clients,
        "noise_std_target": noise_std_target(cfg),
        "noise_std_measured": float(np.std(result.aggregate - result.expected)),
        "epsilon": epsilon,
        "delta": args.delta,
        "order": order,
    }


def _table(s: dict[str, Any]) -> str:
    sec, byt = s["seconds"], s["bytes"]
    rows = [
        ("backend", s["backend"]),
        ("clients", s["clients"]),
        ("dimension", s["dim"]),
        ("neighbours k / threshold t", f"{s['neighbours']} / {s['threshold']}"),
        ("dropped", f"{s['dropped']} ({s['survivors']} survivors)"),
        ("stopped answering, by stage", ", ".join(f"{k} {v}" for k, v in s.get("dropped_by_stage", {}).items())
         or "none"),
        ("max |error| of the sum", f"{s['max_abs_error']:.3g}"),
        ("server seconds", f"{sec['server']:.3f}"),
        ("client seconds (mean / max)", f"{sec['client_mean']:.4f} / {sec['client_max']:.4f}"),
        ("total seconds", f"{sec['total']:.2f}"),
        ("bytes up per client", f"{byt['up_per_client']:,.0f} ({byt['expansion']:.2f}x the vector in the clear)"),
        ("bytes down per client", f"{byt['down_per_client']:,.0f}"),
    ]
    stages = ", ".join(f"{k} {v:.3f}" for k, v in sec["server_stages"].items())
    rows.append(("server seconds by stage", stages))
    if "dp" in s:
        d = s["dp"]
        rows.append(("distributed DP", f"{d['mechanism']}, z = {d['noise_multiplier']}, clip = {d['clip']:g}, "
                                       f"{d['bits']} bits"))
        rows.append(("noise std (accounted / measured)",
                     f"{d['noise_std_target']:.4g} / {d['noise_std_measured']:.4g} "
                     f"(accounts for {d['min_clients']} survivors)"))
        rows.append(("epsilon (one round)", f"{d['epsilon']:.3f} at delta {d['delta']:g}"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
