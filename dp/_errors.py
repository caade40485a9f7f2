"""The one exception tree of :mod:`dp`.

``DPError`` is the root of everything :mod:`dp` raises on purpose. Argument errors
(``DPValueError`` and its subclasses) also subclass :class:`ValueError`, and their
message names the argument and the rule it broke, so the command line maps them to
exit code 2 without knowing about this package.
"""

from __future__ import annotations

__all__ = [
    "DPError",
    "DPValueError",
    "UnsupportedEventError",
    "BudgetExceededError",
    "CalibrationError",
]


class DPError(Exception):
    """Root of every error raised by :mod:`dp`."""


class DPValueError(DPError, ValueError):
    """An argument breaks a stated rule; the message names the argument and the rule."""


class UnsupportedEventError(DPError, ValueError):
    """An accountant cannot account for this DP event; ``event`` is the offending event."""

    def __init__(self, event: object, accountant: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"{accountant} accountant does not support {event!r}{detail}")
        self.event = event
        self.accountant = accountant


class BudgetExceededError(DPError, ValueError):
    """Spending would exceed a privacy budget of (``epsilon``, ``delta``).

    ``stops_training`` tells training loops (``secagg.run_federated``, the coordinator)
    that this is the end of training, not a failure: keep the model, stop.
    """

    stops_training = True

    def __init__(self, *, epsilon: float, delta: float, spent_epsilon: float) -> None:
        super().__init__(
            f"privacy budget exceeded: epsilon {spent_epsilon:.6g} > budget {epsilon:.6g} "
            f"at delta {delta:.3g}"
        )
        self.epsilon = epsilon
        self.delta = delta
        self.spent_epsilon = spent_epsilon


class CalibrationError(DPError, ValueError):
    """No parameter reaches the requested target (for example, an unreachable epsilon)."""
