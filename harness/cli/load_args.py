"""The load flags of `oomlab run`: k6's words where k6 has them."""

from __future__ import annotations

import argparse

from oomlab.config.load_shapes import shape_from_flags


def add_load_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("load (instead of the scenario's plan)")
    group.add_argument("--rate", metavar="R/s", help="open loop: send R tasks per second on schedule, e.g. 50/s")
    group.add_argument(
        "--duration", metavar="D", help="how long to send, e.g. 30s, 10m, 1h (with --rate or --in-flight)"
    )
    group.add_argument(
        "--stages",
        metavar="D:R/s,...",
        help="ramping open loop: each stage reaches its rate linearly by its end, e.g. 30s:50/s,5m:50/s,30s:0/s",
    )
    group.add_argument(
        "--in-flight", type=int, metavar="N", help="closed loop: keep N tasks outstanding (with --duration or --tasks)"
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the task mix's draws (default 0: reproducible)")


def load_config(args: argparse.Namespace) -> dict:
    """The shape as RunConfig stores it (an empty dict: no load flag, the plan as before)."""
    shape = shape_from_flags(
        getattr(args, "rate", None),
        getattr(args, "duration", None),
        getattr(args, "stages", None),
        getattr(args, "in_flight", None),
        getattr(args, "tasks", None),
        getattr(args, "seed", 0),
    )
    return shape.as_dict() if shape else {}
