"""Synthetic 8x8 digits rendered from a hand-made font: public data for the server's prior.

The bundled digits are UCI's optdigits: handwritten digits scanned into 32x32 binary
bitmaps, then counted in 4x4 blocks, so each of the 8x8 pixels is 0..16 (the dataset's
documentation). This module draws digits from a 5x7 pixel font typed in below (two or three
styles per digit), distorts each one at random (size, aspect, rotation, shear, position,
a smooth elastic wobble, stroke thickness), binarises it at 32x32 and block-counts it the
same way. No real image goes in: the data costs no privacy, and the server may train on
it as much as it likes.

Alone, a softmax regression trained on these classifies the real digits at about 0.70;
as the starting point of the private training it is worth a few points of accuracy (see
the README).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

SIZE = 32  # optdigits' bitmap side; 4x4 blocks make the 8x8 image

# Each glyph: 7 rows of 5 pixels ("1" ink). Two or three common ways to write each digit.
_FONT: dict[int, list[tuple[str, ...]]] = {
    0: [("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
        ("01110", "10001", "10001", "10001", "10001", "10001", "01110")],
    1: [("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
        ("00100", "01100", "10100", "00100", "00100", "00100", "00100"),
        ("00010", "00110", "00010", "00010", "00010", "00010", "00010")],
    2: [("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
        ("01110", "10001", "00001", "00110", "01000", "10000", "11111")],
    3: [("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
        ("01110", "10001", "00001", "00110", "00001", "10001", "01110")],
    4: [("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
        ("10010", "10010", "10010", "11111", "00010", "00010", "00010")],
    5: [("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
        ("11111", "10000", "10000", "11110", "00001", "00001", "11110")],
    6: [("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
        ("00100", "01000", "10000", "11110", "10001", "10001", "01110")],
    7: [("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
        ("11111", "00001", "00001", "00010", "00100", "00100", "00100"),
        ("11111", "00010", "00100", "01110", "00100", "00100", "00100")],
    8: [("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
        ("01110", "10001", "01010", "00100", "01010", "10001", "01110")],
    9: [("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
        ("01110", "10001", "10001", "01111", "00001", "00001", "00001")],
}
_GLYPHS = {digit: [np.array([[float(c) for c in row] for row in style]) for style in styles]
           for digit, styles in _FONT.items()}


def _render(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One distorted ``digit`` as 64 block counts (0..16)."""
    styles = _GLYPHS[digit]
    glyph = gaussian_filter(np.pad(styles[rng.integers(len(styles))], 1), rng.uniform(0.5, 0.9))
    height = rng.uniform(26, 32)  # optdigits scales each digit to fill the box
    width = height * rng.uniform(0.5, 0.85) * (rng.uniform(0.4, 0.8) if digit == 1 else 1.0)
    rotation, shear = rng.normal(0, 0.12), rng.normal(0, 0.2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    y0 = yy - SIZE / 2 - rng.normal(0, 1.0)
    x0 = xx - SIZE / 2 - rng.normal(0, 1.5)
    cos, sin = np.cos(rotation), np.sin(rotation)
    yr, xr = cos * y0 - sin * x0, sin * y0 + cos * x0
    xr = xr - shear * yr
    # bitmap pixel -> glyph coordinates (the 7x5 glyph sits at rows 1..7, columns 1..5 of the pad)
    gy = yr / height * 7 + 4.0 + gaussian_filter(rng.normal(0, 1, (SIZE, SIZE)), 6) * 3
    gx = xr / width * 5 + 3.0 + gaussian_filter(rng.normal(0, 1, (SIZE, SIZE)), 6) * 3
    ink = map_coordinates(glyph, [gy, gx], order=1, cval=0.0)
    bitmap = ink > rng.uniform(0.25, 0.5) * ink.max()  # the threshold sets the stroke width
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).reshape(-1).astype(np.float64)


def synthetic_digits(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic digits as ``(images, labels)``: images ``(n, 64)`` with values 0..16 like
    ``sklearn.datasets.load_digits().data``, labels uniform over 0..9. Deterministic in ``seed``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    return np.stack([_render(int(d), rng) for d in labels]), labels
