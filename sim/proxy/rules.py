"""A node's rules, as kube-proxy writes them and as the kernel reads them back.

Every trace goes render → iptables-save text → parse → evaluate, so the engine
that walks kubehop's own rules is the one that can walk a real node's dump.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from model.cluster import Cluster
from model.errors import RequestError
from model.netfilter import Ruleset
from sim.proxy.iptables import render_node_rules
from sim.readers.iptables_save import parse_iptables_save


@dataclass(frozen=True)
class NodeRules:
    """One node's iptables-save text and its parsed form."""

    node: str
    """The node."""
    text: str
    """The iptables-save text."""
    ruleset: Ruleset
    """The text, parsed."""
    rendered: bool = True
    """kubehop rendered it from the cluster (False: a real node's dump)."""


# Rendering a node of a 10,000-Service cluster takes a while; the same cluster
# object asks for the same node many times (every trace, every screen refresh).
_CACHE: OrderedDict[tuple[int, str], tuple[Cluster, NodeRules]] = OrderedDict()
_CACHE_SIZE = 32


def node_rules(cluster: Cluster, node: str) -> NodeRules:
    """The rules kube-proxy would write on `node`, rendered once per cluster object."""
    key = (id(cluster), node)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is cluster:
        _CACHE.move_to_end(key)
        return hit[1]
    if cluster.node(node) is None:
        names = ", ".join(n.name for n in cluster.nodes[:10])
        raise RequestError(f"no node {node!r} in the cluster (nodes: {names})")
    text = render_node_rules(cluster, node)
    rules = NodeRules(node, text, parse_iptables_save(text, source=f"{node} (rendered)", lazy=True))
    _CACHE[key] = (cluster, rules)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return rules


def rules_for(
    cluster: Cluster, node: str, overrides: Mapping[str, NodeRules] | None = None
) -> NodeRules:
    """The rules a trace walks on `node`: a real dump when one was given, else kube-proxy's."""
    if overrides and node in overrides:
        return overrides[node]
    return node_rules(cluster, node)
