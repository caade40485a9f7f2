"""How a coordinator runs rounds: sizes, deadlines, limits."""

from __future__ import annotations

import dataclasses
import math

from transport._errors import ConfigError

__all__ = ["CoordinatorConfig"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorConfig:
    """How rounds are run. Deadlines are in seconds.

    ``clients_per_round`` clients are aggregated (a :class:`secagg.SamplingStrategy`
    whose ``num_fit_clients`` of the connected ones is smaller gets that many); ``ceil(aggregated *
    (1 + over_selection))`` are asked. A round starts when ``ceil(clients_per_round *
    (1 + over_selection))`` are connected, or after ``wait_for_clients`` with at least
    ``min_clients``; it fails when fewer than ``min(min_clients, aggregated)`` finish
    ``fit``.
    """

    rounds: int
    clients_per_round: int
    min_clients: int = 2
    over_selection: float = 0.0
    fit_deadline: float = 60.0
    stage_deadline: float = 30.0
    wait_for_clients: float = 30.0
    retry_pause: float = 1.0
    max_failed_rounds: int = 20
    max_message_bytes: int = 1 << 30
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ConfigError(f"rounds must be >= 0, got {self.rounds}")
        if self.min_clients < 1:
            raise ConfigError(f"min_clients must be >= 1, got {self.min_clients}")
        if self.clients_per_round < self.min_clients:
            raise ConfigError(
                f"clients_per_round ({self.clients_per_round}) must be >= min_clients "
                f"({self.min_clients})"
            )
        if not 0 <= self.over_selection <= 10:
            raise ConfigError(f"over_selection must be in [0, 10], got {self.over_selection}")
        for name in ("fit_deadline", "stage_deadline", "wait_for_clients", "retry_pause"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if self.max_failed_rounds < 1:
            raise ConfigError(f"max_failed_rounds must be >= 1, got {self.max_failed_rounds}")
        if self.max_message_bytes < 1024:
            raise ConfigError(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")

    @property
    def sample_size(self) -> int:
        return math.ceil(self.clients_per_round * (1 + self.over_selection) - 1e-9)
