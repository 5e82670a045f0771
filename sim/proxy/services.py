"""Which Service answers at an address: ClusterIP, NodePort, external or load-balancer IP."""

from __future__ import annotations

from ipaddress import IPv4Address

from model.cluster import Cluster, Service, ServicePort
from model.frozen import frozen
from model.packet import Proto


@frozen
class ServiceAddress:
    """A Service port reached at an address and port."""

    service: Service
    port: ServicePort
    how: str
    """`ClusterIP`, `NodePort`, `external IP` or `load-balancer IP`."""

    def __str__(self) -> str:
        name = f"{self.service.key}:{self.port.name}" if self.port.name else self.service.key
        return f"{name} ({self.how})"


def services_at(
    cluster: Cluster, ip: IPv4Address, port: int, proto: Proto
) -> tuple[ServiceAddress, ...]:
    """The Service ports kube-proxy sends `ip:port/proto` to (none: no rule catches it)."""
    node_ips = {node.internal_ip for node in cluster.nodes}
    found: list[ServiceAddress] = []
    for service in cluster.services:
        for sp in service.ports:
            if sp.protocol is not proto:
                continue
            if sp.port == port:
                if service.cluster_ip == ip:
                    found.append(ServiceAddress(service, sp, "ClusterIP"))
                elif ip in service.external_ips:
                    found.append(ServiceAddress(service, sp, "external IP"))
                elif ip in service.load_balancer_ips:
                    found.append(ServiceAddress(service, sp, "load-balancer IP"))
            if sp.node_port == port and ip in node_ips:
                found.append(ServiceAddress(service, sp, "NodePort"))
    return tuple(found)


def services_with_ip(cluster: Cluster, ip: IPv4Address) -> tuple[Service, ...]:
    """The Services that have `ip` as ClusterIP, external or load-balancer IP, on any port."""
    return tuple(
        s
        for s in cluster.services
        if s.cluster_ip == ip or ip in s.external_ips or ip in s.load_balancer_ips
    )
