"""The `kubehop` argument parser: every subcommand, its options, defaults and help, in one place."""

from __future__ import annotations

import argparse
from typing import Any

from model.errors import escaped
from tui.cli.status import EXIT_BAD_INPUT

FORMATS = ("text", "json", "markdown", "dot")
"""What `trace --format` writes."""


class _Parser(argparse.ArgumentParser):
    """A parser whose mistakes are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse quotes some values with repr but lists unrecognized arguments raw.
        self.exit(
            EXIT_BAD_INPUT, f"kubehop: error: {escaped(message)} (see '{self.prog} --help')\n"
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per job."""
    parser = _Parser(
        prog="kubehop",
        description="Watch Kubernetes networking happen: step a request hop by hop through "
        "veth, bridge, kube-proxy's iptables rules, routing and the CNI, and back.",
    )
    parser.add_argument(
        "--cluster",
        dest="clusters",
        metavar="FILE",
        action="append",
        help="cluster dump: a kubectl -o yaml/json file or a directory of them; repeat for"
        " several files (default: the built-in demo)",
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_trace(sub)
    _add_rules(sub)
    sub.add_parser("schema", help="print the JSON Schema of `trace --json`")
    sub.add_parser("scenarios", help="list the article's four scenarios as commands")
    _add_gen(sub)
    _add_serve(sub)
    # Always offered: `lab` itself says why when this machine cannot run it.
    _add_lab(sub)
    return parser


def _add_trace(sub: Any) -> None:
    trace = sub.add_parser("trace", help="trace a request and its reply, hop by hop")
    trace.add_argument("source", help="[NAMESPACE/]POD, a node, an external client, or an IP")
    trace.add_argument(
        "destination",
        help="localhost:PORT, IP:PORT, SERVICE[.NAMESPACE[.svc.cluster.local]]:PORT[/udp], "
        "CLUSTER_IP:PORT or NODE_IP:NODEPORT",
    )
    trace.add_argument("-c", "--container", help="the source pod's container (as kubectl -c)")
    _cluster_option(trace)
    trace.add_argument("--seed", type=int, help="seed of the random endpoint choice")
    trace.add_argument("--pick", metavar="IP:PORT", help="pin the endpoint the random rule chooses")
    trace.add_argument(
        "--node-rules",
        metavar="NODE=FILE",
        action="append",
        default=[],
        help="walk NODE through its real rules (`iptables-save` output) instead of kubehop's;"
        " repeat for several nodes",
    )
    trace.add_argument(
        "--ipset",
        metavar="NODE=FILE",
        action="append",
        default=[],
        help="NODE's `ipset save` output, for rules that use -m set",
    )
    trace.add_argument(
        "--all-endpoints",
        action="store_true",
        help="trace every branch of the load balancing, as a tree with probabilities",
    )
    trace.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output: text (default), json (kubehop schema), markdown, dot (Graphviz)",
    )
    trace.add_argument("--json", action="store_true", help="the same as --format json")
    trace.add_argument(
        "--reproduce",
        action="store_true",
        help="print the commands that confirm this trace on the live cluster",
    )


def _add_rules(sub: Any) -> None:
    rules = sub.add_parser("rules", help="a node's nat and filter tables, iptables-save format")
    rules.add_argument("--node", help="the node (default: the first)")
    _cluster_option(rules)
    rules.add_argument(
        "--diff",
        metavar="FILE",
        help="compare the node's `iptables-save` output with what kube-proxy should have"
        " written (exit 1 when they differ)",
    )


def _add_gen(sub: Any) -> None:
    gen = sub.add_parser("gen", help="write a generated cluster (JSON) of a given size")
    gen.add_argument("--nodes", type=int, default=3)
    gen.add_argument("--pods", type=int, default=10)
    gen.add_argument("--services", type=int, default=3)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the app in a browser on 127.0.0.1 (textual-serve)",
        description="Run the app in a browser, one app process per tab. It listens on"
        " 127.0.0.1 only and prints the address to open, http://127.0.0.1:PORT/?token=…: the"
        " token is new each run, and without it, from another Host, or from another page's"
        " Origin every request is refused (403), so other web pages cannot read the cluster"
        " or press keys.",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="the port on 127.0.0.1 to listen on (default: 8000)"
    )
    serve.add_argument(
        "--max-sessions",
        type=int,
        default=4,
        metavar="N",
        help="at most N app sessions (browser tabs) at once, each an app process;"
        " the next is refused until one closes (default: 4)",
    )
    _cluster_option(
        serve, "cluster dump: a file or a directory of them (default: the built-in demo)"
    )


def _add_lab(sub: Any) -> None:
    lab = sub.add_parser(
        "lab",
        help="check kubehop against the real kernel in network namespaces (root, Linux)",
        description="Build the cluster's network in Linux network namespaces (kh-<id>-…), "
        "load every node's kube-proxy rules with iptables-restore, send real traffic and "
        "compare with kubehop's traces. Nothing is added to the root namespace.",
    )
    steps = lab.add_subparsers(dest="lab_command", metavar="{up,verify,down}", parser_class=_Parser)
    up = steps.add_parser("up", help="build the cluster's network in namespaces and leave it up")
    # The lab builds one cluster, so its --cluster takes one file (not a repeatable list).
    up.add_argument("--cluster", dest="cluster_sub", metavar="FILE", help="cluster file")
    verify = steps.add_parser(
        "verify", help="send real traffic and compare with kubehop (builds a lab if none is up)"
    )
    verify.add_argument("--cluster", dest="cluster_sub", metavar="FILE", help="cluster file")
    verify.add_argument("--flows", type=int, default=0, metavar="N", help="N random flows too")
    verify.add_argument("--seed", type=int, default=1, help="seed of the random flows")
    steps.add_parser("down", help="remove every lab namespace (also leftovers of crashed runs)")


def _cluster_option(
    parser: argparse.ArgumentParser,
    help: str = "cluster dump (file or directory; repeat for several)",
) -> None:
    parser.add_argument("--cluster", dest="cluster_sub", metavar="FILE", action="append", help=help)
