"""Reproduce the distributed mean estimation (DME) experiment of Kairouz, Liu, Steinke 2021.

"The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
Aggregation" (ICML 2021, arXiv:2102.06387), Experiments section, and the authors'
``dme_run.py`` (google-research/federated, ``distributed_dp/``): n = 100 and 1,000 clients each hold a
random vector of L2 norm c = 1 in d = 250 dimensions; the server estimates their mean
under (epsilon, 1e-5)-DP. We compare the mean squared error (per coordinate, as the
authors' script computes it) of

* the distributed discrete Gaussian (``dgauss``, KLS 2021) and the distributed Skellam
  (``skellam``, Agarwal, Kairouz, Liu 2021) at a SecAgg+ modulus of 2^bits, each
  client's noise multiplier calibrated to epsilon by bisection on
  :func:`dp.distributed_epsilon`, against
* the central continuous Gaussian at the same epsilon, calibrated with the same RDP
  orders and the same RDP -> (epsilon, delta) conversion.

The bulk trials run the client encoding and server decoding directly
(:func:`dp.encode_client` / :func:`dp.decode_sum`, the modular sum as NumPy uint64: the
SecAgg+ modular sum is exact and tested elsewhere). One configuration also runs end to
end through :func:`secagg.simulate` with :class:`DistributedDPBackend`; its aggregate is
checked bit for bit against the direct path and its MSE is shown beside the table's.

Run from the repository root::

    python papers/kairouz2021/reproduce.py            # full (minutes)
    python papers/kairouz2021/reproduce.py --quick    # seconds (CI, make papers)

The banner helper is local; it can move to ``papers/_common.py`` once that is merged.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import dp
from dp._ddp_backend import DistributedDPBackend, rotation_seed
from dp._granularity import NormGrowth

HERE = Path(__file__).resolve().parent
DELTA = 1e-5
PAPER_CLAIM = ("\"our solution is essentially able to match the accuracy to central "
               "differential privacy with less than 16 bits of precision per value\" "
               "(KLS 2021, abstract; DME in the Experiments section)")
MATCH = 1.1  # "matches central": MSE within 10% of the central Gaussian's
Z_RANGE = (0.05, 500.0)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """One run's grid: client counts, bit widths, epsilons, mechanisms, norm-growth rules."""

    clients: tuple[int, ...]
    bits: tuple[int, ...]
    epsilons: tuple[float, ...]
    mechanisms: tuple[dp.Mechanism, ...] = ("dgauss", "skellam")
    growths: tuple[NormGrowth, ...] = ("linear", "sqrt")
    dim: int = 250
    clip: float = 1.0
    trials: int = 5
    e2e_clients: int = 100
    e2e_rounds: int = 3
    e2e_bits: int = 16
    seed: int = 2021


FULL = Setup(clients=(100, 1000), bits=(10, 11, 12, 13, 14, 15, 16, 18),
             epsilons=(1.0, 3.0, 5.0), trials=20, e2e_rounds=5)
QUICK = Setup(clients=(100,), bits=(12, 16), epsilons=(3.0,), trials=1, e2e_rounds=1)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One cell of the grid: the calibrated multiplier and the measured MSE (None: infeasible)."""

    clients: int
    mechanism: str
    growth: str
    epsilon: float
    bits: int
    noise_multiplier: float | None
    mse: float | None
    central_mse: float

    @property
    def ratio(self) -> float | None:
        return None if self.mse is None else self.mse / self.central_mse


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EndToEnd:
    """The SecAgg+ end-to-end check of one configuration."""

    clients: int
    mechanism: str
    epsilon: float
    bits: int
    rounds: int
    threshold: int | None
    same_config: bool
    max_abs_diff: float
    mse_protocol: float
    mse_direct: float | None
    seconds_per_round: float


# ---------------------------------------------------------------------------- calibration


@functools.cache
def central_multiplier(epsilon: float, *, delta: float = DELTA) -> float:
    """Smallest z for which one release of the Gaussian mechanism meets epsilon.

    The library's RDP accountant (:func:`dp.calibrate_noise`, no sampling, one step):
    the same orders and RDP -> (epsilon, delta) conversion as
    :func:`dp.distributed_epsilon`.
    """
    return dp.calibrate_noise(target_epsilon=epsilon, delta=delta, sample_rate=1.0, steps=1,
                              accountant="rdp", rtol=1e-9).noise_multiplier


def make_config(*, clients: int, bits: int, z: float, mechanism: dp.Mechanism,
                growth: NormGrowth, setup: Setup) -> dp.DistributedDPConfig:
    """The configuration of a round with no dropout (what DistributedDPBackend builds)."""
    return dp.DistributedDPConfig(
        dim=setup.dim, bits=bits, clip=setup.clip, noise_multiplier=z,
        expected_clients=clients, min_clients=clients, max_clients=clients,
        mechanism=mechanism, norm_growth=growth,
    )


def calibrate(epsilon: float, make: Callable[[float], dp.DistributedDPConfig]) -> float | None:
    """Smallest z (bisection on distributed_epsilon) that meets epsilon; None if none does.

    A z too small for the bit width (the configuration refuses it) counts as infinite
    epsilon; epsilon falls as z grows, so the bisection is sound.
    """
    def eps(z: float) -> float:
        try:
            return dp.distributed_epsilon(make(z), delta=DELTA)[0]
        except dp.DPValueError:
            return math.inf

    if eps(Z_RANGE[1]) > epsilon:
        return None
    return _bisect(eps, epsilon)


def _bisect(eps: Callable[[float], float], target: float) -> float:
    lo, hi = Z_RANGE
    for _ in range(50):  # geometric bisection: hi always meets the target
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if eps(mid) <= target else (mid, hi)
    return hi


# ---------------------------------------------------------------------------- experiment


def unit_vectors(rng: np.random.Generator, n: int, d: int, norm: float) -> np.ndarray:
    """n vectors uniform on the sphere of radius ``norm`` (as the authors' generate_client_data)."""
    x = rng.normal(size=(n, d))
    return norm * x / np.linalg.norm(x, axis=1, keepdims=True)


def direct_sum(xs: np.ndarray, cfg: dp.DistributedDPConfig, seed: bytes,
               rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Encode every client, sum modulo 2^64 (decode reduces it to 2^bits), decode."""
    total = np.zeros(cfg.padded_dim, dtype=np.uint64)
    for x, rng in zip(xs, rngs, strict=True):
        total += dp.encode_client(x, cfg, seed, rng)
    return dp.decode_sum(total, cfg, seed, xs.shape[0])


def dme_mse(cfg: dp.DistributedDPConfig, *, trials: int, rng: np.random.Generator) -> float:
    """Mean over trials of the per-coordinate squared error of the decoded mean."""
    n = cfg.expected_clients
    errs = []
    for _ in range(trials):
        xs = unit_vectors(rng, n, cfg.dim, cfg.clip)
        seed = rng.bytes(32)  # the round's public rotation seed
        est = direct_sum(xs, cfg, seed, [rng] * n) / n
        errs.append(float(np.mean(np.square(est - xs.mean(axis=0)))))
    return float(np.mean(errs))


def run_grid(setup: Setup, log: Callable[[str], None]) -> list[Row]:
    """Every (n, mechanism, growth, epsilon, bits) cell, calibrated and measured."""
    rows = []
    cells = [(n, m, g, e, b) for n in setup.clients for m in setup.mechanisms
             for g in setup.growths for e in setup.epsilons for b in setup.bits]
    for i, (n, mech, growth, eps, bits) in enumerate(cells, 1):
        t0 = time.perf_counter()
        central = (central_multiplier(eps) * setup.clip / n) ** 2

        def make(z: float, n: int = n, bits: int = bits, mech: dp.Mechanism = mech,
                 growth: NormGrowth = growth) -> dp.DistributedDPConfig:
            return make_config(clients=n, bits=bits, z=z, mechanism=mech, growth=growth,
                               setup=setup)

        z = calibrate(eps, make)
        rng = np.random.default_rng([setup.seed, n, bits, int(eps * 1000)])
        mse = None if z is None else dme_mse(make(z), trials=setup.trials, rng=rng)
        rows.append(Row(clients=n, mechanism=mech, growth=growth, epsilon=eps, bits=bits,
                        noise_multiplier=z, mse=mse, central_mse=central))
        what = "infeasible" if mse is None else f"z={z:.3f} mse={mse:.3e} ({mse / central:.2f}x)"
        log(f"[{i}/{len(cells)}] n={n} {mech} {growth} eps={eps:g} bits={bits}: {what} "
            f"({time.perf_counter() - t0:.1f}s)")
    return rows


def end_to_end(setup: Setup, rows: Sequence[Row], log: Callable[[str], None]) -> EndToEnd:
    """Run dgauss (linear growth, the backend's rule) through secagg.simulate.

    Each client's randomness in simulate is ``default_rng([seed, id])`` and its first use
    is the encoding, so the direct path with the same generators must give the protocol's
    aggregate bit for bit.
    """
    from secagg import simulate

    n, bits, eps = setup.e2e_clients, setup.e2e_bits, setup.epsilons[len(setup.epsilons) // 2]

    def make(z: float) -> dp.DistributedDPConfig:
        return make_config(clients=n, bits=bits, z=z, mechanism="dgauss", growth="linear",
                           setup=setup)

    z = calibrate(eps, make)
    if z is None:
        raise SystemExit(f"end-to-end check: bits={bits} is infeasible at n={n}, eps={eps}")
    backend = DistributedDPBackend(mechanism="dgauss", noise_multiplier=z, clip=setup.clip,
                                   bits=bits)
    _, cfg = backend.round_parameters(num_clients=n, dim=setup.dim)
    rng = np.random.default_rng([setup.seed, 7])
    diffs, mses, t0, threshold = [], [], time.perf_counter(), None
    for r in range(setup.e2e_rounds):
        xs = unit_vectors(rng, n, setup.dim, setup.clip)
        out = simulate(clients=n, dim=setup.dim, backend=backend, inputs=xs, seed=r)
        mses.append(float(np.mean(np.square((out.aggregate - out.expected) / n))))
        threshold = out.threshold
        rngs = [np.random.default_rng([r, c]) for c in range(n)]
        direct = direct_sum(xs, cfg, rotation_seed(0), rngs)
        diffs.append(float(np.max(np.abs(direct - out.aggregate))))
        log(f"end-to-end round {r + 1}/{setup.e2e_rounds}: n={n} dgauss bits={bits} "
            f"eps={eps:g}: mse={mses[-1]:.3e}, |protocol - direct| = {diffs[-1]:g}")
    table = next((row.mse for row in rows if (row.clients, row.mechanism, row.growth,
                  row.epsilon, row.bits) == (n, "dgauss", "linear", eps, bits)), None)
    return EndToEnd(clients=n, mechanism="dgauss", epsilon=eps, bits=bits,
                    rounds=setup.e2e_rounds, threshold=threshold, same_config=cfg == make(z),
                    max_abs_diff=max(diffs), mse_protocol=float(np.mean(mses)),
                    mse_direct=table,
                    seconds_per_round=(time.perf_counter() - t0) / setup.e2e_rounds)


# ---------------------------------------------------------------------------- output


def banner() -> str:
    """Hardware and software versions (local helper; papers/_common.banner can replace it)."""
    import importlib.metadata as md

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "not installed"

    try:
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    return "\n".join([
        f"blindsum {version('blindsum')} (commit {commit or 'unknown'}), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"matplotlib {version('matplotlib')}",
        f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} cpus, "
        f"load average {' '.join(f'{x:.1f}' for x in load)}",
    ])


def bits_to_match(rows: Sequence[Row], key: tuple[int, str, str, float]) -> int | None:
    """Fewest bits from which on every tested width has MSE within MATCH of central (None: none).

    "From which on" makes the answer robust to one noisy cell below the threshold.
    """
    cells = sorted((r.bits, r.ratio) for r in rows
                   if (r.clients, r.mechanism, r.growth, r.epsilon) == key)
    need = None
    for bits, ratio in reversed(cells):
        if ratio is None or ratio > MATCH:
            break
        need = bits
    return need


def markdown_table(rows: Sequence[Row], setup: Setup, *, noise: bool = False) -> str:
    """One table per epsilon: a row per (n, mechanism, growth), a column per bit width.

    Cells are the MSE and its ratio to the central Gaussian's, or with ``noise`` the
    calibrated noise multiplier over the central one (deterministic: the accounting's
    share of the MSE ratio, which is about its square plus the rounding error's).
    """
    out = []
    for eps in setup.epsilons:
        sub = [r for r in rows if r.epsilon == eps]
        z_c = central_multiplier(eps)
        if noise:
            out.append(f"**epsilon = {eps:g}**: central z = {z_c:.4f}; cells: calibrated z / central z\n")
        else:
            out.append(f"**epsilon = {eps:g}, delta = {DELTA:g}**; central Gaussian MSE: "
                       + ", ".join(f"n={n}: {(z_c * setup.clip / n) ** 2:.3e}"
                                   for n in setup.clients) + "\n")
        last = "" if noise else f" bits for <= {MATCH:g}x |"
        out.append("| n | mechanism | growth | " + " | ".join(f"{b} bits" for b in setup.bits)
                   + " |" + last)
        out.append("|---|---|---|" + "---:|" * (len(setup.bits) + (not noise)))
        for n, mech, growth in dict.fromkeys((r.clients, r.mechanism, r.growth) for r in sub):
            cells = []
            for b in setup.bits:
                r = next(x for x in sub if (x.clients, x.mechanism, x.growth, x.bits)
                         == (n, mech, growth, b))
                if r.mse is None or r.noise_multiplier is None:
                    cells.append("-")
                elif noise:
                    cells.append(f"{r.noise_multiplier / z_c:.3f}")
                else:
                    cells.append(f"{r.mse:.2e} ({r.mse / r.central_mse:.2f}x)")
            need = bits_to_match(rows, (n, mech, growth, eps))
            tail = "" if noise else f" {need if need is not None else f'> {max(setup.bits)}'} |"
            out.append(f"| {n} | {mech} | {growth} | " + " | ".join(cells) + " |" + tail)
        out.append("")
    return "\n".join(out)


def e2e_text(e: EndToEnd) -> str:
    direct = "n/a" if e.mse_direct is None else f"{e.mse_direct:.3e}"
    agree = "" if e.mse_direct is None else f" (ratio {e.mse_protocol / e.mse_direct:.2f})"
    return (f"End to end through secagg.simulate + DistributedDPBackend (SecAgg+, all "
            f"neighbours, threshold {e.threshold}): n={e.clients}, {e.mechanism}, bits={e.bits}, "
            f"epsilon={e.epsilon:g}, {e.rounds} round(s), {e.seconds_per_round:.1f} s/round. "
            f"Backend's DP configuration identical to the direct path's: {e.same_config}; "
            f"max |protocol aggregate - direct aggregate| = {e.max_abs_diff:g} "
            f"(same client randomness: bit-identical expected). MSE through the protocol "
            f"{e.mse_protocol:.3e} vs direct path (table cell, independent trials) "
            f"{direct}{agree}.")


def write_table(path: Path, rows: Sequence[Row], setup: Setup, e2e: EndToEnd | None,
                head: str) -> None:
    text = [f"# KLS 2021 distributed mean estimation (d={setup.dim}, c={setup.clip:g}, "
            f"{setup.trials} trial(s) per cell)", "", "```", head, "```", "",
            "MSE per coordinate of the estimated mean; in brackets the ratio to the central "
            "continuous Gaussian at the same epsilon (same RDP orders and conversion). "
            f"Sampling error of a cell: about +-{200 * math.sqrt(2 / (setup.dim * setup.trials)):.0f}% "
            f"(2 sigma). 'bits for <= {MATCH:g}x': the fewest bits from which on every tested "
            "width is within that of central. "
            "'-': no noise multiplier up to "
            f"{Z_RANGE[1]:g} reaches epsilon at that bit width.", "",
            markdown_table(rows, setup), f"Paper: {PAPER_CLAIM}.", "",
            "## Calibrated noise multipliers relative to the central Gaussian's", "",
            markdown_table(rows, setup, noise=True)]
    if e2e is not None:
        text += [e2e_text(e2e), ""]
    path.write_text("\n".join(text))


def plot(path: Path, rows: Sequence[Row], setup: Setup) -> None:
    """MSE vs bits, one panel per epsilon; central Gaussian as horizontal lines."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("matplotlib is needed for the plot: pip install -e '.[plot]' "
                         "(or pass --no-plot)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(setup.epsilons), figsize=(5.5 * len(setup.epsilons), 4.5),
                             squeeze=False)
    colours = dict(zip(setup.clients, ("tab:blue", "tab:red", "tab:green"), strict=False))
    style = {"dgauss": "-", "skellam": "--"}
    marker = {"linear": "o", "sqrt": "s"}
    for ax, eps in zip(axes[0], setup.epsilons, strict=True):
        for n in setup.clients:
            central = next(r.central_mse for r in rows if (r.clients, r.epsilon) == (n, eps))
            ax.axhline(central, color=colours.get(n, "k"), lw=3, alpha=0.3,
                       label=f"n={n} central Gaussian")
            for mech in setup.mechanisms:
                for g in setup.growths:
                    pts = [(r.bits, r.mse) for r in rows if (r.clients, r.mechanism, r.growth,
                           r.epsilon) == (n, mech, g, eps) and r.mse is not None]
                    if pts:
                        ax.plot(*zip(*pts, strict=True), style[mech], marker=marker[g],
                                color=colours.get(n, "k"), ms=5, mfc="none" if g == "sqrt" else None,
                                label=f"n={n} {mech} {g}")
        ax.set(xlabel="bits per coordinate (SecAgg+ modulus 2^bits)", ylabel="MSE",
               yscale="log", title=f"epsilon={eps:g}, delta={DELTA:g}, d={setup.dim}")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.tight_layout(rect=(0.0, 0.0, 0.86, 1.0))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- command line


def parse(argv: Sequence[str] | None) -> tuple[Setup, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="n=100, bits 12 and 16, eps 3 (seconds)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    p.add_argument("--out", type=Path, default=HERE / "out", help="output directory")
    p.add_argument("--clients", type=int, nargs="+", help="override the client counts")
    p.add_argument("--bits", type=int, nargs="+", help="override the bit widths")
    p.add_argument("--epsilons", type=float, nargs="+", help="override the epsilons")
    p.add_argument("--trials", type=int, help="override the trials per cell")
    p.add_argument("--e2e-clients", type=int, help="clients in the end-to-end check (100)")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end check")
    a = p.parse_args(argv)
    base = QUICK if a.quick else FULL
    setup = dataclasses.replace(
        base, clients=tuple(a.clients or base.clients), bits=tuple(a.bits or base.bits),
        epsilons=tuple(a.epsilons or base.epsilons), trials=a.trials or base.trials,
        e2e_clients=a.e2e_clients or base.e2e_clients,
    )
    return setup, a


def main(argv: Sequence[str] | None = None) -> int:
    setup, args = parse(argv)
    if not args.no_plot:  # fail before the work, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("matplotlib is needed for the plot: pip install -e '.[plot]' "
                             "(or pass --no-plot)") from None
    head = banner()
    print(head, flush=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    rows = run_grid(setup, log)
    e2e = None if args.no_e2e else end_to_end(setup, rows, log)
    args.out.mkdir(parents=True, exist_ok=True)
    write_table(args.out / "table.md", rows, setup, e2e, head)
    print(markdown_table(rows, setup))
    print(f"Paper: {PAPER_CLAIM}.")
    if e2e is not None:
        print(e2e_text(e2e))
    if not args.no_plot:
        plot(args.out / "mse_vs_bits.png", rows, setup)
    print(f"wrote {args.out / 'table.md'}"
          + ("" if args.no_plot else f" and {args.out / 'mse_vs_bits.png'}")
          + f" in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
