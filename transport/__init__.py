"""Transport for blindsum: gRPC coordinator and client runtime, in-process transport, CLI.

The coordinator drives any :class:`secagg.Backend`'s sans-IO server session over real
links, with per-stage deadlines (stragglers are dropped), over-selection, per-client
tokens, TLS / mutual TLS, and SQLite checkpoints after every round. The client runtime
runs the user's ``fit`` and the backend's client session, reconnecting with backoff.
"""

from transport._auth import TokenTable, new_token
from transport._backends import available_backends, resolve_backend
from transport._client import Backoff, ClientLink, ClientRuntime, ClientSummary, Connector, FitFn
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
]
