"""Many concurrent clients on one coordinator: answer latency per stage, memory per client.

    python benchmarks/transport_concurrency.py --clients 1000 --dim 100 --rounds 2
    python benchmarks/transport_concurrency.py --clients 200 --backend secagg+ --neighbours 16
    python benchmarks/transport_concurrency.py --clients 1000 --backend secagg+ \
        --neighbours auto --client-processes 2

A coordinator process and one process of N asyncio clients (one gRPC channel and
stream each; ``--client-processes P`` splits them over P processes) over loopback.
SecAgg+'s ``--neighbours`` is ``all`` (complete graph: O(n^2) work), an even k, or
``auto`` (the parameter finder's k for n, as ``SecureAggregation`` uses by default). Latency is measured by the coordinator from sending a
request to holding the complete answer (so it includes the client's work: training
for ``fit``, the backend's client step for each protocol stage). Memory per client
is the coordinator's resident-memory growth from idle to all N connected, over N.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import transport_bench_common as common  # noqa: E402


def drive(args: argparse.Namespace) -> dict[str, Any]:
    coord, clients = common.run_federation(__file__, args)
    rounds = [r for r in coord["records"] if r["status"] == "completed"]
    rss = coord["rss_mib"]
    per_client_kib = (rss["all_connected"] - rss["idle"]) * 1024 / args.clients
    result = {
        "clients": args.clients, "dim": args.dim, "backend": args.backend,
        "neighbours": args.neighbours, "client_processes": args.client_processes,
        "rounds_completed": len(rounds),
        "latency": [r["latency"] for r in rounds],
        "round_seconds": [r["seconds"] for r in rounds],
        "dropped": [r["dropped"] for r in rounds],
        "coordinator_rss_mib": rss, "coordinator_peak_rss_mib": coord["peak_rss_mib"],
        "kib_per_connected_client": per_client_kib,
        "client_failures": clients["n_failures"],
        "coordinator_cpu_seconds": coord["cpu_seconds"],
        "clients_cpu_seconds": clients["cpu_seconds"],
    }
    print(f"{args.clients} clients in {args.client_processes} process(es), dim {args.dim}, "
          f"backend {args.backend}, neighbours {args.neighbours}")
    for i, r in enumerate(rounds, 1):
        cells = ", ".join(f"{stage} p50 {v[0] * 1e3:.0f} ms p99 {v[1] * 1e3:.0f} ms"
                          for stage, v in r["latency"].items())
        print(f"round {i}: {r['seconds']:.2f} s; {cells}")
    print(f"coordinator RSS idle {rss['idle']:.0f} MiB, with all connected "
          f"{rss['all_connected']:.0f} MiB ({per_client_kib:.0f} KiB per client), "
          f"peak {coord['peak_rss_mib']:.0f} MiB; CPU seconds (start-up included): "
          f"coordinator {coord['cpu_seconds']:.1f}, clients {clients['cpu_seconds']:.1f}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", default="driver", choices=["driver", "coordinator", "clients"])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--backend", default="plain")
    p.add_argument("--neighbours", default="all")
    p.add_argument("--client-processes", type=int, default=1)
    p.add_argument("--port", type=int)
    p.add_argument("--slice", help="internal: this clients process's share, i/N")
    args = p.parse_args()
    if args.role == "driver":
        print(json.dumps(drive(args)))
    elif args.role == "coordinator":
        print(json.dumps(asyncio.run(common.coordinator_role(args))), flush=True)
    else:
        print(json.dumps(asyncio.run(common.clients_role(args))), flush=True)


if __name__ == "__main__":
    main()
