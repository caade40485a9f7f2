"""The Strategy contract: how a round is configured and how an aggregate becomes a model.

A strategy never sees one client's update. Each sampled client runs
``fit(parameters, config) -> (new_parameters, num_examples, metrics)``; its runtime
flattens the *update* ``new - old`` into one float vector, applies the update
transforms the config names (clipping, local noise; see :func:`apply_update_transforms`),
and hands it with weight ``num_examples`` to the aggregation backend. The strategy
receives only the :class:`~secagg.AggregateResult` (weighted sum and total weight
of the updates) and returns the new global parameters.

Configs are flat mappings of scalars, sent to clients as they are. Keys starting with
``"blindsum."`` are reserved for the library (transforms and their parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from secagg._backend import AggregateResult

__all__ = [
    "Parameters",
    "Scalar",
    "Config",
    "Strategy",
    "UpdateTransform",
    "flatten",
    "unflatten",
    "register_update_transform",
    "apply_update_transforms",
    "TRANSFORMS_KEY",
]

Parameters = list[np.ndarray]
Scalar = bool | int | float | str
Config = Mapping[str, Scalar]
UpdateTransform = Callable[[np.ndarray, Config, np.random.Generator], np.ndarray]

TRANSFORMS_KEY = "blindsum.transforms"
_transforms: dict[str, UpdateTransform] = {}


@runtime_checkable
class Strategy(Protocol):
    """Configures rounds and turns aggregates into new global parameters.

    ``needs_individual_updates`` is ``True`` for strategies (median, Krum, trimmed
    mean) that cannot work on a sum; secure aggregation refuses them.
    """

    needs_individual_updates: ClassVar[bool]

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        """The config every sampled client receives with the parameters this round."""
        ...

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        """New global parameters from the old ones and the aggregate of the updates."""
        ...


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate arrays into one flat ``float64`` vector (the order is kept)."""
    if not arrays:
        return np.zeros(0)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def unflatten(vector: np.ndarray, like: Sequence[np.ndarray]) -> Parameters:
    """Split a flat vector back into arrays shaped and typed like ``like``.

    Raises:
        ValueError: the vector's length is not the total size of ``like``.
    """
    sizes = [int(np.size(a)) for a in like]
    if vector.ndim != 1 or vector.shape[0] != sum(sizes):
        raise ValueError(f"vector must have length {sum(sizes)}, got shape {vector.shape}")
    out: Parameters = []
    offset = 0
    for a, size in zip(like, sizes, strict=True):
        arr = np.asarray(a)
        out.append(vector[offset : offset + size].reshape(arr.shape).astype(arr.dtype))
        offset += size
    return out


def register_update_transform(name: str, transform: UpdateTransform) -> None:
    """Make ``transform`` available to clients whose config lists ``name``.

    Raises:
        ValueError: ``name`` is empty, contains a comma, or is already registered.
    """
    if not name or "," in name:
        raise ValueError(f"transform name must be non-empty without commas, got {name!r}")
    if name in _transforms and _transforms[name] is not transform:
        raise ValueError(f"update transform {name!r} is already registered")
    _transforms[name] = transform


def apply_update_transforms(
    update: np.ndarray, config: Config, rng: np.random.Generator
) -> np.ndarray:
    """Apply, in order, the transforms named by ``config["blindsum.transforms"]``.

    Raises:
        ValueError: the config names a transform this process does not know.
    """
    names = str(config.get(TRANSFORMS_KEY, "") or "")
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            transform = _transforms[name]
        except KeyError:
            raise ValueError(f"config asks for unknown update transform {name!r}") from None
        update = transform(update, config, rng)
    return update

