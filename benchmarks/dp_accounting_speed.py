"""Epsilon queries per second: blindsum vs dp_accounting (and opacus's RDP analysis).

Run (any venv with numpy; dp_accounting and opacus are used when importable):

    PYTHONPATH=. nice python benchmarks/dp_accounting_speed.py [--queries 40]

A query is "epsilon at delta = 1e-5 after T steps of a Poisson-sampled Gaussian with
noise z and rate q", asked of a fresh accountant, with a different z every time so
no library can answer from a cache. Workloads:

* rdp: one query (z ~ 1.1, q = 256/60000, T = 14063, the TF-Privacy MNIST setting).
* rdp-table: epsilon for every T in 1..10,000 (ours: one vectorised call; theirs: one
  RDP curve, then one conversion per T, their fastest use of the public API).
* pld: the same single query with a PLD accountant at discretisation 1e-4
  (dp_accounting) or opacus's PRV accountant (eps_error 0.01).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
import warnings
from collections.abc import Callable

import numpy as np

import dp

Q, T, DELTA = 256 / 60000, 14063, 1e-5
warnings.filterwarnings("ignore")


def _rate(fn: Callable[[float], object], n: int) -> float:
    """Queries per second over ``n`` distinct noise multipliers."""
    zs = 1.1 + 0.001 * np.arange(n)
    fn(1.05)  # warm-up (imports, first-call costs)
    t0 = time.perf_counter()
    for z in zs:
        fn(float(z))
    return n / (time.perf_counter() - t0)


def ours_rdp(z: float) -> float:
    event = dp.PoissonSampled(rate=Q, event=dp.Gaussian(noise_multiplier=z))
    return dp.RdpAccountant().compose(event, T).get_epsilon(DELTA)


def ours_pld(z: float) -> float:
    event = dp.PoissonSampled(rate=Q, event=dp.Gaussian(noise_multiplier=z))
    return dp.PldAccountant().compose(event, T).get_epsilon(DELTA)


def ours_table(z: float) -> np.ndarray:
    event = dp.PoissonSampled(rate=Q, event=dp.Gaussian(noise_multiplier=z))
    return dp.epsilon_over_rounds(event, np.arange(1, 10001), delta=DELTA)


def competitors() -> dict[str, dict[str, Callable[[float], object]]]:
    out: dict[str, dict[str, Callable[[float], object]]] = {}
    try:
        import dp_accounting as dpa
        from dp_accounting.rdp import rdp_privacy_accountant as dpa_rdp

        def ev(z: float):  # type: ignore[no-untyped-def]
            return dpa.PoissonSampledDpEvent(Q, dpa.GaussianDpEvent(z))

        def dpa_table(z: float) -> list[float]:
            orders = np.array(dpa_rdp.DEFAULT_RDP_ORDERS)
            rdp = dpa_rdp._compute_rdp_poisson_subsampled_gaussian(Q, z, orders)
            return [dpa_rdp.compute_epsilon(orders, t * rdp, DELTA)[0] for t in range(1, 10001)]

        out[f"dp_accounting {_version('dp-accounting')}"] = {
            "rdp": lambda z: dpa.rdp.RdpAccountant().compose(ev(z), T).get_epsilon(DELTA),
            "rdp-table": dpa_table,
            "pld": lambda z: dpa.pld.PLDAccountant(value_discretization_interval=1e-4)
            .compose(ev(z), T).get_epsilon(DELTA),
        }
    except ImportError:
        pass
    try:
        from opacus.accountants import PRVAccountant
        from opacus.accountants.analysis import rdp as op_rdp

        def op_query(z: float) -> float:
            rdp = op_rdp.compute_rdp(q=Q, noise_multiplier=z, steps=T, orders=_OP_ORDERS)
            return op_rdp.get_privacy_spent(orders=_OP_ORDERS, rdp=rdp, delta=DELTA)[0]

        def op_table(z: float) -> list[float]:
            rdp = np.asarray(op_rdp.compute_rdp(q=Q, noise_multiplier=z, steps=1,
                                                orders=_OP_ORDERS))
            return [op_rdp.get_privacy_spent(orders=_OP_ORDERS, rdp=t * rdp, delta=DELTA)[0]
                    for t in range(1, 10001)]

        def op_prv(z: float) -> float:
            acc = PRVAccountant()
            acc.history = [(z, Q, T)]
            return acc.get_epsilon(delta=DELTA, eps_error=0.01)

        out[f"opacus {_version('opacus')}"] = {"rdp": op_query, "rdp-table": op_table,
                                               "pld": op_prv}
    except ImportError:
        pass
    return out


_OP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=40, help="queries per workload (rdp)")
    args = p.parse_args()
    n = args.queries
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"q = {Q:.6f}, T = {T}, delta = {DELTA:g}")
    workloads = {"rdp": (ours_rdp, n), "rdp-table": (ours_table, max(2, n // 10)),
                 "pld": (ours_pld, max(2, n // 8))}
    ours = {w: _rate(fn, k) for w, (fn, k) in workloads.items()}
    print(f"{'workload':10} {'library':22} {'queries/s':>11} {'ms/query':>10} {'ours faster':>11}")
    for w, rate in ours.items():
        print(f"{w:10} {'blindsum (ours)':22} {rate:11.2f} {1e3 / rate:10.2f} {'':>11}")
        for lib, fns in competitors().items():
            k = max(1, workloads[w][1] // (4 if w == "rdp-table" else 2))
            r = _rate(fns[w], k)
            print(f"{w:10} {lib:22} {r:11.2f} {1e3 / r:10.2f} {rate / r:10.1f}x")
    # agreement, so that speed is not bought with accuracy
    for lib, fns in competitors().items():
        for w, fn in (("rdp", ours_rdp), ("pld", ours_pld)):
            a, b = fn(1.12), float(fns[w](1.12))  # type: ignore[arg-type]
            print(f"agreement {w:4} vs {lib:22}: ours {a:.6f}, theirs {b:.6f} "
                  f"(rel diff {abs(a - b) / b:.2e})")
    return 0 if math.isfinite(ours["rdp"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
