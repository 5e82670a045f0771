"""What a user asks to trace: a `Request`, and its source and destination parsed against the cluster.

A `Request` is the one description of a request everywhere: the command line's
arguments, the pick dialog's fields, the article's presets and the lab's cases.
Sources: `[NAMESPACE/]POD` (with a container, as `kubectl exec -c` takes it), a
node's name, an external client's name, or any of their IPs. Destinations:
`localhost:PORT`, `IP:PORT`, `SERVICE[.NAMESPACE[.svc.cluster.local]]:PORT`,
each optionally followed by `/udp` or `/tcp`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from enum import StrEnum
from ipaddress import AddressValueError, IPv4Address, IPv4Network, IPv6Address
from typing import NoReturn

from model.cluster import Cluster, ExternalClient, Pod
from model.errors import RequestError
from model.frozen import frozen
from model.packet import Proto
from sim.cluster.dns import closest, either, resolve
from sim.cluster.network import client_ns_name, node_ns_name, pod_ns_name

MAX_SIZE = 65535 - 28
"""The largest `--size`: an IPv4 packet's 65535 bytes less the IPv4 and UDP headers."""


@frozen
class Request:
    """One request to trace, as the command line, the app, a preset or the lab gives it."""

    source: str
    """`[NAMESPACE/]POD`, a node's or an external client's name, or an IP."""
    destination: str
    """`localhost:PORT`, `IP:PORT`, `SERVICE:PORT`, `NODE_IP:NODEPORT`."""
    container: str | None = None
    """`-c CONTAINER`, for a pod with several."""
    seed: int | None = None
    """The random generator's seed; None lets the tracer choose (and report) one."""
    pick: str | None = None
    """`IP:PORT` of the endpoint to pin instead of the random choice."""
    size: int | None = None
    """`--size`: payload bytes of the traced packet. UDP: the datagram's payload. TCP: the
    data the client writes once connected; the trace is then the first data segment
    after the handshake (at most an MSS of it). None: a SYN, or a datagram without payload."""

    def __post_init__(self) -> None:
        if self.size is not None and not 0 <= self.size <= MAX_SIZE:
            raise RequestError(
                f"--size {self.size}: out of range (0-{MAX_SIZE}, the most a UDP datagram"
                " carries in one IPv4 packet)"
            )

    def describe(self) -> str:
        """`pod1 -c container01 → localhost:8080`."""
        container = f" -c {self.container}" if self.container else ""
        return f"{self.source}{container} → {self.destination}"

    @property
    def command(self) -> str:
        """The same request as a `kubehop trace` command line."""
        parts = ["kubehop", "trace", self.source, self.destination]
        if self.container:
            parts += ["-c", self.container]
        if self.seed is not None:
            parts += ["--seed", str(self.seed)]
        if self.pick:
            parts += ["--pick", self.pick]
        if self.size is not None:
            parts += ["--size", str(self.size)]
        return " ".join(parts)


class SourceKind(StrEnum):
    """What sends the request."""

    POD = "pod"
    NODE = "node"
    CLIENT = "client"


@frozen
class Source:
    """The sender: its netns, address, and who it is."""

    kind: SourceKind
    """Pod, node or external client."""
    netns: str
    """The netns its socket lives in."""
    ip: IPv4Address
    """Its address (a pod's IP, a node's InternalIP, a client's IP)."""
    label: str
    """How to name it in a sentence (`pod1/container01`, `node-a`, `client`)."""
    namespace: str | None = None
    """The pod's namespace, for the DNS search path; None outside the cluster's pods."""
    node: str | None = None
    """The node it runs on."""
    unlisted: ExternalClient | None = None
    """A client the file does not list, made up for an address outside the cluster."""


@frozen
class Destination:
    """Where the request goes, as the user wrote it."""

    host: str
    """`localhost`, an IP, or a DNS name."""
    port: int
    """The destination port."""
    proto: Proto
    """tcp unless `/udp` was given."""
    text: str
    """The destination as typed."""

    @property
    def ip(self) -> IPv4Address | None:
        """The host as an address, when it is one (localhost is 127.0.0.1)."""
        if self.host == "localhost":
            return IPv4Address("127.0.0.1")
        try:
            return IPv4Address(self.host)
        except (AddressValueError, ValueError):
            return None


_DEST = re.compile(r"^(?P<host>[^:/\s]+):(?P<port>[^/\s]+)(?:/(?P<proto>[A-Za-z]+))?$")


def _shown(text: str) -> str:
    """`text` quoted with control characters escaped, so a message stays one line."""
    return repr(text)


def _is_ipv6(text: str) -> bool:
    """`[::1]:80`, `fe80::1:80` or a bare IPv6 address."""
    host = text[1:].partition("]")[0] if text.startswith("[") else text.rpartition(":")[0]
    for candidate in (host, text):
        try:
            IPv6Address(candidate.split("/")[0])
        except ValueError:
            continue
        return True
    return False


def parse_destination(text: str) -> Destination:
    """Parse `HOST:PORT[/PROTO]`; RequestError names what is wrong."""
    if _is_ipv6(text.strip()):
        raise RequestError(
            f"destination {_shown(text)}: IPv6 is not simulated (kubehop is IPv4 only)"
        )
    match = _DEST.match(text.strip())
    if match is None:
        raise RequestError(
            f"destination {_shown(text)}: expected HOST:PORT[/udp], e.g. svc-b:80 or 10.0.0.12:30080"
        )
    port_text = match["port"]
    if not port_text.isdigit():
        raise RequestError(f"destination {_shown(text)}: port {_shown(port_text)} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise RequestError(f"destination {_shown(text)}: port {port} is out of range (1-65535)")
    proto_text = (match["proto"] or "tcp").lower()
    if proto_text not in ("tcp", "udp"):
        raise RequestError(
            f"destination {_shown(text)}: protocol {_shown(match['proto'] or '')} "
            "is not simulated (tcp or udp)"
        )
    return Destination(match["host"], port, Proto(proto_text), text.strip())


def _pod_source(pod: Pod, container: str | None) -> Source:
    if container is not None and container not in {c.name for c in pod.containers}:
        names = ", ".join(c.name for c in pod.containers)
        raise RequestError(f"pod {pod.key} has no container {_shown(container)} (it has: {names})")
    chosen = container or pod.containers[0].name
    label = pod.name if pod.namespace == "default" else pod.key
    return Source(
        SourceKind.POD,
        pod_ns_name(pod),
        pod.ip,
        f"{label}/{chosen}",
        namespace=pod.namespace,
        node=pod.node,
    )


def find_source(cluster: Cluster, text: str, container: str | None = None) -> Source | None:
    """The sender `text` names, or None when it names no pod, node or client (where
    `parse_source` would look for the names nearest it to suggest: seconds among 150,000
    pods). Raises as `parse_source` does for anything else wrong with it."""
    return _source(cluster, text.strip(), container)


def parse_source(cluster: Cluster, text: str, container: str | None = None) -> Source:
    """Find the sender `text` names; RequestError lists what exists when it names nothing."""
    name = text.strip()
    found = _source(cluster, name, container)
    if found is not None:
        return found
    _unknown_source(cluster, name)


def _source(cluster: Cluster, name: str, container: str | None) -> Source | None:
    try:
        addr: IPv4Address | None = IPv4Address(name)
    except (AddressValueError, ValueError):
        addr = None
    if addr is not None:
        pod = next((p for p in cluster.pods if p.ip == addr and not p.host_network), None)
        if pod is not None:
            return _pod_source(pod, container)
        node = next((n for n in cluster.nodes if n.internal_ip == addr), None)
        if node is not None:
            return _node_source(node.name, node.internal_ip, container)
        client = next((c for c in cluster.clients if c.ip == addr), None)
        if client is not None:
            return _client_source(client, container)
        inside = _inside_cluster(cluster, addr)
        if inside is not None:
            raise RequestError(
                f"source {name}: no pod, node or external client has this address ({inside})"
            )
        # Any other address is a machine outside the cluster: the file need not
        # list every client that can reach a NodePort.
        unlisted = ExternalClient(name=str(addr), ip=addr)
        source = _client_source(unlisted, container)
        return replace(source, unlisted=unlisted)
    namespace, _, pod_name = name.rpartition("/")
    pod = cluster.pod(namespace or "default", pod_name)
    if pod is not None:
        return _pod_source(pod, container)
    if not namespace:
        client = next((c for c in cluster.clients if c.name == name), None)
        if client is not None:
            return _client_source(client, container)
        node = cluster.node(name)
        if node is not None:
            return _node_source(node.name, node.internal_ip, container)
    return None


def _unknown_source(cluster: Cluster, name: str) -> NoReturn:
    """Raise what to say of a source `name` that names nothing in `cluster`."""
    namespace, _, pod_name = name.rpartition("/")
    left_out = f"Pod {namespace or 'default'}/{pod_name}: "
    for warning in cluster.warnings:
        # The file has the pod, but the loader left it out (no node, no IP, finished).
        if left_out in warning and warning.endswith("left out"):
            reason = warning.split(left_out, 1)[1]
            raise RequestError(
                f"source {_shown(name)}: the file's pod has no network here: {reason}"
            )
    if not cluster.nodes:
        raise RequestError(
            f"source {_shown(name)}: the cluster has no nodes, so nothing in it can send (dump"
            " them too: kubectl get nodes,pods,services,endpointslices -A -o yaml)"
        )
    close = closest(
        name,
        [
            *(p.name if p.namespace == "default" else p.key for p in cluster.pods),
            *(c.name for c in cluster.clients),
            *(n.name for n in cluster.nodes),
        ],
    ) or closest(name, [p.key for p in cluster.pods])
    if close:
        hint = f"did you mean {either(close)}?"
    else:
        known = [p.name if p.namespace == "default" else p.key for p in cluster.pods[:8]]
        known += [c.name for c in cluster.clients]
        known += [n.name for n in cluster.nodes[: max(0, 8 - len(known))]]
        more = ", …" if len(cluster.pods) + len(cluster.clients) + len(cluster.nodes) > 8 else ""
        hint = f"try: {', '.join(known)}{more}"
    raise RequestError(f"source {_shown(name)}: no such pod, node or external client ({hint})")


_SPECIAL = (
    (IPv4Network("0.0.0.0/8"), "this-network addresses are never a source"),
    (IPv4Network("127.0.0.0/8"), "a loopback address is no machine's on a network"),
    (IPv4Network("224.0.0.0/4"), "a multicast address is never a source"),
    (IPv4Network("240.0.0.0/4"), "a reserved address is never a source"),
)


def _inside_cluster(cluster: Cluster, addr: IPv4Address) -> str | None:
    """Why `addr` cannot be a client outside the cluster, or None when it can."""
    for net, why in _SPECIAL:
        if addr in net:
            return why
    for node in cluster.nodes:
        if node.pod_cidr is not None and addr in node.pod_cidr:
            return f"it is in {node.name}'s podCIDR {node.pod_cidr}"
    cidr = cluster.kube_proxy.cluster_cidr
    if cidr is not None and addr in cidr:
        return f"it is in the cluster's pod network {cidr}"
    for service in cluster.services:
        if addr == service.cluster_ip or addr in (
            *service.external_ips,
            *service.load_balancer_ips,
        ):
            return f"it is an address of Service {service.key}"
    return None


def _client_source(client: ExternalClient, container: str | None) -> Source:
    if container is not None:
        raise RequestError(
            f"source {client.name} is an external client: -c {_shown(container)} applies to"
            " pods only"
        )
    return Source(SourceKind.CLIENT, client_ns_name(client), client.ip, client.name)


def _node_source(node: str, ip: IPv4Address, container: str | None) -> Source:
    if container is not None:
        raise RequestError(f"source {node} is a node: -c {_shown(container)} applies to pods only")
    return Source(SourceKind.NODE, node_ns_name(node), ip, node, node=node)


def completions(cluster: Cluster) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a user may type as source and destination, for completion in the app."""
    sources: list[str] = []
    for pod in cluster.pods:
        label = pod.name if pod.namespace == "default" else pod.key
        sources.append(label)
    sources += [c.name for c in cluster.clients] + [n.name for n in cluster.nodes]
    destinations: list[str] = []
    for pod in cluster.pods:
        for c in pod.containers:
            for port in c.ports:
                destinations.append(f"{pod.ip}:{port.container_port}")
                destinations.append(f"localhost:{port.container_port}")
    for svc in cluster.services:
        short = svc.name if svc.namespace == "default" else f"{svc.name}.{svc.namespace}"
        for sp in svc.ports:
            suffix = "/udp" if sp.protocol is Proto.UDP else ""
            destinations.append(f"{short}:{sp.port}{suffix}")
            if svc.cluster_ip is not None:
                destinations.append(f"{svc.cluster_ip}:{sp.port}{suffix}")
            if sp.node_port is not None:
                for node in cluster.nodes:
                    destinations.append(f"{node.internal_ip}:{sp.node_port}{suffix}")
    return tuple(dict.fromkeys(sources)), tuple(dict.fromkeys(destinations))


def in_namespace(cluster: Cluster, request: Request, namespace: str) -> tuple[Request, str | None]:
    """`request` read as `kubectl -n NAMESPACE` reads names, and a note when that changed it.

    An unqualified pod name is looked up in `namespace`: `pod1` becomes
    `shop/pod1` (a node's or client's name stays one, unless a pod in
    `namespace` has it too). A pod source resolves Service names through its
    own namespace's search path, as on a real cluster, whatever `namespace`
    says. A node or client asks no cluster DNS, so a Service name as its
    destination is looked up in `namespace`, as `kubectl get service -n` would,
    and replaced by the Service's ClusterIP; the note says so.
    """
    source = request.source.strip()
    if namespace != "default" and "/" not in source and not _is_address(source):
        named = any(c.name == source for c in cluster.clients) or cluster.node(source) is not None
        if cluster.pod(namespace, source) is not None or not named:
            source = f"{namespace}/{source}"
            request = replace(request, source=source)
    src = parse_source(cluster, source, request.container)
    if src.kind is SourceKind.POD:
        return request, None
    dest = parse_destination(request.destination)
    if dest.ip is not None:
        return request, None
    resolution = resolve(cluster, dest.host, namespace)
    addr = resolution.addresses[0]
    udp = "/udp" if dest.proto is Proto.UDP else ""
    what = (
        f"the first ready pod of headless Service {resolution.service.key}"
        if resolution.headless
        else f"the ClusterIP of Service {resolution.service.key}"
    )
    note = (
        f"{src.label} is not a pod and asks no cluster DNS: {dest.host} (namespace {namespace})"
        f" is {what}, so the trace goes to {addr}:{dest.port}{udp}"
    )
    return replace(request, destination=f"{addr}:{dest.port}{udp}"), note


def _is_address(text: str) -> bool:
    try:
        IPv4Address(text)
    except (AddressValueError, ValueError):
        return False
    return True
