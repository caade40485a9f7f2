"""Round time of N clients x D float32 over loopback, against raw gRPC streaming.

    python benchmarks/transport_throughput.py --clients 100 --dim 1000000 --rounds 2

Three processes at a time: a coordinator, one process of N asyncio clients, and
this driver. The baseline moves the same bytes per client (the FIT payload down,
the update payload up, in ~1 MiB chunks on one bidirectional stream per client)
between two bare grpc.aio processes with no blindsum code at all. Prints a table
and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc  # noqa: E402
import grpc.aio  # noqa: E402
import numpy as np  # noqa: E402
import transport_bench_common as common  # noqa: E402

import secagg  # noqa: E402
import transport  # noqa: E402
from transport._frames import CHUNK_BYTES, GRPC_MESSAGE_LIMIT  # noqa: E402

METHOD = "/bench.Raw/Round"
OPTIONS = [("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT),
           ("grpc.max_send_message_length", GRPC_MESSAGE_LIMIT)]


def payload_sizes(dim: int, backend: str) -> tuple[int, int]:
    """Bytes of one FIT payload (down) and one update payload (up) for plain."""
    down = len(transport.encode_parameters([np.zeros(dim, np.float32)]))
    if backend != "plain":
        raise SystemExit("the raw baseline is computed for the plain backend")
    up = len(secagg.encode(secagg._plain.PlainUpdate(round_id=1, vector=np.zeros(dim),
                                                     weight=1.0)))
    return down, up


async def raw_server(args: Any) -> dict[str, Any]:
    down = bytes(args.down)

    async def round_(request_iterator: Any, context: Any) -> Any:
        for start in range(0, len(down), CHUNK_BYTES):
            yield down[start:start + CHUNK_BYTES]
        got = 0
        async for chunk in request_iterator:
            got += len(chunk)
            if got >= args.up:
                break
        yield b"done"

    async def stats(request: bytes, context: Any) -> bytes:
        return json.dumps({"cpu_seconds": common.cpu_seconds()}).encode()

    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Raw", {"Round": grpc.stream_stream_rpc_method_handler(round_),
                      "Stats": grpc.unary_unary_rpc_method_handler(stats)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(json.dumps({"port": port}), flush=True)
    await server.wait_for_termination()
    return {}


async def raw_clients(args: Any) -> dict[str, Any]:
    up = bytes(CHUNK_BYTES)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{args.port}", options=OPTIONS)
                for _ in range(args.clients)]
    await asyncio.gather(*(ch.channel_ready() for ch in channels))

    async def one(channel: grpc.aio.Channel) -> None:
        call = channel.stream_stream(METHOD)()
        got = 0
        while got < args.down:
            got += len(await call.read())
        sent = 0
        while sent < args.up:
            n = min(CHUNK_BYTES, args.up - sent)
            await call.write(up[:n])
            sent += n
        await call.done_writing()
        assert await call.read() == b"done"

    async def server_cpu() -> float:
        stats = json.loads(await channels[0].unary_unary("/bench.Raw/Stats")(b""))
        return float(stats["cpu_seconds"])

    times: list[float] = []
    server_by_round: list[float] = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        await asyncio.gather(*(one(ch) for ch in channels))
        times.append(time.perf_counter() - start)
        server_by_round.append(await server_cpu())
    for ch in channels:
        await ch.close()
    return {"seconds": times, "cpu_seconds": common.cpu_seconds(),
            "server_cpu_seconds": server_by_round[-1],
            "server_cpu_seconds_by_round": server_by_round}


def drive(args: argparse.Namespace) -> dict[str, Any]:
    script = __file__
    down, up = payload_sizes(args.dim, args.backend)
    server = common.spawn(script, "raw-server", "--down", str(down), "--up", str(up))
    port = common.first_json(server)["port"]
    raw = common.spawn(script, "raw-clients", "--clients", str(args.clients), "--rounds",
                       str(args.rounds), "--down", str(down), "--up", str(up), "--port",
                       str(port))
    try:
        raw_report = common.last_json(raw, 1800)
        raw_times = raw_report["seconds"]
    finally:
        server.kill()
        server.wait()
    coord, clients = common.run_federation(script, args)
    rounds = [r for r in coord["records"] if r["status"] == "completed"]
    round_times = [r["seconds"] for r in rounds]
    total = args.clients * (down + up)
    result = {
        "clients": args.clients, "dim": args.dim, "backend": args.backend,
        "bytes_per_round": total, "raw_grpc_seconds": raw_times, "round_seconds": round_times,
        "stage_seconds": [r["stage_seconds"] for r in rounds],
        "ratio_best": min(round_times) / min(raw_times),
        "raw_gbytes_per_s": total / min(raw_times) / 1e9,
        "coordinator_peak_rss_mib": coord["peak_rss_mib"],
        "raw_server_cpu_seconds": raw_report["server_cpu_seconds"],
        "raw_clients_cpu_seconds": raw_report["cpu_seconds"],
        "coordinator_cpu_seconds": coord["cpu_seconds"],
        "raw_server_cpu_per_round": _per_round(raw_report["server_cpu_seconds_by_round"]),
        "coordinator_cpu_per_round": _per_round(coord["cpu_seconds_by_round"]),
        "clients_cpu_seconds": clients["cpu_seconds"],
        "client_failures": clients["n_failures"],
    }
    print(f"{args.clients} clients x {args.dim} float32, {total / 1e9:.2f} GB per round "
          f"({down / 1e6:.1f} MB down + {up / 1e6:.1f} MB up per client)")
    print(f"raw gRPC streaming: {', '.join(f'{t:.2f}' for t in raw_times)} s")
    print(f"blindsum round:     {', '.join(f'{t:.2f}' for t in round_times)} s "
          f"(best ratio {result['ratio_best']:.2f}x)")
    print(f"coordinator peak RSS {coord['peak_rss_mib']:.0f} MiB; CPU seconds over "
          f"{args.rounds} rounds (start-up included): coordinator {coord['cpu_seconds']:.1f} "
          f"vs raw server {raw_report['server_cpu_seconds']:.1f}, clients process "
          f"{clients['cpu_seconds']:.1f} vs raw clients {raw_report['cpu_seconds']:.1f}")
    if args.rounds > 1:
        print(f"CPU seconds per round after the first: coordinator "
              f"{result['coordinator_cpu_per_round']:.2f} vs raw server "
              f"{result['raw_server_cpu_per_round']:.2f}")
    return result


def _per_round(cumulative: list[float]) -> float | None:
    """Mean CPU seconds of the rounds after the first (None with one round)."""
    if len(cumulative) < 2:
        return None
    return (cumulative[-1] - cumulative[0]) / (len(cumulative) - 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", default="driver",
                   choices=["driver", "coordinator", "clients", "raw-server", "raw-clients"])
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--dim", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--backend", default="plain")
    p.add_argument("--neighbours", default="all")
    p.add_argument("--port", type=int)
    p.add_argument("--down", type=int)
    p.add_argument("--up", type=int)
    args = p.parse_args()
    roles = {"coordinator": common.coordinator_role, "clients": common.clients_role,
             "raw-server": raw_server, "raw-clients": raw_clients}
    if args.role == "driver":
        print(json.dumps(drive(args)))
    else:
        print(json.dumps(asyncio.run(roles[args.role](args))), flush=True)


if __name__ == "__main__":
    main()
