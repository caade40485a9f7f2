"""Regenerate the SecAgg known-answer vectors in this folder.

Shamir vectors come from an independent pure-Python implementation (below), not from
``secagg._shamir``; crypto vectors are RFC test vectors plus pinned values of our
key derivation and mask expansion, each cross-checked here against an independent
computation (HMAC-based HKDF, AES-ECB of counter blocks). Run from the repository
root: ``python tests/vectors/secagg/generate.py``.
"""

import hashlib
import hmac
import json
import random
import struct
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg import _crypto

HERE = Path(__file__).parent
P = 2**31 - 1
rnd = random.Random(20261129)


def lagrange_at_zero(xs, ys):
    total = 0
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        num = den = 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * xj % P
                den = den * (xj - xi) % P
        total = (total + yi * num * pow(den, P - 2, P)) % P
    return total


def share(limbs, xs, t):
    coeffs = [[s] + [rnd.randrange(P) for _ in range(t - 1)] for s in limbs]
    return [[sum(c[j] * pow(x, j, P) for j in range(t)) % P for c in coeffs] for x in xs]


def hkdf_oracle(ikm, info, length, salt=b""):
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def shamir_vectors():
    src = "independent pure-Python Shamir over GF(2^31-1) in generate.py (Horner, Lagrange via pow)"
    cases = []
    for t, nx in [(1, 1), (2, 3), (3, 5), (5, 9)]:
        secret = bytes(rnd.randrange(256) for _ in range(32))
        limbs = [int(v) for v in np.frombuffer(secret, dtype="<u2")]
        xs = sorted(rnd.sample(range(1, 1000), nx))
        sh = share(limbs, xs, t)
        assert [lagrange_at_zero(xs[:t], [s[i] for s in sh[:t]]) for i in range(16)] == limbs
        cases.append({"threshold": t, "points": xs, "secret": secret.hex(), "source": src,
                      "shares": [np.array(s, dtype="<u4").tobytes().hex() for s in sh]})
    c = cases[2]
    t = c["threshold"]
    tampered = bytearray(bytes.fromhex(c["shares"][0]))
    tampered[0] ^= 1
    negative = [
        {"case": "t-1 shares", "points": c["points"][: t - 1], "shares": c["shares"][: t - 1],
         "secret": c["secret"], "source": src},
        {"case": "one share tampered", "points": c["points"][:t],
         "shares": [tampered.hex()] + c["shares"][1:t], "secret": c["secret"], "source": src},
    ]
    return {"description": "32-byte secrets as sixteen 16-bit limbs; a share is 16 little-endian "
            "uint32 field elements", "cases": cases, "negative": negative}


def crypto_vectors():
    x25519 = {"source": "RFC 7748 section 6.1",
              "alice_private": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
              "alice_public": "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
              "bob_private": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
              "bob_public": "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
              "shared": "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"}
    hkdf = [
        {"source": "RFC 5869 A.1", "ikm": "0b" * 22, "salt": "000102030405060708090a0b0c",
         "info": "f0f1f2f3f4f5f6f7f8f9", "length": 42,
         "okm": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
        {"source": "RFC 5869 A.3", "ikm": "0b" * 22, "salt": "", "info": "", "length": 42,
         "okm": "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
    ]
    derive = []
    for purpose in ("share_key", "pairwise_mask", "self_mask"):
        secret, r, a, b = bytes(range(32)), 3, 5, 9
        key = _crypto.derive(purpose, secret, round_id=r, a=a, b=b)
        info = _crypto.LABELS[purpose] + struct.pack("<qqq", r, a, b)
        assert key == hkdf_oracle(secret, info, 32)
        derive.append({"purpose": purpose, "secret": secret.hex(), "round_id": r, "a": a, "b": b,
                       "key": key.hex(), "source": "blindsum wire v1: HKDF-SHA256, no salt, info = "
                       "label || int64le(round, a, b); checked against an HMAC-SHA256 HKDF oracle"})
    masks = []
    for dtype in ("uint16", "uint32", "uint64"):
        seed, dim = bytes(range(100, 132)), 37
        words = _crypto.MaskExpander(dim, np.dtype(dtype)).expand(seed).copy()
        blocks = b"".join(i.to_bytes(16, "big") for i in range(32))
        ref = Cipher(algorithms.AES(seed), modes.ECB()).encryptor().update(blocks)
        assert np.frombuffer(ref[: words.nbytes], dtype=dtype).tolist() == words.tolist()
        masks.append({"seed": seed.hex(), "dtype": dtype, "dim": dim, "words": [int(w) for w in words],
                      "source": "AES-256-CTR keystream, zero IV, big-endian counter (NIST SP 800-38A), "
                      "little-endian words; checked against AES-256-ECB of counter blocks"})
    return {"x25519": x25519, "hkdf": hkdf, "derive": derive, "masks": masks}


if __name__ == "__main__":
    (HERE / "shamir.json").write_text(json.dumps(shamir_vectors(), indent=1) + "\n")
    (HERE / "crypto.json").write_text(json.dumps(crypto_vectors(), indent=1) + "\n")
