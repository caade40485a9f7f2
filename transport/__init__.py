"""Transport for blindsum: gRPC coordinator and client runtime, in-process transport, CLI."""

__all__: list[str] = []
