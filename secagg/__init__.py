"""Secure aggregation for federated learning: SecAgg+ (Bell et al. 2020, on Bonawitz
et al. 2017), a plain baseline and, optionally, CKKS homomorphic aggregation.

This package has no networking code at all: clients and servers are sans-IO state
machines that turn messages into messages; :mod:`transport` moves the bytes.
"""

from secagg._adapters import (
    arrays_to_torch_state,
    get_sklearn_parameters,
    get_torch_parameters,
    init_sklearn_linear,
    set_sklearn_parameters,
    set_torch_parameters,
    torch_state_to_arrays,
)
from secagg._backend import AggregateResult, Backend, ClientSession, ServerSession, check_vector
from secagg._ckks import CKKSBackend
from secagg._ckks_crypto import (
    CKKSCiphertextError,
    CKKSKeyMismatch,
    CKKSKeys,
    CKKSLengthMismatch,
    CKKSParams,
    MalformedCKKSCiphertext,
    MissingExtraError,
)
from secagg._client import MAX_CLIENT_ID, SecAggPlusClient
from secagg._collect import CollectingBackend, IndividualAggregate
from secagg._errors import (
    ConfigurationError,
    CryptoError,
    DecodeError,
    InvalidCiphertext,
    InvalidShare,
    LocalProtocolError,
    QuantizationOverflowError,
    RecoveryError,
    RemoteProtocolError,
    SecAggError,
)
from secagg._fedloop import (
    FederatedClient,
    RoundLog,
    aggregate_inprocess,
    backend_for,
    num_clients_to_sample,
    run_federated,
)
from secagg._flower import FlowerStrategy
from secagg._graph import NeighbourGraph, complete_graph, harary_graph
from secagg._params import (
    GraphParameters,
    ThreatModel,
    check_complete_graph,
    find_parameters,
)
from secagg._plain import PlainBackend
from secagg._policy import ClientPolicy
from secagg._quantize import Quantizer
from secagg._secaggplus import SecAggPlusBackend
from secagg._server import SecAggPlusServer
from secagg._simulate import DROP_STAGES, SimulationResult, dropout_schedule, simulate
from secagg._stages import ClientStage, ServerStage
from secagg._strategies import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
)
from secagg._strategy import (
    BackendStrategy,
    Config,
    EvaluateResult,
    EvaluatingStrategy,
    Parameters,
    SampleObserver,
    SamplingStrategy,
    StatefulStrategy,
    Strategy,
    StrategyState,
    apply_update_transforms,
    check_state_type,
    client_weight,
    evaluation_dim,
    evaluation_vector,
    fit_dim,
    flatten,
    metric_names,
    register_update_transform,
    unflatten,
)
from secagg._wire import decode, encode, encode_parts
from secagg._wrappers import SecureAggregation, StrategyWrapper, innermost

__all__ = [
    "arrays_to_torch_state",
    "get_sklearn_parameters",
    "get_torch_parameters",
    "init_sklearn_linear",
    "set_sklearn_parameters",
    "set_torch_parameters",
    "torch_state_to_arrays",
    "AggregateResult",
    "Backend",
    "ClientSession",
    "ServerSession",
    "check_vector",
    "ConfigurationError",
    "CryptoError",
    "DecodeError",
    "InvalidCiphertext",
    "InvalidShare",
    "LocalProtocolError",
    "QuantizationOverflowError",
    "RecoveryError",
    "RemoteProtocolError",
    "SecAggError",
    "PlainBackend",
    "CollectingBackend",
    "IndividualAggregate",
    "CKKSBackend",
    "CKKSKeys",
    "CKKSParams",
    "CKKSCiphertextError",
    "CKKSKeyMismatch",
    "CKKSLengthMismatch",
    "MalformedCKKSCiphertext",
    "MissingExtraError",
    "Quantizer",
    "SecAggPlusBackend",
    "SecAggPlusClient",
    "MAX_CLIENT_ID",
    "ClientPolicy",
    "SecAggPlusServer",
    "SimulationResult",
    "DROP_STAGES",
    "dropout_schedule",
    "simulate",
    "ClientStage",
    "ServerStage",
    "ThreatModel",
    "GraphParameters",
    "find_parameters",
    "check_complete_graph",
    "NeighbourGraph",
    "harary_graph",
    "complete_graph",
    "Config",
    "Parameters",
    "Strategy",
    "SamplingStrategy",
    "StatefulStrategy",
    "StrategyState",
    "SampleObserver",
    "check_state_type",
    "BackendStrategy",
    "EvaluatingStrategy",
    "EvaluateResult",
    "apply_update_transforms",
    "client_weight",
    "evaluation_dim",
    "evaluation_vector",
    "fit_dim",
    "metric_names",
    "flatten",
    "register_update_transform",
    "unflatten",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "FedAdam",
    "FedYogi",
    "FedAdagrad",
    "FedMedian",
    "FedTrimmedAvg",
    "StrategyWrapper",
    "SecureAggregation",
    "innermost",
    "FlowerStrategy",
    "FederatedClient",
    "RoundLog",
    "run_federated",
    "aggregate_inprocess",
    "backend_for",
    "num_clients_to_sample",
    "decode",
    "encode",
    "encode_parts",
]
