"""Throughput and noise figures for the dp mechanisms (not a test; run by hand).

    nice .venv/bin/python tests/dp/bench_dp_mech.py

The distributed mean estimation experiment at equal epsilon (KLS 2021) lives in
``papers/kairouz2021/reproduce.py``.
"""

from __future__ import annotations

import math
import time

import numpy as np

import dp


def _rate(fn, n: int, reps: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def samplers() -> None:
    n = 1_000_000
    rng = dp.secure_generator()
    print(f"samplers, {n:,} draws, best of 3 (secure_generator):")
    for name, fn in [
        ("gaussian sigma=1", lambda: dp.gaussian_noise(rng, sigma=1.0, size=n)),
        ("laplace scale=1", lambda: dp.laplace_noise(rng, scale=1.0, size=n)),
        ("discrete gaussian sigma=0.5", lambda: dp.discrete_gaussian_noise(rng, sigma=0.5, size=n)),
        ("discrete gaussian sigma=10", lambda: dp.discrete_gaussian_noise(rng, sigma=10.0, size=n)),
        ("discrete gaussian sigma=1e6", lambda: dp.discrete_gaussian_noise(rng, sigma=1e6, size=n)),
        ("skellam mu=100", lambda: dp.skellam_noise(rng, mu=100.0, size=n)),
    ]:
        print(f"  {name:30s} {_rate(fn, n) / 1e6:7.2f} M samples/s")


def distributed() -> None:
    print("distributed DP: n=100 clients (min 90), d=10,000, z=1, c=1, no dropout and 10% dropout")
    for mech in ("dgauss", "skellam"):
        for bits in (12, 16, 20):
            cfg = dp.DistributedDPConfig(
                dim=10_000, bits=bits, clip=1.0, noise_multiplier=1.0,
                expected_clients=100, min_clients=90, mechanism=mech,
            )
            rng = np.random.default_rng(bits)
            xs = rng.normal(size=(100, cfg.dim))
            xs /= np.linalg.norm(xs, axis=1, keepdims=True)
            t0 = time.perf_counter()
            encs = [dp.encode_client(x, cfg, 7, rng) for x in xs]
            t_enc = (time.perf_counter() - t0) / len(xs)
            for n in (100, 90):
                total = np.zeros(cfg.padded_dim, dtype=np.uint64)
                for e in encs[:n]:
                    total += e
                t0 = time.perf_counter()
                out = dp.decode_sum(total, cfg, 7, n)
                t_dec = time.perf_counter() - t0
                measured = float(np.std(out - xs[:n].sum(0)))
                target = dp.noise_std_target(cfg, num_clients=n)
                eps, _ = dp.distributed_epsilon(cfg, delta=1e-5)
                print(
                    f"  {mech:7s} bits={bits} survivors={n}: gamma={cfg.gamma:.3g} "
                    f"encode {t_enc * 1e3:.2f} ms/client, decode {t_dec * 1e3:.2f} ms, "
                    f"noise measured {measured:.4f} vs target {target:.4f} "
                    f"(accounted {dp.noise_std_target(cfg):.4f}), eps(1e-5)={eps:.3f}"
                )


if __name__ == "__main__":
    samplers()
    distributed()
