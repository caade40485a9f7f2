"""The quickstart's model and data: logistic regression in NumPy on synthetic shards.

``server_app()`` gives the coordinator its strategy and initial parameters;
``client_app(client_id)`` gives a client its ``fit``. The strategy here is a few
lines of federated averaging over the aggregate (``new = old + mean update``), kept
private to the example; the library's strategies live in :mod:`secagg`.
"""

from __future__ import annotations

import numpy as np

import secagg
from secagg import AggregateResult, Config, Parameters

FEATURES = 20
_TRUE = np.random.default_rng(12345).normal(size=FEATURES + 1)


def make_data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and 0/1 labels from one fixed logistic model (each shard shifted a bit)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=rng.normal(scale=0.3), size=(n, FEATURES))
    logits = x @ _TRUE[:-1] + _TRUE[-1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    return x, y


def loss_and_grad(params: Parameters, x: np.ndarray, y: np.ndarray
                  ) -> tuple[float, list[np.ndarray]]:
    w, b = params
    p = 1 / (1 + np.exp(-(x @ w + b[0])))
    eps = 1e-12
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    err = (p - y) / len(y)
    return loss, [x.T @ err, np.array([err.sum()])]


def accuracy(params: Parameters, x: np.ndarray, y: np.ndarray) -> float:
    w, b = params
    return float(np.mean(((x @ w + b[0]) > 0) == (y > 0.5)))


class _MeanUpdate:
    """FedAvg over an aggregate: add the example-weighted mean of the updates."""

    needs_individual_updates = False

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        return {"epochs": 5, "lr": 0.5}

    def aggregate_fit(self, server_round: int, parameters: Parameters,
                      aggregate: AggregateResult) -> Parameters:
        return secagg.unflatten(secagg.flatten(parameters) + aggregate.mean, parameters)


def server_app() -> tuple[_MeanUpdate, Parameters]:
    return _MeanUpdate(), [np.zeros(FEATURES), np.zeros(1)]


def client_app(client_id: int):  # type: ignore[no-untyped-def]
    n = 50 + (client_id * 37) % 100  # 50..149 examples: weights differ per client
    x, y = make_data(1000 + client_id, n)

    def fit(parameters: Parameters, config: Config) -> tuple[Parameters, int, dict[str, float]]:
        params = [p.copy() for p in parameters]
        loss = 0.0
        for _ in range(int(config.get("epochs", 1))):
            loss, grads = loss_and_grad(params, x, y)
            params = [p - float(config.get("lr", 0.1)) * g for p, g in zip(params, grads, strict=True)]
        return params, n, {"loss": loss}

    return fit
