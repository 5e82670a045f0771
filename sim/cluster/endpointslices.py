"""The EndpointSlice controller: which pods stand behind a Service, on which ports.

A cluster file from `kubectl get` already holds the controller's EndpointSlices;
a hand-written one often does not. For each Service with a selector and no slice
in the file, kubehop writes the slices the controller would (Kubernetes 1.31,
`k8s.io/endpointslice` reconciler), so kube-proxy's rules come out the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from model.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Pod,
    Service,
    ServicePort,
    ServiceType,
)

__all__ = [
    "MAX_ENDPOINTS_PER_SLICE",
    "derive_endpoint_slices",
    "endpoint_ports",
    "selected_pods",
    "slice_name",
    "slices_for",
]

MAX_ENDPOINTS_PER_SLICE = 100
"""kube-controller-manager's --max-endpoints-per-slice default."""

# apimachinery's utilrand alphabet for generateName: no vowels (no words) and
# no 0, 1, 3 (no look-alikes).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# generateName keeps the name within 63 characters: base + 5 random ones.
_MAX_BASE = 58

PortMapping = tuple[EndpointPort, ...]
"""One pod's resolved ports for a Service: the controller's grouping key."""


def derive_endpoint_slices(cluster: Cluster) -> tuple[EndpointSlice, ...]:
    """The slices the controller would write for Services the file gave none."""
    # ExternalName Services get no slices; selectorless ones are managed by hand.
    wanting = [
        service
        for service in cluster.services
        if service.selector is not None
        and service.type is not ServiceType.EXTERNAL_NAME
        and not cluster.slices_of(service)
    ]
    if not wanting:
        return ()
    index = _LabelIndex(cluster.pods)
    taken = {(s.namespace, s.name) for s in cluster.endpoint_slices}
    derived: list[EndpointSlice] = []
    for service in wanting:
        for slice_ in slices_for(service, index.select(service), taken):
            taken.add((slice_.namespace, slice_.name))
            derived.append(slice_)
    return tuple(derived)


def selected_pods(service: Service, pods: Iterable[Pod]) -> tuple[Pod, ...]:
    """The pods in `service`'s namespace whose labels include all of its selector."""
    if not service.selector:
        return ()
    wanted = set(service.selector)
    return tuple(
        pod for pod in pods if pod.namespace == service.namespace and wanted.issubset(pod.labels)
    )


def endpoint_ports(service: Service, pod: Pod) -> PortMapping:
    """The Service's ports as this pod serves them (podutil.FindPort).

    A number is used as it is; a name is looked up among the pod's container
    ports with the same protocol. A pod without the name has no such port, so
    it lands in a slice without it.
    """
    ports: list[EndpointPort] = []
    for port in service.ports:
        number = _find_port(port, pod)
        if number is not None:
            ports.append(EndpointPort(name=port.name, port=number, protocol=port.protocol))
    return tuple(ports)


def slices_for(
    service: Service, pods: Sequence[Pod], taken: set[tuple[str, str]] | None = None
) -> tuple[EndpointSlice, ...]:
    """The controller's slices for `service` backed by `pods` (already selected).

    Pods are grouped by port mapping, as pods with different numbers behind
    one named port need slices of their own, and each group is cut into slices
    of at most 100. A Service with no pods still gets one empty slice, the
    controller's placeholder.
    """
    taken = set() if taken is None else set(taken)
    groups: dict[PortMapping, list[Endpoint]] = {}
    for pod in pods:
        groups.setdefault(endpoint_ports(service, pod), []).append(_endpoint(service, pod))
    if not groups:
        groups[()] = []
    slices: list[EndpointSlice] = []
    for ports, endpoints in groups.items():
        for start in range(0, max(len(endpoints), 1), MAX_ENDPOINTS_PER_SLICE):
            name = slice_name(service, f"{_ports_key(ports)}#{start}", taken)
            taken.add((service.namespace, name))
            slices.append(
                EndpointSlice(
                    name=name,
                    namespace=service.namespace,
                    service=service.name,
                    ports=ports,
                    endpoints=tuple(endpoints[start : start + MAX_ENDPOINTS_PER_SLICE]),
                    derived=True,
                )
            )
    return tuple(slices)


def slice_name(service: Service, key: str, taken: set[tuple[str, str]] | None = None) -> str:
    """`<service>-<5 chars>` like the controller's generateName, but from a hash.

    The same cluster file always gives the same names, so traces and snapshots
    do not change between runs.
    """
    base = f"{service.name}-"[:_MAX_BASE]
    attempt = 0
    while True:
        digest = hashlib.sha256(f"{service.key}\0{key}\0{attempt}".encode()).digest()
        name = base + "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:5])
        if taken is None or (service.namespace, name) not in taken:
            return name
        attempt += 1


def _find_port(port: ServicePort, pod: Pod) -> int | None:
    if isinstance(port.target_port, int):
        return port.target_port
    # Simplification: Kubernetes 1.29+ also searches sidecar (restartable init)
    # containers; kubehop's model keeps only the regular containers.
    for container in pod.containers:
        for declared in container.ports:
            if declared.name == port.target_port and declared.protocol is port.protocol:
                return declared.container_port
    return None


def _endpoint(service: Service, pod: Pod) -> Endpoint:
    # The controller keeps terminating pods (so kube-proxy can fall back to
    # them), but never calls one ready unless the Service publishes not-ready
    # addresses.
    serving = pod.ready
    ready = service.publish_not_ready_addresses or (serving and not pod.terminating)
    return Endpoint(
        ip=pod.ip,
        ready=ready,
        serving=serving,
        terminating=pod.terminating,
        node=pod.node,
        pod=pod.name,
    )


def _ports_key(ports: PortMapping) -> str:
    return ",".join(f"{p.name}:{p.port}/{p.protocol.value}" for p in ports)


class _LabelIndex:
    """Pods by (namespace, label, value): a selector looks at one short list."""

    def __init__(self, pods: Iterable[Pod]) -> None:
        self._pods: dict[tuple[str, str, str], list[Pod]] = {}
        for pod in pods:
            for key, value in pod.labels:
                self._pods.setdefault((pod.namespace, key, value), []).append(pod)

    def select(self, service: Service) -> tuple[Pod, ...]:
        if not service.selector:
            return ()
        shortest = min(
            (self._pods.get((service.namespace, k, v), []) for k, v in service.selector), key=len
        )
        return selected_pods(service, shortest)
