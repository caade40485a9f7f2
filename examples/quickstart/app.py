"""The quickstart's model and data: logistic regression in NumPy on synthetic shards.

``server_app()`` gives the coordinator its strategy and initial parameters:
:class:`secagg.FedAvg` (``new = old + mean update``), which also asks the clients to
evaluate each new model (loss and accuracy, averaged by examples);
``client_app(client_id)`` gives a client its ``fit`` and ``evaluate``.
"""

from __future__ import annotations

import numpy as np

import secagg
from secagg import Config, Parameters

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


def server_app() -> tuple[secagg.FedAvg, Parameters]:
    # 80% of the connected clients are aggregated; the coordinator asks 25% more (over-selection)
    strategy = secagg.FedAvg(fraction_fit=0.8, metrics=("accuracy",),
                             on_fit_config_fn=lambda server_round: {"epochs": 5, "lr": 0.5})
    return strategy, [np.zeros(FEATURES), np.zeros(1)]


class _Client:
    """One client's shard: ``fit`` trains on it, ``evaluate`` measures on it."""

    def __init__(self, client_id: int) -> None:
        self.n = 50 + (client_id * 37) % 100  # 50..149 examples: weights differ per client
        self.x, self.y = make_data(1000 + client_id, self.n)

    def fit(self, parameters: Parameters, config: Config
            ) -> tuple[Parameters, int, dict[str, float]]:
        params = [p.copy() for p in parameters]
        loss = 0.0
        for _ in range(int(config.get("epochs", 1))):
            loss, grads = loss_and_grad(params, self.x, self.y)
            params = [p - float(config.get("lr", 0.1)) * g
                      for p, g in zip(params, grads, strict=True)]
        return params, self.n, {"loss": loss}

    def evaluate(self, parameters: Parameters, config: Config
                 ) -> tuple[float, int, dict[str, float]]:
        loss, _ = loss_and_grad(parameters, self.x, self.y)
        return loss, self.n, {"accuracy": accuracy(parameters, self.x, self.y)}


def client_app(client_id: int) -> _Client:
    return _Client(client_id)
