"""`kubehop gen`: a generated cluster of a given size, to stdout or a file."""

from __future__ import annotations

import argparse
from pathlib import Path

from model.errors import KubehopError
from tui.cli.output import write_json, write_output
from tui.cli.status import EXIT_OK


def run_gen(args: argparse.Namespace) -> int:
    """Write the cluster `--nodes/--pods/--services/--seed` describe."""
    from sim.cluster.generate import generate

    for name in ("nodes", "pods", "services"):
        if getattr(args, name) < 1:
            raise KubehopError(f"--{name} must be at least 1")
    text = generate(args.nodes, args.pods, args.services, args.seed)
    if args.output:
        write_output(Path(args.output), text)
    else:
        write_json(text)
    return EXIT_OK
