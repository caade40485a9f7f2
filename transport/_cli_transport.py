"""``blindsum coordinator`` and ``blindsum client``: parse, call :mod:`transport._run`, print."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    _coordinator_parser(sub)
    _client_parser(sub)
    _keys_parser(sub)


def _keys_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keys", help="make key files for the coordinator and clients",
        description="Write the key files the coordinator and clients read: per-client "
                    "tokens, SecAgg+ Ed25519 identities, or CKKS keys. Secret files are "
                    "created readable by their owner only; hand each client its own.")
    p.add_argument("kind", choices=["tokens", "identities", "ckks"])
    p.add_argument("--ids", default="0-9", help="client ids, e.g. '0-9' or '1,4,7'")
    p.add_argument("--out", required=True, help="directory to write into (created)")
    p.set_defaults(handler=_run_keys)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", required=True, metavar="MODULE:ATTR",
                   help="user code as 'package.module:attr' or 'path/file.py:attr'")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _coordinator_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "coordinator", help="run a federation's coordinator (gRPC server)",
        description="Serve rounds of federated learning over gRPC. The app is a callable "
                    "returning (strategy, initial_parameters).")
    _common(p)
    p.add_argument("--address", default="127.0.0.1:9092", help="host:port to listen on")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients-per-round", type=int, default=10,
                   help="clients whose updates are aggregated per round, at most (a "
                        "strategy whose num_fit_clients asks for fewer, such as FedAvg with "
                        "fraction_fit < 1, gets fewer); this many connected clients are "
                        "waited for before sampling")
    p.add_argument("--min-clients", type=int, default=2,
                   help="a round fails with fewer clients ready than this")
    p.add_argument("--over-selection", type=float, default=0.0,
                   help="ask (1 + this) x the clients to aggregate; the fastest are used")
    p.add_argument("--backend", default="plain",
                   help="aggregation backend: plain, secagg+, secagg+ddp (distributed DP) or ckks")
    p.add_argument("--clip", type=float, default=1.0,
                   help="secagg+: updates are clipped to [-clip, clip] per coordinate")
    p.add_argument("--max-weight", type=int, default=1000,
                   help="secagg+: largest client weight (num_examples) accepted")
    p.add_argument("--neighbours", default=None,
                   help="secagg+: degree of the neighbour graph (even), or 'all'; by default "
                        "chosen with the threshold for --dropout and --corrupt")
    p.add_argument("--threshold", type=int, help="secagg+: shares needed to recover a secret")
    p.add_argument("--dropout", type=float, default=0.1,
                   help="secagg+: fraction of clients expected to drop in a round")
    p.add_argument("--corrupt", type=float, default=0.05,
                   help="secagg+: fraction of clients that may collude with the coordinator")
    p.add_argument("--threat", choices=("semi-honest", "semi-malicious"), default="semi-honest",
                   help="secagg+: threat model the parameter finder chooses k and t for; "
                        "semi-malicious (with --identities) makes t high enough for the "
                        "consistency check to stop equivocation")
    p.add_argument("--identities", help="secagg+: file of '<client_id> <hex Ed25519 public "
                                        "key>' lines; turns on authenticated rounds")
    p.add_argument("--ckks-keys", help="ckks: file with secagg.encode(keys.public())")
    _ddp_arguments(p, coordinator=True)
    p.add_argument("--ckks-key-holders", help="ckks: comma-separated ids of the clients "
                                              "holding the secret key, in order of preference")
    p.add_argument("--fit-deadline", type=float, default=60.0, help="seconds for local training")
    p.add_argument("--stage-deadline", type=float, default=30.0,
                   help="seconds per protocol stage; stragglers are dropped")
    p.add_argument("--wait-for-clients", type=float, default=30.0,
                   help="seconds to wait for enough clients before a round")
    p.add_argument("--state-dir", help="SQLite checkpoints here; a restart resumes")
    p.add_argument("--tls-cert", help="server certificate chain (PEM)")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--client-ca", help="CA for client certificates: turns on mutual TLS")
    p.add_argument("--tokens", help="file of '<client_id> <token>' lines; clients must match")
    p.add_argument("--max-message-mb", type=float, default=1024.0,
                   help="largest protocol message a client may send (MiB)")
    p.add_argument("--allow-insecure", action="store_true",
                   help="allow plaintext on a non-loopback address (not recommended)")
    p.add_argument("--seed", type=int, help="seed for client sampling (reproducible runs)")
    p.set_defaults(handler=_run_coordinator)


def _client_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "client", help="run one federated client",
        description="Join a coordinator and train when sampled. The app is a callable "
                    "taking the client id and returning fit(parameters, config), or an "
                    "object with fit and (optionally) evaluate(parameters, config) "
                    "methods for federated evaluation.")
    _common(p)
    p.add_argument("--address", default="127.0.0.1:9092", help="coordinator host:port")
    p.add_argument("--id", type=int, required=True, dest="client_id", help="this client's id")
    p.add_argument("--token-file", help="file holding this client's token")
    p.add_argument("--tls", action="store_true",
                   help="use TLS, trusting the system's root certificates")
    p.add_argument("--root-cert", help="CA that signed the coordinator's certificate (PEM); "
                                       "turns on TLS")
    p.add_argument("--cert", help="client certificate chain for mutual TLS (PEM)")
    p.add_argument("--key", help="client private key for mutual TLS (PEM)")
    p.add_argument("--server-name", help="expected name in the coordinator's certificate")
    p.add_argument("--accept-backend", action="append", metavar="NAME",
                   help="refuse coordinators aggregating otherwise (repeatable)")
    p.add_argument("--identity-key", help="secagg+: this client's Ed25519 private key "
                                          "(PEM or 32 raw bytes), with --identities")
    p.add_argument("--identities", help="secagg+: the same '<client_id> <hex public key>' "
                                        "file the coordinator uses, obtained out of band")
    p.add_argument("--ckks-keys", help="ckks: file with secagg.encode(keys) on key holders, "
                                       "secagg.encode(keys.public()) elsewhere")
    _ddp_arguments(p, coordinator=False)
    _policy_arguments(p)
    p.add_argument("--give-up-after", type=float, default=300.0,
                   help="seconds of failed reconnects before exiting")
    p.set_defaults(handler=_run_client)


def _policy_arguments(p: argparse.ArgumentParser) -> None:
    """The weakest SecAgg+ round the client joins (secagg.ClientPolicy); unset: no bound
    beyond the protocol's."""
    g = p.add_argument_group(
        "SecAgg+ policy", "refuse SecAgg+ rounds (secagg+, secagg+ddp) whose parameters, chosen "
        "by the coordinator, are weaker than these; pair with --accept-backend")
    g.add_argument("--min-threshold", type=int, metavar="T",
                   help="smallest threshold t (shares that recover this client's secrets)")
    g.add_argument("--min-threshold-fraction", type=float, metavar="F",
                   help="smallest t / (k + 1), k the neighbours")
    g.add_argument("--min-neighbours", type=int, metavar="K",
                   help="fewest neighbours, in the round's config and among those forwarded")
    g.add_argument("--max-neighbours", type=int, metavar="K",
                   help="most neighbours (bounds the work a coordinator can demand)")
    g.add_argument("--colluding-neighbours", type=int, metavar="C",
                   help="authenticated rounds only (needs --identity-key): require "
                        "2t - (k + 1) > C, so the consistency check withstands C colluders")


def _client_policy(args: argparse.Namespace) -> Any:
    """The ``secagg.ClientPolicy`` the flags give, or ``None`` when none is given."""
    import secagg
    import transport

    names = ("min_threshold", "min_threshold_fraction", "min_neighbours", "max_neighbours",
             "colluding_neighbours")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if not given:
        return None
    if "colluding_neighbours" in given and not args.identity_key:
        raise transport.ConfigError("--colluding-neighbours bounds authenticated rounds: it "
                                    "needs --identity-key and --identities")
    try:
        return secagg.ClientPolicy(**given)
    except (TypeError, ValueError) as exc:
        raise transport.ConfigError(f"SecAgg+ policy: {exc}") from None


def _ddp_arguments(p: argparse.ArgumentParser, *, coordinator: bool) -> None:
    """Distributed DP: the noise each client adds under SecAgg+ (the same on both sides)."""
    who = "the strategy's" if coordinator else "the noise this client adds: z"
    p.add_argument("--ddp-noise-multiplier", type=float,
                   help=f"secagg+ddp: {who} noise multiplier; turns on distributed DP"
                   + ("" if coordinator else " (a coordinator asking otherwise is refused)"))
    p.add_argument("--ddp-clip", type=float, help="secagg+ddp: L2 clip of each update")
    p.add_argument("--ddp-mechanism", choices=("dgauss", "skellam"), default="dgauss",
                   help="secagg+ddp: discrete Gaussian or Skellam noise")
    p.add_argument("--ddp-bits", type=int, default=20, help="secagg+ddp: SecAgg+ modulus 2^bits")
    if coordinator:
        p.add_argument("--ddp-expected-dropout", type=float, default=None,
                       help="secagg+ddp: fraction of clients expected to drop (sizes the "
                            "threshold; must match the clients'); default: --dropout")
    else:
        p.add_argument("--ddp-expected-dropout", type=float, default=0.0,
                       help="secagg+ddp: fraction of clients expected to drop (sizes the "
                            "threshold; must match the coordinator's)")


def _ddp_options(args: argparse.Namespace, expected_dropout: float) -> dict[str, object]:
    import transport

    if args.ddp_noise_multiplier is None or args.ddp_clip is None:
        raise transport.ConfigError("secagg+ddp needs --ddp-noise-multiplier and --ddp-clip")
    return {"noise_multiplier": args.ddp_noise_multiplier, "clip": args.ddp_clip,
            "mechanism": args.ddp_mechanism, "bits": args.ddp_bits,
            "expected_dropout": expected_dropout}


def _parse_ids(text: str) -> list[int]:
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        ids.extend(range(int(lo), int(hi or lo) + 1))
    return ids


def _run_keys(args: argparse.Namespace) -> int:
    from transport._keys import write_key_files

    for path in write_key_files(args.kind, _parse_ids(args.ids), args.out):
        print(path)
    return 0


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _run_coordinator(args: argparse.Namespace) -> int:
    import asyncio

    import transport
    from transport._run import load_app, read_pem, serve

    _logging(args.log_level)
    strategy, parameters = load_app(args.app)()
    config = transport.CoordinatorConfig(
        rounds=args.rounds, clients_per_round=args.clients_per_round,
        min_clients=args.min_clients, over_selection=args.over_selection,
        fit_deadline=args.fit_deadline, stage_deadline=args.stage_deadline,
        wait_for_clients=args.wait_for_clients, seed=args.seed,
        max_message_bytes=int(args.max_message_mb * (1 << 20)))
    tls = None
    if args.tls_cert or args.tls_key:
        key, cert = read_pem(args.tls_key), read_pem(args.tls_cert)
        if key is None or cert is None:
            raise transport.ConfigError("--tls-cert and --tls-key go together")
        tls = transport.ServerTLS(private_key=key, certificate_chain=cert,
                                  client_ca=read_pem(args.client_ca))
    elif args.client_ca:
        raise transport.ConfigError("--client-ca needs --tls-cert and --tls-key")
    coordinator = transport.Coordinator(
        strategy=strategy, parameters=parameters,
        backend=transport.resolve_backend(args.backend, **_backend_options(args)), config=config,
        store=transport.Store(args.state_dir) if args.state_dir else None,
        tokens=transport.TokenTable.from_file(args.tokens) if args.tokens else None)
    summary = asyncio.run(serve(coordinator, args.address, tls=tls,
                                allow_insecure=args.allow_insecure))
    from transport._records import evaluation_to_json

    last_eval = summary.last_federated_evaluation
    out = {"rounds_completed": summary.rounds_completed, "backend": summary.backend,
           "dropped": summary.dropped_by_round(), "stopped": summary.stopped,
           "federated_evaluation": evaluation_to_json(last_eval),
           "rounds": [r.to_json() for r in summary.log]}
    if args.json:
        print(json.dumps(out))
    else:
        print("\n".join(summary_text(summary)))
    return 0  # a budget stop is a normal end: the model is kept


def summary_text(summary: Any) -> list[str]:
    """The coordinator's summary for people: one line per round, each followed by its
    server-side and federated evaluation when it has them, then the totals."""
    lines = []
    for rec in summary.log:
        lines.append(f"round {rec.server_round} ({rec.status}): {len(rec.contributors)} "
                     f"contributors, dropped {list(rec.all_dropped)}, {rec.seconds:.2f} s")
        for what, result in (("server", rec.server_evaluation),
                             ("federated", rec.federated_evaluation)):
            if result is not None:
                clients = f" over {result.num_clients} clients" if what == "federated" else ""
                lines.append(f"  {what} evaluation: loss {result.loss:.6g}, metrics "
                             f"{dict(result.metrics)}{clients}")
        if rec.evaluation_detail:
            lines.append(f"  evaluation: {rec.evaluation_detail}")
    lines.append(f"{summary.rounds_completed} rounds completed with backend {summary.backend}")
    last_eval = summary.last_federated_evaluation
    if last_eval is not None:
        lines.append(f"last federated evaluation: loss {last_eval.loss:.6g}, metrics "
                     f"{dict(last_eval.metrics)} over {last_eval.num_clients} clients")
    if summary.stopped:
        lines.append(f"training stopped early: {summary.stopped}")
    return lines


def _backend_options(args: argparse.Namespace) -> dict[str, object]:
    from transport._keys import load_ckks_keys

    if args.backend == "ckks":
        options: dict[str, object] = {}
        if args.ckks_keys:
            options["keys"] = load_ckks_keys(args.ckks_keys)
        if args.ckks_key_holders:
            options["key_holders"] = tuple(int(c) for c in args.ckks_key_holders.split(","))
        return options
    if args.backend not in ("secagg+", "secagg+ddp"):
        return {}
    neighbours = args.neighbours
    if neighbours not in (None, "all"):
        neighbours = int(neighbours)
    if args.backend == "secagg+ddp":
        expected = args.dropout if args.ddp_expected_dropout is None else args.ddp_expected_dropout
        return _ddp_options(args, expected) | {"neighbours": neighbours or "all",
                                               "threshold": args.threshold}
    options = {"clip": args.clip, "max_weight": args.max_weight, "neighbours": neighbours,
               "threshold": args.threshold, "dropout": args.dropout, "corrupt": args.corrupt,
               "threat": args.threat}
    if args.identities:
        from transport._keys import load_identities

        options["identities"] = load_identities(args.identities)
    return options


def _client_backend(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import transport
    from transport._keys import load_ckks_keys, load_identities, load_identity_key

    if args.ckks_keys:
        return transport.resolve_backend("ckks", keys=load_ckks_keys(args.ckks_keys)), {}
    if bool(args.identities) != bool(args.identity_key):
        raise transport.ConfigError("--identities and --identity-key go together")
    identities = load_identities(args.identities) if args.identities else None
    session = {"identity": load_identity_key(args.identity_key)} if args.identities else {}
    if args.ddp_noise_multiplier is not None or args.ddp_clip is not None:
        options = _ddp_options(args, args.ddp_expected_dropout)
        return transport.resolve_backend("secagg+ddp", **options, identities=identities), session
    if identities is not None:
        return transport.resolve_backend("secagg+", identities=identities), session
    return None, {}


def _run_client(args: argparse.Namespace) -> int:
    import transport
    from transport._run import client_functions, load_app, read_pem, run_client

    _logging(args.log_level)
    policy = _client_policy(args)  # before the app loads: a bad bound costs nothing
    fit, evaluate = client_functions(load_app(args.app)(args.client_id))
    token = None
    if args.token_file:
        raw = read_pem(args.token_file)
        token = raw.decode().strip() if raw else None
    tls = None
    if args.tls or args.root_cert or args.cert or args.key:
        tls = transport.ClientTLS(root_ca=read_pem(args.root_cert),
                                  private_key=read_pem(args.key),
                                  certificate_chain=read_pem(args.cert),
                                  server_name=args.server_name)
    backend, session_options = _client_backend(args)
    try:
        summary = run_client(
            address=args.address, client_id=args.client_id, fit=fit, evaluate=evaluate,
            token=token, tls=tls,
            backend=backend, session_options=session_options, policy=policy,
            accept_backends=tuple(args.accept_backend) if args.accept_backend else None,
            backoff=transport.Backoff(give_up_after=args.give_up_after))
    except transport.ConnectionLost as exc:
        print(f"blindsum client: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"client_id": summary.client_id, "rounds_fitted": summary.rounds_fitted,
                          "rounds_completed": summary.rounds_completed,
                          "rounds_evaluated": summary.rounds_evaluated,
                          "connections": summary.connections}))
    else:
        print(f"client {summary.client_id}: fitted {summary.rounds_fitted} rounds, "
              f"{summary.rounds_completed} completed, {summary.connections} connections")
    return 0
