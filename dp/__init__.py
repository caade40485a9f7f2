"""Differential privacy for federated learning: mechanisms, clipping, accounting.

The core (mechanisms, clipping, accounting) is pure and imports nothing from
:mod:`secagg` or :mod:`transport`.
"""

from dp._central import CentralAdaptiveClipping, CentralFixedClipping
from dp._client_wrappers import ClientSideAdaptiveClipping, LocalDifferentialPrivacy
from dp._wrappers import ClientSideFixedClipping, PrivacyWrapper

__all__: list[str] = [
    "PrivacyWrapper",
    "ClientSideFixedClipping",
    "ClientSideAdaptiveClipping",
    "LocalDifferentialPrivacy",
    "CentralFixedClipping",
    "CentralAdaptiveClipping",
]
