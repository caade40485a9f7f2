"""Shared pieces of the transport tests: a tiny averaging strategy, fit functions,
backends that misbehave on purpose, transport harnesses and throwaway certificates."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import time
from collections.abc import Callable

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import secagg
import transport
from secagg import AggregateResult, Parameters


class TinyAvg:
    """FedAvg for tests: new = old + weighted mean of the updates."""

    needs_individual_updates = False

    def __init__(self) -> None:
        self.aggregates: list[AggregateResult] = []

    def configure_fit(self, server_round: int, parameters: Parameters) -> dict[str, int]:
        return {"server_round": server_round}

    def aggregate_fit(self, server_round: int, parameters: Parameters,
                      aggregate: AggregateResult) -> Parameters:
        self.aggregates.append(aggregate)
        return secagg.unflatten(secagg.flatten(parameters) + aggregate.mean, parameters)


def initial_parameters(dim: int = 6) -> Parameters:
    return [np.zeros((2, dim // 2), np.float32), np.zeros(3)]


def shift_fit(cid: int, delay: float = 0.0) -> transport.FitFn:
    """Adds ``cid`` to every parameter; weight ``cid + 1``."""

    def fit(params: Parameters, config: object) -> tuple[Parameters, int, dict]:
        if delay:
            time.sleep(delay)
        return [p + cid for p in params], cid + 1, {}

    return fit


def expected_mean(cids: list[int]) -> float:
    return sum(c * (c + 1) for c in cids) / sum(c + 1 for c in cids)


@dataclasses.dataclass(frozen=True)
class SlowPlain:
    """The plain backend whose client sessions sleep before answering."""

    delay: float
    name: str = "plain"

    def server_session(self, **kw: object) -> secagg.ServerSession:
        return secagg.PlainBackend().server_session(**kw)  # type: ignore[arg-type]

    def client_session(self, **kw: object) -> secagg.ClientSession:
        inner = secagg.PlainBackend().client_session(**kw)  # type: ignore[arg-type]
        delay = self.delay

        class Slow:
            def receive(self, message: object) -> object | None:
                time.sleep(delay)
                return inner.receive(message)

        return Slow()


# -- harnesses --------------------------------------------------------------------


class InProcHarness:
    name = "inproc"

    async def start(self, coordinator: transport.Coordinator) -> None:
        self._t = transport.InProcessTransport(coordinator)

    def connector(self, cid: int, token: str | None = None) -> transport.Connector:
        return self._t.connector(cid, token)

    async def stop(self) -> None:
        pass


class GrpcHarness:
    name = "grpc"
    server_tls: transport.ServerTLS | None = None
    client_tls: transport.ClientTLS | None = None

    async def start(self, coordinator: transport.Coordinator) -> None:
        self.server = transport.GrpcServer(coordinator, "127.0.0.1:0", tls=self.server_tls)
        self.port = await self.server.start()

    def connector(self, cid: int, token: str | None = None) -> transport.Connector:
        return transport.GrpcConnector(f"127.0.0.1:{self.port}", client_id=cid, token=token,
                                       tls=self.client_tls, connect_timeout=5)

    async def stop(self) -> None:
        await self.server.stop(0.2)


FAST = transport.Backoff(initial=0.05, maximum=0.2, give_up_after=10)


def config(**kw: object) -> transport.CoordinatorConfig:
    base: dict[str, object] = dict(rounds=1, clients_per_round=3, min_clients=2,
                                   fit_deadline=5.0, stage_deadline=5.0, wait_for_clients=5.0,
                                   retry_pause=0.05, seed=1)
    base.update(kw)
    return transport.CoordinatorConfig(**base)  # type: ignore[arg-type]


async def run_federation(
    harness: InProcHarness | GrpcHarness, coordinator: transport.Coordinator,
    runtimes: dict[int, Callable[[transport.Connector], transport.ClientRuntime]],
    extra: Callable[[], object] | None = None, tokens: dict[int, str] | None = None,
    on_event: Callable[[transport.RoundEvent, dict[int, asyncio.Task]], None] | None = None,
) -> tuple[transport.RunSummary, dict[int, transport.ClientSummary | BaseException], object]:
    """Start the coordinator and runtimes (and an extra coroutine), run to the end."""
    await harness.start(coordinator)
    try:
        clients = {cid: make(harness.connector(cid, (tokens or {}).get(cid)))
                   for cid, make in runtimes.items()}
        tasks = {cid: asyncio.create_task(rt.run()) for cid, rt in clients.items()}
        if on_event is not None:
            coordinator.observer = lambda event: on_event(event, tasks)
        extra_task = asyncio.ensure_future(extra()) if extra else None  # type: ignore[arg-type]
        summary = await asyncio.wait_for(coordinator.run(), 30)
        done = await asyncio.wait_for(
            asyncio.gather(*tasks.values(), return_exceptions=True), 15)
        extra_result = await asyncio.wait_for(extra_task, 15) if extra_task else None
        return summary, dict(zip(tasks, done, strict=True)), extra_result
    finally:
        await harness.stop()


def runtime(cid: int, delay: float = 0.0, **kw: object
            ) -> Callable[[transport.Connector], transport.ClientRuntime]:
    def make(conn: transport.Connector) -> transport.ClientRuntime:
        return transport.ClientRuntime(client_id=cid, fit=shift_fit(cid, delay), connector=conn,
                                       backoff=FAST, seed=cid, **kw)  # type: ignore[arg-type]

    return make


# -- certificates -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: bytes
    server_key: bytes
    server_cert: bytes
    client_key: bytes
    client_cert: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, san: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki() -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "blindsum test CA")])
    ca = _cert("blindsum test CA", ca_key, ca_name, ca_key, ca=True, san=False)
    skey = ec.generate_private_key(ec.SECP256R1())
    scert = _cert("localhost", skey, ca_name, ca_key, ca=False, san=True)
    ckey = ec.generate_private_key(ec.SECP256R1())
    ccert = _cert("client", ckey, ca_name, ca_key, ca=False, san=False)
    pem = serialization.Encoding.PEM
    return Pki(ca=ca.public_bytes(pem), server_key=_key_pem(skey),
               server_cert=scert.public_bytes(pem), client_key=_key_pem(ckey),
               client_cert=ccert.public_bytes(pem))


class StallingSession:
    """A server session that asks once and then never moves on, whatever happens."""

    stage = "stuck"
    done = False

    def __init__(self, client_ids: tuple[int, ...], dim: int) -> None:
        from secagg._plain import PlainRequest

        self._out: dict[int, object] = {c: PlainRequest(round_id=1, dim=dim) for c in client_ids}
        self.close_calls = 0

    def next_messages(self) -> dict[int, object]:
        out, self._out = self._out, {}
        return out

    def receive(self, client_id: int, message: object) -> None:
        pass

    def drop(self, client_id: int) -> None:
        pass

    def close_stage(self) -> None:
        self.close_calls += 1

    def result(self) -> AggregateResult:
        raise AssertionError("never done")


class _Batched:
    """Asks the first half of the clients, and the rest once the first has answered."""

    stage = "collect"

    def __init__(self, inner: secagg.ServerSession) -> None:
        self._inner = inner
        first = inner.next_messages()
        ids = sorted(first)
        half = len(ids) // 2
        self._out = {c: first[c] for c in ids[:half]}
        self._held = {c: first[c] for c in ids[half:]}
        self._trigger = ids[0]

    @property
    def done(self) -> bool:
        return self._inner.done

    def next_messages(self) -> dict[int, object]:
        out, self._out = self._out, {}
        return out

    def receive(self, client_id: int, message: object) -> None:
        self._inner.receive(client_id, message)
        if client_id == self._trigger:
            self._out.update(self._held)
            self._held = {}

    def drop(self, client_id: int) -> None:
        self._inner.drop(client_id)

    def close_stage(self) -> None:
        self._inner.close_stage()

    def result(self) -> AggregateResult:
        return self._inner.result()


class TwoBatchPlain:
    """Plain aggregation that sends its requests in two batches within one stage."""

    name = "plain"

    def server_session(self, **kw: object) -> secagg.ServerSession:
        return _Batched(secagg.PlainBackend().server_session(**kw))  # type: ignore[arg-type]

    def client_session(self, **kw: object) -> secagg.ClientSession:
        return secagg.PlainBackend().client_session(**kw)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class SlowOnce:
    """Wraps a backend: client ``cid`` sleeps ``delay`` before its ``nth`` answer (from 1)."""

    inner: secagg.Backend
    cid: int
    nth: int
    delay: float

    @property
    def name(self) -> str:
        return self.inner.name

    def server_session(self, **kw: object) -> secagg.ServerSession:
        return self.inner.server_session(**kw)  # type: ignore[arg-type]

    def client_session(self, **kw: object) -> secagg.ClientSession:
        session = self.inner.client_session(**kw)  # type: ignore[arg-type]
        if kw["client_id"] != self.cid:
            return session
        outer = self

        class Slow:
            count = 0

            def receive(self, message: object) -> object | None:
                self.count += 1
                if self.count == outer.nth:
                    time.sleep(outer.delay)
                return session.receive(message)

        return Slow()
