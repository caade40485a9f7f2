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
