"""Quantisation of float vectors into words modulo 2^b, and back.

A client clips each coordinate to ``[-clip, clip]``, multiplies by ``scale`` and
rounds stochastically (``floor(v + U)``, unbiased) with an injected generator, then
multiplies by its integer weight ``w`` and appends ``w`` itself, so one secure sum
yields both ``sum(w_i * x_i)`` and ``sum(w_i)``. Signed integers are stored in two's
complement modulo 2^b; NumPy's unsigned wrap-around is the modular reduction.

The sum cannot overflow when ``clients * max_weight * (clip * scale + 1) < 2^(b-1)``:
every partial sum then stays in the centred range ``(-2^(b-1), 2^(b-1))``. A
configuration that breaks this is refused with the parameter to change.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from secagg._errors import ConfigurationError, QuantizationOverflowError

__all__ = ["Quantizer", "word_dtype"]


def word_dtype(modulus_bits: int) -> np.dtype:
    """The smallest unsigned NumPy word that holds values modulo ``2^modulus_bits``."""
    if not 2 <= modulus_bits <= 64:
        raise ConfigurationError(f"modulus_bits must be in 2..64, got {modulus_bits}")
    for dt in (np.uint16, np.uint32, np.uint64):
        if modulus_bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    raise AssertionError("unreachable")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Quantizer:
    """How ``num_clients`` float vectors become words that sum without overflow.

    Build one with :meth:`plan`; the constructor validates and refuses overflow.
    """

    num_clients: int
    clip: float
    scale: float
    modulus_bits: int
    max_weight: int = 1

    def __post_init__(self) -> None:
        if self.num_clients < 1:
            raise ConfigurationError(f"num_clients must be >= 1, got {self.num_clients}")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ConfigurationError(f"clip must be a positive number, got {self.clip}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigurationError(f"scale must be a positive number, got {self.scale}")
        if self.max_weight < 1:
            raise ConfigurationError(f"max_weight must be >= 1, got {self.max_weight}")
        word_dtype(self.modulus_bits)
        if not math.isfinite(self.clip * self.scale):
            raise QuantizationOverflowError(f"clip {self.clip} times scale {self.scale} overflows a float: "
                                            "lower scale or clip")
        worst = self.num_clients * self.max_weight * (math.floor(self.clip * self.scale) + 1)
        if worst >= 1 << (self.modulus_bits - 1):
            raise QuantizationOverflowError(
                f"the sum of {self.num_clients} inputs of weight up to {self.max_weight} in "
                f"[-{self.clip}, {self.clip}] at scale {self.scale:g} can reach {worst}, which "
                f"overflows modulus 2^{self.modulus_bits}: lower scale (max "
                f"{self.max_scale(self.num_clients, self.clip, self.max_weight, self.modulus_bits):g})"
                f", clip or max_weight, or raise modulus_bits"
            )

    @staticmethod
    def max_scale(num_clients: int, clip: float, max_weight: int, modulus_bits: int) -> float:
        """The largest scale that cannot overflow (may be < 1 for tiny moduli).

        Capped at 2^53 levels per clip range, beyond which float64 inputs carry no more
        precision.
        """
        per_client = ((1 << (modulus_bits - 1)) - 1) // (num_clients * max_weight) - 1
        return min(per_client, 1 << 53) / clip

    @classmethod
    def plan(
        cls,
        *,
        num_clients: int,
        clip: float = 1.0,
        max_weight: int = 1,
        modulus_bits: int = 32,
        scale: float | None = None,
    ) -> Quantizer:
        """The finest quantiser for these parameters (or check a given ``scale``).

        Raises:
            QuantizationOverflowError: no positive scale fits, or ``scale`` overflows.
        """
        if scale is None:
            if num_clients < 1 or max_weight < 1 or not clip > 0:
                # let __post_init__ produce the precise message
                return cls(num_clients=num_clients, clip=clip, scale=1.0,
                           modulus_bits=modulus_bits, max_weight=max_weight)
            word_dtype(modulus_bits)
            scale = cls.max_scale(num_clients, clip, max_weight, modulus_bits)
            if scale <= 0:
                raise QuantizationOverflowError(
                    f"modulus 2^{modulus_bits} cannot hold the sum of {num_clients} inputs of "
                    f"weight up to {max_weight}: raise modulus_bits or lower max_weight"
                )
        return cls(num_clients=num_clients, clip=clip, scale=scale,
                   modulus_bits=modulus_bits, max_weight=max_weight)

    @property
    def dtype(self) -> np.dtype:
        return word_dtype(self.modulus_bits)

    @property
    def step(self) -> float:
        """The worst-case rounding error of one coordinate of one client (1 / scale)."""
        return 1.0 / self.scale

    def quantize(self, vector: np.ndarray, weight: int, rng: np.random.Generator) -> np.ndarray:
        """Words ``[w * round(clip(x) * scale)..., w]`` of length ``len(vector) + 1``.

        Raises:
            ValueError: ``weight`` is not an integer in ``1..max_weight``.
        """
        if int(weight) != weight or not 1 <= weight <= self.max_weight:
            raise ValueError(f"weight must be an integer in 1..{self.max_weight}, got {weight}")
        scaled = np.clip(vector, -self.clip, self.clip) * self.scale
        scaled += rng.random(scaled.shape[0])
        words = np.empty(scaled.shape[0] + 1, dtype=np.int64)
        np.floor(scaled, out=scaled)
        words[:-1] = scaled
        words[:-1] *= int(weight)
        words[-1] = int(weight)
        return words.astype(self.dtype)

    def dequantize(self, total: np.ndarray) -> tuple[np.ndarray, float]:
        """``(sum(w_i * x_i), sum(w_i))`` from the modular sum of quantised words."""
        centred = self.centre(total)
        return centred[:-1] / self.scale, float(centred[-1])

    def centre(self, total: np.ndarray) -> np.ndarray:
        """Words modulo 2^b as signed integers in ``[-2^(b-1), 2^(b-1))``."""
        b = self.modulus_bits
        words = total.astype(np.uint64) & np.uint64((1 << b) - 1) if b < 64 else total.astype(np.uint64)
        signed = words.astype(np.int64)  # wraps for b == 64
        if b < 64:
            signed[signed >= 1 << (b - 1)] -= 1 << b
        return signed
