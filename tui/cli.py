"""The `kubehop` command line: the app, and the headless core's commands.

Exit status: 0 delivered (or success), 1 the packet was dropped, rejected or
unreachable, 2 bad input. Every user mistake is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from model.errors import KubehopError
from model.trace import Verdict

EXIT_OK = 0
EXIT_NOT_DELIVERED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"kubehop: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per job."""
    parser = _Parser(
        prog="kubehop",
        description="Watch Kubernetes networking happen: step a request hop by hop through "
        "veth, bridge, kube-proxy's iptables rules, routing and the CNI, and back.",
    )
    parser.add_argument(
        "--cluster", metavar="FILE", help="cluster file (default: the built-in demo)"
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    trace = sub.add_parser("trace", help="trace a request and its reply, hop by hop")
    trace.add_argument("source", help="[NAMESPACE/]POD, a node, an external client, or an IP")
    trace.add_argument(
        "destination",
        help="localhost:PORT, IP:PORT, SERVICE[.NAMESPACE[.svc.cluster.local]]:PORT[/udp], "
        "CLUSTER_IP:PORT or NODE_IP:NODEPORT",
    )
    trace.add_argument("-c", "--container", help="the source pod's container (as kubectl -c)")
    trace.add_argument("--cluster", dest="cluster_sub", metavar="FILE", help="cluster file")
    trace.add_argument("--seed", type=int, help="seed of the random endpoint choice")
    trace.add_argument("--pick", metavar="IP:PORT", help="pin the endpoint the random rule chooses")
    trace.add_argument(
        "--json", action="store_true", help="print the trace as JSON (kubehop schema)"
    )

    rules = sub.add_parser("rules", help="a node's nat and filter tables, iptables-save format")
    rules.add_argument("--node", help="the node (default: the first)")
    rules.add_argument("--cluster", dest="cluster_sub", metavar="FILE", help="cluster file")

    sub.add_parser("schema", help="print the JSON Schema of `trace --json`")
    sub.add_parser("scenarios", help="list the article's four scenarios as commands")

    gen = sub.add_parser("gen", help="write a generated cluster (JSON) of a given size")
    gen.add_argument("--nodes", type=int, default=3)
    gen.add_argument("--pods", type=int, default=10)
    gen.add_argument("--services", type=int, default=3)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    serve = sub.add_parser("serve", help="run the app in a browser on 127.0.0.1 (textual-serve)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--cluster", dest="cluster_sub", metavar="FILE", help="cluster file")
    return parser


def _cluster_path(args: argparse.Namespace) -> str | None:
    sub: str | None = getattr(args, "cluster_sub", None)
    top: str | None = args.cluster
    return sub or top


def _trace(args: argparse.Namespace) -> int:
    from sim.cluster_io import load
    from sim.report import trace_json, trace_text
    from sim.tracer import trace

    cluster = load(_cluster_path(args))
    result = trace(
        cluster,
        args.source,
        args.destination,
        container=args.container,
        seed=args.seed,
        pick=args.pick,
    )
    if args.seed is None:
        print(
            f"kubehop: seed {result.seed} (add --seed {result.seed} to repeat this trace)",
            file=sys.stderr,
        )
    sys.stdout.write(trace_json(result) if args.json else trace_text(result))
    return EXIT_OK if result.verdict is Verdict.DELIVERED else EXIT_NOT_DELIVERED


def _rules(args: argparse.Namespace) -> int:
    from sim.cluster_io import load
    from sim.rules import node_rules

    cluster = load(_cluster_path(args))
    node = args.node or cluster.nodes[0].name
    sys.stdout.write(node_rules(cluster, node).text)
    return EXIT_OK


def _gen(args: argparse.Namespace) -> int:
    from sim.gen import generate

    for name in ("nodes", "pods", "services"):
        if getattr(args, name) < 1:
            raise KubehopError(f"--{name} must be at least 1")
    text = generate(args.nodes, args.pods, args.services, args.seed)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _schema() -> int:
    from sim.report import trace_schema

    print(json.dumps(trace_schema(), indent=2))
    return EXIT_OK


def _scenarios() -> int:
    from sim.scenarios import SCENARIOS

    for s in SCENARIOS:
        print(f"{s.key}  {s.title:<45} {s.command}")
    return EXIT_OK


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "trace":
            return _trace(args)
        if args.command == "rules":
            return _rules(args)
        if args.command == "gen":
            return _gen(args)
        if args.command == "schema":
            return _schema()
        if args.command == "scenarios":
            return _scenarios()
        if args.command == "serve":
            from tui.serve import serve

            return serve(_cluster_path(args), port=args.port)
        from tui.app import run as run_app

        return run_app(_cluster_path(args))
    except KubehopError as err:
        print(f"kubehop: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK


def main() -> None:
    """Console entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
