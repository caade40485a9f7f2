"""Shared roles of the transport benchmarks: a coordinator process and a process of
asyncio clients, talking over loopback gRPC. Each role prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import secagg
import transport

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """Resident memory of this process now (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Avg:
    needs_individual_updates = False

    def configure_fit(self, server_round: int, parameters: secagg.Parameters) -> secagg.Config:
        return {}

    def aggregate_fit(self, server_round: int, parameters: secagg.Parameters,
                      aggregate: secagg.AggregateResult) -> secagg.Parameters:
        return secagg.unflatten(secagg.flatten(parameters) + aggregate.mean, parameters)


def backend_for(name: str, neighbours: str) -> secagg.Backend:
    if name == "secagg+":  # "auto": secagg.find_parameters chooses k for the round's n
        k: int | str | None = (None if neighbours == "auto" else
                               neighbours if neighbours == "all" else int(neighbours))
        return transport.resolve_backend(name, clip=1.0, max_weight=1, neighbours=k)
    return transport.resolve_backend(name)


async def coordinator_role(args: Any) -> dict[str, Any]:
    """Serve ``args.rounds`` rounds to ``args.clients`` clients; report records and memory."""
    config = transport.CoordinatorConfig(
        rounds=args.rounds, clients_per_round=args.clients, min_clients=2,
        fit_deadline=600, stage_deadline=600, wait_for_clients=600, seed=0)
    coord = transport.Coordinator(strategy=_Avg(), parameters=[np.zeros(args.dim, np.float32)],
                                  backend=backend_for(args.backend, args.neighbours),
                                  config=config)
    rss: dict[str, float] = {}
    cpu_by_round: list[float] = []

    def observe(event: transport.RoundEvent) -> None:
        if event.kind == "round_started" and event.server_round == 1:
            rss["all_connected"] = rss_mib()
        if event.kind == "round_finished":
            cpu_by_round.append(cpu_seconds())

    coord.observer = observe
    server = transport.GrpcServer(coord, "127.0.0.1:0")
    rss["idle"] = rss_mib()
    port = await server.start()
    print(json.dumps({"port": port}), flush=True)
    summary = await coord.run()
    await server.stop(grace=5)
    return {"records": [r.to_json() for r in summary.log], "rss_mib": rss,
            "peak_rss_mib": peak_rss_mib(), "cpu_seconds": cpu_seconds(),
            "cpu_seconds_by_round": cpu_by_round}


def _fit(parameters: secagg.Parameters, config: secagg.Config
         ) -> tuple[secagg.Parameters, int, dict[str, float]]:
    return [p + np.float32(1e-3) for p in parameters], 1, {}


def _client_ids(args: Any) -> range:
    """This process's share of the ``args.clients`` ids (``--slice i/N``: every N-th)."""
    index, count = (int(x) for x in (getattr(args, "slice", None) or "0/1").split("/"))
    return range(args.clients)[index::count]


async def clients_role(args: Any) -> dict[str, Any]:
    """Run ``args.clients`` client runtimes (or this process's slice of them) in this
    event loop until training ends."""
    backoff = transport.Backoff(initial=0.2, maximum=2.0, give_up_after=600)
    runtimes = [transport.ClientRuntime(
        client_id=cid, fit=_fit, backoff=backoff, seed=cid,
        connector=transport.GrpcConnector(f"127.0.0.1:{args.port}", client_id=cid,
                                          connect_timeout=120))
        for cid in _client_ids(args)]
    start = time.perf_counter()
    results = await asyncio.gather(*(rt.run() for rt in runtimes), return_exceptions=True)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    return {"seconds": time.perf_counter() - start, "failures": failures[:5],
            "n_failures": len(failures), "peak_rss_mib": peak_rss_mib(),
            "cpu_seconds": cpu_seconds()}


def spawn(script: str, role: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["nice", sys.executable, script, "--role", role, *extra],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)


def last_json(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{proc.args} failed with {proc.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def first_json(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    result: dict[str, Any] = json.loads(line)
    return result


def run_federation(script: str, args: Any, timeout: float = 1800) -> tuple[dict, dict]:
    """A coordinator process and ``args.client_processes`` (default 1) client processes;
    returns the coordinator's report and the clients' (summed over the processes)."""
    common = ["--clients", str(args.clients), "--dim", str(args.dim), "--rounds",
              str(args.rounds), "--backend", args.backend, "--neighbours", args.neighbours]
    processes = int(getattr(args, "client_processes", 1) or 1)
    coordinator = spawn(script, "coordinator", *common)
    port = first_json(coordinator)["port"]
    clients = [spawn(script, "clients", *common, "--port", str(port),
                     *(("--slice", f"{i}/{processes}") if processes > 1 else ()))
               for i in range(processes)]
    try:
        reports = [last_json(p, timeout) for p in clients]
        coordinator_report = last_json(coordinator, 60)
    finally:
        for p in (*clients, coordinator):
            if p.poll() is None:
                p.kill()
    client_report = {
        "seconds": max(r["seconds"] for r in reports),
        "failures": [f for r in reports for f in r["failures"]][:5],
        "n_failures": sum(r["n_failures"] for r in reports),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in reports),
        "cpu_seconds": sum(r["cpu_seconds"] for r in reports),
    }
    return coordinator_report, client_report
