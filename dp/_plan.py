"""``plan``: epsilon over rounds for both accountants, as a table and a figure.

The RDP curve covers every round from 1 to ``rounds`` in one vectorised call; the PLD
accountant (one FFT composition per row) is evaluated at the table's round counts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dp._calibrate import epsilon_over_rounds, round_event
from dp._errors import DPValueError, UnsupportedEventError
from dp._pld import PldAccountant

__all__ = ["PlanTable", "plan_table", "plot_plan", "table_rounds"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanTable:
    """Epsilon at ``delta`` over rounds; ``pld`` is None when PLD cannot account it."""

    noise_multiplier: float
    sample_rate: float
    delta: float
    sampling: str
    rounds: NDArray[np.int64]
    rdp: NDArray[np.float64]
    pld: NDArray[np.float64] | None
    rdp_all: NDArray[np.float64]  # rounds 1..rounds[-1]
    target_epsilon: float | None
    rdp_max_rounds: int | None
    pld_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` output)."""
        return {
            "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate,
            "delta": self.delta, "sampling": self.sampling,
            "rounds": self.rounds.tolist(), "rdp": self.rdp.tolist(),
            "pld": None if self.pld is None else self.pld.tolist(),
            "target_epsilon": self.target_epsilon, "rdp_max_rounds": self.rdp_max_rounds,
        }

    def format_lines(self) -> list[str]:
        """A table a person can read."""
        lines = [f"epsilon at delta = {self.delta:g} (noise multiplier {self.noise_multiplier:g}, "
                 f"sample rate {self.sample_rate:g}, {self.sampling} sampling)",
                 f"{'rounds':>10}  {'RDP':>10}  {'PLD':>10}"]
        for i, t in enumerate(self.rounds):
            pld = f"{self.pld[i]:10.4f}" if self.pld is not None else f"{'n/a':>10}"
            lines.append(f"{int(t):>10}  {self.rdp[i]:10.4f}  {pld}")
        if self.pld_note:
            lines.append(f"PLD: {self.pld_note}")
        if self.target_epsilon is not None:
            lines.append(f"RDP: at most {self.rdp_max_rounds} of these {int(self.rounds[-1])} "
                         f"rounds stay within epsilon {self.target_epsilon:g}")
        return lines


def table_rounds(rounds: int, points: int) -> NDArray[np.int64]:
    """About ``points`` round counts from 1 to ``rounds``, geometrically spaced, ending at it."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise DPValueError(f"rounds must be an int >= 1, got {rounds!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise DPValueError(f"points must be an int >= 1, got {points!r}")
    r = np.unique(np.round(np.geomspace(1, rounds, points)).astype(np.int64))
    return r if r[-1] == rounds else np.append(r, rounds)


def plan_table(
    *, noise_multiplier: float, sample_rate: float, delta: float, rounds: int,
    points: int = 10, sampling: str = "poisson", population_size: int | None = None,
    target_epsilon: float | None = None, progress: bool = False,
) -> PlanTable:
    """Compute the plan; raises DPValueError for bad arguments."""
    event = round_event(noise_multiplier=noise_multiplier, sample_rate=sample_rate,
                        sampling=sampling, population_size=population_size)
    rows = table_rounds(rounds, points)
    rdp_all = epsilon_over_rounds(event, np.arange(1, rounds + 1), delta=delta)
    pld: NDArray[np.float64] | None = None
    note = ""
    if PldAccountant().supports(event):
        pld = np.empty(rows.size)
        for i, t in enumerate(rows):
            if progress:
                print(f"\rPLD {i + 1}/{rows.size} (round {int(t)})", end="", file=sys.stderr)
            pld[i] = PldAccountant().compose(event, int(t)).get_epsilon(delta)
        if progress:
            print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
    else:
        note = str(UnsupportedEventError(event, "pld"))
    max_r = None
    if target_epsilon is not None:
        max_r = int(np.sum(rdp_all <= target_epsilon))  # eps is non-decreasing in rounds
    return PlanTable(noise_multiplier=noise_multiplier, sample_rate=sample_rate, delta=delta,
                     sampling=sampling, rounds=rows, rdp=rdp_all[rows - 1], pld=pld,
                     rdp_all=rdp_all, target_epsilon=target_epsilon, rdp_max_rounds=max_r,
                     pld_note=note)


def plot_plan(table: PlanTable, path: str) -> None:
    """Write the plan as a figure to ``path`` (needs matplotlib; raises RuntimeError)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install 'blindsum[plot]'") from exc
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = np.arange(1, table.rdp_all.size + 1)
    ax.plot(x, table.rdp_all, label="RDP (Balle et al. 2020 conversion)", color="tab:blue")
    if table.pld is not None:
        ax.plot(table.rounds, table.pld, "o-", label="PLD (tight)", color="tab:orange")
    if table.target_epsilon is not None:
        ax.axhline(table.target_epsilon, ls="--", color="grey", label="budget")
    ax.set_xlabel("rounds")
    ax.set_ylabel(f"epsilon at delta = {table.delta:g}")
    ax.set_title(f"noise multiplier {table.noise_multiplier:g}, sample rate "
                 f"{table.sample_rate:g} ({table.sampling})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
