"""Which endpoints kube-proxy uses for a service port on one node.

Follows Kubernetes 1.31: pkg/proxy/endpointslicecache.go builds the endpoint
list (deduplicated by "ip:port", sorted by that string) and
pkg/proxy/topology.go's CategorizeEndpoints picks Cluster and Local endpoints,
falling back to serving-and-terminating endpoints when none is ready.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import field

from model.cluster import Cluster, Endpoint, Service, ServicePort, ServiceType, TrafficPolicy
from model.frozen import frozen


@frozen
class KPEndpoint:
    """One endpoint of one service port, as kube-proxy's endpoint map holds it."""

    ip: str
    """The endpoint's address."""
    port: int
    """The endpoint port matched by name and protocol."""
    local: bool
    """nodeName is the node kube-proxy runs on."""
    ready: bool
    """conditions.ready."""
    serving: bool
    """conditions.serving."""
    terminating: bool
    """conditions.terminating."""

    addr: str = field(init=False, compare=False, repr=False)
    """`ip:port`, as kube-proxy's comments, names and DNAT targets spell it."""

    def __post_init__(self) -> None:
        # A big node prints each endpoint's "ip:port" several times over.
        object.__setattr__(self, "addr", f"{self.ip}:{self.port}")

    def __str__(self) -> str:
        return self.addr


@frozen
class Categorized:
    """CategorizeEndpoints' four results."""

    cluster: tuple[KPEndpoint, ...]
    """Endpoints for Cluster traffic policy (empty when the policy is never used)."""
    local: tuple[KPEndpoint, ...]
    """Endpoints for Local traffic policy (empty when the policy is never used)."""
    reachable: tuple[KPEndpoint, ...]
    """Every endpoint this node may DNAT to: the ones that get a KUBE-SEP- chain."""
    has_any: bool
    """The service has a usable endpoint anywhere in the cluster."""


def externally_accessible(service: Service, port: ServicePort) -> bool:
    """A NodePort, an LB IP or an external IP makes a port reachable from outside."""
    return bool(port.node_port or service.load_balancer_ips or service.external_ips)


def external_policy_local(service: Service) -> bool:
    """apiservice.ExternalPolicyLocal: only NodePort and LoadBalancer Services honour eTP."""
    return (
        service.type in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER)
        and service.external_traffic_policy is TrafficPolicy.LOCAL
    )


def internal_policy_local(service: Service) -> bool:
    """internalTrafficPolicy: Local."""
    return service.internal_traffic_policy is TrafficPolicy.LOCAL


def uses_cluster_endpoints(service: Service, port: ServicePort) -> bool:
    # Even with eTP Local, external traffic from pods and the node itself is
    # short-circuited to the Cluster chain, so the chain must exist.
    return not internal_policy_local(service) or externally_accessible(service, port)


def uses_local_endpoints(service: Service, port: ServicePort) -> bool:
    return internal_policy_local(service) or (
        external_policy_local(service) and externally_accessible(service, port)
    )


def port_listings(
    cluster: Cluster, service: Service, port: ServicePort
) -> Iterator[tuple[int, tuple[Endpoint, ...]]]:
    """What each EndpointSlice of `service` lists for `port`: (the endpoint port, the
    slice's endpoints), slice by slice."""
    for slice_ in cluster.slices_of(service):
        for ep_port in slice_.ports:
            # ServicePortName includes the protocol: a UDP slice port of the same
            # name belongs to another service port.
            if ep_port.name == port.name and ep_port.protocol == port.protocol:
                yield ep_port.port, slice_.endpoints


def listed_endpoints(
    cluster: Cluster, ports: Iterable[tuple[Service, ServicePort]]
) -> dict[tuple[int, int], tuple[int, ...]]:
    """Each endpoint the slices list (address as an integer, port) → the positions in
    `ports` of the Service ports listing it, in order."""
    found: dict[tuple[int, int], list[int]] = {}
    for i, (service, port) in enumerate(ports):
        for number, endpoints in port_listings(cluster, service, port):
            for ep in endpoints:
                found.setdefault((int(ep.ip), number), []).append(i)
    return {key: tuple(dict.fromkeys(owners)) for key, owners in found.items()}


def port_endpoints(
    cluster: Cluster, service: Service, port: ServicePort, node: str
) -> tuple[KPEndpoint, ...]:
    """Every endpoint of `port` (ready or not), as kube-proxy's EndpointsMap lists it."""
    found: dict[str, KPEndpoint] = {}
    for number, endpoints in port_listings(cluster, service, port):
        for ep in endpoints:
            kp = KPEndpoint(
                ip=str(ep.ip),
                port=number,
                local=ep.node == node,
                ready=ep.ready,
                serving=ep.serving,
                terminating=ep.terminating,
            )
            # Duplicates across slices collapse; a local copy wins.
            if str(kp) not in found or kp.local:
                found[str(kp)] = kp
    # kube-proxy sorts by the "ip:port" string, so 10.0.0.10 comes before 10.0.0.2;
    # that order decides which endpoint gets which probability.
    return tuple(found[key] for key in sorted(found))


def categorize(
    endpoints: tuple[KPEndpoint, ...], service: Service, port: ServicePort
) -> Categorized:
    """CategorizeEndpoints without topology hints (the model has none)."""
    cluster_eps: tuple[KPEndpoint, ...] = ()
    local_eps: tuple[KPEndpoint, ...] = ()
    has_any = False
    serving_terminating_local = False

    use_cluster = uses_cluster_endpoints(service, port)
    if use_cluster:
        cluster_eps = tuple(ep for ep in endpoints if ep.ready)
        if not cluster_eps:
            cluster_eps = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
        has_any = bool(cluster_eps)

    if not uses_local_endpoints(service, port):
        return Categorized(cluster_eps, (), cluster_eps, has_any)

    usable = [ep for ep in endpoints if ep.ready or (ep.serving and ep.terminating)]
    has_any = has_any or bool(usable)
    if any(ep.local and ep.ready for ep in endpoints):
        local_eps = tuple(ep for ep in endpoints if ep.local and ep.ready)
    elif any(ep.local and ep.serving and ep.terminating for ep in endpoints):
        serving_terminating_local = True
        local_eps = tuple(ep for ep in endpoints if ep.local and ep.serving and ep.terminating)

    if not use_cluster:
        return Categorized((), local_eps, local_eps, has_any)
    if not serving_terminating_local:
        # Ready local endpoints are a subset of the ready cluster endpoints.
        return Categorized(cluster_eps, local_eps, cluster_eps, has_any)
    # kube-proxy merges through a Go map here (random order); the order of
    # KUBE-SEP- chain declarations does not change iptables-save's output.
    merged = {str(ep): ep for ep in (*cluster_eps, *local_eps)}
    return Categorized(cluster_eps, local_eps, tuple(merged.values()), has_any)
