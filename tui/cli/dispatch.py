"""Run the command line: parse, hand the subcommand to its module, turn errors into exit statuses.

Each subcommand's module is imported only when it runs, so `kubehop trace`
loads neither Textual nor the lab, and `--help`, `--version` and shell
completion load neither the simulation nor the app.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from model.errors import KubehopError
from tui.cli.clusters import cluster_path, dataplane
from tui.cli.complete import autocomplete
from tui.cli.parser import build_parser
from tui.cli.status import EXIT_BAD_INPUT, EXIT_OK


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    autocomplete(parser)  # when the shell asks for completions, answers and exits
    args = parser.parse_args(argv)
    try:
        if args.namespace is not None and not args.namespace.strip():
            raise KubehopError("-n '': give a namespace (or leave -n out for default)")
        _check_deep_link(args)
        if args.command == "trace":
            from tui.cli.trace import run_trace

            return run_trace(args)
        if args.command == "compare":
            from tui.cli.compare import run_compare

            return run_compare(args)
        if args.command == "rules":
            from tui.cli.rules import run_rules

            return run_rules(args)
        if args.command == "routes":
            from tui.cli.routes import run_routes

            return run_routes(args)
        if args.command == "gen":
            from tui.cli.gen import run_gen

            return run_gen(args)
        if args.command == "schema":
            from tui.cli.schema import run_schema

            return run_schema()
        if args.command == "scenarios":
            from tui.cli.scenarios import run_scenarios

            return run_scenarios()
        if args.command == "completion":
            from tui.cli.completion import run_completion

            return run_completion(args.shell)
        if args.command == "serve":
            from tui.cli.serve import serve

            return serve(
                cluster_path(args),
                port=args.port,
                max_sessions=args.max_sessions,
                **dataplane(args),
            )
        if args.command == "lab":
            from tui.cli.lab import run_lab

            return run_lab(args, cluster_path(args))
        return _run_app(
            cluster_path(args),
            **dataplane(args),
            scenario=args.scenario,
            step=args.scenario_step,
        )
    except KubehopError as err:
        print(f"kubehop: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK


def _check_deep_link(args: argparse.Namespace) -> None:
    """`--scenario N [--step K]` opens the app: it goes with no command, and `--step` with it."""
    if args.scenario is not None and args.command is not None:
        raise KubehopError(
            f"--scenario opens the app, not '{args.command}': give it without a command"
            " (kubehop --scenario N --step K), or 'kubehop trace … --open --step K'"
        )
    if args.scenario_step is not None and args.scenario is None:
        raise KubehopError("--step K opens the app at a scenario's hop: give --scenario N too")


def _run_app(
    path: str | None,
    *,
    cni: str | None,
    mode: str | None,
    scenario: str | None = None,
    step: int | None = None,
) -> int:
    """The app, on a terminal; elsewhere (a file, a pipe, a script) one line saying what to run."""
    need_terminal()
    from tui.app import run as run_app

    # A bad file, --cni, --mode or --scenario raises before the app takes the terminal.
    return run_app(path, cni=cni, mode=mode, scenario=scenario, step=step)


def need_terminal() -> None:
    """Raise `KubehopError` unless stdin and stdout are a terminal, which the app needs."""
    # Textual would write its escape codes into the file, or wait on a pipe for keys.
    away = [
        name for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)) if not _tty(stream)
    ]
    if away:
        which = f"{away[0]} is not one" if len(away) == 1 else "neither stdin nor stdout is one"
        raise KubehopError(
            f"the app needs a terminal, and {which}: for text run 'kubehop trace SOURCE"
            " DESTINATION' (see 'kubehop scenarios'), or 'kubehop serve' for the app in a browser"
        )


def _tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def main() -> None:
    """Console entry point."""
    sys.exit(run())
