"""The ``blindsum`` command: the front door to every command group.

Each group lives in its own module exposing ``register(subparsers)``; that module
parses and prints, and the work is a library call tests can reach without the CLI.
Group modules import their heavy dependencies inside their handlers so that
``blindsum dp account`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

# Modules that contribute sub-commands, in the order they appear in --help.
_GROUPS = (
    "transport._cli_secagg",
    "transport._cli_transport",
    "transport._cli_bench",
    "dp.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blindsum",
        description="Secure aggregation and differential privacy for federated learning.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _GROUPS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file named on the command line cannot be read or written
        print(f"blindsum {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as exc:
        # Library errors subclass ValueError (bad configuration) or carry a clear message.
        print(f"blindsum {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
