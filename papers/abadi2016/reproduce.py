"""Reproduce published DP-SGD epsilons (Abadi et al. 2016; TF-Privacy's MNIST tutorial).

Run from the repository root:  .venv/bin/python papers/abadi2016/reproduce.py [--out DIR]

Writes ``out/results.{md,json}`` (banner, command, table) beside this file.

Each row is a published (setting, epsilon) pair with its source; beside it, ours with
three analyses of the same Poisson-subsampled Gaussian: RDP with the classic conversion
(Mironov 2017; what the published numbers used), RDP with the conversion of Balle et
al. 2020 (what dp_accounting and opacus use today), and the tight PLD accountant.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (python papers/abadi2016/reproduce.py): find the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import dp  # noqa: E402
from dp._rdp import rdp_to_epsilon  # noqa: E402
from papers import _common  # noqa: E402

PAPER = "abadi2016"


@dataclass(frozen=True)
class Row:
    label: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    published: float
    source: str


def _mnist(z: float, epochs: int, published: float, source: str) -> Row:
    # TF-Privacy's compute_dp_sgd_privacy: q = 256/60000, steps = ceil(epochs * N / batch)
    steps = math.ceil(epochs * 60000 / 256)
    return Row(f"MNIST z={z} {epochs} ep", z, 256 / 60000, steps, 1e-5, published, source)


ROWS = [
    Row("Abadi q=0.01 z=4 T=10^4", 4.0, 0.01, 10_000, 1e-5, 1.26,
        "Abadi et al. 2016, Sec. 3.1 (moments accountant)"),
    _mnist(1.3, 15, 1.19, "TF-Privacy tutorials/README.md table"),
    _mnist(1.1, 60, 3.01, "TF-Privacy tutorials/README.md table (default run)"),
    _mnist(0.7, 45, 7.10, "TF-Privacy tutorials/README.md table"),
    _mnist(1.12, 60, 2.92, "TF-Privacy compute_dp_sgd_privacy.py docstring"),
    _mnist(1.2, 10, 1.20, "TF-Privacy MNIST tutorial (classic conversion)"),
]


def ours(row: Row) -> tuple[float, float, float]:
    event = dp.round_event(noise_multiplier=row.noise_multiplier, sample_rate=row.sample_rate)
    rdp = dp.RdpAccountant()
    rdp.compose(event, row.steps)
    classic = float(rdp_to_epsilon(rdp.orders, rdp.rdp, row.delta, method="classic")[0])
    balle = rdp.get_epsilon(row.delta)
    pld = dp.PldAccountant().compose(event, row.steps).get_epsilon(row.delta)
    return classic, balle, pld


def theirs(row: Row) -> tuple[float, float] | None:
    """dp_accounting's RDP and PLD epsilons, when it is installed (the dev extra)."""
    try:
        import dp_accounting as dpa
    except ImportError:
        return None
    event = dpa.PoissonSampledDpEvent(row.sample_rate, dpa.GaussianDpEvent(row.noise_multiplier))
    rdp = dpa.rdp.RdpAccountant().compose(event, row.steps).get_epsilon(row.delta)
    pld = dpa.pld.PLDAccountant(value_discretization_interval=1e-4).compose(
        event, row.steps).get_epsilon(row.delta)
    return rdp, pld


COLUMNS = [
    ("setting", "setting"), ("steps", "steps"), ("published", "published"),
    ("rdp_classic", "RDP classic (ours)"), ("rdp_balle", "RDP Balle (ours)"), ("pld", "PLD (ours)"),
    ("dpa_rdp", "dp_accounting RDP"), ("dpa_pld", "dp_accounting PLD"), ("source", "source"),
]


def _three_decimals(row: dict[str, Any]) -> dict[str, Any]:
    """The table's epsilons to three decimals (the default 3 significant digits would print 1.259 as 1.26)."""
    return {k: f"{v:.3f}" if isinstance(v, float) and k not in ("published",) else v for k, v in row.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry: the full run takes seconds")
    parser.add_argument("--out", help="output folder (default papers/abadi2016/out)")
    args = parser.parse_args(argv)
    command = "python papers/abadi2016/reproduce.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    info = _common.banner(("dp-accounting", "scipy"))
    print(_common.banner_text(info))
    print(f"# command: {command}")
    if info["packages"]["dp-accounting"] == "not installed":
        print("warning: dp_accounting is not installed, so its cross-check columns stay empty; "
              "install it with: pip install -e '.[dev]'", file=sys.stderr)
    head = f"{'setting':26} {'steps':>6} {'published':>9} {'RDP classic':>11} " \
           f"{'RDP Balle':>9} {'PLD':>7} {'dpa RDP':>7} {'dpa PLD':>7}  source"
    print(head)
    print("-" * len(head))
    t0 = time.perf_counter()
    worst = 0.0
    rows: list[dict[str, Any]] = []
    for row in ROWS:
        classic, balle, pld = ours(row)
        ref = theirs(row)
        ref_s = f"{ref[0]:>7.3f} {ref[1]:>7.3f}" if ref else f"{'-':>7} {'-':>7}"
        worst = max(worst, abs(classic - row.published)) if row.label.startswith("MNIST") else worst
        print(f"{row.label:26} {row.steps:>6} {row.published:>9.2f} {classic:>11.3f} "
              f"{balle:>9.3f} {pld:>7.3f} {ref_s}  {row.source}")
        rows.append({"setting": row.label, "noise_multiplier": row.noise_multiplier,
                     "sample_rate": row.sample_rate, "steps": row.steps, "delta": row.delta,
                     "published": row.published, "rdp_classic": classic, "rdp_balle": balle, "pld": pld,
                     "dpa_rdp": ref[0] if ref else None, "dpa_pld": ref[1] if ref else None,
                     "source": row.source})
    print(f"(all rows in {time.perf_counter() - t0:.2f} s; largest |RDP classic - published| "
          f"on the TF-Privacy rows: {worst:.3f}; delta = 1e-5 everywhere)")
    out = _common.out_dir(PAPER, args.out)
    _common.write_outputs(out, "results", info=info, command=command,
                          table=_common.markdown_table([_three_decimals(r) for r in rows], COLUMNS), rows=rows,
                          extra={"largest_classic_error_tf_privacy": worst})
    print(f"wrote {out / 'results'}.md and .json")
    return 0 if worst < 0.006 else 1


if __name__ == "__main__":
    _common.run_main(main)
