"""Argument checks shared by the mechanisms, clipping and distributed DP.

Every check raises :class:`~dp.DPValueError` (or ``TypeError`` for a wrong type)
with a message that names the argument and states the rule.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dp._errors import DPValueError

Size = int | tuple[int, ...]


def check_rng(rng: Any) -> np.random.Generator:
    """Return ``rng`` if it is a NumPy Generator.

    Raises:
        TypeError: ``rng`` is not a :class:`numpy.random.Generator` (the legacy
            ``RandomState`` and the global NumPy functions are refused).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is finite and > 0.

    Raises:
        DPValueError: it is not a real number, is NaN or infinite, or is <= 0.
    """
    v = _real(name, value)
    if not v > 0.0:
        raise DPValueError(f"{name} must be > 0, got {value!r}")
    return v


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is finite and >= 0.

    Raises:
        DPValueError: it is not a real number, is NaN or infinite, or is < 0.
    """
    v = _real(name, value)
    if not v >= 0.0:
        raise DPValueError(f"{name} must be >= 0, got {value!r}")
    return v


def check_open_unit(name: str, value: Any) -> float:
    """Return ``value`` as a float if it lies strictly between 0 and 1.

    Raises:
        DPValueError: it is not a real number in (0, 1).
    """
    v = _real(name, value)
    if not 0.0 < v < 1.0:
        raise DPValueError(f"{name} must be in (0, 1), got {value!r}")
    return v


def check_int(name: str, value: Any, *, minimum: int) -> int:
    """Return ``value`` if it is an integer (not a bool) >= ``minimum``.

    Raises:
        DPValueError: it is not an integer or is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DPValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise DPValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_size(size: Any) -> tuple[int, ...]:
    """Return ``size`` as a shape tuple of non-negative integers.

    Raises:
        DPValueError: ``size`` is not a non-negative int or a tuple of them.
    """
    dims = (size,) if isinstance(size, int | np.integer) else size
    if not isinstance(dims, tuple) or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 0 for s in dims
    ):
        raise DPValueError(f"size must be a non-negative int or a tuple of them, got {size!r}")
    return tuple(int(s) for s in dims)


def check_finite_array(name: str, value: Any) -> np.ndarray:
    """Return ``value`` as a float64 array if every entry is finite.

    Raises:
        DPValueError: it is not numeric, or holds NaN or infinite entries.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DPValueError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise DPValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr64 = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr64)):
        raise DPValueError(f"{name} must be finite (no NaN or inf)")
    return arr64


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DPValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise DPValueError(f"{name} must be finite, got {value!r}")
    return v
