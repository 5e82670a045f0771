"""A node's netfilter rules as its kernel holds them: kubelet's and kube-proxy's, and the CNI's.

kube-proxy's mode (`sim.proxy`) renders its rules; the CNI (`sim.cni`) adds
its own chains (Flannel's FLANNEL-POSTRTG and FLANNEL-FWD); both end up in
the same tables, in the order the agents write them. Every trace goes render →
text → parse → evaluate, so the engine that walks kubehop's own rules is the
one that walks a real node's dump.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from model.cluster import Cluster
from model.errors import RequestError
from sim.cni import cni_of
from sim.kernel.rules import ForeignRules, NodeRules
from sim.proxy import mode_of

__all__ = ["node_rules", "render_rules", "rules_for"]


def render_rules(cluster: Cluster, node: str) -> str:
    """What a person sees on `node`: for iptables mode, its `iptables-save` text."""
    return mode_of(cluster).render(cluster, node, _cni_rules(cluster, node))


# Rendering a node of a 10,000-Service cluster takes a while; the same cluster
# object asks for the same node many times (every trace, every screen refresh).
_CACHE: OrderedDict[tuple[int, str], tuple[Cluster, NodeRules]] = OrderedDict()
_CACHE_SIZE = 32


def node_rules(cluster: Cluster, node: str) -> NodeRules:
    """The rules on `node`, rendered and parsed once per cluster object."""
    key = (id(cluster), node)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is cluster:
        _CACHE.move_to_end(key)
        return hit[1]
    if cluster.node(node) is None:
        names = ", ".join(n.name for n in cluster.nodes[:10])
        raise RequestError(f"no node {node!r} in the cluster (nodes: {names})")
    rules = mode_of(cluster).node_rules(cluster, node, _cni_rules(cluster, node))
    _CACHE[key] = (cluster, rules)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return rules


def rules_for(
    cluster: Cluster, node: str, overrides: Mapping[str, NodeRules] | None = None
) -> NodeRules:
    """The rules a trace walks on `node`: a real dump when one was given, else the rendered."""
    if overrides and node in overrides:
        return overrides[node]
    return node_rules(cluster, node)


def _cni_rules(cluster: Cluster, node: str) -> ForeignRules | None:
    found = cluster.node(node)
    return cni_of(cluster).iptables_rules(found) if found is not None else None
