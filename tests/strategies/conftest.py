"""Shared helpers for the strategy tests: tiny linear-model clients and aggregation."""

from __future__ import annotations

import numpy as np
import pytest

import secagg


class MeanClient:
    """A client whose "training" moves the model towards its own target vector."""

    def __init__(self, target: np.ndarray, num_examples: int, step: float = 0.5) -> None:
        self.target = target
        self.num_examples = num_examples
        self.step = step

    def fit(self, parameters, config):
        (w,) = parameters
        return [w + self.step * (self.target - w)], self.num_examples, {}

    def evaluate(self, parameters, config):
        (w,) = parameters
        loss = float(np.sum((w - self.target) ** 2))
        return loss, self.num_examples, {"accuracy": 1.0 / (1.0 + loss), "examples": float(self.num_examples)}


def aggregate(updates: dict[int, tuple[np.ndarray, float]], backend=None, rng=None):
    backend = backend or secagg.PlainBackend()
    rng = rng or np.random.default_rng(0)
    dim = next(iter(updates.values()))[0].shape[0]
    return secagg.aggregate_inprocess(backend, updates, round_id=1, dim=dim, rng=rng)


@pytest.fixture
def clients():
    rng = np.random.default_rng(42)
    return {cid: MeanClient(3.0 + rng.normal(size=5), num_examples=int(rng.integers(1, 50))) for cid in range(8)}
