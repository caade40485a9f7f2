"""The client runtime: connect, authenticate, fit, run the backend's client session.

For each ``FIT`` the runtime calls the user's ``fit(parameters, config)``, forms the
flat update ``flatten(new) - flatten(old)``, applies the update transforms the config
names (:func:`secagg.apply_update_transforms`), and opens the backend's client session
with weight :func:`secagg.client_weight` (``num_examples``, or 1 under DP). For each
``EVALUATE`` it calls the user's optional ``evaluate(parameters, config) -> (loss,
num_examples, metrics)`` and opens a session over :func:`secagg.evaluation_vector`
with weight ``num_examples``; a client without ``evaluate`` answers ``ABORT`` and is
left out of the evaluation. Each ``PROTOCOL`` message is then fed to that session
and its reply sent back. A broken link is retried with exponential backoff and jitter
until the coordinator says ``FINISHED`` or rejects the credentials.

The user's parameters and metrics never leave the process; only the session's
messages do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

import secagg

# importing dp also registers its update transforms (clipping, local noise), which a
# round's config may name
from dp import secure_generator
from secagg import Backend, ClientSession, Config, Parameters
from secagg._strategy import TRANSFORMS_KEY, Scalar
from transport._backends import resolve_backend
from transport._errors import Code, ConfigError, ConnectionLost
from transport._messages import Kind, Message, Payload, decode_parameters, payload_bytes

__all__ = ["ClientLink", "Connector", "ClientRuntime", "ClientSummary", "FitFn", "EvaluateFn",
           "Backoff"]

log = logging.getLogger("blindsum.client")

#: backends whose client sessions take a :class:`secagg.ClientPolicy` (SecAgg+ underneath)
POLICY_BACKENDS = ("secagg+", "secagg+ddp")

FitFn = Callable[[Parameters, Config], tuple[Sequence[np.ndarray], int, Mapping[str, Scalar]]]
EvaluateFn = Callable[[Parameters, Config], tuple[float, float, Mapping[str, Scalar]]]


class ClientLink(Protocol):
    """One authenticated link to the coordinator (made by a :data:`Connector`)."""

    backend: str

    async def send(self, message: Message) -> None: ...

    async def recv(self) -> Message:
        """The next message; raises :class:`ConnectionLost` when the link ends."""
        ...

    async def close(self) -> None: ...


Connector = Callable[[], Awaitable[ClientLink]]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Reconnect delays: ``initial * 2**k`` capped at ``maximum``, times U(0.5, 1)."""

    initial: float = 0.2
    maximum: float = 10.0
    give_up_after: float | None = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return min(self.maximum, self.initial * 2 ** min(attempt, 30)) * rng.uniform(0.5, 1.0)


@dataclasses.dataclass(slots=True)
class ClientSummary:
    client_id: int
    rounds_fitted: int = 0
    rounds_completed: int = 0
    rounds_evaluated: int = 0
    connections: int = 0
    finished: bool = False
    last_status: str = ""


@dataclasses.dataclass(slots=True)
class _Round:
    round_id: int
    session: ClientSession
    evaluating: bool = False


class ClientRuntime:
    """Serves one client id until training is over.

    ``backend`` overrides the backend named by the coordinator (for a configured
    instance; its ``name`` must match); ``accept_backends`` refuses coordinators that
    aggregate otherwise (for example ``("secagg+",)`` never sends an update in the clear).
    ``session_options`` are passed to ``backend.client_session`` (for example
    ``identity=`` the client's Ed25519 key in authenticated SecAgg+ rounds).
    ``policy`` (a :class:`secagg.ClientPolicy`) bounds the threshold and neighbours of
    SecAgg+ rounds (``secagg+`` and ``secagg+ddp``); a round outside it is refused with an
    ``ABORT`` naming the bound, and the round goes on without this client. It does not
    apply to other backends: pair it with ``accept_backends``.
    ``evaluate(parameters, config) -> (loss, num_examples, metrics)`` serves federated
    evaluation; without it the client declines (``ABORT``) every ``EVALUATE``.

    Raises:
        ConfigError: a negative ``client_id``, or a ``policy`` given both here and in
            ``session_options``.
    """

    def __init__(
        self, *, client_id: int, fit: FitFn, connector: Connector,
        accept_backends: Sequence[str] | None = None, backoff: Backoff | None = None,
        seed: int | None = None, backend: Backend | None = None,
        session_options: Mapping[str, Any] | None = None, evaluate: EvaluateFn | None = None,
        policy: secagg.ClientPolicy | None = None,
    ) -> None:
        if client_id < 0:
            raise ConfigError(f"client_id must be >= 0, got {client_id}")
        if policy is not None and "policy" in (session_options or {}):
            raise ConfigError("give the policy once: as policy= or in session_options, not both")
        self.client_id = client_id
        self._fit = fit
        self._evaluate = evaluate
        self._connector = connector
        self._accept = tuple(accept_backends) if accept_backends else None
        self._backoff = backoff or Backoff()
        self._jitter = random.Random(seed)
        self._seed = seed
        self._backend = backend
        self._session_options = dict(session_options or {})
        self._policy = policy
        self.summary = ClientSummary(client_id=client_id)
        # The last fit's update, overwritten by the next one when nothing can still read
        # it: fresh memory for 8 bytes a coordinate each round costs more than the
        # subtraction (page faults).
        self._spare: np.ndarray | None = None

    async def run(self) -> ClientSummary:
        """Connect, serve, reconnect; return when the coordinator says ``FINISHED``.

        Raises:
            ConnectionLost: the credentials were rejected or the id is not registered,
                or the coordinator stayed unreachable for longer than
                ``backoff.give_up_after`` (the message ends with the last failure).
        """
        attempt, failing_since = 0, time.monotonic()
        while True:
            try:
                link = await self._connector()
            except ConnectionLost as exc:
                if exc.permanent:
                    raise
                self.summary.last_status = str(exc)
            else:
                attempt, failing_since = 0, time.monotonic()
                self.summary.connections += 1
                try:
                    if await self._serve(link):
                        self.summary.finished = True
                        return self.summary
                except ConnectionLost as exc:
                    self.summary.last_status = str(exc)
                    log.info("client %d: link lost: %s", self.client_id, exc)
                    if exc.permanent:
                        raise
                finally:
                    await link.close()
            limit = self._backoff.give_up_after
            if limit is not None and time.monotonic() - failing_since > limit:
                last = self.summary.last_status
                raise ConnectionLost(Code.UNAVAILABLE,
                                     f"client {self.client_id}: gave up after {limit:g} s"
                                     + (f" (last: {last})" if last else ""))
            await asyncio.sleep(self._backoff.delay(attempt, self._jitter))
            attempt += 1

    async def _serve(self, link: ClientLink) -> bool:
        """Answer messages until the link ends; True when training is over."""
        if self._accept is not None and link.backend not in self._accept:
            raise ConnectionLost(Code.PERMISSION_DENIED,
                                 f"the coordinator aggregates with {link.backend!r}; "
                                 f"this client accepts only {list(self._accept)}")
        backend = self._backend or resolve_backend(link.backend)
        if backend.name != link.backend:
            raise ConnectionLost(Code.FAILED_PRECONDITION,
                                 f"the coordinator aggregates with {link.backend!r}, "
                                 f"this client was given {backend.name!r}")
        if self._policy is not None and backend.name not in POLICY_BACKENDS:
            log.warning("client %d: the coordinator aggregates with %r; the SecAgg+ policy "
                        "does not apply to it", self.client_id, backend.name)
        current: _Round | None = None
        while True:
            msg = await link.recv()
            if msg.kind is Kind.FINISHED:
                return True
            if msg.kind is Kind.ROUND_END:
                if current is not None and current.round_id == msg.round_id:
                    if msg.detail == "completed":
                        if current.evaluating:
                            self.summary.rounds_evaluated += 1
                        else:
                            self.summary.rounds_completed += 1
                    current = None
            elif msg.kind in (Kind.FIT, Kind.EVALUATE):
                current = await self._start(link, backend, msg)

            elif msg.kind is Kind.PROTOCOL:
                current = await self._step(link, current, msg)

    async def _start(self, link: ClientLink, backend: Backend, msg: Message) -> _Round | None:
        """Run the user's fit or evaluate; open the session and say READY (or ABORT)."""
        evaluating = msg.kind is Kind.EVALUATE
        what = "evaluate" if evaluating else "fit"
        if evaluating and self._evaluate is None:
            await self._abort(link, msg.round_id,
                              f"client {self.client_id} does not evaluate (no evaluate function)")
            return None
        prepare = self._prepare_evaluation if evaluating else self._prepare
        check = getattr(backend, "check_fit_config", None)
        if not evaluating and check is not None:
            try:  # before training: a round this client cannot join costs nothing
                check(msg.config)
            except ValueError as exc:  # our own check: its message names no secret
                await self._abort(link, msg.round_id, f"client {self.client_id}: {exc}")
                log.warning("client %d: refused round %d: %s", self.client_id, msg.round_id, exc)
                return None
        try:
            session = await asyncio.to_thread(prepare, backend, msg)
        except Exception as exc:  # the user's code failed: tell, and stay
            await self._abort(link, msg.round_id, f"{what} failed: {type(exc).__name__}")
            log.warning("client %d: %s failed in round %d: %r",
                        self.client_id, what, msg.round_id, exc)
            return None
        if not evaluating:
            self.summary.rounds_fitted += 1
        await link.send(Message(kind=Kind.READY, round_id=msg.round_id))
        return _Round(msg.round_id, session, evaluating)

    async def _step(self, link: ClientLink, current: _Round | None, msg: Message) -> _Round | None:
        if current is None or current.round_id != msg.round_id:
            await self._abort(link, msg.round_id, "no session for this round")
            return current
        try:
            reply = await asyncio.to_thread(_answer, current.session, msg.payload)
        except secagg.SecAggError as exc:
            log.warning("client %d: round %d: %s", self.client_id, msg.round_id, exc)
            await self._abort(link, msg.round_id, f"{type(exc).__name__}: {exc}")
            return None
        if reply is None:
            await link.send(Message(kind=Kind.NO_REPLY, round_id=msg.round_id))
        else:
            await link.send(Message(kind=Kind.PROTOCOL, round_id=msg.round_id, payload=reply,
                                    stage=msg.stage))
        return current

    async def _abort(self, link: ClientLink, round_id: int, why: str) -> None:
        await link.send(Message(kind=Kind.ABORT, round_id=round_id, detail=why[:200]))

    def _generator(self, round_id: int) -> np.random.Generator:
        """Rounding and noise for one round: seeded for reproducible tests, otherwise
        from the OS CSPRNG (``dp.secure_generator``), since local DP noise protects users."""
        if self._seed is None:
            return secure_generator()
        return np.random.default_rng([self._seed, round_id])

    def _prepare(self, backend: Backend, msg: Message) -> ClientSession:
        old = decode_parameters(payload_bytes(msg.payload), borrow=True)
        # fit gets its own copies: training in place (w -= lr * g; return [w]) is common,
        # and the update is measured against the model as it arrived
        new, num_examples, _metrics = self._fit([a.copy() for a in old], msg.config)
        if len(new) != len(old) or any(np.shape(a) != np.shape(b) for a, b in zip(new, old, strict=True)):
            raise ValueError("fit returned parameters shaped unlike the global ones")
        if not num_examples > 0:
            raise ValueError(f"fit returned num_examples={num_examples}; it must be > 0")
        rng = self._generator(msg.round_id)
        # Only this round's session reads the update (the last one ended with the FIT
        # that brought us here, and its reply went out as copies), unless a transform
        # runs: it might keep the array, so it gets a fresh one.
        reuse = not str(msg.config.get(TRANSFORMS_KEY, "") or "").strip()
        update = _flat_difference(new, old, out=self._spare if reuse else None)
        self._spare = update if reuse else None
        update = secagg.apply_update_transforms(update, msg.config, rng)
        return self._session(backend, update, secagg.client_weight(num_examples, msg.config),
                             rng)

    def _prepare_evaluation(self, backend: Backend, msg: Message) -> ClientSession:
        assert self._evaluate is not None
        loss, num_examples, metrics = self._evaluate(
            decode_parameters(payload_bytes(msg.payload), borrow=True), msg.config)
        if not num_examples > 0:
            raise ValueError(f"evaluate returned num_examples={num_examples}; it must be > 0")
        rng = self._generator(msg.round_id)
        vector = secagg.apply_update_transforms(
            secagg.evaluation_vector(loss, metrics, msg.config), msg.config, rng)
        return self._session(backend, vector, secagg.client_weight(float(num_examples), msg.config),
                             rng)

    def _session(self, backend: Backend, vector: np.ndarray, weight: float,
                 rng: np.random.Generator) -> ClientSession:
        make_session: Callable[..., ClientSession] = backend.client_session
        options = self._session_options
        if self._policy is not None and backend.name in POLICY_BACKENDS:
            options = options | {"policy": self._policy}
        return make_session(client_id=self.client_id, vector=vector, weight=weight, rng=rng,
                            **options)


def _flat_difference(new: Sequence[np.ndarray], old: Parameters,
                     out: np.ndarray | None = None) -> np.ndarray:
    """``flatten(new) - flatten(old)`` (float64, the same numbers) in one pass, into
    ``out`` when it is a float64 vector of the right length."""
    if any(np.asarray(a).dtype.kind not in "biuf" for a in (*new, *old)):
        return secagg.flatten(new) - secagg.flatten(old)
    n = sum(int(np.size(a)) for a in old)
    if out is None or out.shape != (n,) or out.dtype != np.float64:
        out = np.empty(n, dtype=np.float64)
    offset = 0
    for a, b in zip(new, old, strict=True):
        size = int(np.size(b))
        np.subtract(np.asarray(a).reshape(-1), np.asarray(b).reshape(-1),
                    out=out[offset:offset + size], dtype=np.float64)
        offset += size
    return out


def _answer(session: ClientSession, payload: Payload) -> tuple[bytes | memoryview, ...] | None:
    reply = session.receive(secagg.decode(payload_bytes(payload), peer="server"))
    # the parts view the reply's arrays: the link copies them once, into its frames
    return None if reply is None else secagg.encode_parts(reply)
