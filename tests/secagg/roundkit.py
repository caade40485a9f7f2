"""Drive a SecAgg+ round message by message, for tests that poke at one stage."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import secagg
from secagg import _recovery, _shamir
from secagg._messages import RoundConfig
from secagg._quantize import Quantizer

SECRET = bytes(range(32))  # the secret the share helpers below deal


def shamir_shares(n: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Points 1..n and their shares of :data:`SECRET` with threshold ``t``, shape (n, LIMBS)."""
    xs = np.arange(1, n + 1, dtype=np.int64)
    return xs, _shamir.split(_shamir.secret_to_limbs([SECRET]), xs, t)[:, 0, :]


def recover_one(xs: np.ndarray, ys: np.ndarray, t: int) -> tuple[bytes, list[int]]:
    """The secret robust recovery returns for these shares, and the points it names."""
    secrets, bad = _recovery.recover_secrets({(0, "self_mask"): (xs, ys)}, threshold=t,
                                             check=lambda owner, kind, s: s == SECRET)
    return secrets[(0, "self_mask")], sorted(p for p, _ in bad)


def make_round(n: int, dim: int, *, k: int | str = "all", t: int | None = None, seed: int = 0,
               modulus_bits: int = 32, max_weight: int = 1, weights: np.ndarray | None = None,
               authenticated: bool = False, policies: Mapping[int, secagg.ClientPolicy] | None = None):
    rng = np.random.default_rng(seed)
    if t is None:  # a strict majority of the k + 1 shares, tolerant of the tests' dropouts
        t = (n if k == "all" else min(int(k), n - 1) + 1) // 2 + 1
    ident = {c: Ed25519PrivateKey.generate() for c in range(n)} if authenticated else {}
    public = {c: key.public_key().public_bytes_raw() for c, key in ident.items()} or None
    backend = secagg.SecAggPlusBackend(neighbours=k, threshold=t, modulus_bits=modulus_bits,
                                       max_weight=max_weight, identities=public)
    xs = rng.uniform(-1, 1, (n, dim))
    ws = np.ones(n, dtype=int) if weights is None else weights
    server = backend.server_session(round_id=7, client_ids=tuple(range(n)), dim=dim,
                                    rng=np.random.default_rng(seed + 1))
    clients = {c: backend.client_session(client_id=c, vector=xs[c], weight=int(ws[c]),
                                         rng=np.random.default_rng([seed, c]), identity=ident.get(c),
                                         policy=(policies or {}).get(c))
               for c in range(n)}
    return server, clients, xs, ws


def expected_words(config: RoundConfig, xs: np.ndarray, ws: np.ndarray, survivors, seed: int = 0):
    """The quantised words each client computed (same generator seeds), summed mod 2^b."""
    q = Quantizer(num_clients=config.num_clients, clip=config.clip, scale=config.scale,
                  modulus_bits=config.modulus_bits, max_weight=config.max_weight)
    total = np.zeros(config.dim + 1, dtype=q.dtype)
    for c in survivors:
        total += q.quantize(xs[c], int(ws[c]), np.random.default_rng([seed, c]))
    mask = (1 << config.modulus_bits) - 1
    return total & total.dtype.type(mask) if config.modulus_bits < 8 * q.dtype.itemsize else total


def run(server, clients, schedule: Mapping[int, str] | None = None, *, wire: bool = True):
    """Deliver every message until the server is done; ``schedule`` maps id -> stage to drop at."""
    schedule = dict(schedule or {})
    while not server.done:
        stage = server.stage
        outbox = server.next_messages()
        if not outbox:
            server.close_stage()
            continue
        for cid, msg in sorted(outbox.items()):
            if schedule.get(cid) == stage:
                server.drop(cid)
                continue
            if wire:
                msg = secagg.decode(secagg.encode(msg))
            reply = clients[cid].receive(msg)
            if wire:
                reply = secagg.decode(secagg.encode(reply), peer=cid)
            server.receive(cid, reply)
    return server


def step(server, clients, *, until: str):
    """Run whole stages until the server reaches stage ``until`` (its requests not yet taken)."""
    while server.stage != until:
        for cid, msg in sorted(server.next_messages().items()):
            server.receive(cid, clients[cid].receive(msg))
