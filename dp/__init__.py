"""Differential privacy for federated learning: mechanisms, clipping, accounting.

The core (mechanisms, clipping, accounting) is pure and imports nothing from
:mod:`secagg` or :mod:`transport`.
"""

__all__: list[str] = []
