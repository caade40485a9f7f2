"""Sample-level DP-SGD on every client (Opacus), SecAgg+ over the updates, client-level DP.

Each of ten clients trains a small PyTorch network on its shard of scikit-learn's digits
with Opacus DP-SGD (per-example clipping and noise: *sample-level* DP, each client's
examples protected by its own accountant). The updates are summed under SecAgg+; with
``--client-noise`` above 0 they are also clipped on the clients and noised by the server
after aggregation (*client-level* DP, through blindsum's accountant). Both epsilons are
reported (client-level ``null`` when it is off: then there is no client-level guarantee).

    pip install -e '.[dev]' torch==2.13.0 opacus
    python examples/pytorch_opacus/run.py --json
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from opacus import PrivacyEngine
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dp
import secagg


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))


class OpacusClient:
    """One client: a persistent Opacus engine whose accountant spans every round."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, noise_multiplier: float,
                 max_grad_norm: float, batch_size: int, lr: float, seed: int) -> None:
        data = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
        self.model = make_model()
        self.engine = PrivacyEngine(accountant="rdp")
        generator = torch.Generator().manual_seed(seed)
        self.private_model, self.optimizer, self.loader = self.engine.make_private(
            module=self.model, optimizer=torch.optim.SGD(self.model.parameters(), lr=lr),
            data_loader=DataLoader(data, batch_size=batch_size, generator=generator),
            noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
            poisson_sampling=True, noise_generator=generator,
        )
        self.size = len(data)

    def fit(self, parameters: secagg.Parameters, config: secagg.Config
            ) -> tuple[secagg.Parameters, float, Mapping[str, float]]:
        secagg.set_torch_parameters(self.model, parameters)
        self.private_model.train()
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(int(config["local_epochs"])):
            for xb, yb in self.loader:
                if len(yb) == 0:  # Poisson sampling can draw an empty batch
                    continue
                self.optimizer.zero_grad()
                loss_fn(self.private_model(xb), yb).backward()
                self.optimizer.step()
        return secagg.get_torch_parameters(self.model), self.size, {}

    def evaluate(self, parameters: secagg.Parameters, config: secagg.Config
                 ) -> tuple[float, float, Mapping[str, float]]:
        raise NotImplementedError("this example evaluates on the server's test set")

    def epsilon(self, delta: float) -> float:
        return float(self.engine.get_epsilon(delta))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clients", type=int, default=10, help="number of clients")
    p.add_argument("--rounds", type=int, default=10, help="federated rounds")
    p.add_argument("--local-epochs", type=int, default=1, help="DP-SGD epochs per round")
    p.add_argument("--batch-size", type=int, default=16, help="expected Poisson batch size")
    p.add_argument("--lr", type=float, default=1.0, help="client learning rate")
    p.add_argument("--sample-noise", type=float, default=1.0, help="Opacus noise multiplier")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="Opacus per-example clip")
    p.add_argument("--client-noise", type=float, default=0.0,
                   help="server noise multiplier for client-level DP (0: no client-level DP)")
    p.add_argument("--client-clip", type=float, default=3.0, help="client update L2 clip")
    p.add_argument("--delta", type=float, default=1e-5, help="delta of both guarantees")
    p.add_argument("--dropout", type=float, default=0.1, help="fraction of clients dropping")
    p.add_argument("--tolerate", type=float, default=0.4,
                   help="dropout fraction SecAgg+ is configured to survive (k, t); above the "
                        "expected --dropout, since the number who drop varies from round to round")
    p.add_argument("--neighbours", type=int, default=None, help="SecAgg+ k (default: finder's)")
    p.add_argument("--seed", type=int, default=0, help="seed of split, sampling, dropouts")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def run(args: argparse.Namespace) -> dict[str, object]:
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # tiny model: threads only contend
    rng = np.random.default_rng(args.seed)
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.2, stratify=digits.target,
        random_state=args.seed)
    shards = np.array_split(rng.permutation(len(y_train)), args.clients)
    clients = {
        i: OpacusClient(x_train[s], y_train[s], noise_multiplier=args.sample_noise,
                        max_grad_norm=args.max_grad_norm, batch_size=args.batch_size,
                        lr=args.lr, seed=secrets.randbits(63))
        for i, s in enumerate(shards)
    }
    model = make_model()
    x_t, y_t = torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test)

    def server_evaluate(server_round: int, parameters: secagg.Parameters):
        secagg.set_torch_parameters(model, parameters)
        with torch.no_grad():
            logits = model(x_t)
        return float(nn.functional.cross_entropy(logits, y_t)), {
            "accuracy": float((logits.argmax(1) == y_t).float().mean())}

    inner: secagg.Strategy = secagg.FedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=2, evaluate_fn=server_evaluate,
        on_fit_config_fn=lambda r: {"local_epochs": args.local_epochs},
    )
    client_dp = None
    if args.client_noise > 0:
        client_dp = dp.ClientSideFixedClipping(
            inner, noise_multiplier=args.client_noise, clipping_norm=args.client_clip,
            num_clients=args.clients, delta=args.delta)
        inner = client_dp
    neighbours = args.neighbours
    if neighbours is None and not hasattr(secagg, "find_parameters"):
        neighbours = args.clients - 1  # no parameter finder in this build: complete graph
    strategy = secagg.SecureAggregation(inner, num_neighbours=neighbours,
                                        dropout_rate=args.tolerate, clipping_range=args.client_clip)
    initial = secagg.get_torch_parameters(model)
    _, logs = secagg.run_federated(strategy, clients, initial, rounds=args.rounds, rng=rng,
                                   dropout_rate=args.dropout)
    for log in logs:
        acc = log.server_evaluation.metrics["accuracy"] if log.server_evaluation else float("nan")
        print(f"round {log.server_round:3d}: {len(log.contributors)}/{len(log.sampled)} clients, "
              f"test accuracy {acc:.3f}", file=sys.stderr)
    final = next((log.server_evaluation for log in reversed(logs) if log.server_evaluation), None)
    return {
        "accuracy": final.metrics["accuracy"] if final else None,
        "sample_epsilon": max(c.epsilon(args.delta) for c in clients.values()),
        # None: no client-level guarantee (SecAgg+ hides each update, but nothing bounds
        # what the un-noised sum says about one client's whole data set)
        "client_epsilon": client_dp.epsilon if client_dp else None,
        "delta": args.delta,
        "rounds": len(logs),
        "failed_rounds": sum(1 for log in logs if log.failure),
        "clients": args.clients,
        "sample_noise_multiplier": args.sample_noise,
        "client_noise_multiplier": args.client_noise,
        "backend": "secagg+",
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns about secure_mode and hooks
        summary = run(args)
    if args.json:
        print(json.dumps(summary))
    else:
        client = summary["client_epsilon"]
        level = "none (no --client-noise)" if client is None else format(client, ".2f")
        print(f"accuracy {summary['accuracy']:.3f}; sample-level epsilon "
              f"{summary['sample_epsilon']:.2f}, client-level epsilon {level} "
              f"at delta {args.delta:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
