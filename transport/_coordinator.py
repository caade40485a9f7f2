"""The coordinator: client registry, admission, message dispatch and the round loop.

Transports (gRPC, in-process) own the sockets and queues. For each client link they
call :meth:`Coordinator.admit` once, :meth:`Coordinator.deliver` for each complete
message and :meth:`Coordinator.detach` when the link ends; the coordinator talks back
through the :class:`Peer` it was given. Every rule a client can break is checked in
:meth:`deliver`; a breach closes that client's link with a status naming the problem
and drops it from the round, which goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from secagg import Backend, Parameters, Strategy, flatten
from transport._auth import TokenTable
from transport._errors import Code, ConfigError, Rejected, RoundsFailed
from transport._messages import PROTOCOL_VERSION, Kind, Message, encode_parameters
from transport._records import RoundEvent, RoundRecord, RunSummary
from transport._round import RoundDriver, RoundFailed, RoundState
from transport._store import Store

__all__ = ["Coordinator", "CoordinatorConfig", "Peer"]

log = logging.getLogger("blindsum.coordinator")
MAX_CLIENT_ID = 1 << 31


class Peer(Protocol):
    """The coordinator's handle on one client link."""

    def send(self, message: Message) -> None:
        """Queue a message for the client (never blocks)."""

    def close(self, code: Code, message: str) -> None:
        """End the link with this status."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorConfig:
    """How rounds are run. Deadlines are in seconds.

    ``clients_per_round`` clients are aggregated; ``ceil(clients_per_round *
    (1 + over_selection))`` are asked. A round starts when that many are connected, or
    after ``wait_for_clients`` with at least ``min_clients``; it fails when fewer than
    ``min_clients`` finish ``fit``.
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


Observer = Callable[[RoundEvent], None]


class Coordinator:
    """Runs ``config.rounds`` rounds of ``strategy`` over ``backend``."""

    def __init__(
        self, *, strategy: Strategy, parameters: Parameters, backend: Backend,
        config: CoordinatorConfig, store: Store | None = None,
        tokens: TokenTable | None = None, observer: Observer | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.tokens = tokens
        self._strategy = strategy
        self._store = store
        self.observer = observer
        self._peers: dict[int, Peer] = {}
        self._changed = asyncio.Event()
        self._round: RoundState | None = None
        self._finished = False
        self.parameters = [np.asarray(p) for p in parameters]
        self.completed_rounds = 0
        self._next_round_id = 1
        self.log: list[RoundRecord] = []
        checkpoint = store.load() if store is not None else None
        if store is not None and checkpoint is not None:
            self.parameters = checkpoint.parameters
            self.completed_rounds = checkpoint.completed_rounds
            self._next_round_id = checkpoint.next_round_id
            self.log = list(checkpoint.log)
            log.info("resuming after round %d from %s", self.completed_rounds, store.path)

    @property
    def connected(self) -> tuple[int, ...]:
        return tuple(sorted(self._peers))

    # -- called by transports ------------------------------------------------------

    def admit(self, client_id: int, token: str | None, peer: Peer, version: int) -> None:
        """Register a new link, or raise :class:`Rejected` naming why not."""
        if not 0 <= client_id < MAX_CLIENT_ID:
            raise Rejected(Code.INVALID_ARGUMENT,
                           f"client id {client_id} is out of range 0..{MAX_CLIENT_ID - 1}")
        if version != PROTOCOL_VERSION:
            raise Rejected(Code.FAILED_PRECONDITION,
                           f"client {client_id} speaks protocol {version}, "
                           f"the coordinator speaks {PROTOCOL_VERSION}")
        if self.tokens is not None:
            self.tokens.check(client_id, token)
        if client_id in self._peers:
            raise Rejected(Code.ALREADY_EXISTS,
                           f"client {client_id} is already connected (one stream per client)")
        if self._finished:  # admitted only to be told so
            peer.send(self._finished_message())
            return
        self._peers[client_id] = peer
        self._changed.set()
        log.debug("client %d connected (%d connected)", client_id, len(self._peers))

    def detach(self, client_id: int, peer: Peer, reason: str) -> None:
        """The link of ``client_id`` ended (``reason`` is for the log)."""
        if self._peers.get(client_id) is not peer:
            return
        del self._peers[client_id]
        self._changed.set()
        self._lose(client_id, f"disconnected ({reason})")

    def deliver(self, client_id: int, peer: Peer, message: Message) -> None:
        """One complete message from ``client_id``; breaches close its link."""
        if self._peers.get(client_id) is not peer:
            return
        try:
            self._dispatch(client_id, message)
        except Rejected as exc:
            self.reject(client_id, exc)

    def reject(self, client_id: int, exc: Rejected) -> None:
        """Close ``client_id``'s link with ``exc``'s status and drop it from the round."""
        log.warning("rejected client %d: %s: %s", client_id, exc.code.value, exc.message)
        peer = self._peers.pop(client_id, None)
        if peer is not None:
            self._changed.set()
            peer.close(exc.code, exc.message)
        self._lose(client_id, f"{exc.code.value}: {exc.message}")

    # -- dispatch ------------------------------------------------------------------

    def _lose(self, client_id: int, why: str) -> None:
        r = self._round
        if r is not None and r.active(client_id):
            r.gone.add(client_id)
            r.expecting.discard(client_id)
            r.events.put_nowait((client_id, why))

    def _dispatch(self, cid: int, msg: Message) -> None:
        r = self._round
        if r is None or msg.round_id != r.round_id:
            current = r.round_id if r is not None else self._next_round_id
            if msg.round_id < current:
                return  # a late answer to a round that is over for this client
            running = f"round {r.round_id} is running" if r else "no round is running"
            raise Rejected(Code.FAILED_PRECONDITION,
                           f"client {cid} sent {msg.kind.name} for round {msg.round_id}, but {running}")
        if cid in r.released or cid in r.gone:
            return
        if cid not in r.sampled:
            raise Rejected(Code.FAILED_PRECONDITION,
                           f"client {cid} is not part of round {r.round_id}")
        if msg.kind is Kind.ABORT:
            self._lose(cid, f"aborted: {msg.detail[:200]!r}")
            return
        if msg.kind is Kind.READY:
            if cid not in r.awaiting_ready:
                raise Rejected(Code.FAILED_PRECONDITION,
                               f"client {cid} sent READY out of order (stage {r.stage!r})")
            r.awaiting_ready.discard(cid)
        elif cid not in r.expecting:
            raise Rejected(Code.FAILED_PRECONDITION,
                           f"client {cid} sent {msg.kind.name} in stage {r.stage!r} of round "
                           f"{r.round_id} without a pending request (out of order or duplicate)")
        else:
            r.expecting.discard(cid)
        r.answered(cid)
        r.events.put_nowait((cid, msg))

    def _finished_message(self) -> Message:
        return Message(kind=Kind.FINISHED, round_id=self._next_round_id,
                       detail=f"{self.completed_rounds} rounds completed")

    def _send(self, cid: int, msg: Message) -> None:
        peer = self._peers.get(cid)
        if peer is not None:
            peer.send(msg)

    def _close(self, cid: int, code: Code, text: str) -> None:
        peer = self._peers.pop(cid, None)
        if peer is not None:
            self._changed.set()
            peer.close(code, text)

    def _notify(self, event: RoundEvent) -> None:
        if self.observer is not None:
            self.observer(event)

    # -- the round loop ------------------------------------------------------------

    async def run(self) -> RunSummary:
        """Run the remaining rounds; checkpoint after each; return the summary.

        Raises:
            RoundsFailed: ``max_failed_rounds`` rounds in a row failed (for example a
                backend configuration that cannot work with the clients available).
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="blindsum-session") as pool:
            failures = 0
            while self.completed_rounds < self.config.rounds:
                sampled = await self._sample()
                record = await self._run_round(sampled, pool)
                self._finish_round(record)
                failures = 0 if record.completed else failures + 1
                if failures >= self.config.max_failed_rounds:
                    raise RoundsFailed(f"{failures} rounds failed in a row; the last: "
                                       f"{record.detail}")
                if not record.completed:
                    await asyncio.sleep(self.config.retry_pause)
        self._finished = True
        for cid in list(self._peers):
            self._send(cid, self._finished_message())
        return RunSummary(backend=self.backend.name, rounds_completed=self.completed_rounds,
                          log=tuple(self.log))

    async def _sample(self) -> tuple[int, ...]:
        cfg = self.config
        start = time.monotonic()
        while True:
            n = len(self._peers)
            waited = time.monotonic() - start
            if n >= cfg.sample_size or (n >= cfg.min_clients and waited >= cfg.wait_for_clients):
                break
            self._changed.clear()
            timeout = cfg.wait_for_clients - waited if waited < cfg.wait_for_clients else 5.0
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                if n < cfg.min_clients:
                    log.info("waiting for clients: %d connected, %d needed", n, cfg.min_clients)
        rng = self._rng("sample")
        ids = np.array(self.connected)
        k = min(len(ids), cfg.sample_size)
        return tuple(sorted(int(c) for c in rng.choice(ids, size=k, replace=False)))

    def _rng(self, purpose: str) -> np.random.Generator:
        seed = self.config.seed
        if seed is None:
            return np.random.default_rng()
        return np.random.default_rng([seed, self._next_round_id, 0 if purpose == "sample" else 1])

    async def _run_round(self, sampled: tuple[int, ...], pool: ThreadPoolExecutor) -> RoundRecord:
        cfg = self.config
        server_round = self.completed_rounds + 1
        r = RoundState(round_id=self._next_round_id, server_round=server_round,
                       sampled=frozenset(sampled))
        self._round = r
        if self._store is not None:  # a restart never reuses this round id
            self._store.reserve_round_id(r.round_id, self.parameters)
        start = time.monotonic()
        log.info("round %d (id %d): sampled %s", server_round, r.round_id, list(sampled))
        self._notify(RoundEvent(kind="round_started", server_round=server_round, clients=sampled))
        driver = RoundDriver(
            state=r, backend=self.backend, pool=pool, send=self._send, close=self._close,
            stage_started=lambda stage, index, clients: self._notify(RoundEvent(
                kind="stage_started", server_round=server_round, stage=stage, index=index,
                clients=clients)),
            fit_deadline=cfg.fit_deadline, stage_deadline=cfg.stage_deadline,
            clients_per_round=cfg.clients_per_round, min_clients=cfg.min_clients,
        )
        status, detail = "completed", ""
        contributors: tuple[int, ...] = ()
        try:
            config = self._strategy.configure_fit(server_round, self.parameters)
            payload = await asyncio.get_running_loop().run_in_executor(
                pool, encode_parameters, self.parameters)
            await driver.fit(Message(kind=Kind.FIT, round_id=r.round_id, payload=payload,
                                     config=config))
            dim = int(flatten(self.parameters).shape[0])
            result = await driver.aggregate(dim=dim, rng=self._rng("session"))
            contributors = result.contributors
            self.parameters = await asyncio.get_running_loop().run_in_executor(
                pool, self._strategy.aggregate_fit, server_round, self.parameters, result)
        except RoundFailed as exc:
            status, detail = "failed", str(exc)
        finally:
            self._round = None
        end = Message(kind=Kind.ROUND_END, round_id=r.round_id, detail=detail or status)
        for cid in driver.selected:
            self._send(cid, end)
        return RoundRecord(
            server_round=server_round, round_id=r.round_id, status=status, sampled=sampled,
            selected=driver.selected, released=tuple(sorted(r.released)),
            contributors=tuple(contributors),
            dropped={k: tuple(sorted(v)) for k, v in driver.dropped.items()},
            stage_seconds=dict(driver.stage_seconds), latency=r.latency_summary(),
            seconds=time.monotonic() - start,
            detail=detail,
        )

    def _finish_round(self, record: RoundRecord) -> None:
        self._next_round_id = record.round_id + 1
        if record.completed:
            self.completed_rounds = record.server_round
        self.log.append(record)
        if self._store is not None:
            self._store.save(completed_rounds=self.completed_rounds,
                             next_round_id=self._next_round_id, parameters=self.parameters,
                             record=record)
        stages = ", ".join(f"{k} {v:.3f}s" for k, v in record.stage_seconds.items())
        latency = ", ".join(f"{k} p50 {v[0]:.3f}s p99 {v[1]:.3f}s"
                            for k, v in record.latency.items())
        log.info("round %d %s in %.3fs: selected %s, contributors %s, dropped %s, released %s; "
                 "stages: %s; answer latency: %s%s", record.server_round, record.status, record.seconds,
                 list(record.selected), list(record.contributors),
                 {k: list(v) for k, v in record.dropped.items()}, list(record.released), stages,
                 latency,
                 f"; {record.detail}" if record.detail else "")
        self._notify(RoundEvent(kind="round_finished", server_round=record.server_round,
                                record=record))
