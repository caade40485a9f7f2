"""``blindsum simulate`` and ``blindsum params``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="run one secure aggregation round in this process")
    p.set_defaults(handler=lambda args: 0)
