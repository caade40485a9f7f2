"""``blindsum dp account | calibrate | plan``: parsing and printing only.

The work is done by :mod:`dp._calibrate`; matplotlib (the ``plot`` extra) is imported
only when ``plan --output`` asks for a figure.

``--sampling fixed`` means a fixed number of records (or clients) per round, drawn
without replacement: the fraction ``sample_rate`` of the population (the bound depends
only on that ratio), or ``round(sample_rate * N)`` of ``--population N``. Its accounting uses substitution adjacency (Wang, Balle,
Kasiviswanathan 2019), so ``--noise-multiplier`` is relative to the replace-one
sensitivity, and only the RDP accountant supports it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


_Z_HELP = "noise standard deviation / L2 sensitivity (the clip norm)"
_EPILOG = (
    "--sampling fixed: a fixed fraction Q of the records (or clients) per round, drawn "
    "without replacement (with --population N: round(Q * N) of N). It is accounted under substitution adjacency "
    "(Wang, Balle, Kasiviswanathan 2019), so Z is relative to the replace-one sensitivity "
    "(twice the clip norm for a clipped sum), and only the RDP accountant supports it."
)


def _common(p: argparse.ArgumentParser, *, steps: bool = True) -> None:
    p.add_argument("--sample-rate", type=float, required=True, metavar="Q",
                   help="probability a record takes part in a round, in (0, 1]")
    if steps:
        p.add_argument("--steps", type=int, required=True, metavar="T", help="number of rounds")
    p.add_argument("--delta", type=float, required=True, metavar="D", help="target delta")
    p.add_argument("--sampling", choices=("poisson", "fixed"), default="poisson",
                   help="poisson (default) or fixed-size sampling without replacement")
    p.add_argument("--population", type=int, default=None, metavar="N",
                   help="population size for --sampling fixed (optional: without it the "
                        "fraction Q is sampled exactly)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``dp`` command group to the ``blindsum`` parser."""
    dp = sub.add_parser("dp", help="differential privacy accounting",
                        description="Differential privacy accounting for DP-SGD / DP-FedAvg.")
    dsub = dp.add_subparsers(dest="dp_command", metavar="COMMAND", required=True)

    p = dsub.add_parser("account", epilog=_EPILOG, help="epsilon spent by T rounds of a sampled Gaussian")
    p.add_argument("--noise-multiplier", type=float, required=True, metavar="Z",
                   help=_Z_HELP)
    _common(p)
    p.add_argument("--accountant", choices=("rdp", "pld"), default="rdp")
    p.set_defaults(handler=_account)

    p = dsub.add_parser("calibrate", epilog=_EPILOG, help="smallest noise multiplier for a target epsilon")
    p.add_argument("--target-epsilon", type=float, required=True, metavar="E")
    _common(p)
    p.add_argument("--accountant", choices=("rdp", "pld"), default="rdp")
    p.set_defaults(handler=_calibrate)

    p = dsub.add_parser("plan", epilog=_EPILOG, help="epsilon over rounds, both accountants, table and plot")
    p.add_argument("--noise-multiplier", type=float, required=True, metavar="Z",
                   help=_Z_HELP)
    _common(p, steps=False)
    p.add_argument("--rounds", "--steps", dest="rounds", type=int, required=True, metavar="T",
                   help="last round to show (--steps is the same, as in account/calibrate)")
    p.add_argument("--points", type=int, default=10, metavar="K",
                   help="rows in the table (PLD is computed at these round counts)")
    p.add_argument("--target-epsilon", type=float, default=None, metavar="E",
                   help="draw this budget on the plot and report the rounds it allows (RDP)")
    p.add_argument("--output", default=None, metavar="PNG", help="write a plot (needs matplotlib)")
    p.set_defaults(handler=_plan)


def _sampling_kw(args: argparse.Namespace) -> dict[str, Any]:
    return {"sample_rate": args.sample_rate, "sampling": args.sampling,
            "population_size": args.population}


def _emit(args: argparse.Namespace, obj: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(obj))
    else:
        print("\n".join(lines))


def _account(args: argparse.Namespace) -> int:
    from dp._calibrate import account

    r = account(noise_multiplier=args.noise_multiplier, steps=args.steps, delta=args.delta,
                accountant=args.accountant, **_sampling_kw(args))
    obj: dict[str, Any] = {"epsilon": r.epsilon, "delta": r.delta, "accountant": r.accountant}
    if r.order is not None:
        obj["order"] = r.order
    obj.update(noise_multiplier=args.noise_multiplier, sample_rate=args.sample_rate,
               steps=args.steps, sampling=args.sampling)
    if args.population is not None:
        obj["population"] = args.population
    order = f" (RDP order {r.order:g})" if r.order is not None else ""
    _emit(args, obj, [f"epsilon = {r.epsilon:.6g} at delta = {r.delta:g}",
                      f"accountant: {r.accountant}{order}"])
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from dp._calibrate import calibrate_noise

    c = calibrate_noise(target_epsilon=args.target_epsilon, delta=args.delta, steps=args.steps,
                        accountant=args.accountant, **_sampling_kw(args))
    obj = {"noise_multiplier": c.noise_multiplier, "epsilon": c.epsilon,
           "target_epsilon": args.target_epsilon, "delta": c.delta,
           "accountant": c.accountant, "sample_rate": args.sample_rate,
           "steps": args.steps, "sampling": args.sampling}
    _emit(args, obj, [f"noise multiplier = {c.noise_multiplier:.6g}",
                      f"epsilon = {c.epsilon:.6g} (target {args.target_epsilon:g}) "
                      f"at delta = {c.delta:g}, accountant: {c.accountant}"])
    return 0


def _plan(args: argparse.Namespace) -> int:
    from dp._plan import plan_table, plot_plan

    if args.output is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "--output needs matplotlib: pip install 'blindsum[plot]'"
            ) from exc
    progress = sys.stderr.isatty() and not args.json
    table = plan_table(noise_multiplier=args.noise_multiplier, delta=args.delta,
                       rounds=args.rounds, points=args.points, progress=progress,
                       target_epsilon=args.target_epsilon, **_sampling_kw(args))
    if args.output is not None:
        plot_plan(table, args.output)
    obj = table.as_dict()
    lines = table.format_lines()
    if args.output is not None:
        lines.append(f"plot written to {args.output}")
    _emit(args, obj, lines)
    return 0
