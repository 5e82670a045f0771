"""`kubehop rules`: a node's tables as kube-proxy writes them, or their diff with the node's own."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from model.errors import KubehopError
from tui.cli.clusters import first_node, load_cluster
from tui.cli.output import write_text
from tui.cli.status import EXIT_NOT_DELIVERED, EXIT_OK

if TYPE_CHECKING:
    from model.cluster import Cluster


def run_rules(args: argparse.Namespace) -> int:
    """Print the node's rules (0), or the diff with `--diff`'s file (1 when they differ)."""
    from sim.cluster.rules import listing_text, listings, node_rules

    if args.node is not None and not args.node.strip():
        raise KubehopError("--node '': give a node's name (or leave --node out for the first)")
    cluster = load_cluster(args)
    node = args.node or first_node(cluster)
    if args.format == "nft-script":
        write_text(_nft_script(cluster, node))
        return EXIT_OK
    rendered = node_rules(cluster, node)
    if args.diff is None:
        write_text(listing_text(listings(rendered)))
        return EXIT_OK
    from sim.proxy.iptables.diff import diff_rules, diff_text
    from sim.readers.node_dump import load_node_rules

    real = load_node_rules(cluster, [f"{node}={args.diff}"])[node]
    diff = diff_rules(rendered, real)
    write_text(diff_text(diff))
    return EXIT_OK if diff.same else EXIT_NOT_DELIVERED


def _nft_script(cluster: Cluster, node: str) -> str:
    """What kube-proxy in nftables mode hands `nft -f` on `node`."""
    from model.cluster import ProxyMode
    from sim.proxy.nftables import render_node_transaction

    mode = cluster.kube_proxy.mode
    if mode is not ProxyMode.NFTABLES:
        raise KubehopError(
            f"--format nft-script: kube-proxy runs in {mode.value} mode here, which writes no"
            " nft script (add --mode nftables)"
        )
    return render_node_transaction(cluster, node)
