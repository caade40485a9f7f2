"""Synthetic 8x8 digits drawn with a pen: public data for the server's prior.

The bundled digits are UCI's optdigits: handwritten digits scanned into 32x32 binary
bitmaps, then counted in 4x4 blocks, so each of the 8x8 pixels is 0..16 (the dataset's
documentation). This module writes digits as vector strokes (lines, arcs and quadratic
Bezier curves in a unit box), several common ways per digit (7 with and without a
crossbar, 9 with a straight or a hooked tail, 4 open or closed, 1 with a flag and a base,
2 with and without a loop, ...). Each one is distorted at random (stroke offsets, a smooth
warp, aspect, slant, rotation), then normalised the way the bundled bitmaps are: the
height fills the 32 rows, the width is scaled to 16-22 columns (a narrow digit such as a
1 is stretched at most twofold), and the pen is as wide as it takes to ink about 313 of
the 1,024 pixels (in the bundled digits the ink count hardly depends on the digit: mean
313, standard deviation 34). The bitmap is block-counted the same way. No real image goes
in, so the server may train on the data as much as it likes; the ink count and the width
range are two averages read off the bundled digits, a leak the example's epsilon does not
count (its README says so, with the tuning).

Alone, a softmax regression trained on these classifies the real digits at about 0.86;
as the starting point of the private training it is worth a few points of accuracy (see
the README).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

SIZE = 32  # optdigits' bitmap side; 4x4 blocks make the 8x8 image
_HI = 2  # the pen is drawn on a grid this many times finer
_WIDTH = (16.0, 22.0)  # columns a digit is scaled to
_STRETCH = 2.0  # a narrow digit is widened at most this much relative to its height
_INK = (313.0, 34.0)  # inked pixels of 1,024: mean and standard deviation


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> np.ndarray:
    """Points of an elliptic arc from angle ``a0`` to ``a1`` (degrees; y points down, so
    270 is the top and 90 the bottom)."""
    a = np.radians(np.linspace(a0, a1, max(8, int(abs(a1 - a0) / 6))))
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)


def _line(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, dtype=np.float64)


def _bez(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float]) -> np.ndarray:
    """Points of the quadratic Bezier curve from ``p0`` to ``p2`` pulled toward ``p1``."""
    t = np.linspace(0, 1, 20)[:, None]
    a, b, c = (np.array(p, dtype=np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t**2 * c


def _path(*parts: np.ndarray) -> np.ndarray:
    return np.vstack(parts)


# Each style: a list of strokes (pen down to pen up), each a polyline in the unit box
# (x to the right, y down). Several common ways to write each digit.
_STYLES: dict[int, list[list[np.ndarray]]] = {
    0: [[_arc(0.5, 0.5, 0.5, 0.5, -90, 270)],
        [_arc(0.5, 0.5, 0.5, 0.5, -60, 300)]],
    1: [[_line((0.5, 0), (0.5, 1))],
        [_line((0.15, 0.3), (0.55, 0), (0.55, 1))],
        [_line((0.15, 0.3), (0.55, 0), (0.55, 1)), _line((0.15, 1), (0.95, 1))],
        [_line((0.3, 0.15), (0.55, 0), (0.55, 1))],
        [_line((0.2, 0.25), (0.55, 0), (0.5, 1)), _line((0.1, 1), (0.9, 1))],
        [_line((0.0, 0.45), (0.55, 0.0), (0.5, 1.0))],
        [_line((0.0, 0.45), (0.55, 0.0), (0.5, 1.0)), _line((0.15, 1), (0.9, 1))]],
    2: [[_path(_arc(0.5, 0.3, 0.48, 0.3, 200, 360), _bez((0.98, 0.3), (0.9, 0.6), (0.0, 1.0)),
               _line((0.0, 1.0), (1.15, 1.0)))],
        [_path(_arc(0.5, 0.3, 0.48, 0.3, 200, 360), _bez((0.98, 0.3), (0.9, 0.6), (0.08, 0.95)),
               _line((0.08, 0.95), (0.3, 0.76), (0.34, 0.93), (0.2, 1.0), (1.15, 1.0)))],
        [_path(_arc(0.5, 0.3, 0.48, 0.3, 180, 380), _line((0.95, 0.45), (0.0, 1.0), (1.15, 0.95)))],
        [_path(_arc(0.5, 0.22, 0.3, 0.22, 190, 360), _bez((0.8, 0.22), (0.75, 0.6), (0.1, 0.95)),
               _line((0.1, 0.95), (0.3, 0.8), (0.35, 0.95), (0.25, 1.0), (1.1, 1.0)))],
        [_path(_arc(0.5, 0.22, 0.3, 0.22, 190, 360), _bez((0.8, 0.22), (0.75, 0.6), (0.05, 1.0)),
               _line((0.05, 1.0), (1.1, 1.0)))]],
    3: [[_arc(0.5, 0.25, 0.45, 0.25, 200, 450), _arc(0.5, 0.72, 0.5, 0.28, 270, 490)],
        [_line((0.0, 0.0), (1.0, 0.0), (0.4, 0.42)), _arc(0.5, 0.7, 0.5, 0.3, 250, 490)],
        [_path(_arc(0.5, 0.25, 0.45, 0.25, 200, 420), _line((0.7, 0.48), (0.35, 0.48))),
         _arc(0.5, 0.72, 0.5, 0.28, 270, 490)]],
    4: [[_line((0.6, 0.0), (0.0, 0.65), (1.0, 0.65)), _line((0.7, 0.15), (0.7, 1.0))],
        [_line((0.1, 0.0), (0.0, 0.6), (1.0, 0.6)), _line((0.75, 0.0), (0.75, 1.0))],
        [_line((0.7, 0.0), (0.0, 0.65), (1.0, 0.65)), _line((0.7, 0.0), (0.7, 1.0))],
        [_line((0.65, 0.0), (0.0, 0.7), (1.0, 0.7)), _line((0.65, 0.0), (0.65, 1.0))],
        [_line((0.35, 0.0), (0.0, 0.6), (1.0, 0.6)), _line((0.75, 0.35), (0.6, 1.0))],
        [_line((0.1, 0.0), (0.0, 0.7), (0.9, 0.65)), _line((0.9, 0.2), (0.5, 1.0))],
        [_line((0.2, 0.0), (0.05, 0.6), (1.0, 0.55)), _line((0.7, 0.3), (0.65, 1.0))]],
    5: [[_line((0.95, 0.0), (0.15, 0.0), (0.1, 0.45)), _arc(0.45, 0.68, 0.5, 0.32, 235, 490)],
        [_line((0.15, 0.0), (0.1, 0.42)), _line((0.15, 0.0), (0.95, 0.0)),
         _arc(0.45, 0.7, 0.5, 0.3, 225, 480)]],
    6: [[_path(_bez((0.85, 0.0), (0.05, 0.15), (0.05, 0.72)), _arc(0.5, 0.72, 0.45, 0.28, 180, 540))],
        [_path(_line((0.7, 0.0), (0.05, 0.7)), _arc(0.5, 0.72, 0.45, 0.28, 180, 540))],
        [_path(_bez((0.9, 0.05), (0.0, 0.0), (0.05, 0.75)), _arc(0.5, 0.75, 0.45, 0.25, 180, 520))]],
    7: [[_line((0.0, 0.2), (0.1, 0.0), (1.0, 0.05), (0.3, 1.0)), _line((0.05, 0.55), (0.8, 0.5))],
        [_line((0.0, 0.0), (1.0, 0.0), (0.35, 1.0)), _line((0.1, 0.5), (0.85, 0.5))],
        [_line((0.0, 0.0), (1.0, 0.0), (0.35, 1.0)), _line((0.1, 0.5), (0.85, 0.5))],
        [_line((0.0, 0.15), (0.05, 0.0), (1.0, 0.0), (0.3, 1.0)), _line((0.25, 0.5), (0.9, 0.5))],
        [_line((0.0, 0.0), (1.0, 0.0), (0.35, 1.0))],
        [_path(_line((0.0, 0.0), (1.0, 0.0)), _bez((1.0, 0.0), (0.45, 0.4), (0.45, 1.0)))]],
    8: [[_arc(0.5, 0.25, 0.4, 0.25, 0, 360), _arc(0.5, 0.73, 0.5, 0.27, 0, 360)],
        [_arc(0.5, 0.27, 0.45, 0.27, 0, 360), _arc(0.5, 0.75, 0.45, 0.25, 0, 360)],
        [_arc(0.6, 0.25, 0.3, 0.25, 0, 360), _arc(0.4, 0.74, 0.33, 0.26, 0, 360)],
        [_arc(0.55, 0.24, 0.25, 0.24, 0, 360), _arc(0.45, 0.73, 0.3, 0.27, 0, 360)]],
    9: [[_arc(0.45, 0.22, 0.45, 0.22, 0, 360), _line((0.9, 0.22), (0.85, 1.0))],
        [_arc(0.45, 0.22, 0.45, 0.22, 0, 360), _bez((0.9, 0.25), (0.95, 1.05), (0.15, 0.95))],
        [_arc(0.45, 0.22, 0.45, 0.22, 0, 360),
         _path(_bez((0.9, 0.25), (0.95, 1.0), (0.4, 1.0)), _line((0.4, 1.0), (0.1, 0.85)))],
        [_arc(0.45, 0.2, 0.35, 0.2, 0, 360), _bez((0.8, 0.25), (0.95, 1.0), (0.0, 0.92))],
        [_arc(0.5, 0.2, 0.45, 0.2, 0, 360),
         _path(_bez((0.95, 0.25), (0.95, 1.0), (0.4, 1.0)), _line((0.4, 1.0), (0.1, 0.8)))]],
}


def _densify(stroke: np.ndarray, step: float = 0.015) -> np.ndarray:
    """The polyline resampled so that consecutive points are at most ``step`` apart."""
    out = [stroke[:1]]
    for p, d in zip(stroke[:-1], np.diff(stroke, axis=0), strict=True):
        k = max(1, int(np.ceil(np.hypot(*d) / step)))
        out.append(p + d * (np.arange(1, k + 1)[:, None] / k))
    return np.vstack(out)


_DENSE = {digit: [[_densify(s) for s in style] for style in styles]
          for digit, styles in _STYLES.items()}


def _pen_path(digit: int, rng: np.random.Generator) -> np.ndarray:
    """The points the pen passes through for one distorted ``digit`` (unit-box scale)."""
    styles = _DENSE[digit]
    strokes = styles[rng.integers(len(styles))]
    p = np.vstack([s + rng.normal(0, 0.03, 2) for s in strokes])  # strokes a little off
    x, y = p[:, 0] - 0.5, p[:, 1] - 0.5
    c = rng.normal(0, 0.05, 6)  # a smooth warp
    x, y = (x + c[0] * x * y + c[1] * y * y + c[2] * np.sin(np.pi * y),
            y + c[3] * x * y + c[4] * x * x + c[5] * np.sin(np.pi * x))
    x = x * rng.uniform(0.55, 0.85)
    rotation, shear = rng.normal(0, 0.1), rng.normal(0, 0.2)
    x = x - shear * y
    cos, sin = np.cos(rotation), np.sin(rotation)
    return np.stack([cos * x - sin * y, sin * x + cos * y], 1)


def _render(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One distorted ``digit`` as 64 block counts (0..16)."""
    p = _pen_path(digit, rng)
    lo, up = p.min(axis=0), p.max(axis=0)
    w, h = np.maximum(up - lo, 1e-6)
    ink = int(np.clip(rng.normal(*_INK), 150, 600))
    width = rng.uniform(*_WIDTH)
    pen = 4.0
    for _ in range(2):  # the pen's width depends on the scale, the scale on the pen's width
        sy = (SIZE - pen) / h
        sx = min((width - pen) / w, _STRETCH * sy)
        q = (p - (lo + up) / 2) * np.array([sx, sy]) + SIZE / 2
        length = np.sum(np.hypot(*np.diff(q, axis=0).T).clip(max=1.0))  # jumps between strokes: 1
        pen = min(ink / max(length, 1.0), 12.0)
    hi = SIZE * _HI
    ij = np.clip(np.floor(q * _HI).astype(int), 0, hi - 1)
    canvas = np.ones((hi, hi), dtype=bool)
    canvas[ij[:, 1], ij[:, 0]] = False
    # each pixel's distance from the pen's path; the ``ink`` nearest are inked
    dist = distance_transform_edt(canvas).reshape(SIZE, _HI, SIZE, _HI).mean(axis=(1, 3)).ravel()
    bitmap = np.zeros(SIZE * SIZE, dtype=bool)
    bitmap[np.argsort(dist, kind="stable")[:ink]] = True
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).reshape(-1).astype(np.float64)


def synthetic_digits(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic digits as ``(images, labels)``: images ``(n, 64)`` with values 0..16 like
    ``sklearn.datasets.load_digits().data``, labels uniform over 0..9. Deterministic in ``seed``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    return np.stack([_render(int(d), rng) for d in labels]), labels
