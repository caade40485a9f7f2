"""Key files the commands read: SecAgg+ identities (Ed25519) and CKKS keys.

- identities: ``<client_id> <hex public key>`` lines (raw 32-byte Ed25519 keys), the
  same file for the coordinator and every client, distributed out of band;
- an identity key: the client's Ed25519 private key, PEM (PKCS#8) or 32 raw bytes;
- CKKS keys: ``secagg.encode(keys)`` (key holders) or ``secagg.encode(keys.public())``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import secagg
from transport._errors import ConfigError

__all__ = [
    "load_identities",
    "load_identity_key",
    "load_ckks_keys",
    "write_identities",
    "write_key_files",
]


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def load_identities(path: str | Path) -> dict[int, bytes]:
    """Client id -> raw Ed25519 public key, from ``<id> <hex>`` lines.

    Raises:
        ConfigError: a malformed line, a key that is not 32 bytes, or a repeated id.
    """
    out: dict[int, bytes] = {}
    for lineno, raw in enumerate(_read(path).decode("utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            cid, key = int(parts[0]), bytes.fromhex(parts[1])
        except (ValueError, IndexError):
            raise ConfigError(f"{path}:{lineno}: expected '<client_id> <hex key>'") from None
        if len(parts) != 2 or len(key) != 32:
            raise ConfigError(f"{path}:{lineno}: an Ed25519 public key is 32 bytes (64 hex)")
        if cid in out:
            raise ConfigError(f"{path}:{lineno}: client id {cid} appears twice")
        out[cid] = key
    return out


def write_identities(path: str | Path, keys: dict[int, Ed25519PrivateKey]) -> None:
    """Write the public halves of ``keys`` in the format :func:`load_identities` reads."""
    raw = serialization.Encoding.Raw
    lines = [f"{cid} {key.public_key().public_bytes(raw, serialization.PublicFormat.Raw).hex()}"
             for cid, key in sorted(keys.items())]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_identity_key(path: str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8, unencrypted) or 32 raw bytes.

    Raises:
        ConfigError: neither form, or a PEM key of another type.
    """
    data = _read(path)
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is neither a PEM private key nor 32 raw bytes") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_ckks_keys(path: str | Path) -> object:
    """Keys written with ``secagg.encode(keys)`` (or ``keys.public()``).

    Raises:
        ConfigError: unreadable file, or bytes that are not CKKS keys.
    """
    try:
        keys = secagg.decode(_read(path), peer=str(path))
    except secagg.DecodeError as exc:
        raise ConfigError(f"cannot load CKKS keys from {path}: {exc}") from None
    if type(keys).__name__ != "CKKSKeys":
        raise ConfigError(f"{path} holds {type(keys).__name__}, not CKKSKeys")
    return keys


def _secret(path: Path, data: bytes) -> Path:
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(data)
    return path


def write_key_files(kind: str, ids: list[int], out: str | Path) -> list[Path]:
    """Write key files for ``ids`` into ``out``; return their paths.

    - ``tokens``: ``tokens.txt`` for the coordinator, ``token<id>`` per client;
    - ``identities``: ``identities.txt`` for everyone, ``identity<id>.pem`` per client;
    - ``ckks``: ``ckks.public`` for the coordinator and ordinary clients,
      ``ckks.secret`` for key holders.

    Raises:
        ConfigError: unknown kind, no ids, or a file that already exists.
    """
    from transport._auth import new_token

    if not ids:
        raise ConfigError("no client ids given")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "tokens":
            tokens = {cid: new_token() for cid in ids}
            table = "".join(f"{cid} {tok}\n" for cid, tok in tokens.items()).encode()
            return [_secret(folder / "tokens.txt", table)] + [
                _secret(folder / f"token{cid}", tok.encode() + b"\n")
                for cid, tok in tokens.items()]
        if kind == "identities":
            keys = {cid: Ed25519PrivateKey.generate() for cid in ids}
            if (folder / "identities.txt").exists():
                raise FileExistsError(folder / "identities.txt")
            write_identities(folder / "identities.txt", keys)
            pem = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                   serialization.NoEncryption())
            return [folder / "identities.txt"] + [
                _secret(folder / f"identity{cid}.pem", key.private_bytes(*pem))
                for cid, key in keys.items()]
        if kind == "ckks":
            ckks = secagg.CKKSKeys.generate()
            public = folder / "ckks.public"
            if public.exists():
                raise FileExistsError(public)
            public.write_bytes(secagg.encode(ckks.public()))
            return [public, _secret(folder / "ckks.secret", secagg.encode(ckks))]
    except FileExistsError as exc:
        where = exc.filename or (exc.args[0] if exc.args else "a key file")
        raise ConfigError(f"{where} already exists; not overwriting keys") from None
    raise ConfigError(f"kind must be tokens, identities or ckks, got {kind!r}")
