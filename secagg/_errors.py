"""The one exception tree of :mod:`secagg`.

``SecAggError`` is the root. ``LocalProtocolError`` means the caller misused the
API (wrong stage, wrong argument); ``RemoteProtocolError`` means a named peer sent
something the protocol forbids, and carries that peer's id so the caller can drop
it. Crypto failures (bad tag, bad share) are remote errors too: someone sent them.
"""

from __future__ import annotations

__all__ = [
    "SecAggError",
    "ConfigurationError",
    "QuantizationOverflowError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "CryptoError",
    "InvalidCiphertext",
    "InvalidShare",
    "RecoveryError",
    "DecodeError",
]

Peer = int | str


class SecAggError(Exception):
    """Root of every error raised by :mod:`secagg`."""


class ConfigurationError(SecAggError, ValueError):
    """A configuration can never work; the message names the parameter to change."""


class QuantizationOverflowError(ConfigurationError):
    """The sum of the weighted, quantised inputs could overflow the modulus."""


class LocalProtocolError(SecAggError):
    """The local caller misused the protocol object (wrong stage, wrong call)."""


class RemoteProtocolError(SecAggError):
    """A peer sent something the protocol forbids.

    ``peer`` is the misbehaving party: a client id, or ``"server"`` when a client
    rejects a request from the server.
    """

    def __init__(self, peer: Peer, reason: str) -> None:
        super().__init__(f"peer {peer!r}: {reason}")
        self.peer = peer
        self.reason = reason


class DecodeError(RemoteProtocolError):
    """Bytes that do not decode to a valid message."""


class CryptoError(RemoteProtocolError):
    """A cryptographic check failed on data a peer sent."""


class InvalidCiphertext(CryptoError):
    """An AEAD ciphertext failed authentication (tampered, truncated or misrouted)."""


class InvalidShare(CryptoError):
    """A secret share is malformed or inconsistent with the others."""


class RecoveryError(SecAggError):
    """The server cannot finish the round; ``missing`` says which secrets lack shares.

    ``missing`` maps ``(owner_id, kind)`` with ``kind`` in ``{"self_mask", "mask_key"}``
    to ``(shares_received, threshold)``. ``suspects`` are clients the evidence points
    at (a client whose shares all agree with one another but not with its own
    commitment or public key dealt them falsely); exclude them from the next round.
    """

    def __init__(self, reason: str, missing: dict[tuple[int, str], tuple[int, int]],
                 suspects: tuple[int, ...] = ()) -> None:
        detail = ", ".join(
            f"client {owner} {kind}: {have}/{need} shares" for (owner, kind), (have, need) in
            sorted(missing.items())
        )
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.missing = missing
        self.suspects = suspects
