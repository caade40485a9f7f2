"""Client-side bounds on the SecAgg+ round parameters a server chooses.

The server picks the threshold ``t``, the degree ``k`` and each client's neighbours; a
client checks only that they are consistent (``2 <= t <= k + 1``, ``t - 1 <=`` its
neighbours ``<= k``). A :class:`ClientPolicy` lets a client that does not trust the server
with that choice refuse a weaker round, before it sends anything.

The defaults refuse nothing a legitimate round can hold: every output of
:func:`~secagg.find_parameters` (either threat model, n from 2 to 10^5, any dropout and
corrupt fractions it accepts) and every complete graph has ``t >= 2`` and ``k >= 1``, and
the smallest ``t / (k + 1)`` seen in a sweep is 0.0046 (n = 10^5, 89% dropout, nobody
corrupt: k = 436, t = 2), so no positive fraction is safe by default. A deployment knows
its own range and should say so (``docs/transport.md``, "Bounding the round's
parameters").
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from secagg._messages import RoundConfig

__all__ = ["ClientPolicy"]


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if int(value) < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientPolicy:
    """The weakest SecAgg+ round a client joins; anything weaker it refuses.

    Parameters:
        min_threshold: the smallest threshold ``t`` (shares needed to recover one of
            this client's secrets). The protocol's own minimum, 2, by default.
        min_threshold_fraction: the smallest ``t / (k + 1)``, the share of the client's
            ``k + 1`` share holders (its neighbours and itself) that must collude to
            recover its secrets. 0 by default.
        min_neighbours: the fewest neighbours ``k`` the round may give this client,
            checked twice: the round's ``k`` when it starts, and the neighbours whose keys
            the server forwards (neighbours that dropped before sharing keys are not
            forwarded, so leave room for dropouts). An honest server's graph isolates a
            client only among many; the fewer its neighbours, the fewer the server must
            corrupt to learn its input. 1 by default.
        max_neighbours: the most neighbours ``k`` (``None``: no bound). Each neighbour
            costs the client two X25519 agreements, a share ciphertext and a mask
            expansion, so this bounds the work and memory a server can demand.
        colluding_neighbours: ``c``, the colluding neighbours the client wants the
            consistency check of an authenticated round to withstand: the round must be
            authenticated and ``2 t - (k + 1) > c`` (see :mod:`secagg._client`; ``c = 0``
            asks for a strict majority). ``None`` (default): no such requirement.

    There is no bound on the dimension: a client refuses any ``dim`` other than its
    update's length before it allocates anything (and the modulus is at most 2^64).

    Raises:
        TypeError: a bound of the wrong type.
        ValueError: a bound out of range (named, with the rule).
    """

    min_threshold: int = 2
    min_threshold_fraction: float = 0.0
    min_neighbours: int = 1
    max_neighbours: int | None = None
    colluding_neighbours: int | None = None

    def __post_init__(self) -> None:
        _check_int("min_threshold", self.min_threshold, 2)
        _check_int("min_neighbours", self.min_neighbours, 1)
        if self.max_neighbours is not None:
            _check_int("max_neighbours", self.max_neighbours, self.min_neighbours)
        if self.colluding_neighbours is not None:
            _check_int("colluding_neighbours", self.colluding_neighbours, 0)
        fraction = self.min_threshold_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
            raise TypeError(f"min_threshold_fraction must be a number, got {type(fraction).__name__}")
        if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
            raise ValueError(f"min_threshold_fraction must be in [0, 1], got {fraction}")

    def check_identity(self, identity: object | None) -> None:
        """Refuse a policy that bounds authenticated rounds for a client without an identity key.

        Raises:
            ValueError: ``colluding_neighbours`` is set and ``identity`` is ``None``.
        """
        if self.colluding_neighbours is not None and identity is None:
            raise ValueError("policy.colluding_neighbours bounds authenticated rounds, which "
                             "need an identity key")

    def refusal(self, config: RoundConfig) -> str | None:
        """Why a client under this policy refuses ``config``, or ``None`` if it joins."""
        t, k = config.threshold, config.neighbours
        if t < self.min_threshold:
            return f"threshold {t} is below min_threshold {self.min_threshold}"
        if t < self.min_threshold_fraction * (k + 1):
            return (f"threshold fraction t / (k + 1) = {t} / {k + 1} = {t / (k + 1):.4g} is "
                    f"below min_threshold_fraction {self.min_threshold_fraction}")
        if k < self.min_neighbours:
            return f"neighbours {k} is below min_neighbours {self.min_neighbours}"
        if self.max_neighbours is not None and k > self.max_neighbours:
            return f"neighbours {k} is above max_neighbours {self.max_neighbours}"
        c = self.colluding_neighbours
        if c is not None and not config.authenticated:
            return (f"colluding_neighbours {c} needs an authenticated round (its consistency "
                    "check); this round is not authenticated")
        if c is not None and not 2 * t - (k + 1) > c:
            return (f"2t - (k + 1) = {2 * t - (k + 1)} (t = {t}, k = {k}) does not exceed "
                    f"colluding_neighbours {c}: the consistency check would not stop equivocation")
        return None

    def neighbours_refusal(self, count: int) -> str | None:
        """Why the client refuses ``count`` forwarded neighbours, or ``None``."""
        if count < self.min_neighbours:
            return f"the server forwards {count} neighbours, below min_neighbours {self.min_neighbours}"
        return None
