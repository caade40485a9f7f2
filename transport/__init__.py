"""Transport for blindsum: gRPC coordinator and client runtime, in-process transport, CLI.

The coordinator drives any :class:`secagg.Backend`'s sans-IO server session over real
links, with per-stage deadlines (stragglers are dropped), over-selection, per-client
tokens, TLS / mutual TLS, and SQLite checkpoints after every round. It follows the
strategy contract (``docs/strategies.md``): the strategy's backend per round, a DP
budget stop, federated and server-side evaluation. The client runtime runs the user's
``fit`` (and optional ``evaluate``) and the backend's client session, reconnecting
with backoff.

A federation in a few lines (the coordinator and the clients usually live in
different processes; ``blindsum coordinator`` and ``blindsum client`` do exactly this)::

    coordinator = transport.Coordinator(
        strategy=my_strategy, parameters=initial, backend=secagg.SecAggPlusBackend(),
        config=transport.CoordinatorConfig(rounds=3, clients_per_round=8,
                                           over_selection=0.25, stage_deadline=30),
        store=transport.Store("state/"))            # resumes after a crash
    summary = await transport.serve(coordinator, "127.0.0.1:9092")

    runtime = transport.ClientRuntime(
        client_id=3, fit=my_fit, evaluate=my_evaluate,
        connector=transport.GrpcConnector("127.0.0.1:9092", client_id=3, token=token))
    await runtime.run()

For simulations, :class:`InProcessTransport` connects runtimes to a coordinator in
the same event loop with the same rules and status codes.
"""

from transport._auth import TokenTable, new_token
from transport._backends import available_backends, resolve_backend
from transport._client import (
    Backoff,
    ClientLink,
    ClientRuntime,
    ClientSummary,
    Connector,
    EvaluateFn,
    FitFn,
)
from transport._coordinator import Coordinator, CoordinatorConfig, Peer
from transport._errors import (
    Code,
    ConfigError,
    ConnectionLost,
    Rejected,
    RoundsFailed,
    TransportError,
)
from transport._grpc_client import ClientTLS, GrpcConnector
from transport._grpc_server import GrpcServer, ServerTLS, is_loopback
from transport._inproc import InProcessTransport
from transport._messages import Kind, Message, decode_parameters, encode_parameters
from transport._records import RoundEvent, RoundRecord, RunSummary
from transport._run import load_app, run_client, serve
from transport._store import Store

__all__ = [
    "TokenTable",
    "new_token",
    "available_backends",
    "resolve_backend",
    "Backoff",
    "ClientLink",
    "ClientRuntime",
    "ClientSummary",
    "Connector",
    "FitFn",
    "EvaluateFn",
    "Coordinator",
    "CoordinatorConfig",
    "Peer",
    "Code",
    "ConfigError",
    "ConnectionLost",
    "Rejected",
    "RoundsFailed",
    "TransportError",
    "ClientTLS",
    "GrpcConnector",
    "GrpcServer",
    "ServerTLS",
    "is_loopback",
    "InProcessTransport",
    "Kind",
    "Message",
    "decode_parameters",
    "encode_parameters",
    "RoundEvent",
    "RoundRecord",
    "RunSummary",
    "Store",
    "load_app",
    "run_client",
    "serve",
]
