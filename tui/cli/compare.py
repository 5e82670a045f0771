"""`kubehop compare`: one request traced under several kube-proxy modes, side by side."""

from __future__ import annotations

import argparse
import sys

from model.errors import KubehopError
from tui.cli.clusters import load_cluster
from tui.cli.output import write_json, write_text
from tui.cli.parser import PROXY_MODES
from tui.cli.status import EXIT_NOT_DELIVERED, EXIT_OK
from tui.cli.trace import request_of


def run_compare(args: argparse.Namespace) -> int:
    """Print the comparison; 0 when every mode delivers the request, 1 otherwise."""
    from model.trace import Verdict
    from sim.trace.compare import (
        compare,
        comparison_json,
        comparison_markdown,
        comparison_text,
    )

    if args.mode:
        raise KubehopError(
            f"compare takes its modes from --modes, not --mode (e.g. --modes {args.mode},"
            f"{'nftables' if args.mode != 'nftables' else 'iptables'})"
        )
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in PROXY_MODES:
            raise KubehopError(
                f"--modes {args.modes}: {mode!r} is not a kube-proxy mode"
                f" ({', '.join(PROXY_MODES)})"
            )
    cluster = load_cluster(args)
    request = request_of(args, cluster)
    result = compare(cluster, request, modes)
    if args.seed is None:
        seed = result.traces[0].seed
        print(
            f"kubehop: seed {seed} (add --seed {seed} to repeat this comparison)", file=sys.stderr
        )
    if args.format == "json":
        write_json(comparison_json(result))
    elif args.format == "markdown":
        write_text(comparison_markdown(result))
    else:
        write_text(comparison_text(result))
    delivered = all(t.verdict is Verdict.DELIVERED for t in result.traces)
    return EXIT_OK if delivered else EXIT_NOT_DELIVERED
