"""`kubehop trace`: one request and its reply hop by hop, or every branch of the load balancing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from model.errors import KubehopError
from tui.cli.clusters import load_cluster
from tui.cli.output import write_json, write_text
from tui.cli.status import EXIT_NOT_DELIVERED, EXIT_OK

if TYPE_CHECKING:
    from model.cluster import Cluster
    from model.trace import Trace
    from sim.kernel.rules import NodeRules
    from sim.readers.node_dump import NodeDump
    from sim.trace.request import Request


def run_trace(args: argparse.Namespace) -> int:
    """Trace the request `args` name and print it; 0 when delivered, 1 when not."""
    from model.trace import Verdict
    from sim.readers.node_dump import load_node_rules
    from sim.trace.report import trace_json, trace_text
    from sim.trace.tracer import trace

    if args.open or args.step is not None:
        return _open_in_app(args)
    fmt = "json" if args.json else args.format or "text"
    if args.json and args.format not in (None, "json"):
        raise KubehopError(f"--json and --format {args.format} disagree; give one")
    if args.reproduce and (fmt in ("json", "dot") or args.all_endpoints):
        with_what = "--all-endpoints" if args.all_endpoints else f"--format {fmt}"
        raise KubehopError(
            f"--reproduce prints shell commands after the text trace; with {with_what} they"
            " would spoil the output (run it again without one of them)"
        )
    if args.questions and (fmt in ("json", "dot") or args.all_endpoints):
        with_what = "--all-endpoints" if args.all_endpoints else f"--format {fmt}"
        raise KubehopError(
            f"--questions prints an answer key after the text or Markdown trace; with"
            f" {with_what} it would spoil the output (run it again without one of them)"
        )
    cluster = load_cluster(args)
    request = request_of(args, cluster)
    real = load_node_rules(cluster, args.node_rules, args.ipset)
    cluster = _mode_the_nodes_show(args, cluster, real)
    if args.all_endpoints:
        return _trace_all(args, cluster, request, real, fmt)
    result = trace(cluster, request, node_rules=real)
    if args.seed is None:
        print(
            f"kubehop: seed {result.seed} (add --seed {result.seed} to repeat this trace)",
            file=sys.stderr,
        )
    if fmt == "json":
        write_json(trace_json(result))
    elif fmt == "markdown":
        from sim.trace.export import trace_markdown

        write_text(trace_markdown(result))
    elif fmt == "dot":
        from sim.trace.export import trace_dot

        write_text(trace_dot(result))
    else:
        write_text(_rules_header(real) + trace_text(result))
        if real:
            write_text(_compared(cluster, request, result))
    if args.questions:
        from sim.trace.challenge import challenge
        from sim.trace.export import questions_text

        asked = challenge(result, cluster, result.seed, node_rules=real)
        write_text("\n" + questions_text(asked, markdown=fmt == "markdown"))
    if args.reproduce:
        from sim.trace.export import reproduce_commands

        write_text("\n" + reproduce_commands(result, container=_exec_container(cluster, request)))
    return EXIT_OK if result.verdict is Verdict.DELIVERED else EXIT_NOT_DELIVERED


def _open_in_app(args: argparse.Namespace) -> int:
    """`--open [--step K]`: the trace in the app, at hop K, instead of printed (a deep link)."""
    from tui.cli.clusters import cluster_paths
    from tui.cli.dispatch import need_terminal

    if not args.open:
        raise KubehopError(f"--step {args.step} opens the app at that hop: give --open too")
    printed = {
        "--format": args.format is not None,
        "--json": args.json,
        "--reproduce": args.reproduce,
        "--questions": args.questions,
        "--all-endpoints": args.all_endpoints,
    }
    given = [name for name, on in printed.items() if on]
    if given:
        raise KubehopError(
            f"--open shows the trace in the app, and {given[0]} is for printing it: give one"
            " or the other (in the app, S sums the trace up and c asks challenge mode's"
            " questions)"
        )
    if args.node_rules or args.ipset:
        which = "--node-rules" if args.node_rules else "--ipset"
        raise KubehopError(
            f"--open shows kubehop's own rules; {which} (a node's real rules) is for the"
            " printed trace only"
        )
    need_terminal()
    cluster = load_cluster(args)
    request = request_of(args, cluster)
    from tui.app import open_app

    return open_app(
        cluster, request=request, step=args.step, cluster_files=tuple(cluster_paths(args))
    )


def _mode_the_nodes_show(
    args: argparse.Namespace, cluster: Cluster, real: Mapping[str, NodeDump]
) -> Cluster:
    """The cluster in the mode a node's own rules show, when the file said another and
    --mode did not choose: a node's kube-proxy table outweighs a configuration."""
    from sim.cluster.load import with_mode
    from sim.readers.node_dump import shown_mode

    shown = shown_mode(real)
    if shown is None or args.mode or shown[1] is cluster.kube_proxy.mode:
        return cluster
    node, mode = shown
    said = "assumed" if cluster.kube_proxy.inferred else "from its KubeProxyConfiguration"
    print(
        f"kubehop: {node}'s rules hold kube-proxy's nft table (ip kube-proxy): tracing in"
        f" {mode.value} mode, not the cluster file's {cluster.kube_proxy.mode.value} ({said})",
        file=sys.stderr,
    )
    return with_mode(cluster, mode.value)


def request_of(args: argparse.Namespace, cluster: Cluster) -> Request:
    """The request `kubehop trace` (or `compare`) was given, its names read in `-n`'s
    namespace."""
    from sim.trace.request import Request, in_namespace

    given = Request(
        args.source,
        args.destination,
        args.container,
        args.seed,
        args.pick,
        size=args.size,
    )
    request, note = in_namespace(cluster, given, args.namespace or "default")
    if note is not None:
        print(f"kubehop: {note}", file=sys.stderr)
    return request


def _exec_container(cluster: Cluster, request: Request) -> str | None:
    """The container `kubectl exec -c` needs: the traced one, where the source pod has several."""
    from sim.trace.request import SourceKind, parse_source

    source = parse_source(cluster, request.source, request.container)
    if source.kind is not SourceKind.POD:
        return None
    text = request.source.strip()
    namespace, _, name = text.rpartition("/")
    pod = cluster.pod(namespace or "default", name) or next(
        (p for p in cluster.pods if str(p.ip) == text and not p.host_network), None
    )
    if pod is None or len(pod.containers) < 2:
        return None
    # A pod source's label ends in the container kubehop sent from (-c's, else the first).
    return source.label.rsplit("/", 1)[-1]


def _rules_header(real: Mapping[str, NodeRules]) -> str:
    """Which nodes are walked through their own rules, and what kubehop cannot evaluate there."""
    lines = [
        f"rules on {node}: {rules.ruleset.source} (the node's {_commands(rules)});"
        f" {len(rules.ruleset.warnings)} rule(s) kubehop cannot evaluate"
        for node, rules in real.items()
    ]
    for rules in real.values():
        lines += [f"  warning: {w}" for w in rules.ruleset.warnings[:10]]
    if real:
        lines.append("other nodes: kube-proxy's rules as kubehop renders them from the cluster")
    return "\n".join(lines) + ("\n" if lines else "")


def _commands(rules: NodeRules) -> str:
    return "iptables-save and nft list ruleset" if getattr(rules, "nft", None) else "iptables-save"


def _compared(cluster: Cluster, request: Request, result: Trace) -> str:
    """How the trace through kubehop's own rules ends, when it ends differently."""
    from sim.trace.tracer import trace

    rendered = trace(cluster, replace(request, seed=result.seed))
    if (rendered.verdict, rendered.endpoint, rendered.reason) == (
        result.verdict,
        result.endpoint,
        result.reason,
    ):
        return "with kube-proxy's rendered rules instead: the same outcome\n"
    return (
        "with kube-proxy's rendered rules instead: "
        f"{rendered.verdict.value.upper()}: {rendered.reason}\n"
    )


def _trace_all(
    args: argparse.Namespace,
    cluster: Cluster,
    request: Request,
    real: Mapping[str, NodeRules],
    fmt: str,
) -> int:
    """`--all-endpoints`: the tree of every branch, then each branch's trace."""
    from sim.trace.fork import all_delivered, fork, fork_dict, fork_text
    from sim.trace.report import trace_text

    if args.pick is not None:
        raise KubehopError("--all-endpoints traces every endpoint; drop --pick")
    if fmt in ("markdown", "dot"):
        raise KubehopError(f"--all-endpoints prints text or json, not {fmt}")
    result = fork(cluster, request, node_rules=real)
    if fmt == "json":
        write_json(json.dumps(fork_dict(result), indent=2, ensure_ascii=False) + "\n")
    else:
        write_text(_rules_header(real) + fork_text(result))
        for number, branch in enumerate(result.branches, start=1):
            write_text(f"\n=== branch {number} ===\n" + trace_text(branch.trace))
    return EXIT_OK if all_delivered(result) else EXIT_NOT_DELIVERED
