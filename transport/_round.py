"""One round, driven generically over any :class:`secagg.Backend`.

Rules of a round (the coordinator's side of the contract):

1. ``fit`` (or ``evaluate``): every sampled client gets ``FIT`` (``EVALUATE``); the
   first ``clients_per_round`` that answer ``READY`` are selected, later ones are released (``ROUND_END``), and those
   silent at the fit deadline are dropped with ``DEADLINE_EXCEEDED``. With no
   over-selection (all sampled are to be aggregated) the session is opened over the
   sampled clients first and each gets its first-stage request as soon as it is
   ``READY`` (pipelined: the fit phase and the first stage overlap); one lost in fit
   is dropped at ``fit`` and from the session, where it is a first-stage dropout.
2. Protocol stages: whatever the server session's ``next_messages()`` returns is sent;
   every recipient answers ``PROTOCOL`` or ``NO_REPLY``. When nobody is outstanding the
   session moves on by itself or is told ``close_stage()``; at the stage deadline the
   silent ones are dropped (``drop``) and ``close_stage()`` is called.
3. A client whose stream breaks, who aborts, or whose message the session rejects is
   dropped at the stage it was in; the round goes on as far as the protocol allows.

All session calls run on one worker thread, so the event loop keeps moving bytes
while a backend computes; the session itself never sees a clock or a socket. Answers
that queue up while the worker is busy are handed to it together, in arrival order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

import secagg
from secagg import AggregateResult, Backend, ServerSession
from transport._errors import Code
from transport._messages import Kind, Message, Payload, is_lent, payload_bytes

__all__ = ["RoundState", "RoundDriver", "RoundFailed", "DROP"]

log = logging.getLogger("blindsum.coordinator")
T = TypeVar("T")
DROP = "drop"
_BATCH = 1024  # at most this many queued events are handled at once


class RoundFailed(Exception):
    """The round cannot finish (too few clients, the backend could not recover)."""


@dataclasses.dataclass(eq=False)
class RoundState:
    """What the coordinator's message dispatcher must know about the running round."""

    round_id: int
    server_round: int
    sampled: frozenset[int]
    stage: str = "fit"
    awaiting_ready: set[int] = dataclasses.field(default_factory=set)
    expecting: set[int] = dataclasses.field(default_factory=set)
    released: set[int] = dataclasses.field(default_factory=set)
    gone: set[int] = dataclasses.field(default_factory=set)
    sent_at: dict[int, float] = dataclasses.field(default_factory=dict)
    asked: dict[int, str] = dataclasses.field(default_factory=dict)  # stage of the request
    latencies: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    events: asyncio.Queue[tuple[int, Message | str]] = dataclasses.field(
        default_factory=asyncio.Queue
    )

    def active(self, cid: int) -> bool:
        return cid in self.sampled and cid not in self.released and cid not in self.gone

    def answered(self, cid: int) -> None:
        """Note the time from our request to ``cid``'s complete answer."""
        sent = self.sent_at.pop(cid, None)
        stage = self.asked.pop(cid, self.stage)
        if sent is not None:
            self.latencies.setdefault(stage, []).append(time.monotonic() - sent)

    def ask(self, cid: int, stage: str) -> None:
        """Note that a request of ``stage`` goes to ``cid`` now."""
        self.sent_at[cid] = time.monotonic()
        self.asked[cid] = stage

    def latency_summary(self) -> dict[str, tuple[float, float, float]]:
        """Per stage: p50, p99 and max seconds from request to answer."""
        out = {}
        for stage, values in self.latencies.items():
            p50, p99 = np.percentile(values, [50, 99])
            out[stage] = (float(p50), float(p99), float(max(values)))
        return out


class RoundDriver:
    """Runs the local phase (``"fit"`` or ``"evaluate"``: the clients compute their
    inputs) and then the backend's stages of one aggregation.

    Use: optionally :meth:`open_pipelined` (no over-selection: the session is opened over
    every sampled client before the local phase, and each client gets its first-stage
    request as soon as it is ``READY``), then :meth:`fit`, then :meth:`open` (unless
    pipelined) and :meth:`aggregate`.
    """

    def __init__(
        self, *, state: RoundState, pool: ThreadPoolExecutor,
        send: Callable[[int, Message], None], close: Callable[[int, Code, str], None],
        stage_started: Callable[[str, int, tuple[int, ...]], None],
        fit_deadline: float, stage_deadline: float, clients_per_round: int, min_clients: int,
        phase: str = "fit",
    ) -> None:
        self.r = state
        self.phase = phase
        state.stage = phase
        self._pool = pool
        self._send = send
        self._close = close
        self._stage_started = stage_started
        self._fit_deadline = fit_deadline
        self._stage_deadline = stage_deadline
        self._target = clients_per_round
        self._min = min_clients
        self.selected: tuple[int, ...] = ()
        self.dropped: dict[str, list[int]] = {}
        self.stage_seconds: dict[str, float] = {}
        self._session: ServerSession | None = None
        self._members: frozenset[int] = frozenset()  # the session's clients
        # pipelined: the first stage's name, messages and encoded payloads
        self._first: tuple[str, dict[int, object], dict[int, bytes]] | None = None
        self._outstanding: set[int] = set()
        self._first_sent_at: float | None = None

    @property
    def pipelined(self) -> bool:
        return self._first is not None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _next_event(self, deadline: float) -> tuple[int, Message | str] | None:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self.r.events.get(), timeout)
        except asyncio.TimeoutError:
            return None

    def _record_drop(self, cid: int, stage: str, why: str) -> None:
        self.r.gone.add(cid)
        self.dropped.setdefault(stage, []).append(cid)
        log.info("round %d: client %d dropped at stage %s: %s", self.r.server_round, cid, stage, why)

    def _drop_straggler(self, cid: int, stage: str, deadline: float) -> None:
        self._record_drop(cid, stage, "missed the deadline")
        self._close(
            cid, Code.DEADLINE_EXCEEDED,
            f"client {cid} missed the {deadline:g} s deadline of stage {stage!r} "
            f"in round {self.r.server_round}",
        )

    async def open(self, *, backend: Backend, dim: int, rng: np.random.Generator) -> None:
        """After :meth:`fit`: open ``backend``'s server session over the selected clients.

        Raises:
            RoundFailed: the backend refused (a configuration error).
        """
        r = self.r
        try:
            session = backend.server_session(
                round_id=r.round_id, client_ids=self.selected, dim=dim, rng=rng)
            for cid in sorted(r.gone & set(self.selected)):
                session.drop(cid)
        except secagg.SecAggError as exc:
            raise RoundFailed(f"{type(exc).__name__} in stage {r.stage!r}: {exc}") from exc
        self._session, self._members = session, frozenset(self.selected)

    async def open_pipelined(self, *, backend: Backend, dim: int,
                             rng: np.random.Generator) -> None:
        """Before :meth:`fit`, when every sampled client is to be aggregated: open the
        session over all of them and encode its first requests (off the event loop), so
        that :meth:`fit` sends each client its request as soon as it is ``READY``.

        Raises:
            RoundFailed: the backend refused (a configuration error).
        """
        r = self.r
        members = tuple(sorted(r.sampled))

        def prepare() -> tuple[ServerSession, str, dict[int, object], dict[int, bytes]]:
            session = backend.server_session(round_id=r.round_id, client_ids=members,
                                             dim=dim, rng=rng)
            out = session.next_messages()
            return session, str(session.stage), out, {
                cid: secagg.encode(msg) for cid, msg in out.items()}

        try:
            session, stage, out, payloads = await self._call(prepare)
        except secagg.SecAggError as exc:
            raise RoundFailed(f"{type(exc).__name__} in stage {r.stage!r}: {exc}") from exc
        self._session, self._members = session, frozenset(members)
        self._first = (stage, out, payloads)

    async def fit(self, fit_message: Message) -> tuple[int, ...]:
        """Send ``FIT`` (or ``EVALUATE``) to the sampled clients; return the selected ones."""
        r = self.r
        phase = self.phase
        start = time.monotonic()
        self._stage_started(phase, 0, tuple(sorted(r.sampled)))
        r.awaiting_ready = set(r.sampled)
        for cid in sorted(r.sampled):
            r.ask(cid, phase)
            self._send(cid, fit_message)
        deadline = start + self._fit_deadline
        ready: list[int] = []
        pending = set(r.sampled)  # not yet READY nor dropped, as far as processed events go
        if self._first is not None:
            await self._fit_pipelined(ready, pending, deadline)
        else:
            await self._fit_select(ready, pending, deadline)
        for cid in sorted(pending & r.gone):  # vanished; their notice is still queued
            if cid not in self._dropped_ids():
                self._record_drop(cid, phase, "vanished")
                await self._session_drop(cid)
        leftovers = sorted(pending - r.gone)
        r.awaiting_ready.clear()
        for cid in leftovers:
            if len(ready) >= self._target:
                r.released.add(cid)
                self._send(cid, Message(kind=Kind.ROUND_END, round_id=r.round_id,
                                        detail="not needed this round (over-selection)"))
            else:
                self._drop_straggler(cid, phase, self._fit_deadline)
                await self._session_drop(cid)
        self.stage_seconds[phase] = time.monotonic() - start
        if len(ready) < self._min:
            self._session = None
            raise RoundFailed(f"only {len(ready)} clients were ready to {phase}, "
                              f"at least {self._min} needed")
        self.selected = tuple(sorted(ready))
        return self.selected

    async def _fit_select(self, ready: list[int], pending: set[int], deadline: float) -> None:
        """The first ``target`` to be READY are selected; nothing else is sent."""
        r = self.r
        while len(ready) < self._target and pending:
            event = await self._next_event(deadline)
            if event is None:
                break
            cid, what = event
            pending.discard(cid)
            if isinstance(what, str):
                if cid in ready:
                    ready.remove(cid)
                self._record_drop(cid, self.phase, what)
            elif what.kind is Kind.READY:
                ready.append(cid)
        # READY messages already queued but not processed still count as on time
        while len(ready) < self._target and not r.events.empty():
            cid, what = r.events.get_nowait()
            pending.discard(cid)
            if not isinstance(what, str) and what.kind is Kind.READY:
                ready.append(cid)
            elif isinstance(what, str):
                if cid in ready:
                    ready.remove(cid)
                self._record_drop(cid, self.phase, what)

    def _queued(self, batch: list[tuple[int, Message | str]]) -> list[tuple[int, Message | str]]:
        """``batch`` and the events queued behind it, up to :data:`_BATCH` in all."""
        events = self.r.events
        while len(batch) < _BATCH and not events.empty():
            batch.append(events.get_nowait())
        return batch

    async def _fit_pipelined(self, ready: list[int], pending: set[int], deadline: float) -> None:
        """Everyone READY in time is selected, so each gets its first-stage request at
        once; answers to it that come while others still fit go to the session."""
        r = self.r
        while pending:
            event = await self._next_event(deadline)
            if event is None:
                break
            await self._fit_batch(ready, pending, self._queued([event]))
        while not r.events.empty():  # queued READY messages still count as on time
            await self._fit_batch(ready, pending, self._queued([]))

    async def _fit_batch(self, ready: list[int], pending: set[int],
                         batch: list[tuple[int, Message | str]]) -> None:
        assert self._first is not None and self._session is not None
        stage = self._first[0]
        rest: list[tuple[int, Message | str]] = []  # answers and losses after READY
        for cid, what in batch:
            if isinstance(what, Message) and what.kind is Kind.READY:
                pending.discard(cid)
                ready.append(cid)
                self._send_first(cid)
            elif cid in pending:  # lost before READY: a dropout of the local phase
                pending.discard(cid)
                await self._handle_batch(self._session, self._outstanding, rest, stage)
                rest = []
                self._record_drop(cid, self.phase, str(what))
                await self._call(self._session.drop, cid)
            else:
                rest.append((cid, what))
        await self._handle_batch(self._session, self._outstanding, rest, stage)

    def _send_first(self, cid: int) -> None:
        """Send ``cid`` (just READY) its first-stage request, as ``_send_stage`` would."""
        assert self._first is not None
        r = self.r
        stage, out, payloads = self._first
        if cid not in out:  # the session asks it later (requests in batches)
            return
        if self._first_sent_at is None:
            self._first_sent_at = time.monotonic()
            recipients = tuple(sorted(c for c in out if c not in r.gone))
            self._stage_started(stage, 1, recipients)
        if cid in r.gone:  # its loss is queued; dropped at the first stage when handled
            return
        r.expecting.add(cid)
        r.ask(cid, stage)
        self._outstanding.add(cid)
        self._send(cid, Message(kind=Kind.PROTOCOL, round_id=r.round_id,
                                payload=payloads[cid], stage=stage))

    async def _session_drop(self, cid: int) -> None:
        if self._session is not None and self._first is not None:
            await self._call(self._session.drop, cid)

    async def aggregate(self) -> AggregateResult:
        """Drive the open session's stages; return the aggregate.

        Raises:
            RoundFailed: the backend raised (a :class:`secagg.RecoveryError` when too
                many clients dropped, a protocol or configuration error).
        """
        r = self.r
        session = self._session
        assert session is not None, "open() or open_pipelined() first"
        try:
            if self._first is None:
                await self._stages(session)
            else:
                stage = self._first[0]
                r.stage = stage
                for cid in sorted(c for c in self._first[1] if c in r.gone):
                    if cid not in self._dropped_ids():  # READY, then lost before its request
                        self._record_drop(cid, stage, "vanished")
                        await self._call(session.drop, cid)
                started = self._first_sent_at
                await self._stages(session, outstanding=self._outstanding,
                                   index=1 if started is not None else 0,
                                   stage_start=started or time.monotonic())
            return await self._call(session.result)
        except secagg.SecAggError as exc:
            raise RoundFailed(f"{type(exc).__name__} in stage {r.stage!r}: {exc}") from exc

    async def _stages(self, session: ServerSession, outstanding: set[int] | None = None,
                      index: int = 0, stage_start: float | None = None) -> None:
        """The stage loop; a pipelined first stage comes in with its ``index`` 1, its
        ``outstanding`` clients and its start (its first request); its deadline starts now."""
        r = self.r
        outstanding = set() if outstanding is None else outstanding
        deadline = time.monotonic() + self._stage_deadline
        stage_start = time.monotonic() if stage_start is None else stage_start
        stalls = 0
        out: dict[int, object] = {}
        while True:
            out = out or await self._call(session.next_messages)
            if out:
                new_stage = index == 0 or str(session.stage) != r.stage
                if new_stage:
                    self._close_timing(stage_start)
                    index, stage_start = index + 1, time.monotonic()
                if new_stage or not outstanding:  # a fresh wait gets a full deadline
                    deadline = time.monotonic() + self._stage_deadline
                stalls = 0
                outstanding |= await self._send_stage(session, index, out, new_stage=new_stage)
                out = {}
            if session.done:
                self._close_timing(stage_start)
                return
            if not outstanding:
                # everyone asked has answered or vanished, yet the stage is open: the
                # session may have more to send (a drop can trigger that), or must move on
                out = await self._call(session.next_messages)
                if out:
                    continue
                stalls += 1
                if stalls > 3:
                    raise RoundFailed(f"the backend session stalled in stage {session.stage!r}")
                await self._call(session.close_stage)
                continue
            event = await self._next_event(deadline)
            if event is None:
                # close_stage() turns the silent ones into dropouts inside the session;
                # dropping them one by one could let the session advance on its own
                # and the close would then hit the next stage.
                for cid in sorted(outstanding):
                    self._drop_straggler(cid, r.stage, self._stage_deadline)
                outstanding.clear()
                r.expecting.clear()
                await self._call(session.close_stage)
                continue
            # answers that queued meanwhile go to the session together
            await self._handle_batch(session, outstanding, self._queued([event]))

    def _close_timing(self, stage_start: float) -> None:
        if self.r.stage != self.phase:
            self.stage_seconds[self.r.stage] = time.monotonic() - stage_start

    async def _send_stage(
        self, session: ServerSession, index: int, out: dict[int, object], new_stage: bool = True
    ) -> set[int]:
        r = self.r
        r.stage = str(session.stage)
        for cid in sorted(c for c in out if c in r.gone and c not in self._dropped_ids()):
            self._record_drop(cid, r.stage, "vanished")
            await self._call(session.drop, cid)
        recipients = tuple(sorted(cid for cid in out if cid not in r.gone))
        if new_stage:
            self._stage_started(r.stage, index, recipients)
        payloads = await self._call(lambda: {cid: secagg.encode(out[cid]) for cid in recipients})
        sent: set[int] = set()
        for cid in recipients:
            if cid in r.gone:  # vanished while the payloads were encoded
                if cid not in self._dropped_ids():
                    self._record_drop(cid, r.stage, "vanished")
                    await self._call(session.drop, cid)
                continue
            r.expecting.add(cid)
            r.ask(cid, r.stage)
            sent.add(cid)
            self._send(cid, Message(kind=Kind.PROTOCOL, round_id=r.round_id,
                                    payload=payloads[cid], stage=r.stage))
        return sent

    async def _handle_batch(
        self, session: ServerSession, outstanding: set[int],
        batch: list[tuple[int, Message | str]], stage: str | None = None,
    ) -> None:
        """Events in arrival order; each run of ``PROTOCOL`` answers is decoded and fed
        to the session in one worker call (one hop per run, not one per client).
        ``stage`` (default: the current one) is where a refused or lost client is dropped."""
        stage = self.r.stage if stage is None else stage
        run: list[tuple[int, Payload]] = []
        for cid, what in batch:
            outstanding.discard(cid)
            if isinstance(what, Message) and what.kind is Kind.PROTOCOL:
                run.append((cid, what.payload))
                continue
            await self._receive_run(session, outstanding, run, stage)
            run = []
            if isinstance(what, str) and cid in self._members and cid not in self._dropped_ids():
                self._record_drop(cid, stage, what)
                await self._call(session.drop, cid)
        await self._receive_run(session, outstanding, run, stage)

    async def _receive_run(self, session: ServerSession, outstanding: set[int],
                           run: list[tuple[int, Payload]], stage: str) -> None:
        r = self.r
        while run:
            done, fault = await self._call(_receive_until_fault, session, run)
            run = run[done:]
            if fault is None:
                continue
            cid, exc = fault  # dropped before the answers after it are taken, as one by one
            culprit = exc.peer if isinstance(exc.peer, int) and exc.peer in self._members else cid
            self._record_drop(culprit, stage, "protocol error")
            await self._call(session.drop, culprit)
            outstanding.discard(culprit)
            r.expecting.discard(culprit)
            self._close(culprit, Code.INVALID_ARGUMENT,
                        f"client {culprit} in stage {stage!r}: {exc.reason}")

    def _dropped_ids(self) -> set[int]:
        return {c for ids in self.dropped.values() for c in ids}


def _receive_until_fault(
    session: ServerSession, run: list[tuple[int, Payload]]
) -> tuple[int, tuple[int, secagg.RemoteProtocolError] | None]:
    """Decode and receive answers in order up to the first one the session refuses;
    returns how many were taken (the refused one included) and the refusal. Answers
    after the session finished are left alone, as they were one by one. A writable
    payload is the transport's private reassembly buffer: it is decoded in place."""
    for i, (cid, payload) in enumerate(run):
        if session.done:
            return len(run), None
        try:
            session.receive(cid, secagg.decode(payload_bytes(payload), peer=cid,
                                               borrow=is_lent(payload)))
        except secagg.RemoteProtocolError as exc:
            return i + 1, (cid, exc)
    return len(run), None

