"""L2 clipping of model updates: flat, per layer, fixed and adaptive.

An *update* is a non-empty sequence of arrays (one per layer), as a client's
``fit`` produces. Clipping returns a frozen :class:`ClipResult`; the arrays keep
their shapes and floating dtypes (integer arrays become float64).

Adaptive clipping follows Andrew, Thakkar, McMahan and Ramaswamy, "Differentially
Private Learning with Adaptive Clipping" (NeurIPS 2021): each round every client
reports whether its update norm was at most the current clip C; the server adds
Gaussian noise to the count, forms the noisy fraction b and moves C geometrically,
``C <- C * exp(-eta * (b - target_quantile))``, so that C tracks the target quantile
of the update norms. :func:`next_clip` is that update as a pure function,
:func:`adaptive_clip` one round of it over a batch of updates, and
:class:`AdaptiveClipper` a thin object that keeps the current C between rounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dp._argcheck import check_int, check_open_unit, check_positive, check_rng
from dp._errors import DPValueError

__all__ = [
    "ClipResult",
    "clip_l2",
    "clip_l2_per_layer",
    "AdaptiveClipConfig",
    "AdaptiveClipResult",
    "next_clip",
    "adaptive_clip",
    "update_noise_multiplier",
    "AdaptiveClipper",
]

Update = Sequence[Any]
_COUNT_SENSITIVITY = 0.5  # a client's indicator is centred to {-1/2, +1/2}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipResult:
    """A clipped update and what clipping did to it.

    ``norms`` are the L2 norms before clipping and ``clips`` the bounds applied:
    one of each for flat clipping, one per layer for per-layer clipping.
    ``clipped`` is ``True`` when some array was scaled down.
    """

    update: tuple[np.ndarray, ...]
    norms: tuple[float, ...]
    clips: tuple[float, ...]
    clipped: bool

    @property
    def norm(self) -> float:
        """The L2 norm of the whole update before clipping."""
        return math.hypot(*self.norms)


def clip_l2(update: Update, *, clip: float) -> ClipResult:
    """Scale the whole update so that its joint L2 norm is at most ``clip``.

    An update whose norm is already at most ``clip`` is returned unchanged (as
    copies); otherwise every array is multiplied by the same factor, so the
    direction is kept. The result's norm never exceeds ``clip``, also after
    floating-point rounding.

    Raises:
        DPValueError: ``update`` is empty or holds NaN/inf or non-numeric entries;
            ``clip`` is not finite and > 0.
    """
    c = check_positive("clip", clip)
    arrays = _as_arrays(update)
    norm = _norm(arrays)
    scaled, did = _scale_to(arrays, norm, c)
    return ClipResult(update=scaled, norms=(norm,), clips=(c,), clipped=did)


def clip_l2_per_layer(
    update: Update, *, clip: float | Sequence[float] | np.ndarray
) -> ClipResult:
    """Clip every layer (array) to its own L2 bound.

    ``clip`` is either one bound per layer, or a single total bound C that is
    split evenly as ``C / sqrt(L)`` over the L layers, so that the whole update's
    norm is at most C as for :func:`clip_l2`.

    Raises:
        DPValueError: ``update`` is empty or holds NaN/inf; ``clip`` (or one of its
            entries) is not finite and > 0; the number of bounds is not the number
            of layers.
    """
    arrays = _as_arrays(update)
    if isinstance(clip, Sequence | np.ndarray):
        if len(clip) != len(arrays):
            raise DPValueError(
                f"clip must have one bound per layer ({len(arrays)}), got {len(clip)}"
            )
        clips = tuple(check_positive(f"clip[{i}]", c) for i, c in enumerate(clip))
    else:
        total = check_positive("clip", clip)
        clips = (total / math.sqrt(len(arrays)),) * len(arrays)
    out: list[np.ndarray] = []
    norms: list[float] = []
    any_clipped = False
    for a, c in zip(arrays, clips, strict=True):
        n = _norm((a,))
        (scaled,), did = _scale_to((a,), n, c)
        out.append(scaled)
        norms.append(n)
        any_clipped = any_clipped or did
    return ClipResult(update=tuple(out), norms=tuple(norms), clips=clips, clipped=any_clipped)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveClipConfig:
    """Parameters of quantile-based adaptive clipping (Andrew et al. 2021).

    ``target_quantile`` is the fraction of updates that should fall under the clip
    (the paper recommends 0.5); ``learning_rate`` is eta of the geometric update
    (0.2 in the paper); ``count_noise_std`` is sigma_b, the standard deviation of
    the Gaussian noise on the count of unclipped clients (the paper uses about
    m/20 for m clients per round).

    Raises:
        DPValueError: from ``__post_init__`` when ``initial_clip`` or
            ``learning_rate`` or ``count_noise_std`` is not finite and > 0, or
            ``target_quantile`` is not in (0, 1).
    """

    initial_clip: float
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_noise_std: float

    def __post_init__(self) -> None:
        check_positive("initial_clip", self.initial_clip)
        check_open_unit("target_quantile", self.target_quantile)
        check_positive("learning_rate", self.learning_rate)
        check_positive("count_noise_std", self.count_noise_std)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveClipResult:
    """One round of adaptive clipping: the clipped updates and what was spent.

    ``clip`` is the bound applied this round and ``next_clip`` the one for the next
    round. ``noisy_fraction`` is the released (noised) fraction of updates whose
    norm was at most ``clip``; it is the only data-dependent value that leaves the
    round besides the updates. What it spent: a Gaussian release of a count with
    sensitivity 1/2 (centred indicators) and noise ``count_noise_std``, that is a
    Gaussian mechanism with noise multiplier ``count_noise_multiplier`` (give this
    to the accountant, or fold it into the update noise with
    :func:`update_noise_multiplier`).
    """

    updates: tuple[tuple[np.ndarray, ...], ...]
    norms: tuple[float, ...]
    clip: float
    next_clip: float
    noisy_fraction: float
    count_noise_std: float
    count_noise_multiplier: float


def next_clip(
    *,
    clip: float,
    unclipped_count: int,
    num_clients: int,
    config: AdaptiveClipConfig,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """The geometric clip update of Andrew et al. from the count of unclipped clients.

    Returns ``(next_clip, noisy_fraction)`` with
    ``noisy_fraction = (unclipped_count + N(0, count_noise_std^2)) / num_clients`` and
    ``next_clip = clip * exp(-learning_rate * (noisy_fraction - target_quantile))``.

    Raises:
        TypeError: ``rng`` is not a Generator.
        DPValueError: ``clip`` is not finite and > 0; ``num_clients`` < 1;
            ``unclipped_count`` is not in [0, num_clients].
    """
    c = check_positive("clip", clip)
    m = check_int("num_clients", num_clients, minimum=1)
    k = check_int("unclipped_count", unclipped_count, minimum=0)
    if k > m:
        raise DPValueError(f"unclipped_count must be <= num_clients ({m}), got {k}")
    check_rng(rng)
    # Centred indicators (b - 1/2) have sensitivity 1/2; adding m/2 back is public.
    noisy = (k - m / 2.0 + rng.normal(0.0, config.count_noise_std)) / m + 0.5
    new = c * math.exp(-config.learning_rate * (noisy - config.target_quantile))
    return new, noisy


def adaptive_clip(
    updates: Sequence[Update],
    *,
    clip: float,
    config: AdaptiveClipConfig,
    rng: np.random.Generator,
) -> AdaptiveClipResult:
    """Clip every client's update (flat L2) to ``clip`` and compute the next clip.

    Raises:
        TypeError: ``rng`` is not a Generator.
        DPValueError: ``updates`` is empty; an update is empty or holds NaN/inf;
            the updates do not all have the same shapes; ``clip`` is not finite
            and > 0.
    """
    c = check_positive("clip", clip)
    check_rng(rng)
    if len(updates) == 0:
        raise DPValueError("updates must hold at least one client's update")
    shapes = None
    results: list[ClipResult] = []
    for i, u in enumerate(updates):
        r = clip_l2(u, clip=c)
        these = tuple(a.shape for a in r.update)
        if shapes is None:
            shapes = these
        elif these != shapes:
            raise DPValueError(f"updates[{i}] has shapes {these}, expected {shapes} like updates[0]")
        results.append(r)
    unclipped = sum(1 for r in results if r.norm <= c)
    new, noisy = next_clip(
        clip=c, unclipped_count=unclipped, num_clients=len(results), config=config, rng=rng
    )
    return AdaptiveClipResult(
        updates=tuple(r.update for r in results),
        norms=tuple(r.norm for r in results),
        clip=c,
        next_clip=new,
        noisy_fraction=noisy,
        count_noise_std=config.count_noise_std,
        count_noise_multiplier=config.count_noise_std / _COUNT_SENSITIVITY,
    )


def update_noise_multiplier(*, noise_multiplier: float, count_noise_std: float) -> float:
    """The update noise multiplier that leaves room for the count release.

    Andrew et al. (Theorem 1): releasing the noised sum of updates with noise
    multiplier z_delta together with the noised count (sensitivity 1/2, std
    sigma_b) costs as much as one Gaussian mechanism with multiplier z when
    ``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``.

    Raises:
        DPValueError: an argument is not finite and > 0, or ``count_noise_std`` is
            too small (2 sigma_b <= z): the count alone would spend the whole budget.
    """
    z = check_positive("noise_multiplier", noise_multiplier)
    sb = check_positive("count_noise_std", count_noise_std)
    rest = z ** -2 - (2.0 * sb) ** -2
    if not rest > 0.0:
        raise DPValueError(
            f"count_noise_std must be > noise_multiplier / 2 = {z / 2:g}, got {sb:g}"
        )
    return rest ** -0.5


class AdaptiveClipper:
    """Keeps the current clip between rounds; the math is :func:`adaptive_clip`."""

    __slots__ = ("_config", "_clip")

    def __init__(self, config: AdaptiveClipConfig) -> None:
        self._config = config
        self._clip = float(config.initial_clip)

    @property
    def clip(self) -> float:
        """The clip the next call to :meth:`step` applies."""
        return self._clip

    @property
    def config(self) -> AdaptiveClipConfig:
        """The configuration given at construction."""
        return self._config

    def restore(self, clip: float) -> None:
        """Continue from a clip saved earlier (a restarted server's :attr:`clip`).

        Raises:
            DPValueError: ``clip`` is not finite and > 0.
        """
        self._clip = check_positive("clip", clip)

    def step(self, updates: Sequence[Update], *, rng: np.random.Generator) -> AdaptiveClipResult:
        """Clip a round's updates with the current clip, then move the clip.

        Raises:
            See :func:`adaptive_clip`; on error the clip is left unchanged.
        """
        result = adaptive_clip(updates, clip=self._clip, config=self._config, rng=rng)
        self._clip = result.next_clip
        return result

    def update(self, *, unclipped_count: int, num_clients: int, rng: np.random.Generator) -> float:
        """Move the clip from a count aggregated elsewhere; returns the noisy fraction.

        For federated use where the server only learns the (securely summed)
        count of clients whose norm was at most :attr:`clip`.

        Raises:
            See :func:`next_clip`; on error the clip is left unchanged.
        """
        self._clip, noisy = next_clip(
            clip=self._clip,
            unclipped_count=unclipped_count,
            num_clients=num_clients,
            config=self._config,
            rng=rng,
        )
        return noisy


def _as_arrays(update: Update) -> tuple[np.ndarray, ...]:
    if isinstance(update, np.ndarray) or not isinstance(update, Sequence):
        raise DPValueError("update must be a sequence of arrays (one per layer)")
    if len(update) == 0:
        raise DPValueError("update must hold at least one array, got an empty sequence")
    out = []
    for i, a in enumerate(update):
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise DPValueError(f"update[{i}] must hold real numbers, got dtype {arr.dtype}")
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise DPValueError(f"update[{i}] must be finite (no NaN or inf)")
        out.append(arr)
    if all(a.size == 0 for a in out):
        raise DPValueError("update must hold at least one value, got only empty arrays")
    return tuple(out)


def _norm(arrays: Sequence[np.ndarray]) -> float:
    flats = [a.ravel().astype(np.float64, copy=False) for a in arrays]
    with np.errstate(over="ignore"):
        total = sum(_sumsq(f) for f in flats)
    if math.isfinite(total):
        return math.sqrt(total)
    big = max(float(np.max(np.abs(f))) for f in flats if f.size)  # squares overflowed
    return big * math.sqrt(sum(_sumsq(f / big) for f in flats))


def _sumsq(f: np.ndarray) -> float:
    # Not np.dot: threaded BLAS spins badly on a loaded machine, and NumPy's
    # pairwise summation is more accurate.
    return float(np.sum(np.square(f)))


def _scale_to(
    arrays: tuple[np.ndarray, ...], norm: float, clip: float
) -> tuple[tuple[np.ndarray, ...], bool]:
    """Copies of ``arrays`` scaled to norm <= clip (exactly, after rounding)."""
    if norm <= clip:
        return tuple(a.copy() for a in arrays), False
    factor = clip / norm
    # Casting back to a narrow dtype can round the norm up by a few ulps: shrink by
    # that much and retry (at most a couple of times in practice).
    ulp = max(float(np.finfo(a.dtype).eps) for a in arrays)
    for _ in range(16):
        out = tuple((a.astype(np.float64) * factor).astype(a.dtype) for a in arrays)
        got = _norm(out)
        if got <= clip:
            return out, True
        factor *= (clip / got) * (1.0 - 4.0 * ulp)
    raise RuntimeError("clipping did not converge")  # pragma: no cover
