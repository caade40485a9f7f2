"""Run one round of Flower's own SecAgg+ in this process and print its costs as JSON.

Executed by the Python of Flower's virtual environment (``.venv-flwr``, made by ``make flower-venv``), never
by blindsum's: it imports only Flower, NumPy and the standard library (plus
``papers._common``, standard library only). It drives Flower's
``SecAggPlusWorkflow`` (server) against ``secaggplus_mod`` (client) through an
in-process grid that serialises every message with Flower's own protobuf serde, so
message bytes are real. Timing, as in PEERS.md: each client's CPU time is the process
CPU time spent handling its messages (deserialising, the mod, serialising the reply);
the server's CPU time is the workflow's process CPU time minus the clients'. Process,
not thread, CPU time: Flower's Shamir sharing runs in a ``ThreadPoolExecutor``, whose
worker threads a thread clock would miss. Parties run one at a time, so process CPU
deltas are per party.

    .venv-flwr/bin/python -m papers.flower_baseline._flower_runner \\
        --clients 50 --dim 10000 --dropout 0.3 --num-shares 1.0 --threshold 0.5
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import numpy as np


def _num(text: str) -> int | float:
    """Flower reads an int as a count and a float as a fraction."""
    return float(text) if "." in text else int(text)


def run(*, clients: int, dim: int, dropout: float, num_shares: int | float, threshold: int | float,
        seed: int, clip: float) -> dict[str, Any]:
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
    from flwr.client.mod import secaggplus_mod
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
    from flwr.common.serde import message_from_proto, message_to_proto
    from flwr.compat.common import recorddict_compat as compat
    from flwr.proto.message_pb2 import Message as ProtoMessage
    from flwr.server import ServerConfig
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.compat.grid_client_proxy import GridClientProxy
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
    from flwr.server.workflow.constant import Key as WorkflowKey
    from flwr.serverapp.grid import Grid
    from flwr.supercore.task_identity import TaskIdentity

    # what Flower's ServerApp runner sets before it calls the workflow
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1

    rng = np.random.default_rng(seed)
    node_ids = list(range(1, clients + 1))
    inputs = {nid: rng.uniform(-1.0, 1.0, size=dim) for nid in node_ids}
    dropped = {int(node_ids[i]) for i in rng.choice(clients, size=int(round(dropout * clients)),
                                                     replace=False)}
    client_cpu = dict.fromkeys(node_ids, 0.0)
    up = dict.fromkeys(node_ids, 0)
    down = dict.fromkeys(node_ids, 0)
    contexts = {nid: Context(run_id=1, node_id=nid, node_config={}, state=RecordDict(), run_config={})
                for nid in node_ids}

    def fit(msg: Message, ctxt: Context) -> Message:
        res = FitRes(status=Status(code=Code.OK, message=""),
                     parameters=ndarrays_to_parameters([inputs[ctxt.node_id]]), num_examples=1,
                     metrics={})
        return Message(compat.fitres_to_recorddict(res, keep_input=True), reply_to=msg)

    def wire(msg: Message) -> tuple[Message, int]:
        data = message_to_proto(msg).SerializeToString()
        proto = ProtoMessage()
        proto.ParseFromString(data)
        return message_from_proto(proto), len(data)

    class InProcessGrid(Grid):
        """Delivers each message to its node's ``secaggplus_mod`` in this process."""

        def set_run(self, run: Any) -> None:  # noqa: ARG002
            return None

        @property
        def run(self) -> Any:
            return None

        def create_message(self, *args: Any, **kwargs: Any) -> Message:
            return Message(*args, **kwargs)

        def get_node_ids(self) -> Iterable[int]:
            return list(node_ids)

        def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
            raise NotImplementedError("use send_and_receive")

        def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
            raise NotImplementedError("use send_and_receive")

        def send_and_receive(self, messages: Iterable[Message], *,
                             timeout: float | None = None) -> Iterable[Message]:  # noqa: ARG002
            replies = []
            for msg in messages:
                nid = msg.metadata.dst_node_id
                stage = msg.content.config_records[RECORD_KEY_CONFIGS][Key.STAGE]
                if nid in dropped and stage == Stage.COLLECT_MASKED_VECTORS:
                    continue  # dropped after share keys: never sends its masked vector
                delivered, nbytes = wire(msg)
                down[nid] += nbytes
                t0 = time.process_time()
                reply = secaggplus_mod(delivered, contexts[nid], fit)
                data = message_to_proto(reply).SerializeToString()
                client_cpu[nid] += time.process_time() - t0
                up[nid] += len(data)
                proto = ProtoMessage()
                proto.ParseFromString(data)
                replies.append(message_from_proto(proto))
            return replies

    grid = InProcessGrid()
    manager = SimpleClientManager()
    for nid in node_ids:
        manager.register(GridClientProxy(nid, grid, run_id=1))
    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=clients,
                      min_available_clients=clients)
    state = RecordDict()
    state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: 1})
    state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord([np.zeros(dim)])
    context = LegacyContext(Context(run_id=1, node_id=0, node_config={}, state=state, run_config={}),
                            config=ServerConfig(num_rounds=1), strategy=strategy,
                            client_manager=manager)
    workflow = SecAggPlusWorkflow(num_shares=num_shares, reconstruction_threshold=threshold,
                                  max_weight=1.0, clipping_range=clip)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    workflow(grid, context)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    survivors = [nid for nid in node_ids if nid not in dropped]
    params = state.array_records[MAIN_PARAMS_RECORD]
    result = parameters_to_ndarrays(compat.arrayrecord_to_parameters(params, keep_input=True))[0]
    expected = np.mean([inputs[nid] for nid in survivors], axis=0)
    error = float(np.max(np.abs(result - expected)))
    if not error < 1e-2:
        raise RuntimeError(f"Flower's SecAgg+ returned a wrong mean (max abs error {error}); "
                           "the round probably halted (see the log above)")
    spent = sum(client_cpu.values())
    return {
        "clients": clients, "dim": dim, "dropout": dropout, "dropped": len(dropped),
        "num_shares": num_shares, "threshold": threshold,
        "server_cpu_s": cpu - spent,
        "client_mean_cpu_s": float(np.mean([client_cpu[n] for n in survivors])),
        "client_max_cpu_s": float(max(client_cpu.values())),
        "clients_cpu_total_s": spent, "total_cpu_s": cpu, "total_wall_s": wall,
        "up_per_client": float(np.mean([up[n] for n in survivors])),
        "down_per_client": float(np.mean([down[n] for n in survivors])),
        "max_abs_error_mean": error,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--num-shares", type=_num, default=1.0)
    parser.add_argument("--threshold", type=_num, default=0.5)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    from flwr import __version__ as flwr_version

    from papers import _common

    row = run(clients=args.clients, dim=args.dim, dropout=args.dropout, num_shares=args.num_shares,
              threshold=args.threshold, seed=args.seed, clip=args.clip)
    row["flwr"] = flwr_version
    row["banner"] = _common.banner(("flwr", "protobuf"))
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
