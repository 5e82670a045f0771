"""The CNI's part of the data path: the routes that carry pod traffic between nodes.

Only host-gw is simulated now: every node has a route to every other node's
podCIDR via that node's InternalIP, so pod packets cross the node network
unencapsulated (flannel's host-gw backend, or the bridge plugin with static
routes). VXLAN and Calico-style BGP routing would be other functions with this
signature, chosen by `CNIConfig.plugin`.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from model.cluster import Cluster, CNIPlugin, Node
from sim.kernel.route import Route, RouteTable


def node_routes(cluster: Cluster, node: Node, node_network: IPv4Network) -> RouteTable:
    """The main routing table of `node`: connected prefixes, then the CNI's routes."""
    routes = [
        Route(node_network, "eth0", src=node.internal_ip, proto="kernel", scope="link"),
    ]
    # Real nodes have a default route to the node network's router; kubehop
    # does not simulate the router, but the route matters: without it a node's
    # own process could not even connect() to a ClusterIP before OUTPUT's DNAT.
    router = node_network.network_address + 1
    taken = {n.internal_ip for n in cluster.nodes} | {c.ip for c in cluster.clients}
    if router not in taken:
        routes.insert(0, Route(IPv4Network("0.0.0.0/0"), "eth0", via=router))
    if node.pod_cidr is not None:
        routes.append(
            Route(
                node.pod_cidr,
                cluster.cni.bridge,
                src=node.pod_cidr.network_address + 1,
                proto="kernel",
                scope="link",
            )
        )
    if cluster.cni.plugin is CNIPlugin.HOST_GW:
        routes.extend(_host_gw_routes(cluster, node))
    return RouteTable(tuple(routes))


def _host_gw_routes(cluster: Cluster, node: Node) -> list[Route]:
    return [
        Route(other.pod_cidr, "eth0", via=other.internal_ip, proto="host-gw")
        for other in cluster.nodes
        if other.name != node.name and other.pod_cidr is not None
    ]


def wire_sentence(cluster: Cluster) -> str:
    """How the CNI carries a pod packet between nodes, for the WIRE hop."""
    if cluster.cni.plugin is CNIPlugin.HOST_GW:
        return (
            "host-gw: the pod packet crosses the node network as it is, no encapsulation; "
            "the next hop is the other node's InternalIP"
        )
    return f"{cluster.cni.plugin.value}"
