"""Model adapters at the edge: PyTorch and scikit-learn models to and from a list of
NumPy arrays (the :data:`~secagg.Parameters` every strategy works on).

Neither library is imported by this module at import time: a function imports what
it needs when called, so ``import secagg`` never pulls in torch or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from secagg._strategy import Parameters

__all__ = [
    "torch_state_to_arrays",
    "arrays_to_torch_state",
    "get_torch_parameters",
    "set_torch_parameters",
    "get_sklearn_parameters",
    "set_sklearn_parameters",
    "init_sklearn_linear",
]

_LINEAR_ATTRS = ("coef_", "intercept_")


def _to_numpy(tensor: Any) -> np.ndarray:
    """A tensor as a NumPy copy; a dtype NumPy lacks (bfloat16) comes out as float32
    (the setters convert back to the model's dtype)."""
    t = tensor.detach().cpu()
    if str(t.dtype) == "torch.bfloat16":
        t = t.float()
    return np.array(t.numpy(), copy=True)


def torch_state_to_arrays(state_dict: Mapping[str, Any]) -> Parameters:
    """The tensors of a ``state_dict`` as NumPy arrays, in the dict's order (copies;
    bfloat16 tensors as float32)."""
    return [_to_numpy(t) for t in state_dict.values()]


def arrays_to_torch_state(arrays: Sequence[np.ndarray], like: Mapping[str, Any]) -> dict[str, Any]:
    """A ``state_dict`` with ``like``'s keys, dtypes and shapes holding ``arrays``.

    Raises:
        ValueError: the number of arrays or a shape does not match ``like``.
    """
    import torch

    if len(arrays) != len(like):
        raise ValueError(f"arrays must have {len(like)} entries like the state_dict, got {len(arrays)}")
    out: dict[str, Any] = {}
    for (key, ref), arr in zip(like.items(), arrays, strict=True):
        if tuple(np.shape(arr)) != tuple(ref.shape):
            raise ValueError(f"array for {key!r} must have shape {tuple(ref.shape)}, got {np.shape(arr)}")
        out[key] = torch.as_tensor(np.asarray(arr)).to(dtype=ref.dtype, device=ref.device)
    return out


def get_torch_parameters(module: Any, *, trainable_only: bool = False) -> Parameters:
    """A module's state as arrays: its whole ``state_dict`` (buffers such as batch-norm
    statistics included), or only ``named_parameters`` that require gradients."""
    if trainable_only:
        return [_to_numpy(p) for _, p in module.named_parameters() if p.requires_grad]
    return torch_state_to_arrays(module.state_dict())


def set_torch_parameters(module: Any, arrays: Sequence[np.ndarray], *,
                         trainable_only: bool = False) -> None:
    """Load arrays produced by :func:`get_torch_parameters` (same ``trainable_only``).

    Raises:
        ValueError: the number of arrays or a shape does not match the module.
    """
    import torch

    if not trainable_only:
        module.load_state_dict(arrays_to_torch_state(arrays, module.state_dict()), strict=True)
        return
    params = [p for _, p in module.named_parameters() if p.requires_grad]
    if len(arrays) != len(params):
        raise ValueError(f"arrays must have {len(params)} entries, got {len(arrays)}")
    with torch.no_grad():
        for p, arr in zip(params, arrays, strict=True):
            if tuple(np.shape(arr)) != tuple(p.shape):
                raise ValueError(f"array must have shape {tuple(p.shape)}, got {np.shape(arr)}")
            p.copy_(torch.as_tensor(np.asarray(arr), dtype=p.dtype))


def get_sklearn_parameters(model: Any) -> Parameters:
    """``[coef_, intercept_]`` of a fitted (or initialised) linear model, as copies.

    Raises:
        ValueError: the model has no ``coef_`` (not fitted nor initialised).
    """
    if not hasattr(model, "coef_"):
        raise ValueError(
            f"model must be fitted or initialised with init_sklearn_linear: "
            f"{type(model).__name__} has no coef_"
        )
    out = [np.array(model.coef_, dtype=np.float64)]
    if getattr(model, "fit_intercept", True):
        out.append(np.atleast_1d(np.array(model.intercept_, dtype=np.float64)))
    return out


def set_sklearn_parameters(model: Any, arrays: Sequence[np.ndarray]) -> None:
    """Set ``coef_`` (and ``intercept_`` when the model fits one) from arrays.

    Raises:
        ValueError: the number of arrays does not match ``fit_intercept``, or a shape
            differs from the model's current one.
    """
    expect = 2 if getattr(model, "fit_intercept", True) else 1
    if len(arrays) != expect:
        raise ValueError(f"arrays must be [coef_{', intercept_' if expect == 2 else ''}], "
                         f"got {len(arrays)} arrays")
    for attr, arr in zip(_LINEAR_ATTRS, arrays, strict=False):
        current = getattr(model, attr, None)
        if current is not None and np.ndim(current) == 0 and np.shape(arr) == (1,):
            # a single-output regressor (LinearRegression, Ridge, Lasso) keeps a scalar
            # intercept_, which get_sklearn_parameters sent as a 1-element array
            setattr(model, attr, float(np.asarray(arr, dtype=np.float64)[0]))
            continue
        if current is not None and np.shape(current) != np.shape(arr):
            raise ValueError(f"{attr} must have shape {np.shape(current)}, got {np.shape(arr)}")
        setattr(model, attr, np.array(arr, dtype=np.float64))
    if expect == 1:
        model.intercept_ = np.zeros(np.shape(model.coef_)[0]) if np.ndim(model.coef_) > 1 else 0.0


def init_sklearn_linear(model: Any, *, n_features: int, classes: Sequence[Any]) -> None:
    """Give an unfitted linear classifier zero parameters so that it can predict and
    be averaged before any client has trained (``coef_``, ``intercept_``, ``classes_``,
    ``n_features_in_``): one row per class, or one row for two classes, as
    scikit-learn's own fitted models have.

    Raises:
        ValueError: fewer than two classes or ``n_features`` < 1.
    """
    labels = np.asarray(classes)
    if labels.shape[0] < 2 or n_features < 1:
        raise ValueError(f"need >= 2 classes and n_features >= 1, got {labels.shape[0]} "
                         f"and {n_features}")
    rows = 1 if labels.shape[0] == 2 else labels.shape[0]
    model.classes_ = labels
    model.n_features_in_ = int(n_features)
    model.coef_ = np.zeros((rows, n_features))
    model.intercept_ = np.zeros(rows)
