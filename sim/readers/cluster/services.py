"""Services: their type, ClusterIP, ports, selector, affinity, policies and external addresses.

`service` is long: it reads `spec` field by field in one pass, and the order
of its checks decides which of several mistakes is reported, so it stays whole.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from model.cluster import Service, ServicePort, ServiceType, TrafficPolicy
from model.packet import Proto
from sim.readers.cluster.documents import Key
from sim.readers.cluster.fields import FieldChecker
from sim.readers.cluster.messages import At
from sim.readers.cluster.names import DNS1123_SUBDOMAIN
from sim.readers.cluster.quoting import quoted

__all__ = ["NODE_PORT_RANGE", "service"]

NODE_PORT_RANGE = (30000, 32767)
"""The API server's default --service-node-port-range.

Only a default: the range is the API server's to configure, so a dump may hold
any nodePort from 1 to 65535, and kubehop takes them all.
"""

_SERVICE_TYPES = {t.value for t in ServiceType}


def service(check: FieldChecker, at: At, obj: dict[str, Any]) -> tuple[At, Service]:
    """The Service `obj`."""
    _, name, namespace = check.metadata(at, obj, namespaced=True, dns1035=True)
    spec = check.mapping(at, obj.get("spec"), ("spec",))
    status = check.mapping(at, obj.get("status"), ("status",))
    raw_type = spec.get("type") or "ClusterIP"
    if isinstance(raw_type, str) and raw_type in _SERVICE_TYPES:
        kind = ServiceType(raw_type)
    else:
        check.fail(
            at,
            ("spec", "type"),
            f"{quoted(raw_type)} is not a Service type (ClusterIP, NodePort, LoadBalancer or"
            " ExternalName)",
        )
    cluster_ip = _cluster_ip(check, at, spec, kind)
    external = kind in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER)
    ports: list[ServicePort] = []
    raw_ports = check.sequence(at, spec.get("ports"), ("spec", "ports"))
    if not raw_ports and kind is not ServiceType.EXTERNAL_NAME and cluster_ip is not None:
        check.fail(at, ("spec", "ports"), "required: a Service has at least one port")
    seen_names: set[str] = set()
    seen_ports: set[tuple[int, Proto]] = set()
    for index, raw in enumerate(raw_ports):
        field: tuple[Key, ...] = ("spec", "ports", index)
        raw = check.mapping(at, raw, field)
        raw_name = raw.get("name")
        if raw_name is None:
            if len(raw_ports) > 1:
                check.fail(at, (*field, "name"), "required when a Service has several ports")
            raw_name = ""
        port_name = check.string(at, raw_name, (*field, "name"))
        if port_name:
            check.dns_label(at, port_name, (*field, "name"))
        if port_name in seen_names:
            check.fail(at, (*field, "name"), f"duplicate port name {quoted(port_name)}")
        seen_names.add(port_name)
        number = check.port(at, raw.get("port"), (*field, "port"))
        proto = check.protocol(at, raw.get("protocol"), (*field, "protocol"))
        if (number, proto) in seen_ports:
            check.fail(at, (*field, "port"), f"duplicate port {number}/{proto.value.upper()}")
        seen_ports.add((number, proto))
        target: int | str = number
        raw_target = raw.get("targetPort")
        if isinstance(raw_target, str):
            if raw_target.isdigit():
                check.fail(
                    at,
                    (*field, "targetPort"),
                    f"{quoted(raw_target)} is quoted: a port number must not be, and a port"
                    " name must contain a letter",
                )
            check.port_name(at, raw_target, (*field, "targetPort"))
            target = raw_target
        elif raw_target is not None:
            target = check.port(at, raw_target, (*field, "targetPort"))
        node_port = raw.get("nodePort")
        if node_port is not None:
            if not external:
                check.fail(
                    at,
                    (*field, "nodePort"),
                    f"may not be set on a {kind.value} Service (only NodePort and LoadBalancer)",
                )
            node_port = check.integer(
                at, node_port, (*field, "nodePort"), 1, 65535, "a port number"
            )
        elif external and not (
            kind is ServiceType.LOAD_BALANCER and spec.get("allocateLoadBalancerNodePorts") is False
        ):
            # The API server allocates one on create, so a dump has it; a file
            # written by hand (or by kube-proxy's tests) may not. kube-proxy
            # makes no NodePort rule for a port without one.
            check.warn(
                "Service ports without a nodePort",
                at,
                (*field, "nodePort"),
                f"not set on a {kind.value} Service, so kube-proxy makes no NodePort rule for"
                " this port (kubehop does not allocate one)",
            )
        ports.append(
            ServicePort.checked(
                name=port_name,
                protocol=proto,
                port=number,
                target_port=target,
                node_port=node_port,
            )
        )
    selector = None
    raw_selector = spec.get("selector")
    if raw_selector:
        selector = check.labels(at, raw_selector, ("spec", "selector"))
    timeout = None
    affinity = spec.get("sessionAffinity", "None")
    if affinity == "ClientIP":
        config = check.mapping(at, spec.get("sessionAffinityConfig"), ("spec",))
        client_ip = check.mapping(at, config.get("clientIP"), ("spec", "sessionAffinityConfig"))
        raw_timeout = client_ip.get("timeoutSeconds")
        timeout = (
            10800
            if raw_timeout is None
            else check.integer(
                at,
                raw_timeout,
                ("spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"),
                1,
                86400,
                "a timeout Kubernetes accepts",
            )
        )
    elif affinity not in ("None", None):
        check.fail(
            at,
            ("spec", "sessionAffinity"),
            f"{quoted(affinity)} is not a session affinity (None or ClientIP)",
        )
    external_policy = TrafficPolicy.CLUSTER
    if external:
        external_policy = _policy(check, at, spec, "externalTrafficPolicy")
    health = spec.get("healthCheckNodePort")
    if health is not None:
        health = check.port(at, health, ("spec", "healthCheckNodePort"))
    externals = [
        check.ipv4_dual(at, raw, ("spec", "externalIPs", index))
        for index, raw in enumerate(
            check.sequence(at, spec.get("externalIPs"), ("spec", "externalIPs"))
        )
    ]
    balancers: list[IPv4Address | None] = []
    load_balancer = check.mapping(at, status.get("loadBalancer"), ("status", "loadBalancer"))
    for index, ingress in enumerate(
        check.sequence(at, load_balancer.get("ingress"), ("status", "loadBalancer", "ingress"))
    ):
        ingress = check.mapping(at, ingress, ("status", "loadBalancer", "ingress", index))
        if ingress.get("ip") is not None:  # a hostname-only ingress has no IP to route
            balancers.append(
                check.ipv4_dual(
                    at, ingress["ip"], ("status", "loadBalancer", "ingress", index, "ip")
                )
            )
    ranges = [
        check.network(at, raw, ("spec", "loadBalancerSourceRanges", index), dual=True)
        for index, raw in enumerate(
            check.sequence(
                at, spec.get("loadBalancerSourceRanges"), ("spec", "loadBalancerSourceRanges")
            )
        )
    ]
    return at, Service.checked(
        name=name,
        namespace=namespace,
        type=kind,
        cluster_ip=cluster_ip,
        ports=tuple(ports),
        selector=selector,
        session_affinity_timeout=timeout,
        external_traffic_policy=external_policy,
        internal_traffic_policy=_policy(check, at, spec, "internalTrafficPolicy"),
        external_ips=tuple(ip for ip in externals if ip is not None),
        load_balancer_ips=tuple(ip for ip in balancers if ip is not None),
        load_balancer_source_ranges=tuple(r for r in ranges if r is not None),
        health_check_node_port=health,
        publish_not_ready_addresses=check.boolean(
            at,
            spec.get("publishNotReadyAddresses"),
            ("spec", "publishNotReadyAddresses"),
            False,
        ),
        external_name=_external_name(check, at, spec) if kind is ServiceType.EXTERNAL_NAME else "",
        endpoints_known=True,
    )


def _external_name(check: FieldChecker, at: At, spec: dict[str, Any]) -> str:
    """spec.externalName: a DNS name (Kubernetes takes it lowercase, trailing dot allowed)."""
    name = check.string(at, spec.get("externalName"), ("spec", "externalName"))
    bare = name.removesuffix(".")
    if len(bare) > 253 or not DNS1123_SUBDOMAIN.fullmatch(bare):
        check.fail(
            at,
            ("spec", "externalName"),
            f"{quoted(name)} is not a DNS name (lowercase letters, digits, '-' and '.')",
        )
    return name


def _policy(check: FieldChecker, at: At, spec: dict[str, Any], key: str) -> TrafficPolicy:
    raw = spec.get(key) or "Cluster"
    if raw in ("Cluster", "Local"):
        return TrafficPolicy(raw)
    check.fail(at, ("spec", key), f"{quoted(raw)} is not a traffic policy (Cluster or Local)")


def _cluster_ip(
    check: FieldChecker, at: At, spec: dict[str, Any], kind: ServiceType
) -> IPv4Address | None:
    if kind is ServiceType.EXTERNAL_NAME:
        return None
    raw = spec.get("clusterIP")
    ips = spec.get("clusterIPs")
    if raw == "None" or (raw is None and ips == ["None"]):
        if kind is not ServiceType.CLUSTER_IP:
            check.fail(
                at, ("spec", "clusterIP"), f"a {kind.value} Service cannot be headless (None)"
            )
        return None
    if ips:
        listed = check.sequence(at, ips, ("spec", "clusterIPs"))
        if raw not in (None, "") and listed and listed[0] != raw:
            check.fail(
                at,
                ("spec", "clusterIPs", 0),
                f"{quoted(listed[0])} must be spec.clusterIP's address {quoted(raw)}"
                " (Kubernetes requires clusterIPs[0] == clusterIP)",
            )
        found = None
        for index, ip in enumerate(listed):
            address = check.ipv4_dual(at, ip, ("spec", "clusterIPs", index))
            if address is not None and found is None:
                found = address
        if found is None:
            check.fail(at, ("spec", "clusterIPs"), "no IPv4 address; kubehop simulates IPv4 only")
        return found
    if raw is None or raw == "":
        check.fail(
            at,
            ("spec", "clusterIP"),
            "required (kubectl's output always has one; kubehop does not allocate ClusterIPs)",
        )
    return check.ipv4(at, raw, ("spec", "clusterIP"))
