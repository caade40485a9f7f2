"""The fast paths of the PLD accountant agree with their direct definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dp import _pld
from dp._pld_build import gaussian_pld_pair
from dp._pld_laplace import laplace_pld_pair


def _direct_log_mgf(pld, lam):  # type: ignore[no-untyped-def]
    nz = pld.pmf > 0
    losses, logp = pld.losses[nz], np.log(pld.pmf[nz])
    out = []
    for x in lam:
        v = logp + x * losses
        m = float(np.max(v))
        out.append(m + math.log(float(np.sum(np.exp(v - m)))))
    return np.array(out)


@pytest.mark.parametrize("interval", [1e-4, 1e-2, 0.3])
@pytest.mark.parametrize("kind", ["gauss", "gauss1", "laplace"])
def test_blocked_log_mgf_matches_direct(kind: str, interval: float) -> None:
    if kind == "laplace":
        plds = laplace_pld_pair(sampling_rate=0.05, noise_multiplier=2.0, interval=interval)
    else:
        q = 1.0 if kind == "gauss1" else 256 / 60000
        plds = gaussian_pld_pair(sampling_rate=q, noise_multiplier=1.12, interval=interval)
    lam = _pld._LAMBDAS
    for p in plds:
        up, down = _pld._log_mgfs(p, lam)
        scale = 1.0 + np.abs(_direct_log_mgf(p, lam))
        assert np.all(np.abs(up - _direct_log_mgf(p, lam)) <= 1e-12 * scale)
        scale = 1.0 + np.abs(_direct_log_mgf(p, -lam))
        assert np.all(np.abs(down - _direct_log_mgf(p, -lam)) <= 1e-12 * scale)


def test_window_holds_the_composed_mass_and_matches_a_wide_fft() -> None:
    """Against a plain FFT convolution on a circle 8x wider than the window: the mass
    outside the Chernoff window is at the rounding floor, and the windowed PMF agrees."""
    remove, _ = gaussian_pld_pair(sampling_rate=0.01, noise_multiplier=1.0, interval=1e-3)
    count = 300
    composed = _pld.ComposedPld([(remove, count)])
    lo, hi = composed.offset, composed.offset + composed.pmf.size - 1
    n = 8 * (1 << math.ceil(math.log2(hi - lo + 1)))
    x = np.zeros(n)
    x[(remove.offset + np.arange(remove.pmf.size)) % n] = remove.pmf
    full = np.fft.irfft(np.fft.rfft(x) ** count, n)
    ks = np.arange(lo - n // 2, lo + n // 2)  # true loss indices around the window
    vals = full[ks % n]
    inside = (ks >= lo) & (ks <= hi)
    assert float(np.sum(np.abs(vals[~inside]))) < 1e-12
    assert float(np.max(np.abs(vals[inside] - composed.pmf))) < 1e-13
    assert composed.infinity_mass >= 1.0 - (1.0 - remove.infinity_mass) ** count
