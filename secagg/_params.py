"""The SecAgg+ neighbour-graph parameter finder: choose the degree k and threshold t.

The rules are those of Google's production SecAgg (google-parfait/federated-compute,
``fcp/secagg/server/graph_parameter_finder.cc`` and ``secagg_server.cc``), re-derived and
vectorised here in log space. With n clients, a corrupt fraction a and a dropout fraction d:

- Counts: ``A = floor((a + 1e-14) n)`` corrupt, ``D = floor((d + 1e-14) n)`` dropped,
  ``B = A + D`` bad, ``S = ceil((1 - d - 1e-14) n)`` surviving clients.
- The security budget ``2^-s`` is split over two events, ``2^-(s+1)`` each.
- Candidates ``k = 2, 4, 6, ...`` with ``k < n - 1``; the first k passing both checks wins:

  1. Connectivity. Removing bad clients disconnects a Harary graph only if two disjoint
     runs of k/2 ring-consecutive clients are all bad. Union bound over the
     ``n (n - k - 1) / 2`` pairs of runs::

         P_disc(k) = n (n - k - 1) / 2 * B! (n - k)! / (n! (B - k)!)    (0 if k > B)

     k fails if ``log P_disc(k) >= -(s + 1) ln 2``.
  2. Threshold. With X ~ Hypergeometric(n, A, k) the corrupt neighbours of a client and
     Z ~ Hypergeometric(n, S, k) its surviving neighbours::

         t1 = min{t : P(X > t) < 2^-(s+1) / n}
         t2 = min{z : P(Z <= z) >= 2^-c / n}
         semi-malicious: t1 <- ceil((t1 + k - 1.25) / 2)     (so that 2t - k > t1)

     k fails if ``t2 <= t1``; otherwise ``t = max(t1 + 1, 2)``.

- No even k below n - 1 passes: fcp's server falls back to the complete graph (original
  SecAgg) with ``t = ceil(n (1 - d))``, accepted only if ``t > ceil(a n)`` (semi-honest) or
  ``t > ceil((n + a n) / 2)`` (semi-malicious).

Shares are counted as fcp counts them: every client also holds a share of its own secrets
(a self-edge), so a Harary client has k + 1 share holders and a complete-graph client n.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from secagg._errors import ConfigurationError
from secagg._hypergeom import log_factorial_table, log_pmf, lower_quantile, upper_quantile

__all__ = [
    "ThreatModel", "GraphParameters", "find_parameters", "check_complete_graph", "MAX_CLIENTS",
]

#: fcp's upper bound on the number of clients (its tests stop at one million).
MAX_CLIENTS = 1_000_000
_SMALL = 1e-14  # fcp's guard against rounding counts in the insecure direction
_LN2 = math.log(2.0)
_FIRST_CHUNK = 32
_MAX_CHUNK = 512
_CONNECTIVITY_BLOCK = 4096  # candidates per connectivity evaluation


class ThreatModel(enum.Enum):
    """Who the server is. ``SEMI_HONEST`` is fcp's CURIOUS_SERVER (and its NONE when
    ``corrupt == 0``); ``SEMI_MALICIOUS`` is SEMI_MALICIOUS_SERVER."""

    SEMI_HONEST = "semi-honest"
    SEMI_MALICIOUS = "semi-malicious"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GraphParameters:
    """A neighbour graph and Shamir threshold for one round of n clients.

    ``neighbours`` is the degree k of the Harary graph (even, ``2 <= k <= n - 2``) or
    ``n - 1`` for the complete graph. ``threshold`` is the number of shares needed to
    reconstruct; as in fcp each client also holds a share of its own secrets, so
    ``threshold <= neighbours + 1``. ``minimum_survivors`` is ``ceil(n (1 - d))``: the
    server should abort a round with fewer survivors. The ``log2_*`` fields are the
    achieved bounds (``nan`` when not computed, ``-inf`` when impossible):
    ``log2_disconnection`` that corrupt and dropped clients disconnect the graph,
    ``log2_corrupt_reconstruction`` that some client has enough corrupt neighbours to
    reconstruct its secrets (``t``, or ``2t - k`` for a semi-malicious server), and
    ``log2_too_few_survivors`` that some client has fewer than t surviving neighbours.
    The last can miss the correctness target where fcp raises t to its Shamir minimum
    of 2 (tiny n with dropouts, e.g. n = 10, d = 0.33: k = 4, t = 2, about 2^-1.6).

    Raises:
        ConfigurationError: the values cannot describe a graph (see the messages).
    """

    clients: int
    neighbours: int
    threshold: int
    threat: ThreatModel = ThreatModel.SEMI_HONEST
    minimum_survivors: int = 0
    log2_disconnection: float = math.nan
    log2_corrupt_reconstruction: float = math.nan
    log2_too_few_survivors: float = math.nan

    def __post_init__(self) -> None:
        n, k, t = self.clients, self.neighbours, self.threshold
        if n < 2:
            raise ConfigurationError(f"clients must be at least 2, got {n}")
        if k != n - 1 and (k < 2 or k % 2 or k > n - 2):
            raise ConfigurationError(
                f"neighbours must be even with 2 <= neighbours <= clients - 2, or "
                f"clients - 1 for the complete graph; got {k} for {n} clients"
            )
        if not 2 <= t <= k + 1:
            raise ConfigurationError(
                f"threshold must satisfy 2 <= threshold <= neighbours + 1 = {k + 1}, got {t}"
            )
        if not 0 <= self.minimum_survivors <= n:
            raise ConfigurationError(
                f"minimum_survivors must be in [0, clients], got {self.minimum_survivors}"
            )

    @property
    def complete(self) -> bool:
        """True for the complete graph (original SecAgg), False for a Harary graph."""
        return self.neighbours == self.clients - 1


# ------------------------------------------------------------------------ search


def _log_disconnection(lf: NDArray[np.float64], n: int, bad: int,
                       ks: NDArray[np.int64]) -> NDArray[np.float64]:
    """Natural log of fcp's union bound that removing ``bad`` clients disconnects H(k, n)."""
    pairs = math.log(n) + np.log((n - ks - 1).astype(np.float64)) - _LN2
    possible = ks <= bad
    kk = np.where(possible, ks, 0)
    lp = pairs + lf[bad] + lf[n - kk] - lf[n] - lf[bad - kk]
    return np.where(possible, lp, -np.inf)


@dataclasses.dataclass(frozen=True, slots=True)
class _Instance:
    n: int
    corrupt: int  # A
    bad: int  # A + D
    surviving: int  # S
    threat: ThreatModel
    log_q_security: float  # ln(2^-(s+1) / n)
    log_q_correctness: float  # ln(2^-c / n)
    log_disconnect_limit: float  # ln(2^-(s+1))


def _thresholds(inst: _Instance, lf: NDArray[np.float64],
                ks: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(t1, t2) per k: t must lie in (t1, t2]; t1 already adjusted for the threat."""
    t1 = upper_quantile(lf, inst.n, inst.corrupt, ks, inst.log_q_security)
    t2 = lower_quantile(lf, inst.n, inst.surviving, ks, inst.log_q_correctness)
    if inst.threat is ThreatModel.SEMI_MALICIOUS:
        t1 = np.ceil((t1 + ks - 1.25) / 2.0).astype(np.int64)
    return t1, t2


def _connected_candidates(inst: _Instance,
                          lf: NDArray[np.float64]) -> Iterator[NDArray[np.int64]]:
    """Blocks, ascending, of the even k < n - 1 that pass the connectivity check."""
    step = 2 * _CONNECTIVITY_BLOCK
    for start in range(2, inst.n - 1, step):
        ks = np.arange(start, min(start + step, inst.n - 1), 2, dtype=np.int64)
        yield ks[_log_disconnection(lf, inst.n, inst.bad, ks) < inst.log_disconnect_limit]


def _search(inst: _Instance) -> tuple[int, int] | None:
    """The first even k < n - 1 passing both checks, with its threshold; None if none.

    Candidates are tried in growing chunks so that the work stays near the answer."""
    lf = log_factorial_table(inst.n)
    chunk = _FIRST_CHUNK
    for connected in _connected_candidates(inst, lf):
        start = 0
        while start < connected.size:
            block = connected[start:start + chunk]
            t1, t2 = _thresholds(inst, lf, block)
            ok = np.flatnonzero(t2 > t1)
            if ok.size:
                i = int(ok[0])
                return int(block[i]), max(int(t1[i]) + 1, 2)
            start, chunk = start + block.size, min(2 * chunk, _MAX_CHUNK)
    return None


def _log2_bounds(inst: _Instance, k: int, t: int) -> tuple[float, float, float]:
    """Achieved log2 bounds (disconnection, corrupt reconstruction, too few survivors)."""
    lf = log_factorial_table(inst.n)
    kk = np.array([k], dtype=np.int64)
    disc = float(_log_disconnection(lf, inst.n, inst.bad, kk)[0]) / _LN2
    x = np.arange(k + 1, dtype=np.int64)[None, :]
    corrupt = log_pmf(lf, inst.n, inst.corrupt, kk, x)[0]
    alive = log_pmf(lf, inst.n, inst.surviving, kk, x)[0]
    need = t if inst.threat is ThreatModel.SEMI_HONEST else max(2 * t - k, 0)
    log_n = math.log(inst.n)
    bad_event = (log_n + float(np.logaddexp.reduce(corrupt[need:]))) / _LN2
    fail = (log_n + float(np.logaddexp.reduce(alive[:t]))) / _LN2
    return disc, bad_event, fail


# ---------------------------------------------------------------- public function


def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0.0 <= value < 1.0:
        raise ConfigurationError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def _check_int(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def _check_threat(threat: ThreatModel | str) -> ThreatModel:
    try:
        return threat if isinstance(threat, ThreatModel) else ThreatModel(threat)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in ThreatModel)
        raise ConfigurationError(f"threat must be one of {choices}, got {threat!r}") from None


def _check_feasible(corrupt: float, dropout: float, threat: ThreatModel) -> None:
    if threat is ThreatModel.SEMI_HONEST and corrupt + dropout > 0.9:
        raise ConfigurationError(
            f"semi-honest threat model needs corrupt + dropout <= 0.9, got "
            f"{corrupt} + {dropout}"
        )
    if threat is ThreatModel.SEMI_MALICIOUS and corrupt + 2 * dropout > 0.9:
        raise ConfigurationError(
            f"semi-malicious threat model needs corrupt + 2 * dropout <= 0.9, got "
            f"{corrupt} + 2 * {dropout}"
        )


def check_complete_graph(*, clients: int, threshold: int, dropout: float, corrupt: float,
                         threat: ThreatModel | str = ThreatModel.SEMI_HONEST) -> None:
    """Check a hand-picked threshold for the complete graph, as fcp's
    ``CheckFullGraphParameters`` does (the complete-graph fallback of :func:`find_parameters`
    uses ``threshold = ceil(clients * (1 - dropout))``).

    Raises:
        ConfigurationError: ``threshold`` not in [2, clients], below
            ``ceil(clients * (1 - dropout))``, or not above ``ceil(corrupt * clients)``
            (semi-honest) or ``ceil((clients + corrupt * clients) / 2)`` (semi-malicious);
            or an argument out of range as in :func:`find_parameters`.
    """
    n = _check_int("clients", clients, 2, MAX_CLIENTS)
    d = _check_fraction("dropout", dropout)
    a = _check_fraction("corrupt", corrupt)
    model = _check_threat(threat)
    t = _check_int("threshold", threshold, 2, n)
    survivors = math.ceil((1.0 - d) * n)
    if t < survivors:
        raise ConfigurationError(
            f"threshold must be at least ceil(clients * (1 - dropout)) = {survivors} for the "
            f"complete graph, got {t}"
        )
    if model is ThreatModel.SEMI_HONEST:
        bound, rule = math.ceil(a * n), "ceil(corrupt * clients)"
    else:
        bound, rule = math.ceil((n + a * n) / 2), "ceil((clients + corrupt * clients) / 2)"
    if t <= bound:
        raise ConfigurationError(
            f"threshold must exceed {rule} = {bound} for the complete graph against a "
            f"{model.value} server, got {t}"
        )


def _complete_graph(n: int, corrupt: float, dropout: float, threat: ThreatModel,
                    survivors: int) -> GraphParameters:
    """fcp's fallback: the complete graph with threshold ``ceil(n (1 - d))``."""
    try:
        check_complete_graph(clients=n, threshold=max(survivors, 2), dropout=dropout,
                             corrupt=corrupt, threat=threat)
        if survivors < 2:
            raise ConfigurationError(f"threshold must be at least 2, got {survivors}")
    except ConfigurationError as error:
        raise ConfigurationError(
            f"no Harary graph fits {n} clients, and the complete-graph fallback with "
            f"threshold ceil(clients * (1 - dropout)) = {survivors} fails: {error}; lower "
            f"dropout or corrupt, or add clients"
        ) from None
    inf = -math.inf
    return GraphParameters(clients=n, neighbours=n - 1, threshold=survivors, threat=threat,
                           minimum_survivors=survivors, log2_disconnection=inf,
                           log2_corrupt_reconstruction=inf, log2_too_few_survivors=inf)


def find_parameters(
    *, clients: int, dropout: float, corrupt: float,
    threat: ThreatModel | str = ThreatModel.SEMI_HONEST,
    security_bits: int = 40, correctness_bits: int = 20,
) -> GraphParameters:
    """Choose the neighbour count k and threshold t as Google's production SecAgg does.

    ``clients`` is n, ``dropout`` and ``corrupt`` the expected fractions of clients that
    drop out and that collude with the server. The smallest even k whose random Harary
    graph stays connected and admits a threshold with ``security_bits`` of statistical
    security and ``correctness_bits`` of correctness is returned (module docstring for
    the formulas); when none exists below n - 1, the complete graph.

    Raises:
        ConfigurationError: ``clients`` outside [2, 1,000,000]; ``dropout`` or ``corrupt``
            outside [0, 1); ``corrupt + dropout > 0.9`` (semi-honest) or
            ``corrupt + 2 * dropout > 0.9`` (semi-malicious); bits outside [1, 256];
            unknown ``threat``; or no graph at all (the complete-graph threshold
            ``ceil(n (1 - dropout))`` would not exceed the corrupt clients' reach).
    """
    n = _check_int("clients", clients, 2, MAX_CLIENTS)
    d = _check_fraction("dropout", dropout)
    a = _check_fraction("corrupt", corrupt)
    model = _check_threat(threat)
    s = _check_int("security_bits", security_bits, 1, 256)
    c = _check_int("correctness_bits", correctness_bits, 1, 256)
    _check_feasible(a, d, model)
    survivors = math.ceil(n * (1.0 - d))
    n_corrupt = math.floor((a + _SMALL) * n)
    inst = _Instance(
        n=n, corrupt=n_corrupt, bad=n_corrupt + math.floor((d + _SMALL) * n),
        surviving=math.ceil((1.0 - d - _SMALL) * n), threat=model,
        log_q_security=-(s + 1) * _LN2 - math.log(n),
        log_q_correctness=-c * _LN2 - math.log(n),
        log_disconnect_limit=-(s + 1) * _LN2,
    )
    found = _search(inst)
    if found is None:
        return _complete_graph(n, a, d, model, survivors)
    k, t = found
    disc, bad_event, fail = _log2_bounds(inst, k, t)
    return GraphParameters(clients=n, neighbours=k, threshold=t, threat=model,
                           minimum_survivors=survivors, log2_disconnection=disc,
                           log2_corrupt_reconstruction=bad_event,
                           log2_too_few_survivors=fail)

