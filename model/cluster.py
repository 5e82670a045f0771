"""A cluster as kube-proxy and the CNI see it: nodes, pods, Services, EndpointSlices.

The fields follow the Kubernetes objects they come from (`spec.clusterIP`,
`status.podIP`), flattened into what the network needs. Loading and Kubernetes'
validation rules live in `sim.readers.cluster`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from model.packet import Proto

Port = int
"""An L4 port, 1-65535 (validated where it is declared)."""

_set = object.__setattr__


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def checked(cls, **fields: Any) -> Self:
        """An instance of `fields` that a reader has already checked one by one, not validated
        again: every field given, in declaration order, each of its declared type.

        The cluster readers check each field as Kubernetes does and name the file and line of
        a mistake; validating the result again would copy every tuple they share between
        replicas and give each of 150,000 pods a set of its field names (half of a big
        cluster's memory). Instances built here share one set, which is what validation
        would have given each (every field set). Everything else is validated as usual.
        """
        model = cls.__new__(cls)
        _set(model, "__dict__", fields)
        fields_set = _FIELDS_SET.get(cls)
        if fields_set is None:
            fields_set = _FIELDS_SET[cls] = set(cls.model_fields)
        _set(model, "__pydantic_fields_set__", fields_set)
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model


# One set of field names per class, shared by the instances `checked` builds: a
# frozen model never changes its own, and model_copy copies it before adding to it.
_FIELDS_SET: dict[type[BaseModel], set[str]] = {}


class OwnerRef(_Frozen):
    """metadata.ownerReferences[] with controller: true."""

    kind: str
    """ReplicaSet, StatefulSet, DaemonSet, …"""
    name: str
    """The owner's name."""


class Node(_Frozen):
    """A Node: its InternalIP on the node network and its podCIDR."""

    name: str
    """metadata.name."""
    internal_ip: IPv4Address
    """status.addresses[type=InternalIP]."""
    pod_cidr: IPv4Network | None
    """spec.podCIDR: the range the node's pods take their IPs from."""
    labels: tuple[tuple[str, str], ...] = ()
    """metadata.labels."""
    kube_proxy_version: str | None = None
    """status.nodeInfo.kubeProxyVersion (`v1.26.3`); None when the node did not report one."""
    cni_annotations: tuple[tuple[str, str], ...] = ()
    """The annotations a CNI writes on its node (`flannel.alpha.coreos.com/…`,
    `projectcalico.org/…`): its VTEP MAC, tunnel address, public IP; others are not kept."""

    def annotation(self, key: str) -> str | None:
        """The CNI annotation `key`, if the node has it."""
        return next((value for name, value in self.cni_annotations if name == key), None)


class ContainerPort(_Frozen):
    """spec.containers[].ports[]."""

    name: str | None = None
    """The port's name, which a Service's targetPort may refer to."""
    container_port: Port = Field(ge=1, le=65535)
    """containerPort."""
    protocol: Proto = Proto.TCP
    """protocol."""


class Container(_Frozen):
    """spec.containers[]: kubehop takes declared ports as the listening ones."""

    name: str
    """The container's name."""
    ports: tuple[ContainerPort, ...] = ()
    """Declared ports."""


class Pod(_Frozen):
    """A Pod: its netns, its IP, its node."""

    name: str
    """metadata.name."""
    namespace: str = "default"
    """metadata.namespace."""
    labels: tuple[tuple[str, str], ...] = ()
    """metadata.labels, as sorted pairs."""
    node: str
    """spec.nodeName."""
    ip: IPv4Address
    """status.podIP (for a hostNetwork pod, its node's InternalIP)."""
    host_network: bool = False
    """spec.hostNetwork: the pod shares its node's netns."""
    containers: tuple[Container, ...]
    """spec.containers."""
    ready: bool = True
    """The Ready condition."""
    terminating: bool = False
    """metadata.deletionTimestamp is set: the pod is shutting down."""
    owner: OwnerRef | None = None
    """The controlling owner, when a controller made this pod."""

    @property
    def key(self) -> str:
        """`namespace/name`."""
        return f"{self.namespace}/{self.name}"

    def label_map(self) -> dict[str, str]:
        """Labels as a dict."""
        return dict(self.labels)


class ServiceType(StrEnum):
    """spec.type."""

    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


class TrafficPolicy(StrEnum):
    """spec.externalTrafficPolicy / spec.internalTrafficPolicy."""

    CLUSTER = "Cluster"
    LOCAL = "Local"


class ServicePort(_Frozen):
    """spec.ports[]."""

    name: str = ""
    """The port's name ("" for a single unnamed port)."""
    protocol: Proto = Proto.TCP
    """protocol."""
    port: Port = Field(ge=1, le=65535)
    """The Service port (on the ClusterIP)."""
    target_port: int | str
    """targetPort: a number, or the name of a container port."""
    node_port: Port | None = Field(default=None, ge=1, le=65535)
    """nodePort, for NodePort and LoadBalancer Services."""


class Service(_Frozen):
    """A Service: a ClusterIP and ports in front of a set of endpoints."""

    name: str
    """metadata.name."""
    namespace: str = "default"
    """metadata.namespace."""
    type: ServiceType = ServiceType.CLUSTER_IP
    """spec.type."""
    cluster_ip: IPv4Address | None
    """spec.clusterIP; None for a headless Service (`clusterIP: None`)."""
    ports: tuple[ServicePort, ...]
    """spec.ports."""
    selector: tuple[tuple[str, str], ...] | None = None
    """spec.selector as sorted pairs; None when the Service has no selector."""
    session_affinity_timeout: int | None = None
    """spec.sessionAffinityConfig.clientIP.timeoutSeconds when sessionAffinity is ClientIP."""
    external_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    """spec.externalTrafficPolicy."""
    internal_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    """spec.internalTrafficPolicy."""
    external_ips: tuple[IPv4Address, ...] = ()
    """spec.externalIPs."""
    load_balancer_ips: tuple[IPv4Address, ...] = ()
    """status.loadBalancer.ingress[].ip."""
    load_balancer_source_ranges: tuple[IPv4Network, ...] = ()
    """spec.loadBalancerSourceRanges."""
    health_check_node_port: Port | None = None
    """spec.healthCheckNodePort (eTP Local on NodePort/LoadBalancer)."""
    publish_not_ready_addresses: bool = False
    """spec.publishNotReadyAddresses: endpoints count as ready whatever the pods' readiness."""
    external_name: str = ""
    """spec.externalName of an ExternalName Service: the name its DNS record is a CNAME to."""
    endpoints_known: bool = True
    """False for a Service without a selector whose dump has neither EndpointSlices nor
    Endpoints for it: its endpoints are unknown, not none."""

    @property
    def key(self) -> str:
        """`namespace/name`."""
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        """A headless Service has no ClusterIP and no kube-proxy rules."""
        return self.cluster_ip is None


class EndpointPort(_Frozen):
    """EndpointSlice ports[]."""

    name: str = ""
    """Matches the Service port's name."""
    port: Port = Field(ge=1, le=65535)
    """The port on the endpoint."""
    protocol: Proto = Proto.TCP
    """protocol."""


class Endpoint(_Frozen):
    """EndpointSlice endpoints[] (IPv4 address only; kube-proxy uses the first)."""

    ip: IPv4Address
    """addresses[0]."""
    ready: bool = True
    """conditions.ready."""
    serving: bool = True
    """conditions.serving."""
    terminating: bool = False
    """conditions.terminating."""
    node: str | None = None
    """nodeName."""
    pod: str | None = None
    """targetRef.name when it is a Pod."""


class EndpointSlice(_Frozen):
    """An EndpointSlice (discovery.k8s.io/v1) of one Service."""

    name: str
    """metadata.name."""
    namespace: str = "default"
    """metadata.namespace."""
    service: str
    """The `kubernetes.io/service-name` label."""
    ports: tuple[EndpointPort, ...] = ()
    """ports."""
    endpoints: tuple[Endpoint, ...] = ()
    """endpoints."""
    derived: bool = False
    """kubehop derived this slice from the Service's selector (the file had none)."""
    managed_by: str | None = None
    """The `endpointslice.kubernetes.io/managed-by` label; kubehop's mirrors of a dump's
    Endpoints say `endpointslicemirroring-controller.k8s.io`."""


class ProxyMode(StrEnum):
    """KubeProxyConfiguration mode."""

    IPTABLES = "iptables"
    IPVS = "ipvs"
    NFTABLES = "nftables"


class KubeProxyConfig(_Frozen):
    """The KubeProxyConfiguration fields that change the rules."""

    mode: ProxyMode = ProxyMode.IPTABLES
    """mode ("" means iptables on Linux)."""
    cluster_cidr: IPv4Network | None = None
    """clusterCIDR: traffic from outside it to a ClusterIP is masqueraded."""
    masquerade_all: bool = False
    """iptables.masqueradeAll."""
    masquerade_bit: int = Field(default=14, ge=0, le=31)
    """iptables.masqueradeBit: 14 gives the 0x4000 mark."""
    node_port_addresses: tuple[IPv4Network, ...] = ()
    """nodePortAddresses; empty means every local address (kube-proxy's default)."""
    ipvs_scheduler: str = "rr"
    """ipvs.scheduler ("" in the file means rr): how IPVS picks a new connection's endpoint."""
    ipvs_strict_arp: bool = False
    """ipvs.strictARP: kube-proxy sets arp_ignore=1 and arp_announce=2, so the node does not
    answer ARP for the Service addresses on kube-ipvs0 from its other interfaces."""
    ipvs_timeouts: tuple[int, int, int] = (0, 0, 0)
    """ipvs.tcpTimeout, tcpFinTimeout, udpTimeout in seconds (0: the kernel's own is kept)."""
    inferred: bool = False
    """The file had no KubeProxyConfiguration; kubehop assumed the defaults."""


class CNIPlugin(StrEnum):
    """How pods are wired and pod traffic crosses between nodes."""

    HOST_GW = "host-gw"
    """A bridge per node, plain routes between nodes (the generic case)."""
    FLANNEL_VXLAN = "flannel-vxlan"
    """Flannel's VXLAN backend: a bridge per node, `flannel.1` tunnels between nodes."""
    FLANNEL_HOST_GW = "flannel-host-gw"
    """Flannel's host-gw backend: host-gw's routes, with Flannel's iptables rules."""
    CALICO_BGP = "calico-bgp"
    """Calico without encapsulation: proxy-ARP veths, /26 blocks routed by BGP (BIRD)."""
    CALICO_IPIP = "calico-ipip"
    """Calico with IP-in-IP: the blocks of other nodes reached through `tunl0`."""
    CALICO_VXLAN = "calico-vxlan"
    """Calico with VXLAN: the blocks of other nodes reached through `vxlan.calico`."""


class CNIConfig(_Frozen):
    """The CNI, which Kubernetes has no object for (kubehop.dev/v1alpha1 CNIConfig)."""

    plugin: CNIPlugin = CNIPlugin.HOST_GW
    """The data path between nodes."""
    bridge: str = Field(default="cni0", max_length=15)
    """The node bridge's name."""
    mtu: int = Field(default=1500, ge=576, le=9000)
    """The MTU of pod interfaces."""
    hairpin_mode: bool = True
    """hairpinMode of the bridge plugin: a frame may leave by the port it came in."""
    inferred: bool = False
    """The file had no CNIConfig; kubehop assumed the defaults."""


class ExternalClient(_Frozen):
    """A machine outside the cluster (kubehop.dev/v1alpha1 ExternalClient).

    On the node network it is a neighbour of the nodes; anywhere else it
    reaches them through the node network's router.
    """

    name: str
    """Its name."""
    ip: IPv4Address
    """Its address."""


class Cluster(_Frozen):
    """Everything kubehop simulates, validated and cross-referenced."""

    nodes: tuple[Node, ...]
    """Nodes, in file order."""
    pods: tuple[Pod, ...] = ()
    """Pods, in file order."""
    services: tuple[Service, ...] = ()
    """Services, in file order."""
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    """EndpointSlices, from the file and derived from selectors."""
    kube_proxy: KubeProxyConfig = KubeProxyConfig()
    """The kube-proxy configuration (the same on every node)."""
    cni: CNIConfig = CNIConfig()
    """The CNI."""
    clients: tuple[ExternalClient, ...] = ()
    """Machines outside the cluster."""
    service_cidrs: tuple[IPv4Network, ...] = ()
    """The ServiceCIDR objects' spec.cidrs (networking.k8s.io/v1beta1 in 1.31, served only where
    MultiCIDRServiceAllocator is on): kube-proxy in nftables mode drops traffic to the addresses
    of these ranges that no Service has. Empty when the dump has none."""
    node_network: IPv4Network | None = None
    """The network the nodes' InternalIPs are on (inferred from them: the smallest covering /24
    or wider; clients do not count)."""
    warnings: tuple[str, ...] = ()
    """What a real cluster may contain but that has consequences (one line each)."""

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Cluster:
        """A copy with `update` applied, its lookup indexes rebuilt on first use."""
        copy = super().model_copy(update=update, deep=deep)
        # cached_property values live in __dict__ next to the fields; a copy
        # must not answer lookups from the original's indexes.
        for name in [k for k in copy.__dict__ if k not in type(self).model_fields]:
            del copy.__dict__[name]
        return copy

    def build_indexes(self) -> None:
        """Build every lookup index now rather than on first use (`node`, `pod`, `service`,
        `slices_of`, `pods_on`)."""
        for index in _INDEX_FIELDS:
            getattr(self, index)

    def indexes_from(self, other: Cluster, changed: Iterable[str]) -> None:
        """Take `other`'s lookup indexes built from fields this cluster shares with it (all
        but `changed`): a cluster rewired by another CNI or kube-proxy mode keeps its pods'
        and Services' indexes."""
        changed = set(changed)
        for index, fields in _INDEX_FIELDS.items():
            if index in other.__dict__ and changed.isdisjoint(fields):
                self.__dict__[index] = other.__dict__[index]

    # Lookups are indexed once per (immutable) cluster: a cluster at Kubernetes'
    # scale limits has 150,000 pods and 10,000 Services.
    @cached_property
    def _nodes_by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def _pods_by_key(self) -> dict[tuple[str, str], Pod]:
        # (namespace, name), not `Pod.key`: 150,000 f-strings through a property cost
        # the first lookup three times as much.
        return {(p.namespace, p.name): p for p in self.pods}

    @cached_property
    def _services_by_key(self) -> dict[str, Service]:
        return {s.key: s for s in self.services}

    @cached_property
    def _slices_by_service(self) -> dict[str, tuple[EndpointSlice, ...]]:
        index: dict[str, list[EndpointSlice]] = {}
        for slice_ in self.endpoint_slices:
            index.setdefault(f"{slice_.namespace}/{slice_.service}", []).append(slice_)
        return {key: tuple(slices) for key, slices in index.items()}

    def node(self, name: str) -> Node | None:
        """The node called `name`."""
        return self._nodes_by_name.get(name)

    def pod(self, namespace: str, name: str) -> Pod | None:
        """The pod `namespace/name`."""
        return self._pods_by_key.get((namespace, name))

    def service(self, namespace: str, name: str) -> Service | None:
        """The Service `namespace/name`."""
        return self._services_by_key.get(f"{namespace}/{name}")

    def slices_of(self, service: Service) -> tuple[EndpointSlice, ...]:
        """The EndpointSlices of `service`."""
        return self._slices_by_service.get(service.key, ())

    def pods_on(self, node: str) -> tuple[Pod, ...]:
        """The pods scheduled on `node`, in file order."""
        return self._pods_by_node.get(node, ())

    @cached_property
    def _pods_by_node(self) -> dict[str, tuple[Pod, ...]]:
        index: dict[str, list[Pod]] = {}
        for pod in self.pods:
            index.setdefault(pod.node, []).append(pod)
        return {key: tuple(pods) for key, pods in index.items()}


_INDEX_FIELDS: dict[str, tuple[str, ...]] = {
    "_nodes_by_name": ("nodes",),
    "_pods_by_key": ("pods",),
    "_services_by_key": ("services",),
    "_slices_by_service": ("endpoint_slices",),
    "_pods_by_node": ("pods",),
}
"""Each of `Cluster`'s lookup indexes → the fields it is built from."""
