"""Quickstart: a coordinator and 10 client processes on 127.0.0.1, 3 rounds of FedAvg.

One command::

    python examples/quickstart/run.py            # SecAgg+ (plain if unavailable)
    python examples/quickstart/run.py --backend plain --kill 0

The coordinator runs in this process (gRPC on a free loopback port); each client is
a separate ``blindsum client`` process. During round ``--kill-round`` the script
SIGKILLs ``--kill`` of the round's clients at the start of stage ``--kill-stage``;
the coordinator drops them and the round completes with the survivors. The last line
printed is one JSON object: rounds_completed, clients, dropped (ids per round),
backend, killed, accuracy, federated_accuracy (the last round's federated evaluation),
seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import app  # noqa: E402

import secagg  # noqa: E402
import transport  # noqa: E402

log = logging.getLogger("quickstart")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    default_backend = "secagg+" if "secagg+" in transport.available_backends() else "plain"
    p = argparse.ArgumentParser(
        description="Run a coordinator and N client processes on 127.0.0.1 for a few rounds "
                    "of federated averaging (logistic regression on synthetic data), killing "
                    "some clients mid-round to show dropout handling.")
    p.add_argument("--clients", type=int, default=10, help="client processes to start")
    p.add_argument("--rounds", type=int, default=3, help="rounds of federated averaging")
    p.add_argument("--clients-per-round", type=int, default=8,
                   help="clients aggregated per round (the fastest of those asked)")
    p.add_argument("--over-selection", type=float, default=0.25,
                   help="ask (1 + this) x clients-per-round clients per round")
    p.add_argument("--backend", default=default_backend, choices=["plain", "secagg+"],
                   help=f"aggregation backend (default {default_backend})")
    p.add_argument("--kill", type=int, default=3, help="clients to SIGKILL (0: none)")
    p.add_argument("--kill-round", type=int, default=2, help="round in which to kill them")
    p.add_argument("--kill-stage", default=None,
                   help="stage at whose start to kill (default: masked_input for secagg+, "
                        "collect for plain)")
    p.add_argument("--dropout", type=float, default=0.4,
                   help="secagg+: dropout rate the neighbour graph and threshold must survive")
    p.add_argument("--stage-deadline", type=float, default=10.0, help="seconds per stage")
    p.add_argument("--fit-deadline", type=float, default=30.0, help="seconds for training")
    p.add_argument("--state-dir", help="keep the SQLite checkpoints here (default: temporary)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and the kill choice")
    p.add_argument("--verbose", action="store_true", help="also show the clients' logs")
    args = p.parse_args(argv)
    if args.kill_stage is None:
        args.kill_stage = "masked_input" if args.backend == "secagg+" else "collect"
    left, needed = args.clients - max(args.kill, 0), min_clients(args)
    if args.kill > 0 and args.kill_round <= args.rounds and left < needed:
        # the killed processes never come back: the coordinator would wait for them forever
        p.error(f"--kill {args.kill} of --clients {args.clients} leaves {left}, fewer than "
                f"the {needed} a round needs")
    return args


def min_clients(args: argparse.Namespace) -> int:
    """The fewest clients ready for a round to go on."""
    return min(3, args.clients_per_round)


def make_backend(name: str, dropout: float) -> secagg.Backend:
    if name == "secagg+":
        # Updates are clipped to [-2, 2] per coordinate; weights are example counts; the
        # neighbour graph and threshold are chosen for the dropout rate we expect.
        return transport.resolve_backend("secagg+", clip=2.0, max_weight=200, dropout=dropout)
    return transport.resolve_backend(name)


def spawn_clients(n: int, port: int, verbose: bool) -> dict[int, subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "transport.cli", "client", "--address", f"127.0.0.1:{port}",
           "--app", f"{HERE / 'app.py'}:client_app", "--log-level",
           "INFO" if verbose else "ERROR", "--give-up-after", "30"]
    out = None if verbose else subprocess.DEVNULL
    return {cid: subprocess.Popen([*cmd, "--id", str(cid)], stdout=out, stderr=out)
            for cid in range(n)}


class Killer:
    """Coordinator observer: SIGKILLs clients at the start of the chosen stage."""

    def __init__(self, args: argparse.Namespace, procs: dict[int, subprocess.Popen[bytes]]):
        self._args = args
        self._procs = procs
        self._rng = np.random.default_rng(args.seed)
        self.killed: list[int] = []

    def __call__(self, event: transport.RoundEvent) -> None:
        a = self._args
        if (event.kind != "stage_started" or event.server_round != a.kill_round
                or event.stage != a.kill_stage or self.killed or a.kill <= 0):
            return
        victims = sorted(int(c) for c in self._rng.choice(
            event.clients, size=min(a.kill, len(event.clients)), replace=False))
        for cid in victims:
            self._procs[cid].kill()  # SIGKILL: no goodbye on the stream
            self._procs[cid].wait()
        self.killed = victims
        log.info("round %d, stage %s: killed clients %s", event.server_round, event.stage,
                 victims)


async def federate(args: argparse.Namespace, state_dir: str) -> tuple[transport.RunSummary,
                                                                      list[int],
                                                                      transport.Coordinator]:
    strategy, params = app.server_app()
    config = transport.CoordinatorConfig(
        rounds=args.rounds, clients_per_round=args.clients_per_round,
        min_clients=min_clients(args), over_selection=args.over_selection,
        fit_deadline=args.fit_deadline, stage_deadline=args.stage_deadline,
        wait_for_clients=2.0, seed=args.seed)
    coord = transport.Coordinator(strategy=strategy, parameters=params,
                                  backend=make_backend(args.backend, args.dropout), config=config,
                                  store=transport.Store(state_dir))
    server = transport.GrpcServer(coord, "127.0.0.1:0")
    port = await server.start()
    procs = spawn_clients(args.clients, port, args.verbose)
    killer = Killer(args, procs)
    coord.observer = killer
    try:
        deadline = time.monotonic() + 120
        while len(coord.connected) < args.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        log.info("%d clients connected", len(coord.connected))
        summary = await coord.run()
    finally:
        await server.stop(grace=2.0)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return summary, killer.killed, coord


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="blindsum-quickstart-") as tmp:
        state_dir = args.state_dir or os.path.join(tmp, "state")
        summary, killed, coord = asyncio.run(federate(args, state_dir))
    x, y = app.make_data(7, 2000)
    acc = app.accuracy(coord.parameters, x, y)
    for rec in summary.log:
        print(f"round {rec.server_round}: {rec.status}, contributors {list(rec.contributors)}, "
              f"dropped {dict(rec.dropped)}, released {list(rec.released)}, "
              f"{rec.seconds:.2f} s")
    print(f"final model: accuracy {acc:.3f} on 2000 held-out examples")
    fed = summary.last_federated_evaluation
    if fed is not None:
        print(f"last federated evaluation: loss {fed.loss:.4f}, accuracy "
              f"{fed.metrics['accuracy']:.3f} over {fed.num_clients} clients' data")
    print(json.dumps({
        "rounds_completed": summary.rounds_completed, "clients": args.clients,
        "dropped": {str(k): v for k, v in summary.dropped_by_round().items()},
        "backend": summary.backend, "killed": killed, "accuracy": round(acc, 4),
        "federated_accuracy": None if fed is None else round(fed.metrics["accuracy"], 4),
        "seconds": round(time.monotonic() - start, 2),
    }))
    return 0 if summary.rounds_completed == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
