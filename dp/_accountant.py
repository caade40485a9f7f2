"""The accountant contract: dry-run ``supports``, all-or-nothing ``compose``, a ledger.

Subclasses implement two hooks: ``_prepare(event)`` does all the work that can fail
(and raises :class:`~dp._errors.UnsupportedEventError`) without touching state, and
``_commit(prepared, count)`` folds the result in and cannot fail.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

from dp._errors import BudgetExceededError, DPValueError, UnsupportedEventError
from dp._events import DPEvent

__all__ = ["PrivacyAccountant", "check_delta", "check_epsilon"]


def check_delta(delta: float) -> float:
    """Validate a target delta: a real number in [0, 1)."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        raise DPValueError(f"delta must be a real number, got {type(delta).__name__}")
    if not (0.0 <= float(delta) < 1.0):
        raise DPValueError(f"delta must be in [0, 1), got {delta!r}")
    return float(delta)


def check_epsilon(epsilon: float) -> float:
    """Validate a target epsilon: a real number >= 0."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise DPValueError(f"epsilon must be a real number, got {type(epsilon).__name__}")
    if math.isnan(epsilon) or epsilon < 0.0:
        raise DPValueError(f"epsilon must be >= 0, got {epsilon!r}")
    return float(epsilon)


class PrivacyAccountant(abc.ABC):
    """Tracks the privacy spent by a sequence of DP events."""

    name: ClassVar[str] = "abstract"

    def __init__(self) -> None:
        self._ledger: list[tuple[DPEvent, int]] = []

    @property
    def ledger(self) -> tuple[tuple[DPEvent, int], ...]:
        """Every ``(event, count)`` composed so far, in order."""
        return tuple(self._ledger)

    def supports(self, event: DPEvent) -> bool:
        """Whether ``compose(event)`` would succeed; changes nothing."""
        try:
            self._prepare(event)
        except UnsupportedEventError:
            return False
        return True

    def compose(self, event: DPEvent, count: int = 1) -> PrivacyAccountant:
        """Add ``count`` runs of ``event``; returns ``self``.

        Raises :class:`~dp._errors.UnsupportedEventError` (and changes nothing) if any
        part of ``event`` is unsupported, :class:`~dp._errors.DPValueError` if
        ``count`` is not a positive int or ``event`` is not a DP event.
        """
        if not isinstance(event, DPEvent):
            raise DPValueError(f"event must be a DPEvent, got {type(event).__name__}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise DPValueError(f"count must be an int >= 1, got {count!r}")
        prepared = self._prepare(event)
        self._commit(prepared, count)
        self._ledger.append((event, count))
        return self

    def compose_within(
        self, event: DPEvent, count: int = 1, *, epsilon: float, delta: float
    ) -> PrivacyAccountant:
        """Like :meth:`compose`, but only if the total stays within (``epsilon``, ``delta``).

        Raises :class:`~dp._errors.BudgetExceededError` (and changes nothing) if the
        epsilon at ``delta`` after composing would exceed ``epsilon``; otherwise the
        same errors as :meth:`compose`.
        """
        epsilon = check_epsilon(epsilon)
        delta = check_delta(delta)
        saved = (self._state(), list(self._ledger))
        self.compose(event, count)
        spent = self.get_epsilon(delta)
        if spent > epsilon:
            self._restore(saved[0])
            self._ledger = saved[1]
            raise BudgetExceededError(epsilon=epsilon, delta=delta, spent_epsilon=spent)
        return self

    @abc.abstractmethod
    def _state(self) -> Any:
        """An opaque snapshot of the composed privacy (not the ledger)."""

    @abc.abstractmethod
    def _restore(self, state: Any) -> None:
        """Go back to a snapshot taken by :meth:`_state`."""

    @abc.abstractmethod
    def _prepare(self, event: DPEvent) -> Any:
        """Everything that may fail; must not change state."""

    @abc.abstractmethod
    def _commit(self, prepared: Any, count: int) -> None:
        """Fold a prepared event in ``count`` times; must not fail."""

    @abc.abstractmethod
    def get_epsilon(self, delta: float) -> float:
        """Smallest epsilon this accountant proves at ``delta``."""

    @abc.abstractmethod
    def get_delta(self, epsilon: float) -> float:
        """Smallest delta this accountant proves at ``epsilon``."""
