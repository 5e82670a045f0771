"""Which cluster a command reads: its `--cluster` options merged, then loaded with a progress bar."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from model.errors import KubehopError
from tui.cli.output import ProgressBar

if TYPE_CHECKING:
    from model.cluster import Cluster


def cluster_paths(args: argparse.Namespace) -> list[str]:
    """Every cluster path given, before and after the subcommand, each file once."""
    # The parser merged them: `kubehop --cluster A trace --cluster B` reads both.
    paths: list[str] = getattr(args, "clusters", None) or []
    if any(not path.strip() for path in paths):
        raise KubehopError("--cluster '': give a file or a directory")
    # The same file named twice is read once.
    once: dict[str, str] = {}
    for path in paths:
        once.setdefault(os.path.realpath(path), path)
    return list(once.values())


def cluster_path(args: argparse.Namespace) -> str | None:
    """The one cluster path the app, `serve` and the lab take."""
    paths = cluster_paths(args)
    if len(paths) > 1:
        raise KubehopError(
            f"{args.command or 'the app'} takes one --cluster; put the files in a directory"
            " and give that"
        )
    return paths[0] if paths else None


def load_cluster(args: argparse.Namespace) -> Cluster:
    """The cluster the options name (the demo when none), with a bar while a big one loads,
    running the CNI `--cni` and the kube-proxy mode `--mode` name instead of its own."""
    from sim.cluster.load import load

    bar = ProgressBar()
    try:
        return load(cluster_paths(args) or None, progress=bar, **dataplane(args))
    finally:
        bar.finish()


def dataplane(args: argparse.Namespace) -> dict[str, str | None]:
    """What `--cni` and `--mode` chose (None: the cluster file's own)."""
    return {"cni": getattr(args, "cni", None), "mode": getattr(args, "mode", None)}


def first_node(cluster: Cluster) -> str:
    """The node a command shows when `--node` is not given: the file's first."""
    if not cluster.nodes:
        raise KubehopError(
            "the cluster has no nodes, so no node has rules or routes to show (dump them too:"
            " kubectl get nodes,pods,services,endpointslices -A -o yaml)"
        )
    return cluster.nodes[0].name
