"""A tiny app for the CLI tests: 4 parameters, a fit that takes a little while."""

from __future__ import annotations

import time

import numpy as np

import secagg


class _Avg:
    needs_individual_updates = False

    def configure_fit(self, server_round, parameters):  # type: ignore[no-untyped-def]
        return {}

    def aggregate_fit(self, server_round, parameters, aggregate):  # type: ignore[no-untyped-def]
        return secagg.unflatten(secagg.flatten(parameters) + aggregate.mean, parameters)


def server_app():  # type: ignore[no-untyped-def]
    return _Avg(), [np.zeros(4)]


def client_app(client_id: int):  # type: ignore[no-untyped-def]
    def fit(parameters, config):  # type: ignore[no-untyped-def]
        time.sleep(0.4)
        return [parameters[0] + 0.25], 1 + client_id, {}

    return fit


def budget_server_app():  # type: ignore[no-untyped-def]
    """FedAvg with client-side DP whose budget allows one round, and evaluation (exact,
    outside the guarantee, so that the test can check the reported numbers)."""
    import dp

    def make(budget):  # type: ignore[no-untyped-def]
        return dp.ClientSideFixedClipping(
            secagg.FedAvg(metrics=("acc",), min_evaluate_clients=2), noise_multiplier=1.0,
            clipping_norm=1.0, num_clients=2, epsilon_budget=budget, evaluation="unprotected")

    probe = make(None)
    return make((probe.epsilon_after(1) + probe.epsilon_after(2)) / 2), [np.zeros(4)]


class _Evaluating:
    def __init__(self, client_id: int) -> None:
        self.client_id = client_id

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        return [parameters[0] + 0.25], 1 + self.client_id, {}

    def evaluate(self, parameters, config):  # type: ignore[no-untyped-def]
        return float(self.client_id), 1.0, {"acc": 0.5}


def evaluating_client_app(client_id: int):  # type: ignore[no-untyped-def]
    return _Evaluating(client_id)


def ddp_server_app():  # type: ignore[no-untyped-def]
    """FedAvg under distributed DP (clients add discrete Gaussian noise under SecAgg+)."""
    import dp

    return dp.DistributedDP(secagg.FedAvg(fraction_evaluate=0.0), noise_multiplier=1.0,
                            clipping_norm=1.0, clients_per_round=3), [np.zeros(4)]
