"""The machines on the node network: Nodes and kubehop's ExternalClients."""

from __future__ import annotations

from typing import Any

from model.cluster import ExternalClient, Node
from sim.readers.cluster.fields import FieldChecker
from sim.readers.cluster.messages import At

__all__ = ["CNI_ANNOTATION_PREFIXES", "client", "node"]

CNI_ANNOTATION_PREFIXES = ("flannel.alpha.coreos.com/", "projectcalico.org/")
"""The node annotations kubehop keeps: what Flannel and Calico write about the node."""


def node(check: FieldChecker, at: At, obj: dict[str, Any]) -> tuple[At, Node] | None:
    """The Node `obj`, placed on the network by its IPv4 InternalIP; None (with a warning)
    for a node that never reported one (the API server stores such nodes)."""
    meta, name, _ = check.metadata(at, obj, namespaced=False)
    labels = check.labels(at, meta.get("labels"), ("metadata", "labels"))
    spec = check.mapping(at, obj.get("spec"), ("spec",))
    status = check.mapping(at, obj.get("status"), ("status",))
    internal_ip = None
    for index, address in enumerate(
        check.sequence(at, status.get("addresses"), ("status", "addresses"))
    ):
        address = check.mapping(at, address, ("status", "addresses", index))
        if address.get("type") == "InternalIP" and internal_ip is None:
            internal_ip = check.ipv4_dual(
                at, address.get("address"), ("status", "addresses", index, "address")
            )
    if internal_ip is None:
        check.warn(
            "nodes left out",
            at,
            ("status", "addresses"),
            "no IPv4 InternalIP address (kubehop puts a node on the network by it), so the node"
            " and its pods are left out",
        )
        return None
    pod_cidr = None
    cidrs = spec.get("podCIDRs")
    if cidrs:
        for index, raw in enumerate(check.sequence(at, cidrs, ("spec", "podCIDRs"))):
            network = check.network(at, raw, ("spec", "podCIDRs", index), dual=True)
            if network is not None and pod_cidr is None:
                pod_cidr = network
    elif spec.get("podCIDR"):
        pod_cidr = check.network(at, spec["podCIDR"], ("spec", "podCIDR"), dual=True)
    annotations = meta.get("annotations")
    cni_annotations = tuple(
        sorted(
            (key, value)
            for key, value in (annotations.items() if isinstance(annotations, dict) else ())
            if isinstance(key, str)
            and isinstance(value, str)
            and key.startswith(CNI_ANNOTATION_PREFIXES)
        )
    )
    info = status.get("nodeInfo")
    # Reported by kubelet, deprecated in 1.31 (then empty); only `rules --diff` uses it.
    version = info.get("kubeProxyVersion") if isinstance(info, dict) else None
    return at, Node.checked(
        name=name,
        internal_ip=internal_ip,
        pod_cidr=pod_cidr,
        labels=labels,
        kube_proxy_version=version if isinstance(version, str) and version else None,
        cni_annotations=cni_annotations,
    )


def client(check: FieldChecker, at: At, obj: dict[str, Any]) -> tuple[At, ExternalClient]:
    """The ExternalClient `obj`: a machine outside the cluster, by its IP."""
    _, name, _ = check.metadata(at, obj, namespaced=False)
    spec = check.mapping(at, obj.get("spec"), ("spec",))
    ip = check.ipv4(at, spec.get("ip"), ("spec", "ip"))
    return at, ExternalClient(name=name, ip=ip)
