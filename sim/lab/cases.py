"""Which flows `lab verify` sends: the four scenarios, one of each kind of path, random ones."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from ipaddress import IPv4Address

from model.cluster import Cluster, Pod, Service, ServicePort
from model.errors import RequestError
from model.packet import Proto
from sim.proxy.endpoints import categorize, internal_policy_local, port_endpoints
from sim.trace.presets import PRESETS
from sim.trace.request import Request, parse_destination
from sim.trace.tracer import trace


@dataclass(frozen=True)
class Case:
    """One request to send for real and to trace."""

    name: str
    """What it is, for the table."""
    request: Request
    """The request; its pin is the endpoint to wait for (send again until the kernel chooses it)."""


@dataclass(frozen=True)
class Spread:
    """Many connections to one Service port: does the kernel reach every endpoint?"""

    name: str
    """What it is, for the table."""
    source: str
    """The sending pod."""
    destination: str
    """ClusterIP:port[/udp]."""
    endpoints: tuple[str, ...]
    """The endpoints kube-proxy's rules on the source's node choose from (IP:PORT)."""
    sticky: bool
    """ClientIP affinity: every connection must land on one endpoint instead."""

    @property
    def count(self) -> int:
        """Connections to send: enough that missing an endpoint by chance is below 1e-6."""
        k = len(self.endpoints)
        if k < 2:
            return 1
        return min(400, math.ceil(math.log(1e-6 / k) / math.log(1 - 1 / k)))


def _suffix(proto: Proto) -> str:
    return "/udp" if proto is Proto.UDP else ""


def _label(pod: Pod) -> str:
    return pod.name if pod.namespace == "default" else pod.key


def _served_ports(pod: Pod) -> list[tuple[int, Proto]]:
    return [(p.container_port, p.protocol) for c in pod.containers for p in c.ports]


def _runs(cluster: Cluster, case: Case) -> bool:
    try:
        trace(
            cluster,
            Request(
                case.request.source,
                case.request.destination,
                container=case.request.container,
                seed=0,
                pick=case.request.pick,
            ),
        )
    except RequestError:
        return False
    return True


def _service_ports(cluster: Cluster) -> list[tuple[Service, ServicePort]]:
    return [
        (preset, p)
        for preset in cluster.services
        if preset.cluster_ip is not None and not preset.headless
        for p in preset.ports
        if p.protocol in (Proto.TCP, Proto.UDP)
    ]


def _endpoints_from(
    cluster: Cluster, svc: Service, port: ServicePort, node: str
) -> tuple[str, ...]:
    cat = categorize(port_endpoints(cluster, svc, port, node), svc, port)
    eps = cat.local if internal_policy_local(svc) else cat.cluster
    return tuple(str(ep) for ep in eps)


def standard_cases(cluster: Cluster) -> list[Case]:
    """The scenarios that apply to this cluster, then one flow of each kind of path."""
    cases: list[Case] = []
    for preset in PRESETS:
        case = Case(f"scenario {preset.key}: {preset.title}", preset.request)
        if _in_cluster(cluster, preset.request.destination) and _runs(cluster, case):
            cases.append(case)

    pods = [p for p in cluster.pods if not p.host_network]
    servers = [p for p in pods if _served_ports(p)]
    for same in (True, False):
        pair = next(
            (
                (a, b)
                for a in pods
                for b in servers
                if a.key != b.key and (a.node == b.node) == same
            ),
            None,
        )
        if pair is not None:
            a, b = pair
            served, proto = _served_ports(b)[0]
            where = "same node" if same else "other node"
            cases.append(
                Case(f"pod → pod, {where}", Request(a.key, f"{b.ip}:{served}{_suffix(proto)}"))
            )

    if pods:
        src = pods[0]
        for svc, port in _service_ports(cluster):
            dest = f"{svc.cluster_ip}:{port.port}{_suffix(port.protocol)}"
            eps = _endpoints_from(cluster, svc, port, src.node)
            what = "ClusterIP" if eps else "ClusterIP, no endpoints"
            cases.append(
                Case(f"{_label(src)} → {svc.key}:{port.port} {what}", Request(src.key, dest))
            )

    # Hairpin: an endpoint reaching itself through its own Service.
    by_ip = {p.ip: p for p in pods}
    for svc, port in _service_ports(cluster):
        if svc.session_affinity_timeout is not None:
            continue
        everywhere = [
            e for node in sorted({p.node for p in pods}) for e in _endpoints_from(cluster, svc, port, node)
        ]  # fmt: skip
        own = next((e for e in everywhere if _ip_of(e) in by_ip), None)
        if own is not None:
            pod = by_ip[_ip_of(own)]
            dest = f"{svc.cluster_ip}:{port.port}{_suffix(port.protocol)}"
            cases.append(
                Case(
                    f"hairpin: {_label(pod)} → {svc.key} → itself", Request(pod.key, dest, pick=own)
                )
            )
            break

    if cluster.nodes:
        node = cluster.nodes[0]
        for svc, port in _service_ports(cluster):
            if _endpoints_from(cluster, svc, port, node.name):
                dest = f"{svc.cluster_ip}:{port.port}{_suffix(port.protocol)}"
                cases.append(
                    Case(f"{node.name} (host) → {svc.key} ClusterIP", Request(node.name, dest))
                )
                break
        for same in (True, False):
            server = next((p for p in servers if (p.node == node.name) == same), None)
            if server is not None:
                served, proto = _served_ports(server)[0]
                where = "its own" if same else "another node's"
                cases.append(
                    Case(
                        f"{node.name} (host) → {where} pod {_label(server)}",
                        Request(node.name, f"{server.ip}:{served}{_suffix(proto)}"),
                    )
                )

    for client in cluster.clients[:1]:
        for svc, port in _service_ports(cluster):
            if port.node_port is None:
                continue
            for node in cluster.nodes:
                dest = f"{node.internal_ip}:{port.node_port}{_suffix(port.protocol)}"
                policy = svc.external_traffic_policy.value
                cases.append(
                    Case(
                        f"{client.name} → {node.name} NodePort {svc.key} (eTP {policy})",
                        Request(client.name, dest),
                    )
                )
    return [f for f in cases if _runs(cluster, f)]


def _ip_of(endpoint: str) -> IPv4Address:
    return IPv4Address(endpoint.rsplit(":", 1)[0])


def _in_cluster(cluster: Cluster, destination: str) -> bool:
    """The destination is a name, localhost, or an address the cluster has."""
    try:
        ip = parse_destination(destination).ip
    except RequestError:
        return False
    if ip is None or ip.is_loopback:
        return True
    known = {n.internal_ip for n in cluster.nodes} | {p.ip for p in cluster.pods}
    for svc in cluster.services:
        known |= {*svc.external_ips, *svc.load_balancer_ips}
        if svc.cluster_ip is not None:
            known.add(svc.cluster_ip)
    return ip in known


def random_cases(cluster: Cluster, count: int, seed: int) -> list[Case]:
    """`count` flows between random sources and destinations (the same seed, the same flows)."""
    rng = random.Random(seed)
    pods = [p for p in cluster.pods if not p.host_network]
    sources = [p.key for p in pods] + [c.name for c in cluster.clients]
    sources += [n.name for n in cluster.nodes]
    destinations: list[str] = []
    for svc, port in _service_ports(cluster):
        destinations.append(f"{svc.cluster_ip}:{port.port}{_suffix(port.protocol)}")
        for vip in (*svc.external_ips, *svc.load_balancer_ips):
            destinations.append(f"{vip}:{port.port}{_suffix(port.protocol)}")
        if port.node_port is not None:
            for node in cluster.nodes:
                destinations.append(f"{node.internal_ip}:{port.node_port}{_suffix(port.protocol)}")
    for pod in pods:
        for served, proto in _served_ports(pod):
            destinations.append(f"{pod.ip}:{served}{_suffix(proto)}")
    if not sources or not destinations:
        return []
    cases: list[Case] = []
    tries = 0
    while len(cases) < count and tries < count * 10:
        tries += 1
        request = Request(rng.choice(sources), rng.choice(destinations))
        if _runs(cluster, Case("random", request)):
            cases.append(Case(f"random {len(cases) + 1}: {request.describe()}", request))
    return cases


def spreads(cluster: Cluster) -> list[Spread]:
    """Every Service port with two or more endpoints, from its first pod's point of view."""
    pods = [p for p in cluster.pods if not p.host_network]
    if not pods:
        return []
    src = pods[0]
    found: list[Spread] = []
    for svc, port in _service_ports(cluster):
        eps = _endpoints_from(cluster, svc, port, src.node)
        if len(eps) < 2:
            continue
        dest = f"{svc.cluster_ip}:{port.port}{_suffix(port.protocol)}"
        found.append(
            Spread(
                f"{_label(src)} → {svc.key}:{port.port} spread",
                src.key,
                dest,
                eps,
                svc.session_affinity_timeout is not None,
            )
        )
    return found
