"""`kubehop rules`: a node's tables as kube-proxy writes them, or their diff with the node's own."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from model.cluster import ProxyMode
from model.errors import KubehopError
from tui.cli.clusters import first_node, load_cluster
from tui.cli.output import write_text
from tui.cli.status import EXIT_NOT_DELIVERED, EXIT_OK

if TYPE_CHECKING:
    from model.cluster import Cluster
    from model.nftables import NftTable
    from sim.kernel.rules import NodeRules


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
    if cluster.kube_proxy.mode is ProxyMode.NFTABLES or _nft_table(real) is not None:
        return _diff_nft(args, cluster, node, real)
    diff = diff_rules(rendered, real)
    if cluster.kube_proxy.mode is ProxyMode.IPVS:
        ipvs_same = _diff_ipvs(args, node, rendered, real)
        write_text("\n" + diff_text(diff))
        return EXIT_OK if diff.same and ipvs_same else EXIT_NOT_DELIVERED
    write_text(diff_text(diff))
    return EXIT_OK if diff.same else EXIT_NOT_DELIVERED


def _diff_ipvs(args: argparse.Namespace, node: str, rendered: NodeRules, real: NodeRules) -> bool:
    """Print the node's IPVS table and sets against kubehop's; whether they are the same."""
    from sim.proxy.ipvs.diff import diff_ipvs, ipvs_diff_text

    ours = getattr(rendered, "ipvs", None)
    assert ours is not None  # IPVS mode always renders its table
    diff = diff_ipvs(
        node,
        ours,
        rendered.ipsets,
        getattr(real, "ipvs", None),
        real.ipsets,
        real_source=args.diff,
    )
    write_text(ipvs_diff_text(diff))
    return diff.same


def _nft_script(cluster: Cluster, node: str) -> str:
    """What kube-proxy in nftables mode hands `nft -f` on `node`."""
    from sim.proxy.nftables import render_node_transaction

    mode = cluster.kube_proxy.mode
    if mode is not ProxyMode.NFTABLES:
        raise KubehopError(
            f"--format nft-script: kube-proxy runs in {mode.value} mode here, which writes no"
            " nft script (add --mode nftables)"
        )
    return render_node_transaction(cluster, node)


def _nft_table(rules: NodeRules) -> NftTable | None:
    from sim.kernel.rules import nft_of

    found = nft_of(rules)
    return found.table("ip", "kube-proxy") if found is not None else None


def _diff_nft(args: argparse.Namespace, cluster: Cluster, node: str, real: NodeRules) -> int:
    """The node's `ip kube-proxy` table against kubehop's, in nftables mode (0: the same)."""
    from sim.cluster.load import with_mode
    from sim.cluster.rules import node_rules
    from sim.proxy.nftables.diff import diff_nft, nft_diff_text

    if cluster.kube_proxy.mode is not ProxyMode.NFTABLES:
        if args.mode:
            raise KubehopError(
                f"--diff {args.diff}: the file holds kube-proxy's nft table (nftables mode), and"
                f" --mode {args.mode} was asked for: give --mode nftables"
            )
        print(
            f"kubehop: {args.diff} holds kube-proxy's nft table: comparing in nftables mode,"
            f" not the cluster file's {cluster.kube_proxy.mode.value}",
            file=sys.stderr,
        )
        cluster = with_mode(cluster, "nftables")
    ours = _nft_table(node_rules(cluster, node))
    assert ours is not None  # nftables mode always renders its table
    diff = diff_nft(
        node,
        ours,
        _nft_table(real),
        rendered_source=f"{node}: kube-proxy's nft table as kubehop renders it",
        real_source=args.diff,
    )
    write_text(nft_diff_text(diff))
    return EXIT_OK if diff.same else EXIT_NOT_DELIVERED
