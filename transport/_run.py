"""Library entry points behind ``blindsum coordinator`` and ``blindsum client``.

An *app* names user code as ``package.module:attribute`` or ``path/to/file.py:attribute``:

- coordinator app: a callable ``() -> (strategy, initial_parameters)``;
- client app: a callable ``(client_id) -> fit`` with
  ``fit(parameters, config) -> (parameters, num_examples, metrics)``, or ``(client_id)
  -> client`` where ``client`` has a ``fit`` method like that and optionally
  ``evaluate(parameters, config) -> (loss, num_examples, metrics)`` for federated
  evaluation (see :func:`client_functions`).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secagg import Backend, ClientPolicy
from transport._client import Backoff, ClientRuntime, ClientSummary, EvaluateFn, FitFn
from transport._coordinator import Coordinator
from transport._errors import ConfigError
from transport._grpc_client import ClientTLS, GrpcConnector
from transport._grpc_server import GrpcServer, ServerTLS
from transport._records import RunSummary

__all__ = ["load_app", "client_functions", "serve", "run_client", "read_pem"]


def load_app(spec: str) -> Callable[..., Any]:
    """Import ``module:attr`` or ``file.py:attr`` and return the attribute.

    Raises:
        ConfigError: malformed spec, missing module or file, missing attribute.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"app must look like 'module:attribute' or 'file.py:attribute', "
                          f"got {spec!r}")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"app file {target} does not exist")
        name = f"_blindsum_app_{path.stem}"
        loader = importlib.util.spec_from_file_location(name, path)
        if loader is None or loader.loader is None:
            raise ConfigError(f"cannot import {target}")
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module
        loader.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"cannot import app module {target!r}: {exc}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"app {target!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ConfigError(f"app {spec!r} is not callable")
    return obj


def client_functions(app: object) -> tuple[FitFn, EvaluateFn | None]:
    """``fit`` and the optional ``evaluate`` of what a client app returned: an object
    with a ``fit`` method (and maybe ``evaluate``), or a plain ``fit`` callable.

    Raises:
        ConfigError: neither, or an ``evaluate`` attribute that is not callable.
    """
    fit = getattr(app, "fit", None)
    if callable(fit):
        evaluate = getattr(app, "evaluate", None)
        if evaluate is not None and not callable(evaluate):
            raise ConfigError(f"the client app's evaluate is not callable: {evaluate!r}")
        return fit, evaluate
    if callable(app):
        return app, None
    raise ConfigError(f"the client app must return fit(parameters, config) or an object "
                      f"with a fit method, got {type(app).__name__}")


def read_pem(path: str | None) -> bytes | None:
    """The bytes of a PEM file, or ``None`` when no path is given."""
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


async def serve(coordinator: Coordinator, address: str, *, tls: ServerTLS | None = None,
                allow_insecure: bool = False,
                on_listening: Callable[[int], None] | None = None) -> RunSummary:
    """Serve ``coordinator`` over gRPC on ``address`` until its rounds are done."""
    server = GrpcServer(coordinator, address, tls=tls, allow_insecure=allow_insecure)
    port = await server.start()
    if on_listening is not None:
        on_listening(port)
    try:
        return await coordinator.run()
    finally:
        await server.stop(grace=2.0)


def run_client(*, address: str, client_id: int, fit: FitFn, evaluate: EvaluateFn | None = None,
               token: str | None = None,
               tls: ClientTLS | None = None, accept_backends: tuple[str, ...] | None = None,
               backoff: Backoff | None = None, backend: Backend | None = None,
               session_options: dict[str, Any] | None = None,
               policy: ClientPolicy | None = None) -> ClientSummary:
    """Connect to a coordinator and serve rounds until it says training is over
    (``policy``: the weakest SecAgg+ round to join, see :class:`~transport.ClientRuntime`)."""
    connector = GrpcConnector(address, client_id=client_id, token=token, tls=tls)
    runtime = ClientRuntime(client_id=client_id, fit=fit, connector=connector,
                            accept_backends=accept_backends, backoff=backoff, backend=backend,
                            session_options=session_options, evaluate=evaluate, policy=policy)
    return asyncio.run(runtime.run())
