"""`kubehop routes`: a node's routes, neighbour entries and FDB as kubehop models them, or the
difference with what the node itself printed."""

from __future__ import annotations

import argparse

from model.errors import KubehopError
from tui.cli.clusters import first_node, load_cluster
from tui.cli.output import write_text
from tui.cli.status import EXIT_NOT_DELIVERED, EXIT_OK


def run_routes(args: argparse.Namespace) -> int:
    """Print the node's tables (0), or the diff with `--diff`'s file (1 when they differ)."""
    from sim.cluster.network import network_of
    from sim.cluster.node_view import diff_routes, show_routes
    from sim.readers.cluster.files import read_text

    if args.node is not None and not args.node.strip():
        raise KubehopError("--node '': give a node's name (or leave --node out for the first)")
    cluster = load_cluster(args)
    node = args.node or first_node(cluster)
    if cluster.node(node) is None:
        names = ", ".join(n.name for n in cluster.nodes[:10])
        raise KubehopError(f"--node {node!r}: no such node (nodes: {names})")
    network = network_of(cluster)
    if args.diff is None:
        write_text(show_routes(network, node))
        return EXIT_OK
    text = read_text(args.diff, what="`ip route; ip neigh; bridge fdb` output", ask_what=True)
    diff = diff_routes(network, node, text)
    if diff.same:
        write_text(f"{node}: the routes, permanent neighbours and VXLAN FDB entries agree\n")
        return EXIT_OK
    lines = [f"{node}: {args.diff} differs from kubehop's model of the node"]
    lines += [f"- {line}   (kubehop has it; the node does not)" for line in diff.missing]
    lines += [f"+ {line}   (the node has it; kubehop does not model it)" for line in diff.extra]
    write_text("\n".join(lines) + "\n")
    return EXIT_NOT_DELIVERED
