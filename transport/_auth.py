"""Who may join: per-client tokens and the admission rules.

Tokens are compared by their SHA-256 digest, so the table keeps no token in memory
after loading and nothing secret can end up in a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping

from transport._errors import Code, ConfigError, Rejected

__all__ = ["TokenTable", "new_token"]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class TokenTable:
    """Maps each client id to the digest of its token."""

    def __init__(self, tokens: Mapping[int, str]) -> None:
        self._by_id: dict[int, bytes] = {}
        for cid, token in tokens.items():
            if not isinstance(cid, int) or cid < 0:
                raise ConfigError(f"client id must be an int >= 0, got {cid!r}")
            if len(token) < 16:
                raise ConfigError(f"the token of client {cid} is shorter than 16 characters")
            self._by_id[cid] = _digest(token)

    def __len__(self) -> int:
        return len(self._by_id)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TokenTable:
        """Read ``client_id token`` lines (``#`` starts a comment).

        Raises:
            ConfigError: a line is not ``<int> <token>`` or an id repeats.
        """
        tokens: dict[int, str] = {}
        with open(path, encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) != 2 or not parts[0].isdigit():
                    raise ConfigError(f"{path}:{lineno}: expected '<client_id> <token>'")
                cid = int(parts[0])
                if cid in tokens:
                    raise ConfigError(f"{path}:{lineno}: client id {cid} appears twice")
                tokens[cid] = parts[1]
        return cls(tokens)

    def check(self, client_id: int, token: str | None) -> None:
        """Accept the pair or raise.

        Raises:
            Rejected: UNAUTHENTICATED without a token or with a wrong one,
                NOT_FOUND when the table has no such client id.
        """
        if not token:
            raise Rejected(Code.UNAUTHENTICATED, f"client {client_id} sent no token")
        want = self._by_id.get(client_id)
        if want is None:
            raise Rejected(Code.NOT_FOUND, f"client id {client_id} is not registered")
        if not hmac.compare_digest(want, _digest(token)):
            raise Rejected(Code.UNAUTHENTICATED, f"client {client_id} sent a wrong token")
