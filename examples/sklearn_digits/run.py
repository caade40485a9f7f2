"""Federated logistic regression on scikit-learn's digits, with SecAgg+ and client-level DP.

Twenty clients hold non-IID shards of the bundled 8x8 digits (label proportions drawn
from a Dirichlet distribution). The server starts from a prior trained on synthetic
digits (public data, see ``synthetic.py``). Every round each client trains the shared
softmax regression on its shard, clips its update (client-side clipping), and the
updates are summed under SecAgg+ while a fifth of the clients drop out at random
stages. The server adds Gaussian noise to the secure sum, so the model is
(epsilon, delta) client-level differentially private; the accountant reports epsilon.

    python examples/sklearn_digits/run.py            # a few seconds
    python examples/sklearn_digits/run.py --json     # last line: one JSON object
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from synthetic import synthetic_digits

import dp
import secagg

NUM_CLASSES = 10
PRIOR_C = 0.1  # inverse L2 strength of the prior's fit (a small C: a prior the noise moves)


def partition(y: np.ndarray, *, clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices per client: each class is split by proportions ~ Dirichlet(alpha)."""
    shards: list[list[int]] = [[] for _ in range(clients)]
    for label in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == label))
        cuts = (np.cumsum(rng.dirichlet(np.full(clients, alpha))) * idx.size).astype(int)[:-1]
        for shard, part in zip(shards, np.split(idx, cuts), strict=True):
            shard.extend(part.tolist())
    return [np.array(sorted(s), dtype=np.int64) for s in shards]


def dct_features(x: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` lowest-frequency coefficients of each image's orthonormal 2-D DCT,
    each scaled by ``1 + 0.3 * frequency`` (``frequency = row + column`` index).

    A fixed transform (no data involved), so it costs no privacy; it concentrates the
    signal into fewer coordinates (client-level DP noise is per coordinate) and the
    scaling lets the finer strokes learn as fast as the coarse shape.
    """
    n = 8
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    basis = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    basis[0] /= np.sqrt(2.0)
    coeffs = np.einsum("ki,bij,lj->bkl", basis, x.reshape(-1, n, n), basis)
    order = sorted(((a, b) for a in range(n) for b in range(n)), key=lambda t: (t[0] + t[1], t[0]))
    rows, cols = zip(*order[:keep], strict=True)
    freq = np.array(rows, dtype=np.float64) + np.array(cols, dtype=np.float64)
    return coeffs[:, list(rows), list(cols)] * (1.0 + 0.3 * freq)


def features(images: np.ndarray, keep: int) -> np.ndarray:
    """Images (pixel intensities 0..16) to the model's features: a fixed normalisation, then
    the ``keep`` lowest DCT frequencies (``keep`` 64: the pixels themselves)."""
    x = images / 16.0 - 0.3
    return dct_features(x, keep) if keep < 64 else x


def public_prior(samples: int, keep: int) -> LogisticRegression:
    """A softmax regression the server fits to ``samples`` synthetic digits (generated, no
    real image as input; see ``synthetic.py`` for the two averages it borrows), the private
    training's starting point."""
    public_x, public_y = synthetic_digits(samples, seed=0)
    if np.unique(public_y).size != NUM_CLASSES:
        raise ValueError(f"{samples} synthetic digits do not cover all {NUM_CLASSES} classes; use more")
    return LogisticRegression(C=PRIOR_C, max_iter=3000).fit(features(public_x, keep), public_y)


def softmax_loss_grad(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float
                      ) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy of softmax regression and its gradients (vectorised)."""
    logits = x @ w.T + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = float(-np.log(p[np.arange(n), y] + 1e-12).mean() + 0.5 * l2 * np.sum(w * w))
    p[np.arange(n), y] -= 1.0
    return loss, p.T @ x / n + l2 * w, p.mean(axis=0)


class DigitsClient:
    """One client: full-batch gradient descent on its shard for a few epochs.

    With ``logit_adjust`` > 0 it trains on logits shifted by ``logit_adjust`` times the log
    of its own label frequencies (logit adjustment, Menon et al., ICLR 2021): the shift
    absorbs the shard's label skew, so the update moves the weights toward telling the
    digits apart rather than toward the shard's common labels. It uses nothing but the
    client's own data, and the shift is not part of the shared model.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, logit_adjust: float = 0.0) -> None:
        self.x, self.y = x, y
        freq = np.bincount(y, minlength=NUM_CLASSES) / max(y.size, 1)
        self.shift = logit_adjust * np.log(freq + 1e-3)

    def fit(self, parameters: secagg.Parameters, config: secagg.Config
            ) -> tuple[secagg.Parameters, float, Mapping[str, float]]:
        w, b = (p.copy() for p in parameters)
        lr, l2 = float(config["lr"]), float(config["l2"])
        for _ in range(int(config["local_steps"])):
            _, gw, gb = softmax_loss_grad(w, b + self.shift, self.x, self.y, l2)
            w -= lr * gw
            b -= lr * gb
        return [w, b], self.x.shape[0], {}

    def evaluate(self, parameters: secagg.Parameters, config: secagg.Config
                 ) -> tuple[float, float, Mapping[str, float]]:
        w, b = parameters
        loss, _, _ = softmax_loss_grad(w, b, self.x, self.y, 0.0)
        accuracy = float(np.mean(np.argmax(self.x @ w.T + b, axis=1) == self.y))
        return loss, self.x.shape[0], {"accuracy": accuracy}


def _at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clients", type=int, default=20, help="number of clients")
    p.add_argument("--rounds", type=int, default=20, help="federated rounds")
    p.add_argument("--dropout", type=float, default=0.2, help="fraction of clients that drop per round")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration (smaller: less IID)")
    p.add_argument("--noise-multiplier", type=float, default=None,
                   help="noise std over the clip; default: calibrated to --target-epsilon")
    p.add_argument("--target-epsilon", type=float, default=7.9, help="epsilon to calibrate the noise to")
    p.add_argument("--delta", type=float, default=1e-5, help="delta of the guarantee")
    p.add_argument("--accountant", choices=("pld", "rdp"), default="pld",
                   help="privacy accountant (pld: tight; rdp: Renyi DP, looser)")
    p.add_argument("--clip", type=float, default=1.0, help="L2 clip of each client's update")
    p.add_argument("--server-lr", type=float, default=None,
                   help="server learning rate (default: 0.3 from the synthetic prior, 1.0 from zero)")
    p.add_argument("--lr", type=float, default=2.0, help="client learning rate")
    p.add_argument("--local-steps", type=int, default=20, help="client gradient steps per round")
    p.add_argument("--logit-adjust", type=float, default=0.5,
                   help="clients shift their logits by this times the log of their own label "
                        "frequencies while training (0: off)")
    p.add_argument("--prior", choices=("synthetic", "none"), default="synthetic",
                   help="start from a softmax regression the server trains on synthetic digits "
                        "(generated data, no real image), or from zero")
    p.add_argument("--public-samples", type=_at_least(100), default=5000,
                   help="synthetic digits the prior is trained on (at least 100)")
    p.add_argument("--tolerate", type=float, default=0.4,
                   help="dropout fraction SecAgg+ is configured to survive (k, t); above the "
                        "expected --dropout, since the number who drop varies from round to round")
    p.add_argument("--neighbours", type=int, default=None, help="SecAgg+ k (default: the finder's)")
    p.add_argument("--threshold", type=int, default=None, help="SecAgg+ t (default: the finder's)")
    p.add_argument("--features", type=int, default=28,
                   help="lowest-frequency DCT coefficients kept per image (64: all, no transform)")
    p.add_argument("--optimizer", choices=("fedavg", "fedavgm", "fedadam", "fedyogi"), default="fedavg",
                   help="server optimiser")
    p.add_argument("--plain", action="store_true", help="sum in the clear instead of SecAgg+ (to compare)")
    p.add_argument("--seed", type=int, default=0, help="seed of data split, sampling and dropouts")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def run(args: argparse.Namespace) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    digits = load_digits()
    x = features(digits.data, args.features)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, stratify=digits.target, random_state=args.seed)
    shards = partition(y_train, clients=args.clients, alpha=args.alpha, rng=rng)
    clients = {i: DigitsClient(x_train[s], y_train[s], args.logit_adjust)
               for i, s in enumerate(shards) if s.size}

    model = LogisticRegression()
    secagg.init_sklearn_linear(model, n_features=x.shape[1], classes=np.arange(NUM_CLASSES))

    initial = secagg.get_sklearn_parameters(model)
    prior_accuracy = None
    if args.prior == "synthetic":
        prior = public_prior(args.public_samples, args.features)
        initial = [prior.coef_.copy(), prior.intercept_.copy()]
        prior_accuracy = float(prior.score(x_test, y_test))  # server-side, costs no privacy
        print(f"prior from {args.public_samples} synthetic digits: test accuracy {prior_accuracy:.3f}",
              file=sys.stderr)
    server_lr = args.server_lr if args.server_lr is not None else (0.3 if args.prior == "synthetic" else 1.0)

    def server_evaluate(server_round: int, parameters: secagg.Parameters):
        secagg.set_sklearn_parameters(model, parameters)
        return 0.0, {"accuracy": float(model.score(x_test, y_test))}

    # every client every round (fraction_fit=1.0): the wrapper accounts an unsampled Gaussian
    z = args.noise_multiplier or dp.calibrate_noise(
        target_epsilon=args.target_epsilon, delta=args.delta, sample_rate=1.0, steps=args.rounds,
        accountant=args.accountant).noise_multiplier
    optimizer = {"fedavg": secagg.FedAvg, "fedavgm": secagg.FedAvgM, "fedadam": secagg.FedAdam,
                 "fedyogi": secagg.FedYogi}[args.optimizer]
    fedavg = optimizer(
        fraction_fit=1.0, min_fit_clients=2, fraction_evaluate=0.0, min_available_clients=2,
        server_learning_rate=server_lr, evaluate_fn=server_evaluate,
        on_fit_config_fn=lambda r: {"lr": args.lr, "l2": 1e-4, "local_steps": args.local_steps},
    )
    private = dp.ClientSideFixedClipping(
        fedavg, noise_multiplier=z, clipping_norm=args.clip, num_clients=len(clients),
        delta=args.delta, epsilon_budget=args.target_epsilon * 1.0001, accountant=args.accountant,
        rng=np.random.default_rng([args.seed, 1]),
    )
    neighbours = args.neighbours
    if neighbours is None and not hasattr(secagg, "find_parameters"):
        neighbours = len(clients) - 1  # no parameter finder in this build: complete graph
    strategy: secagg.Strategy = private if args.plain else secagg.SecureAggregation(
        private, num_neighbours=neighbours, threshold=args.threshold,
        dropout_rate=args.tolerate, clipping_range=args.clip,
    )
    params, logs = secagg.run_federated(strategy, clients, initial, rounds=args.rounds, rng=rng,
                                        dropout_rate=args.dropout)
    for log in logs:
        if log.failure:
            print(f"round {log.server_round:3d}: failed ({log.failure[:60]}...)", file=sys.stderr)
            continue
        acc = log.server_evaluation.metrics["accuracy"] if log.server_evaluation else float("nan")
        print(f"round {log.server_round:3d}: {len(log.contributors):2d}/{len(log.sampled)} clients, "
              f"dropped {list(log.dropped)}, test accuracy {acc:.3f}", file=sys.stderr)
    backend = strategy.backend(server_round=1, num_clients=len(clients))  # type: ignore[attr-defined]
    cfg = backend.round_config(round_id=0, num_clients=len(clients), dim=1) if backend else None
    final = next((log.server_evaluation for log in reversed(logs) if log.server_evaluation), None)
    return {
        "accuracy": final.metrics["accuracy"] if final else None,
        "prior": args.prior,
        "prior_accuracy": prior_accuracy,  # the public prior alone, before any private round
        "server_learning_rate": server_lr,
        "logit_adjust": args.logit_adjust,
        "epsilon": private.epsilon,
        "delta": args.delta,
        "accountant": args.accountant,
        "rounds": len(logs),
        "failed_rounds": sum(1 for log in logs if log.failure),
        "clients": len(clients),
        "noise_multiplier": z,
        "clipping_norm": args.clip,
        "backend": backend.name if backend else "plain",
        "neighbours": cfg.neighbours if cfg else None,
        "threshold": cfg.threshold if cfg else None,
        "dropped": [list(log.dropped) for log in logs],  # sampled but not in the sum
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = run(args)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"accuracy {summary['accuracy']:.3f} at epsilon {summary['epsilon']:.2f} "
              f"(delta {args.delta:g}) after {summary['rounds']} rounds of {summary['clients']} "
              f"clients, noise multiplier {summary['noise_multiplier']:.3f}, "
              f"SecAgg+ k={summary['neighbours']} t={summary['threshold']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
