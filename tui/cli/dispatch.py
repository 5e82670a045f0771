"""Run the command line: parse, hand the subcommand to its module, turn errors into exit statuses.

Each subcommand's module is imported only when it runs, so `kubehop trace`
loads neither Textual nor the lab.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from model.errors import KubehopError
from tui.cli.clusters import cluster_path
from tui.cli.parser import build_parser
from tui.cli.status import EXIT_BAD_INPUT, EXIT_OK


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "trace":
            from tui.cli.trace import run_trace

            return run_trace(args)
        if args.command == "rules":
            from tui.cli.rules import run_rules

            return run_rules(args)
        if args.command == "gen":
            from tui.cli.gen import run_gen

            return run_gen(args)
        if args.command == "schema":
            from tui.cli.schema import run_schema

            return run_schema()
        if args.command == "scenarios":
            from tui.cli.scenarios import run_scenarios

            return run_scenarios()
        if args.command == "serve":
            from tui.cli.serve import serve

            return serve(cluster_path(args), port=args.port, max_sessions=args.max_sessions)
        if args.command == "lab":
            from tui.cli.lab import run_lab

            return run_lab(args, cluster_path(args))
        from tui.app import run as run_app

        return run_app(cluster_path(args))
    except KubehopError as err:
        print(f"kubehop: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK


def main() -> None:
    """Console entry point."""
    sys.exit(run())
