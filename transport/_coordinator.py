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
from typing import Any, Protocol

import numpy as np

from dp import BudgetExceededError, secure_generator
from secagg import (
    MAX_CLIENT_ID,
    Backend,
    Config,
    EvaluatingStrategy,
    Parameters,
    SampleObserver,
    SamplingStrategy,
    StatefulStrategy,
    Strategy,
    StrategyState,
    StrategyWrapper,
    evaluation_dim,
    fit_dim,
    num_clients_to_sample,
)
from transport._auth import TokenTable
from transport._config import CoordinatorConfig
from transport._contract import check_backend_name, choose_backend
from transport._errors import Code, ConfigError, Rejected, RoundsFailed
from transport._messages import PROTOCOL_VERSION, Kind, Message, encode_parameters
from transport._records import RoundEvent, RoundRecord, RunSummary
from transport._round import RoundDriver, RoundFailed, RoundState
from transport._store import Checkpoint, Store

__all__ = ["Coordinator", "CoordinatorConfig", "Peer"]

log = logging.getLogger("blindsum.coordinator")


class Peer(Protocol):
    """The coordinator's handle on one client link."""

    def send(self, message: Message) -> None:
        """Queue a message for the client (never blocks)."""

    def close(self, code: Code, message: str) -> None:
        """End the link with this status."""


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
            self._restore_strategy(checkpoint, store)
            log.info("resuming after round %d from %s", self.completed_rounds, store.path)
        self.stopped = ""
        check_backend_name(strategy, backend, server_round=self.completed_rounds + 1,
                           clients_per_round=config.clients_per_round)

    def _restore_strategy(self, checkpoint: Checkpoint, store: Store) -> None:
        """Put the strategy back where the checkpoint left it (privacy spent, clip, moments).

        Raises:
            ConfigError: the checkpoint's strategy state does not fit this strategy, or
                a privacy-accounting strategy would resume from a checkpoint without one.
        """
        state, strategy = checkpoint.strategy_state, self._strategy
        who = type(strategy).__name__
        if state is None:
            if checkpoint.completed_rounds and _accounts_privacy(strategy):
                raise ConfigError(
                    f"the checkpoint in {store.path} has {checkpoint.completed_rounds} completed "
                    f"rounds but no strategy state (written before strategy states were stored); "
                    f"{who} would forget the privacy already spent. Use a fresh state directory")
            if checkpoint.completed_rounds and isinstance(strategy, StatefulStrategy):
                log.warning("the checkpoint holds no strategy state; %s starts afresh", who)
            return
        if not isinstance(strategy, StatefulStrategy):
            raise ConfigError(f"the checkpoint in {store.path} holds the state of a "
                              f"{state.get('type')!r} strategy, but {who} keeps none; resume "
                              "with the strategy that wrote it, or use a fresh state directory")
        try:
            strategy.load_state_dict(state)
        except ValueError as exc:
            raise ConfigError(f"the checkpoint in {store.path} does not fit strategy {who}: "
                              f"{exc}") from None

    def _strategy_state(self) -> StrategyState | None:
        strategy = self._strategy
        return strategy.state_dict() if isinstance(strategy, StatefulStrategy) else None

    @property
    def connected(self) -> tuple[int, ...]:
        return tuple(sorted(self._peers))

    # -- called by transports ------------------------------------------------------

    def admit(self, client_id: int, token: str | None, peer: Peer, version: int) -> None:
        """Register a new link, or raise :class:`Rejected` naming why not."""
        if not 0 <= client_id <= MAX_CLIENT_ID:  # secagg's: a Shamir share point is id + 1
            raise Rejected(Code.INVALID_ARGUMENT,
                           f"client id {client_id} is out of range 0..{MAX_CLIENT_ID}")
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
        done = f"{self.completed_rounds} rounds completed"
        return Message(kind=Kind.FINISHED, round_id=self._next_round_id,
                       detail=f"{done}; {self.stopped}" if self.stopped else done)

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

        Training stops early, gracefully, when the strategy's ``configure_fit`` raises
        :class:`dp.BudgetExceededError`: the model is kept, clients are told
        ``FINISHED`` and the summary's ``stopped`` says why.

        Raises:
            RoundsFailed: ``max_failed_rounds`` rounds in a row failed (for example a
                backend configuration that cannot work with the clients available).
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="blindsum-session") as pool:
            failures = 0
            while self.completed_rounds < self.config.rounds:
                server_round = self.completed_rounds + 1
                try:
                    config = self._strategy.configure_fit(server_round, self.parameters)
                    sampled, target, available = await self._sample()
                    if isinstance(self._strategy, SampleObserver):
                        self._strategy.fit_sampled(server_round, num_available=available,
                                                   num_sampled=len(sampled))
                except BudgetExceededError as exc:
                    self.stopped = f"privacy budget exhausted before round {server_round}: {exc}"
                    log.warning("training stops: %s", self.stopped)
                    break
                record = await self._run_round(sampled, target, config, pool)
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
                          log=tuple(self.log), stopped=self.stopped)

    async def _sample(self) -> tuple[tuple[int, ...], int, int]:
        """Wait for clients, then sample the round's fit clients.

        Returns ``(sampled, target, available)``: ``target`` clients are to be aggregated
        (``clients_per_round``, or fewer when a :class:`secagg.SamplingStrategy`'s
        ``num_fit_clients(available)`` asks for fewer); ``ceil(target * (1 + over_selection))`` of the
        ``available`` connected ones are sampled. While the strategy samples none, wait.
        """
        cfg = self.config
        start = time.monotonic()
        while True:
            n, target = len(self._peers), 0
            waited = time.monotonic() - start
            if n >= cfg.sample_size or (n >= cfg.min_clients and waited >= cfg.wait_for_clients):
                target = self._fit_target(n)
                if target > 0:
                    break
            self._changed.clear()
            timeout = cfg.wait_for_clients - waited if waited < cfg.wait_for_clients else 5.0
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                if n < cfg.min_clients:
                    log.info("waiting for clients: %d connected, %d needed", n, cfg.min_clients)
                elif target == 0 and waited >= cfg.wait_for_clients:
                    log.info("waiting for clients: the strategy samples none of %d connected", n)
        size = math.ceil(target * (1 + cfg.over_selection) - 1e-9)
        return self._choose(size, "sample"), target, n

    def _fit_target(self, available: int) -> int:
        strategy = self._strategy
        cap = self.config.clients_per_round
        if isinstance(strategy, SamplingStrategy):
            return min(strategy.num_fit_clients(available), cap, available)
        return cap

    def _choose(self, k: int, purpose: str) -> tuple[int, ...]:
        ids = np.array(self.connected)
        k = min(len(ids), k)
        return tuple(sorted(int(c) for c in self._rng(purpose).choice(ids, size=k, replace=False)))

    def _rng(self, purpose: str) -> np.random.Generator:
        seed = self.config.seed
        if seed is None:  # client sampling and the SecAgg+ graph come from the OS CSPRNG
            return secure_generator()
        index = ("sample", "session", "evaluate-sample", "evaluate-session").index(purpose)
        return np.random.default_rng([seed, self._next_round_id, index])

    def _open(self, round_id: int, server_round: int, sampled: tuple[int, ...],
              pool: ThreadPoolExecutor, *, phase: str, target: int, minimum: int,
              ) -> tuple[RoundState, RoundDriver]:
        """Make ``round_id`` the running attempt (reserved in the store first)."""
        r = RoundState(round_id=round_id, server_round=server_round, sampled=frozenset(sampled))
        self._round = r
        if self._store is not None:  # a restart never reuses this round id
            self._store.reserve_round_id(round_id, self.parameters)
        cfg = self.config
        driver = RoundDriver(
            state=r, pool=pool, send=self._send, close=self._close,
            stage_started=lambda stage, index, clients: self._notify(RoundEvent(
                kind="stage_started", server_round=server_round, stage=stage, index=index,
                clients=clients)),
            fit_deadline=cfg.fit_deadline, stage_deadline=cfg.stage_deadline,
            clients_per_round=target, min_clients=minimum, phase=phase,
        )
        return r, driver

    def _end(self, r: RoundState, driver: RoundDriver, detail: str) -> None:
        self._round = None
        end = Message(kind=Kind.ROUND_END, round_id=r.round_id, detail=detail)
        for cid in driver.selected:
            self._send(cid, end)

    async def _run_round(self, sampled: tuple[int, ...], target: int, config: Config,
                         pool: ThreadPoolExecutor) -> RoundRecord:
        server_round = self.completed_rounds + 1
        r, driver = self._open(self._next_round_id, server_round, sampled, pool, phase="fit",
                               target=target, minimum=min(self.config.min_clients, target))
        start = time.monotonic()
        log.info("round %d (id %d): sampled %s", server_round, r.round_id, list(sampled))
        self._notify(RoundEvent(kind="round_started", server_round=server_round, clients=sampled))
        status, detail = "completed", ""
        contributors: tuple[int, ...] = ()
        loop = asyncio.get_running_loop()
        try:
            payload = await loop.run_in_executor(pool, encode_parameters, self.parameters)
            dim = fit_dim(self.parameters, config)
            pipelined = False
            if len(sampled) == target:  # no over-selection: nothing to select
                pipelined = await self._open_pipelined(driver, pool, server_round, dim)
            await driver.fit(Message(kind=Kind.FIT, round_id=r.round_id, payload=payload,
                                     config=config))
            if not pipelined:
                backend = await self._backend_for(pool, server_round, len(driver.selected),
                                                  "fit")
                await driver.open(backend=backend, dim=dim, rng=self._rng("session"))
            result = await driver.aggregate()
            contributors = result.contributors
            self.parameters = await _strategy_call(
                loop, pool, self._strategy.aggregate_fit, server_round, self.parameters, result)
        except RoundFailed as exc:
            status, detail = "failed", str(exc)
        finally:
            self._end(r, driver, detail or status)
        record = RoundRecord(
            server_round=server_round, round_id=r.round_id, status=status, sampled=sampled,
            selected=driver.selected, released=tuple(sorted(r.released)),
            contributors=tuple(contributors),
            dropped={k: tuple(sorted(v)) for k, v in driver.dropped.items()},
            stage_seconds=dict(driver.stage_seconds), latency=r.latency_summary(),
            seconds=time.monotonic() - start, detail=detail,
        )
        if not record.completed:
            return record
        if self._store is not None:  # before the new model leaves the process (evaluation)
            self._store.save(completed_rounds=server_round, next_round_id=r.round_id + 1,
                             parameters=self.parameters, record=record,
                             strategy_state=self._strategy_state())
        evaluation = await self._evaluate(server_round, r.round_id + 1, pool)
        return dataclasses.replace(record, seconds=time.monotonic() - start, **evaluation)

    async def _open_pipelined(self, driver: RoundDriver, pool: ThreadPoolExecutor,
                              server_round: int, dim: int) -> bool:
        """Open the fit session over every sampled client before they fit, so that each
        gets its first-stage request as soon as it is READY. False (the session is opened
        after fit, over those READY) when the backend opts out (``pipeline_fit = False``)
        or refuses: the same refusal then comes after fit, as without pipelining."""
        try:
            backend = await self._backend_for(pool, server_round, len(driver.r.sampled), "fit")
            if not getattr(backend, "pipeline_fit", True):
                return False
            await driver.open_pipelined(backend=backend, dim=dim, rng=self._rng("session"))
        except RoundFailed as exc:
            log.debug("round %d: not pipelined: %s", server_round, exc)
            return False
        return True

    async def _backend_for(self, pool: ThreadPoolExecutor, server_round: int, n: int,
                           purpose: str) -> Backend:
        return await asyncio.get_running_loop().run_in_executor(
            pool, choose_backend, self._strategy, self.backend, server_round, n, purpose)

    async def _evaluate(self, server_round: int, round_id: int,
                        pool: ThreadPoolExecutor) -> dict[str, Any]:
        """Server-side, then federated evaluation (attempt ``round_id``) of the new model."""
        strategy = self._strategy
        if not isinstance(strategy, EvaluatingStrategy):
            return {}
        loop = asyncio.get_running_loop()
        params = self.parameters
        out: dict[str, Any] = {"server_evaluation": await loop.run_in_executor(
            pool, strategy.evaluate, server_round, params)}
        config = strategy.configure_evaluate(server_round, params)
        n = num_clients_to_sample(strategy, len(self._peers), fit=False) if config is not None else 0
        if config is None or n < 1:
            out["evaluation_detail"] = (
                "skipped: configure_evaluate returned None" if config is None else
                f"skipped: the strategy samples no client of {len(self._peers)} for evaluation")
            return out
        sampled = self._choose(n, "evaluate-sample")
        r, driver = self._open(round_id, server_round, sampled, pool, phase="evaluate",
                               target=len(sampled), minimum=min(self.config.min_clients, n))
        fed, detail = None, ""
        try:
            payload = await loop.run_in_executor(pool, encode_parameters, params)
            await driver.fit(Message(kind=Kind.EVALUATE, round_id=round_id, payload=payload,
                                     config=config))
            backend = await self._backend_for(pool, server_round, len(driver.selected),
                                              "evaluate")
            await driver.open(backend=backend, dim=evaluation_dim(config),
                              rng=self._rng("evaluate-session"))
            result = await driver.aggregate()
            fed = await _strategy_call(
                loop, pool, strategy.aggregate_evaluate, server_round, params, result)
        except RoundFailed as exc:
            detail = f"federated evaluation failed: {exc}"
            log.warning("round %d: %s", server_round, detail)
        finally:
            self._end(r, driver, detail or "completed")
        return out | {"evaluation_round_id": round_id, "federated_evaluation": fed,
                      "evaluation_dropped": {k: tuple(sorted(v))
                                             for k, v in driver.dropped.items()},
                      "evaluation_detail": detail}

    def _finish_round(self, record: RoundRecord) -> None:
        self._next_round_id = record.last_round_id + 1
        if record.completed:
            self.completed_rounds = record.server_round
        self.log.append(record)
        if self._store is not None:
            self._store.save(completed_rounds=self.completed_rounds,
                             next_round_id=self._next_round_id, parameters=self.parameters,
                             record=record, strategy_state=self._strategy_state())
        stages = ", ".join(f"{k} {v:.3f}s" for k, v in record.stage_seconds.items())
        latency = ", ".join(f"{k} p50 {v[0]:.3f}s p99 {v[1]:.3f}s"
                            for k, v in record.latency.items())
        log.info("round %d %s in %.3fs: selected %s, contributors %s, dropped %s, released %s; "
                 "stages: %s; answer latency: %s%s", record.server_round, record.status, record.seconds,
                 list(record.selected), list(record.contributors),
                 {k: list(v) for k, v in record.dropped.items()}, list(record.released), stages,
                 latency,
                 f"; {record.detail}" if record.detail else "")
        for what, result in (("server", record.server_evaluation),
                             ("federated", record.federated_evaluation)):
            if result is not None:
                log.info("round %d %s evaluation: loss %.6g, metrics %s, %g examples, "
                         "%d clients", record.server_round, what, result.loss,
                         dict(result.metrics), result.num_examples, result.num_clients)
        if record.evaluation_detail:
            log.info("round %d evaluation: %s", record.server_round, record.evaluation_detail)
        self._notify(RoundEvent(kind="round_finished", server_round=record.server_round,
                                record=record))


def _accounts_privacy(strategy: Strategy) -> bool:
    """Whether ``strategy`` or one it wraps accounts privacy (a DP wrapper)."""
    current: Strategy | None = strategy
    while current is not None:
        if hasattr(current, "rounds_accounted"):
            return True
        current = current.strategy if isinstance(current, StrategyWrapper) else None
    return False


async def _strategy_call(loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor,
                         method: Any, *args: Any) -> Any:
    """Run a strategy's aggregation step off the event loop; a ``ValueError`` (the
    strategy refuses the aggregate, for example a DP wrapper given non-uniform weights)
    fails the round instead of stopping the coordinator."""
    try:
        return await loop.run_in_executor(pool, method, *args)
    except ValueError as exc:
        owner = type(getattr(method, "__self__", method)).__name__
        raise RoundFailed(f"{owner}.{method.__name__} refused the aggregate: {exc}") from exc
