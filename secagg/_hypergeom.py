"""Hypergeometric tails in log space, vectorised over the number of draws.

X ~ Hypergeometric(total, marked, draws) counts the marked items among ``draws`` taken
without replacement from ``total``. The finder needs, for many draw counts k at once,
``min{t : P(X > t) < q}`` for tiny q (2^-41 / n): the tail is summed over a window of x
whose truncated mass is provably negligible (Serfling's inequality, checked again by
log-concavity), with terms ``exp(log pmf - row max)`` added smallest first.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_TABLE", "log_factorial_table", "log_pmf", "upper_quantile", "lower_quantile"]

MAX_TABLE = 1_000_001  # the cache doubles up to this size (fcp's client limit + 1)
_TAIL_SLACK = 40.0  # nats: window truncation leaves out < e^-40 of the quantile level
_GUESS = 0.6  # start the summing window this far (in normal-quantile units) above the mean


_cache: NDArray[np.float64] = np.zeros(1)


def log_factorial_table(n: int) -> NDArray[np.float64]:
    """``log m!`` for m = 0..n (at least), from ``math.lgamma`` as fcp uses; cached."""
    global _cache
    table = _cache
    if table.size <= n:
        size = max(n + 1, min(2 * table.size, MAX_TABLE), 1024)
        table = np.fromiter((math.lgamma(m + 1.0) for m in range(size)), np.float64, size)
        table.flags.writeable = False
        _cache = table
    return table


def log_pmf(
    lf: NDArray[np.float64], total: int, marked: int, draws: NDArray[np.int64],
    x: NDArray[np.int64],
) -> NDArray[np.float64]:
    """log P(X = x) for X ~ Hypergeometric(total, marked, draws); rows are draws."""
    k = draws[:, None]
    rest = total - marked - k + x
    valid = (x >= 0) & (x <= marked) & (x <= k) & (rest >= 0)
    top = total
    const = lf[marked] + lf[total - marked] + lf[k] + lf[total - k] - lf[total]
    lp = const - (
        lf[np.clip(x, 0, top)] + lf[np.clip(marked - x, 0, top)]
        + lf[np.clip(k - x, 0, top)] + lf[np.clip(rest, 0, top)]
    )
    return np.where(valid, lp, -np.inf)


def _tail_counts(
    lf: NDArray[np.float64], total: int, marked: int, draws: NDArray[np.int64],
    lo: NDArray[np.int64], hi: NDArray[np.int64], log_q: float,
) -> NDArray[np.int64]:
    """Per row (one per number of draws), how many x in [lo, hi] have P(X > x) >= q.

    Mass above ``hi`` is taken as zero: the caller makes it negligible next to q."""
    x = lo[:, None] + np.arange(int((hi - lo).max()) + 1)
    lp = log_pmf(lf, total, marked, draws, x)
    lp[x > hi[:, None]] = -np.inf
    shift = lp.max(axis=1, keepdims=True)
    p = np.exp(lp - shift)
    # P(X > x): sums from the far right, small terms first, then shifted one place left
    tail = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]
    above = np.concatenate([tail[:, 1:], np.zeros_like(tail[:, :1])], axis=1)
    return np.count_nonzero(above >= np.exp(log_q - shift), axis=1)


def _negligible_beyond(lf: NDArray[np.float64], total: int, marked: int,
                       draws: NDArray[np.int64], hi: NDArray[np.int64],
                       log_q: float) -> NDArray[np.bool_]:
    """Whether P(X > hi) < q e^-36, by log-concavity of the pmf: past the mode the ratio
    r = pmf(x+1)/pmf(x) only falls, so P(X > hi) <= pmf(hi) r / (1 - r)."""
    x = np.stack([hi - 1, hi], axis=1)
    lp = log_pmf(lf, total, marked, draws, x)
    log_r = lp[:, 1] - lp[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = lp[:, 1] + log_r - np.log1p(-np.exp(log_r))
    top = np.minimum(draws, marked)
    return (hi >= top) | ((log_r < 0) & (bound < log_q - 36.0))


def upper_quantile(lf: NDArray[np.float64], n: int, marked: int, ks: NDArray[np.int64],
                    log_q: float) -> NDArray[np.int64]:
    """min{t : P(X > t) < q}, X ~ Hypergeometric(n, marked, k), for each k.

    Only a window of x is summed. Its top: by Serfling's inequality (sampling without
    replacement) the mass above mean + sqrt(k (1 - (k-1)/n) L / 2), L = ln(1/q) + 40,
    is below q e^-40 (checked again by log-concavity). Its bottom: a normal-approximation
    guess, kept only where the count proves it low enough, else floor(mean) - 1 (the
    median of a hypergeometric is at least floor(mean), so P(X > floor(mean) - 1) >= 1/2).
    """
    top = np.minimum(ks, marked)
    mean = ks * (marked / n)
    sd = np.sqrt(mean * (1.0 - marked / n) * (n - ks) / max(n - 1, 1))
    safe_lo = np.maximum(np.floor(mean).astype(np.int64) - 1, 0)
    spread = np.sqrt(ks * (1.0 - (ks - 1) / n) * (_TAIL_SLACK - log_q) / 2.0)
    hi = np.clip(np.ceil(mean + spread).astype(np.int64) + 1, safe_lo, top)
    wide = ~_negligible_beyond(lf, n, marked, ks, hi, log_q)
    hi = np.where(wide, top, hi)
    guess = np.floor(mean + _GUESS * math.sqrt(-2.0 * log_q) * sd).astype(np.int64)
    lo = np.clip(guess, safe_lo, hi)
    counts = _tail_counts(lf, n, marked, ks, lo, hi, log_q)
    redo = (counts == 0) & (lo > safe_lo)
    if redo.any():
        counts[redo] = _tail_counts(lf, n, marked, ks[redo], safe_lo[redo], hi[redo], log_q)
        lo = np.where(redo, safe_lo, lo)
    return lo + counts


def lower_quantile(lf: NDArray[np.float64], n: int, marked: int, ks: NDArray[np.int64],
                    log_q: float) -> NDArray[np.int64]:
    """min{z : P(Z <= z) >= q}, Z ~ Hypergeometric(n, marked, k), for each k.

    W = k - Z ~ Hypergeometric(n, n - marked, k) and P(Z <= z) = P(W > k - z - 1), so
    the answer is k - min{w : P(W > w) < q}."""
    return ks - upper_quantile(lf, n, n - marked, ks, log_q)
