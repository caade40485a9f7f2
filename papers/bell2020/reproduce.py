"""Reproduce the SecAgg+ scaling claims of Bell et al., CCS 2020, on this machine.

Per-client and server cost and bytes as n grows (100 to 10,000 simulated clients) with
the neighbour count k and threshold t from the parameter finder (Google's production
rules, ``secagg.find_parameters``), at 5% and 30% dropout (after the share-keys stage),
next to the complete graph of the original SecAgg at the n where it still fits.
Per-party times are CPU times (the machine is shared). The per-client cost is fitted
both as a power of n (the complete graph is linear in n) and as a power of ln n
(SecAgg+ is polylogarithmic), and plotted log-log.

    python -m papers.bell2020.reproduce            # n = 100 .. 10,000, d = 10,000 (long)
    python -m papers.bell2020.reproduce --quick    # n = 100 .. 1000, d = 1,000 (a minute)
"""

from __future__ import annotations

import argparse
import math
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

PAPER = "bell2020"

# Bell et al., CCS 2020 (the paper's own statements, quoted beside our figures).
PAPER_CLAIMS = (
    "Per-client computation and communication grow polylogarithmically in n "
    "(O(log^2 n + d log n) computation, O(log n + d) communication), against linear "
    "in n for the original SecAgg (O(n^2 + nd) computation, O(n + d) communication).",
    "Server computation O(n log^2 n + n d log n) against O(n^2 d) for SecAgg.",
    "At 10^4 clients in the semi-malicious setting, each client talks to about 3% of "
    "the others while tolerating 5% corrupt clients and 5% dropouts.",
)

FULL: dict[str, Any] = {"clients": (100, 300, 1000, 3000, 10_000), "dim": 10_000, "dropouts": (0.05, 0.3),
        "complete_up_to": 300}
QUICK: dict[str, Any] = {"clients": (100, 300, 1000), "dim": 1000, "dropouts": (0.05, 0.3), "complete_up_to": 100}


# Until ``secagg.find_parameters`` is on main: (k, t) that the finder on the ``params``
# branch (commit 57ddaf4) printed for 5% corrupt, keyed (threat, dropout, n). Used only
# when the finder is missing, and every row then says so.
FINDER_PREVIEW = {
    ("semi-honest", 0.05): {100: (12, 6), 300: (24, 14), 1000: (30, 17), 3000: (32, 19), 10_000: (34, 20)},
    ("semi-honest", 0.3): {100: (26, 6), 300: (48, 16), 1000: (66, 23), 3000: (76, 27), 10_000: (80, 29)},
    ("semi-malicious", 0.05): {100: (16, 11), 300: (38, 27), 1000: (52, 37), 3000: (58, 41),
                               10_000: (62, 44)},
    ("semi-malicious", 0.3): {100: (66, 36), 300: (152, 84), 1000: (314, 179), 3000: (432, 247),
                              10_000: (522, 299)},
}


def graph_parameters(clients: int, dropout: float, corrupt: float, threat: str) -> tuple[int, int, str]:
    """``(k, t, source)`` from ``secagg.find_parameters`` (or its preview table, see above).

    Raises:
        MissingDependency: the finder is missing and the preview has no such entry.
    """
    import secagg

    finder = getattr(secagg, "find_parameters", None)
    if finder is not None:
        p = finder(clients=clients, dropout=dropout, corrupt=corrupt, threat=threat)
        return int(p.neighbours), int(p.threshold), "find_parameters"
    preview = FINDER_PREVIEW.get((threat, dropout), {}).get(clients) if corrupt == 0.05 else None
    if preview is None:
        raise _common.MissingDependency(
            "secagg.find_parameters (the SecAgg+ parameter finder) is not in this blindsum and "
            f"its preview table has no entry for n={clients}, dropout={dropout}, corrupt={corrupt}, "
            f"{threat}; merge main once the finder lands")
    return preview[0], preview[1], "params-branch preview 57ddaf4"


def run_one(*, clients: int, dim: int, dropout: float, neighbours: int | str, threshold: int | None,
            seed: int, progress: bool, source: str = "", corrupt: float = 0.05,
            threat: str = "semi-honest") -> dict[str, Any]:
    import secagg
    from secagg import _simulate

    rng = np.random.default_rng(seed)
    schedule = secagg.dropout_schedule(clients, dropout, "masked", rng)
    label = "complete" if neighbours == "all" else f"k={neighbours}"
    bar = _common.Progress(f"n={clients} d={dim} {label} drop={dropout:.0%}", enabled=progress)
    wall0 = time.perf_counter()
    with _common.clock(_simulate, "cpu"):
        res = secagg.simulate(clients=clients, dim=dim,
                              backend=secagg.SecAggPlusBackend(neighbours=neighbours, threshold=threshold,
                                                               dropout=dropout, corrupt=corrupt, threat=threat),
                              dropouts=schedule, seed=seed, progress=bar)
    bar.close()
    k = int(res.neighbours or clients - 1)
    return {
        "clients": clients, "dim": dim, "dropout": dropout,
        "graph": "complete" if neighbours == "all" else "secagg+",
        "neighbours": k, "threshold": res.threshold, "fraction_talked_to": k / (clients - 1),
        "dropped": len(res.dropped), "k_t_source": source if neighbours != "all" else "complete graph",
        "client_mean_s": res.seconds["client_mean"], "client_max_s": res.seconds["client_max"],
        "client_survivor_s": res.seconds["client_mean_survivors"],
        "server_s": res.seconds["server"],
        "up_per_client": res.bytes["up_per_client"], "down_per_client": res.bytes["down_per_client"],
        "expansion": res.bytes["expansion"], "max_abs_error": res.max_abs_error,
        "run_wall_s": time.perf_counter() - wall0,
        "client_stages_mean": res.seconds["client_stages_mean"],
        "server_stages": res.seconds["server_stages"],
    }


def fit(rows: Sequence[dict[str, Any]], key: str) -> dict[str, float] | None:
    """Least-squares slopes of log(cost) against log n and against log ln n."""
    if len(rows) < 2:
        return None
    n = np.array([r["clients"] for r in rows], dtype=float)
    y = np.array([r[key] for r in rows], dtype=float)
    power_n = float(np.polyfit(np.log(n), np.log(y), 1)[0])
    power_log = float(np.polyfit(np.log(np.log(n)), np.log(y), 1)[0])
    return {"power_of_n": power_n, "power_of_ln_n": power_log}


COLUMNS = [
    ("graph", "graph"), ("clients", "n"), ("dim", "d"), ("dropout", "dropout"),
    ("neighbours", "k"), ("threshold", "t"), ("fraction_talked_to", "k/(n-1)"),
    ("client_mean_s", "client CPU s"), ("client_survivor_s", "surviving client CPU s"),
    ("server_s", "server CPU s"),
    ("up_per_client", "up B/client"), ("down_per_client", "down B/client"),
    ("expansion", "expansion"), ("max_abs_error", "max abs error"), ("k_t_source", "k, t from"),
]


def finder_table(clients: Sequence[int]) -> list[dict[str, Any]]:
    """k/(n-1) the finder gives in the paper's claimed setting (semi-malicious, 5%/5%)."""
    rows = []
    for n in clients:
        k, t, _ = graph_parameters(n, 0.05, 0.05, "semi-malicious")
        rows.append({"clients": n, "neighbours": k, "threshold": t, "fraction_talked_to": k / (n - 1)})
    return rows


def plot(rows: Sequence[dict[str, Any]], path: Any) -> None:
    series = []
    for graph in ("secagg+", "complete"):
        for p in sorted({r["dropout"] for r in rows}):
            pts = sorted((r["clients"], r["client_mean_s"]) for r in rows
                         if r["graph"] == graph and r["dropout"] == p)
            if pts:
                series.append((f"{graph}, {p:.0%} dropout", [x for x, _ in pts], [y for _, y in pts]))
    sparse = [r for r in rows if r["graph"] == "secagg+"]
    guides = []
    if sparse:
        n0 = min(r["clients"] for r in sparse)
        y0 = min(r["client_mean_s"] for r in sparse if r["clients"] == n0)
        guides = [("linear in n (reference)", lambda x: y0 * x / n0),
                  ("ln^2 n (reference)", lambda x: y0 * (math.log(x) / math.log(n0)) ** 2)]
    _common.plot_loglog(path, series, xlabel="clients n", ylabel="CPU seconds per client",
                        title=f"SecAgg+ per-client cost (d = {rows[0]['dim']:,})", guides=guides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 100..1000, d = 1000 (a minute)")
    parser.add_argument("--clients", type=int, nargs="+", help="override the client counts")
    parser.add_argument("--dim", type=int, help="override d")
    parser.add_argument("--dropouts", type=float, nargs="+", help="override the dropout fractions")
    parser.add_argument("--complete-up-to", type=int, help="run the complete graph up to this n")
    parser.add_argument("--corrupt", type=float, default=0.05, help="corrupt fraction for the finder")
    parser.add_argument("--threat", default="semi-honest", choices=("semi-honest", "semi-malicious"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="output folder (default papers/bell2020/out)")
    parser.add_argument("--tag", default="", help="suffix of the output files")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_plot:
        _common.require("matplotlib", extra="plot")  # fail before minutes of simulation
    size = QUICK if args.quick else FULL
    clients = tuple(args.clients or size["clients"])
    dim = int(args.dim or size["dim"])
    dropouts = tuple(args.dropouts if args.dropouts is not None else size["dropouts"])
    complete_up_to = args.complete_up_to if args.complete_up_to is not None else size["complete_up_to"]
    command = "python -m papers.bell2020.reproduce " + shlex.join(sys.argv[1:] if argv is None else argv)

    info = _common.banner()
    print(_common.banner_text(info))
    print(f"# command: {command}")
    print(f"# finder: {args.threat}, {args.corrupt:.0%} corrupt, 40-bit security, 20-bit correctness")
    out = _common.out_dir(PAPER, args.out)
    stem = ("results_quick" if args.quick else "results") + (f"_{args.tag}" if args.tag else "")
    claims = finder_table(clients)
    rows: list[dict[str, Any]] = []
    table = ""
    for n in clients:
        for p in dropouts:
            k, t, source = graph_parameters(n, p, args.corrupt, args.threat)
            plans: list[tuple[int | str, int | None]] = [(k, t)]
            if n <= complete_up_to:
                plans.append(("all", None))
            for neighbours, threshold in plans:
                row = run_one(clients=n, dim=dim, dropout=p, neighbours=neighbours, threshold=threshold,
                              seed=args.seed, progress=not args.no_progress, source=source,
                              corrupt=args.corrupt, threat=args.threat)
                rows.append(row)
                print(f"{row['graph']:8s} n={n:6d} drop={p:.0%} k={row['neighbours']} t={row['threshold']}: "
                      f"client {row['client_mean_s']:.4f} s, server {row['server_s']:.3f} s, "
                      f"up {row['up_per_client']:,.0f} B (run {row['run_wall_s']:.0f} s wall)", flush=True)
            table = _common.markdown_table(rows, COLUMNS)
            _common.write_outputs(out, stem, info=info, command=command, table=table, rows=rows,
                                  extra={"claims": PAPER_CLAIMS, "finder_semi_malicious_5_5": claims})
    fits = {}
    for graph in ("secagg+", "complete"):
        for p in dropouts:
            sel = [r for r in rows if r["graph"] == graph and r["dropout"] == p]
            for key in ("client_mean_s", "up_per_client", "server_s"):
                f = fit(sel, key)
                if f:
                    fits[f"{graph} {p:.0%} {key}"] = f
    fit_rows = [{"series": name, **f} for name, f in fits.items()]
    fit_table = _common.markdown_table(fit_rows, [("series", "series"), ("power_of_n", "slope vs log n"),
                                                   ("power_of_ln_n", "slope vs log ln n")])
    claim_table = _common.markdown_table(claims, [("clients", "n"), ("neighbours", "k"),
                                                  ("threshold", "t"),
                                                  ("fraction_talked_to", "k/(n-1)")])
    full = (f"{table}\n\nFits (cost ~ n^a, cost ~ (ln n)^b):\n\n{fit_table}\n\n"
            f"Finder in the paper's claimed setting (semi-malicious, 5% corrupt, 5% dropout):\n\n"
            f"{claim_table}\n\nPaper's claims:\n" + "\n".join(f"- {c}" for c in PAPER_CLAIMS))
    print()
    print(full)
    _common.write_outputs(out, stem, info=info, command=command, table=full, rows=rows,
                          extra={"fits": fits, "claims": PAPER_CLAIMS, "finder_semi_malicious_5_5": claims})
    if not args.no_plot and rows:
        png = out / f"{stem}_client_cost.png"
        plot(rows, png)
        print(f"wrote {png}")
    print(f"wrote {out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
