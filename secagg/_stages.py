"""The stages of a SecAgg+ round and which message moves each side forward.

Rules:

1. The server walks ``ADVERTISE_KEYS -> SHARE_KEYS -> MASKED_INPUT -> [CONSISTENCY_CHECK]
   -> UNMASK -> DONE``; the bracketed stage runs only in authenticated rounds, where
   every survivor signs the survivor set so that the server cannot tell clients
   different stories about who dropped.
   A stage closes when every client still in it has answered or been dropped, or
   when the caller closes it (its deadline passed). Clients that did not answer are
   dropouts from then on.
2. The server moves to ``FAILED`` (sticky) when the round can no longer finish, and
   says why (:class:`~secagg.RecoveryError`).
3. A client answers exactly one request per stage, in order. A request of the wrong
   type or round raises :class:`~secagg.RemoteProtocolError` naming the server and
   leaves the client unchanged; a request that breaks a safety rule (for example,
   asking for both shares of one peer) moves the client to ``ERROR`` (sticky), after
   which it answers nothing.
4. A client never reveals the self-mask share and the mask-key share of the same peer;
   it answers the unmask request at most once.
"""

from __future__ import annotations

import enum

from secagg import _messages as m

__all__ = [
    "ServerStage",
    "ClientStage",
    "SERVER_EXPECTS",
    "SERVER_NEXT",
    "CLIENT_EXPECTS",
    "CLIENT_NEXT",
    "next_server_stage",
    "next_client_stage",
]


class ServerStage(enum.Enum):
    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT = "masked_input"
    CONSISTENCY_CHECK = "consistency_check"
    UNMASK = "unmask"
    DONE = "done"
    FAILED = "failed"


class ClientStage(enum.Enum):
    AWAIT_ADVERTISE = "await_advertise"
    AWAIT_SHARE_KEYS = "await_share_keys"
    AWAIT_MASKED_INPUT = "await_masked_input"
    AWAIT_CONSISTENCY = "await_consistency"
    AWAIT_UNMASK = "await_unmask"
    DONE = "done"
    ERROR = "error"


# Which reply the server accepts in each stage, and what it asks for then.
SERVER_EXPECTS: dict[ServerStage, type] = {
    ServerStage.ADVERTISE_KEYS: m.AdvertiseKeys,
    ServerStage.SHARE_KEYS: m.ShareKeys,
    ServerStage.MASKED_INPUT: m.MaskedInput,
    ServerStage.CONSISTENCY_CHECK: m.ConsistencySignature,
    ServerStage.UNMASK: m.UnmaskShares,
}

SERVER_NEXT: dict[ServerStage, ServerStage] = {
    ServerStage.ADVERTISE_KEYS: ServerStage.SHARE_KEYS,
    ServerStage.SHARE_KEYS: ServerStage.MASKED_INPUT,
    ServerStage.MASKED_INPUT: ServerStage.CONSISTENCY_CHECK,  # UNMASK when not authenticated
    ServerStage.CONSISTENCY_CHECK: ServerStage.UNMASK,
    ServerStage.UNMASK: ServerStage.DONE,
}

# Which request a client accepts in each stage, and where it goes after answering.
CLIENT_EXPECTS: dict[ClientStage, type] = {
    ClientStage.AWAIT_ADVERTISE: m.AdvertiseRequest,
    ClientStage.AWAIT_SHARE_KEYS: m.ShareKeysRequest,
    ClientStage.AWAIT_MASKED_INPUT: m.MaskedInputRequest,
    ClientStage.AWAIT_CONSISTENCY: m.ConsistencyRequest,
    ClientStage.AWAIT_UNMASK: m.UnmaskRequest,
}

CLIENT_NEXT: dict[ClientStage, ClientStage] = {
    ClientStage.AWAIT_ADVERTISE: ClientStage.AWAIT_SHARE_KEYS,
    ClientStage.AWAIT_SHARE_KEYS: ClientStage.AWAIT_MASKED_INPUT,
    ClientStage.AWAIT_MASKED_INPUT: ClientStage.AWAIT_CONSISTENCY,  # AWAIT_UNMASK if not authenticated
    ClientStage.AWAIT_CONSISTENCY: ClientStage.AWAIT_UNMASK,
    ClientStage.AWAIT_UNMASK: ClientStage.DONE,
}


def next_server_stage(stage: ServerStage, *, authenticated: bool) -> ServerStage:
    """The stage after ``stage``; the consistency check only runs in authenticated rounds."""
    nxt = SERVER_NEXT[stage]
    if nxt is ServerStage.CONSISTENCY_CHECK and not authenticated:
        return SERVER_NEXT[nxt]
    return nxt


def next_client_stage(stage: ClientStage, *, authenticated: bool) -> ClientStage:
    """The client's stage after answering in ``stage``."""
    nxt = CLIENT_NEXT[stage]
    if nxt is ClientStage.AWAIT_CONSISTENCY and not authenticated:
        return CLIENT_NEXT[nxt]
    return nxt
