"""Checks across objects: names and addresses unique, ranges apart, references that resolve.

Each object was checked alone when it was read; these see the whole cluster.
Mistakes the API server would refuse fail; what a real cluster may hold but
changes what the network does becomes a warning.
"""

from __future__ import annotations

from bisect import bisect_right
from ipaddress import IPv4Address, IPv4Network
from itertools import pairwise

from model.cluster import (
    CNIConfig,
    CNIPlugin,
    EndpointSlice,
    ExternalClient,
    KubeProxyConfig,
    Node,
    Pod,
    Service,
)
from model.packet import Proto
from sim.readers.cluster.messages import At, Report

__all__ = [
    "check_addresses",
    "check_pod_cidrs",
    "check_pods_in_cidrs",
    "check_selectors",
    "check_service_ips",
    "check_services",
    "check_slices",
    "covering",
    "infer_cluster_cidr",
    "infer_cni",
    "unique",
]


def covering(first: int, last: int, floor: int = 32) -> IPv4Network:
    """The smallest network holding the addresses `first`..`last`, at most /`floor`."""
    prefix = min(32 - (first ^ last).bit_length(), floor)
    return IPv4Network((first, prefix), strict=False)


def unique(
    report: Report, kind: str, named: list[tuple[At, str, str | None]]
) -> dict[tuple[str | None, str], At]:
    """Fail at the second object of `kind` with a name (in a namespace) already taken."""
    seen: dict[tuple[str | None, str], At] = {}
    for at, name, namespace in named:
        first = seen.setdefault((namespace, name), at)
        if first is not at:
            report.fail(
                at,
                ("metadata", "name"),
                f"duplicate name (first defined at {report.line_ref(first, at)})",
            )
    return seen


def check_addresses(
    report: Report,
    nodes: list[tuple[At, Node]],
    pods: list[tuple[At, Pod]],
    clients: list[tuple[At, ExternalClient]],
) -> dict[IPv4Address, At]:
    """Every node, client and pod IP has one owner; returns who owns which."""
    owners: dict[IPv4Address, At] = {}
    claims = [(n.internal_ip, at, ("status", "addresses")) for at, n in nodes]
    claims += [(c.ip, at, ("spec", "ip")) for at, c in clients]
    # A hostNetwork pod shares its node's IP (and netns) by design.
    claims += [(p.ip, at, ("status", "podIP")) for at, p in pods if not p.host_network]
    for ip, at, field in claims:
        first = owners.setdefault(ip, at)
        if first is not at:
            line = report.line_ref(first, at)
            report.fail(at, field, f"{ip} is already the IP of {first.ident()} ({line})")
    return owners


def check_service_ips(
    report: Report, services: list[tuple[At, Service]], owners: dict[IPv4Address, At]
) -> None:
    """No ClusterIP is also a node's or a pod's IP.

    Such a ClusterIP would send that host's traffic through kube-proxy's DNAT:
    Kubernetes allocates ClusterIPs from a range of their own.
    """
    for at, service in services:
        if service.cluster_ip is not None and service.cluster_ip in owners:
            first = owners[service.cluster_ip]
            report.fail(
                at,
                ("spec", "clusterIP"),
                f"{service.cluster_ip} is already the IP of {first.ident()}"
                f" ({report.line_ref(first, at)})",
            )


def check_pod_cidrs(report: Report, nodes: list[tuple[At, Node]]) -> None:
    """No two nodes' podCIDRs overlap, and no node's InternalIP lies in one."""
    # Sorted by start, two podCIDRs overlap only if neighbours do.
    ranged = sorted(
        ((n.pod_cidr, at) for at, n in nodes if n.pod_cidr is not None),
        key=lambda pair: (pair[0].network_address, pair[0].prefixlen),
    )
    for (before, first), (after, at) in pairwise(ranged):
        if before.overlaps(after):
            report.fail(
                at,
                ("spec", "podCIDR"),
                f"{after} overlaps {first.ident()}'s podCIDR {before}"
                f" ({report.line_ref(first, at)})",
            )
    # Disjoint now: the one podCIDR that could hold an address starts at or before it.
    starts = [int(cidr.network_address) for cidr, _ in ranged]
    for at, node in nodes:
        i = bisect_right(starts, int(node.internal_ip)) - 1
        if i >= 0 and node.internal_ip in ranged[i][0]:
            cidr, owner = ranged[i]
            report.fail(
                at,
                ("status", "addresses"),
                f"InternalIP {node.internal_ip} lies in {owner.ident()}'s podCIDR {cidr}"
                " (node and pod addresses come from separate ranges)",
            )


def check_pods_in_cidrs(report: Report, pods: list[tuple[At, Pod]], nodes: dict[str, Node]) -> None:
    """Warn of pod IPs outside their node's podCIDR, or on its bridge's address."""
    bare: set[str] = set()
    # (network, mask) as ints: IPv4Network.__contains__ is too slow for 150,000 pods.
    ranges = {
        name: (int(n.pod_cidr.network_address), int(n.pod_cidr.netmask))
        for name, n in nodes.items()
        if n.pod_cidr is not None
    }
    for at, pod in pods:
        if pod.host_network:
            continue
        network_mask = ranges.get(pod.node)
        if network_mask is not None and int(pod.ip) & network_mask[1] == network_mask[0]:
            if int(pod.ip) == network_mask[0] + 1:
                report.warn(
                    "pods on their bridge's address",
                    at,
                    ("status", "podIP"),
                    f"{pod.ip} is the first address of node {pod.node}'s podCIDR, which"
                    " the bridge CNI gives the node's bridge (host-local IPAM never hands"
                    " it to a pod): the pod and the bridge clash",
                )
            continue
        cidr = nodes[pod.node].pod_cidr
        if cidr is None:
            if pod.node not in bare:
                bare.add(pod.node)
                report.warn(
                    "pods on nodes with no podCIDR",
                    at,
                    ("spec", "nodeName"),
                    f"node {pod.node} has no podCIDR, so no route sends other nodes'"
                    f" traffic for {pod.ip} to it",
                )
        else:
            report.warn(
                "pods with IPs outside their node's podCIDR",
                at,
                ("status", "podIP"),
                f"{pod.ip} is outside node {pod.node}'s podCIDR {cidr} (IPAM like"
                " Calico's does this; a host-gw route by podCIDR will not reach it)",
            )


def check_services(report: Report, services: list[tuple[At, Service]]) -> None:
    """No two Services share a ClusterIP, or a nodePort of one protocol."""
    cluster_ips: dict[IPv4Address, At] = {}
    node_ports: dict[tuple[int, Proto], At] = {}
    for at, service in services:
        if service.cluster_ip is not None:
            first = cluster_ips.setdefault(service.cluster_ip, at)
            if first is not at:
                report.fail(
                    at,
                    ("spec", "clusterIP"),
                    f"{service.cluster_ip} is already the ClusterIP of {first.ident()}"
                    f" ({report.line_ref(first, at)})",
                )
        for index, port in enumerate(service.ports):
            if port.node_port is None:
                continue
            first = node_ports.setdefault((port.node_port, port.protocol), at)
            if first is not at:
                report.fail(
                    at,
                    ("spec", "ports", index, "nodePort"),
                    f"{port.node_port} is already a nodePort of {first.ident()}"
                    f" ({report.line_ref(first, at)})",
                )


def check_selectors(
    report: Report, services: list[tuple[At, Service]], pods: list[tuple[At, Pod]]
) -> None:
    """Warn of Services whose selector matches no pod."""
    # Replicas share their labels: each namespace's distinct label sets are
    # indexed, not 150,000 pods.
    label_sets = {(pod.namespace, pod.labels) for _, pod in pods}
    by_label: dict[tuple[str, str, str], list[tuple[tuple[str, str], ...]]] = {}
    for namespace, labels in label_sets:
        for key, value in labels:
            by_label.setdefault((namespace, key, value), []).append(labels)
    for at, service in services:
        if not service.selector:
            continue
        candidates = min(
            (by_label.get((service.namespace, k, v), []) for k, v in service.selector),
            key=len,
        )
        wanted = set(service.selector)
        if not any(wanted.issubset(labels) for labels in candidates):
            shown = ",".join(f"{k}={v}" for k, v in service.selector)
            report.warn(
                "Services whose selector matches no pod",
                at,
                ("spec", "selector"),
                f"{shown} matches no pod, so the Service has no endpoints and kube-proxy"
                " rejects its traffic",
            )


def check_slices(
    report: Report,
    slices: list[tuple[At, EndpointSlice]],
    services: list[tuple[At, Service]],
    nodes: dict[str, Node],
    pods: set[tuple[str, str]],
) -> None:
    """Warn of slices of missing Services, and endpoints on missing nodes or of missing pods."""
    known = {(s.namespace, s.name) for _, s in services}
    for at, slice_ in slices:
        if (slice_.namespace, slice_.service) not in known:
            report.warn(
                "EndpointSlices of missing Services",
                at,
                ("metadata", "labels", "kubernetes.io/service-name"),
                f"no Service {slice_.namespace}/{slice_.service} in the file, so kube-proxy"
                " makes no rules from this slice",
            )
        for index, endpoint in enumerate(slice_.endpoints):
            if endpoint.node is not None and endpoint.node not in nodes:
                report.warn(
                    "endpoints on missing nodes",
                    at,
                    ("endpoints", index, "nodeName"),
                    f"no Node named {endpoint.node} in the file",
                )
            if endpoint.pod is not None and (slice_.namespace, endpoint.pod) not in pods:
                report.warn(
                    "endpoints of missing pods",
                    at,
                    ("endpoints", index, "targetRef", "name"),
                    f"no Pod {slice_.namespace}/{endpoint.pod} in the file (a stale slice or"
                    f" a partial dump); kube-proxy sends traffic to {endpoint.ip} all the same",
                )


def infer_cluster_cidr(
    report: Report,
    proxy: KubeProxyConfig,
    nodes: list[tuple[At, Node]],
    pods: list[tuple[At, Pod]],
) -> KubeProxyConfig:
    """`proxy`, or with no KubeProxyConfiguration one whose clusterCIDR covers the pods."""
    if not proxy.inferred:
        return proxy
    cidrs = [n.pod_cidr for _, n in nodes if n.pod_cidr is not None]
    if cidrs:
        first = min(int(c.network_address) for c in cidrs)
        last = max(int(c.broadcast_address) for c in cidrs)
        cluster_cidr: IPv4Network | None = covering(first, last)
        basis = "the smallest network covering every node's podCIDR"
    else:
        ips = [int(p.ip) for _, p in pods if not p.host_network]
        cluster_cidr = covering(min(ips), max(ips)) if ips else None
        basis = "the smallest network covering every pod IP (no node has a podCIDR)"
    report.warn(
        "configuration warnings",
        None,
        (),
        f"no KubeProxyConfiguration: assuming mode iptables and clusterCIDR"
        f" {cluster_cidr} ({basis})",
    )
    return KubeProxyConfig(cluster_cidr=cluster_cidr, inferred=True)


_FLANNEL_BACKENDS = {"vxlan": CNIPlugin.FLANNEL_VXLAN, "host-gw": CNIPlugin.FLANNEL_HOST_GW}


def infer_cni(
    report: Report, cni: CNIConfig, nodes: list[tuple[At, Node]], pods: list[tuple[At, Pod]]
) -> CNIConfig:
    """`cni`, or with no CNIConfig the CNI the dump shows: the nodes' annotations, else the
    CNI's DaemonSet pods; host-gw when nothing shows one. Said in a warning either way."""
    if not cni.inferred:
        return cni
    plugin, basis = _cni_shown(nodes, pods)
    if plugin is not CNIPlugin.HOST_GW:
        said = f"no CNIConfig: kubehop takes the CNI for {plugin.value} ({basis})"
    elif len(nodes) > 1:  # with one node, no packet crosses between nodes
        said = (
            "no CNIConfig, and nothing in the dump names a CNI: kubehop takes host-gw routing"
            " between nodes (each node routes another node's podCIDR via its InternalIP)"
        )
    else:
        return cni
    report.warn("configuration warnings", None, (), said)
    return cni.model_copy(update={"plugin": plugin})


def _cni_shown(nodes: list[tuple[At, Node]], pods: list[tuple[At, Pod]]) -> tuple[CNIPlugin, str]:
    for _, found in nodes:
        backend = found.annotation("flannel.alpha.coreos.com/backend-type")
        if backend in _FLANNEL_BACKENDS:
            return _FLANNEL_BACKENDS[backend], (
                f"node {found.name}'s annotation flannel.alpha.coreos.com/backend-type={backend}"
            )
        for key, plugin in (
            ("projectcalico.org/IPv4VXLANTunnelAddr", CNIPlugin.CALICO_VXLAN),
            ("projectcalico.org/IPv4IPIPTunnelAddr", CNIPlugin.CALICO_IPIP),
            ("projectcalico.org/IPv4Address", CNIPlugin.CALICO_BGP),
        ):
            if found.annotation(key) is not None:
                return plugin, f"node {found.name}'s annotation {key}"
    for _, pod in pods:
        owner = pod.owner
        if owner is None or owner.kind != "DaemonSet":
            continue
        if owner.name.startswith("kube-flannel"):
            return CNIPlugin.FLANNEL_VXLAN, (
                f"the DaemonSet {owner.name}'s pod {pod.key}, and Flannel's default backend"
            )
        if owner.name == "calico-node":
            return CNIPlugin.CALICO_BGP, (
                f"the DaemonSet calico-node's pod {pod.key}; no node annotation names a tunnel"
            )
    return CNIPlugin.HOST_GW, "nothing in the dump names a CNI"
