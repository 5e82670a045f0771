"""Pods and their containers' ports, as the network sees them.

A pod with no network (unscheduled, finished, no IP yet) is left out with a
warning. `PodReader` remembers containers and owners already checked: a
150,000-pod cluster is mostly replicas of a few templates.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from model.cluster import Container, ContainerPort, Node, OwnerRef, Pod
from sim.readers.cluster.documents import Key
from sim.readers.cluster.fields import FieldChecker
from sim.readers.cluster.messages import At
from sim.readers.cluster.quoting import quoted

__all__ = ["PodReader"]


class PodReader:
    """Reads the pods of one cluster, sharing what replicas have in common."""

    def __init__(self, check: FieldChecker) -> None:
        self.check = check
        self._container_keys: dict[tuple[object, ...], tuple[Container, ...]] = {}
        self._owners: dict[tuple[str, str], OwnerRef] = {}
        self._last_containers: tuple[object, tuple[Container, ...]] = (object(), ())

    def pod(self, at: At, obj: dict[str, Any], nodes: dict[str, Node]) -> tuple[At, Pod] | None:
        """The Pod `obj` on one of `nodes`; None (with a warning) if it has no network."""
        check = self.check
        meta, name, namespace = check.metadata(at, obj, namespaced=True)
        # Each `type(…) is` below skips a check's call for the usual value,
        # which that check would return as it is.
        spec = obj.get("spec")
        if type(spec) is not dict:
            spec = check.mapping(at, spec, ("spec",))
        status = obj.get("status")
        if type(status) is not dict:
            status = check.mapping(at, status, ("status",))
        node_name = spec.get("nodeName")
        if node_name is None:
            check.warn(
                "pods left out",
                at,
                ("spec", "nodeName"),
                "not scheduled (no nodeName), so it has no network; left out",
            )
            return None
        if type(node_name) is not str:
            node_name = check.string(at, node_name, ("spec", "nodeName"))
        node = nodes.get(node_name)
        if node is None:
            # The API server stores any nodeName; a partial dump, or a node left
            # out above, leaves the pod nowhere to put on the network.
            check.warn(
                "pods left out",
                at,
                ("spec", "nodeName"),
                f"its node {quoted(node_name)} is not among the file's nodes, so it has no"
                " network here; left out",
            )
            return None
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            check.warn(
                "pods left out",
                at,
                ("status", "phase"),
                f"{phase}: its sandbox and IP are released; left out",
            )
            return None
        host_network = spec.get("hostNetwork", False)
        if type(host_network) is not bool:
            host_network = check.boolean(at, host_network, ("spec", "hostNetwork"), False)
        ip = node.internal_ip
        if not host_network:
            found = self._pod_ip(at, status)
            if found is None:
                check.warn(
                    "pods left out",
                    at,
                    ("status", "podIP"),
                    "has no IP yet (the CNI has not set up its sandbox); left out",
                )
                return None
            ip = found
        ready = True
        conditions = status.get("conditions")
        if conditions:
            # Without conditions (a hand-written pod) kubehop takes the pod as
            # ready; kubectl's output always has them.
            ready = False
            if type(conditions) is not list:
                conditions = check.sequence(at, conditions, ("status", "conditions"))
            for condition in conditions:
                if isinstance(condition, dict) and condition.get("type") == "Ready":
                    ready = condition.get("status") in ("True", True)
                    break
        owner = None
        refs = meta.get("ownerReferences")
        if refs:
            for index, ref in enumerate(check.sequence(at, refs, ("metadata", "ownerReferences"))):
                if isinstance(ref, dict) and ref.get("controller") is True:
                    field = ("metadata", "ownerReferences", index)
                    kind = check.string(at, ref.get("kind"), (*field, "kind"))
                    owner_name = check.string(at, ref.get("name"), (*field, "name"))
                    owner = self._owners.get((kind, owner_name))
                    if owner is None:
                        owner = self._owners[kind, owner_name] = OwnerRef(
                            kind=kind, name=owner_name
                        )
                    break
        return at, Pod.checked(
            name=name,
            namespace=namespace,
            labels=check.labels(at, meta.get("labels"), ("metadata", "labels")),
            node=node.name,  # the same name, one string for all its pods
            ip=ip,
            host_network=host_network,
            containers=self._containers(at, spec.get("containers")),
            ready=ready,
            terminating=meta.get("deletionTimestamp") is not None,
            owner=owner,
        )

    def _pod_ip(self, at: At, status: dict[str, Any]) -> IPv4Address | None:
        check = self.check
        raw = status.get("podIP")
        pod_ips = status.get("podIPs")
        # The usual single-stack pod: podIPs is [{ip: podIP}], an IP seen before
        # (pods are checked before the EndpointSlices that repeat their IPs).
        if (
            type(pod_ips) is list
            and len(pod_ips) == 1
            and type(pod_ips[0]) is dict
            and type(raw) is str
            and pod_ips[0].get("ip") == raw
        ):
            return check.ipv4(at, raw, ("status", "podIPs", 0, "ip"))
        if pod_ips:
            ip = None
            for index, entry in enumerate(check.sequence(at, pod_ips, ("status", "podIPs"))):
                field = ("status", "podIPs", index)
                entry = check.mapping(at, entry, field)
                found = check.ipv4_dual(at, entry.get("ip"), (*field, "ip"))
                # The API server keeps podIP equal to podIPs[0].
                if index == 0 and raw is not None and entry.get("ip") != raw:
                    check.fail(
                        at,
                        ("status", "podIP"),
                        f"{quoted(raw)} differs from status.podIPs[0].ip {quoted(entry.get('ip'))}",
                    )
                if found is not None and ip is None:
                    ip = found
            if ip is None:
                check.fail(at, ("status", "podIPs"), "no IPv4 address; kubehop simulates IPv4 only")
            return ip
        if raw is None:
            return None
        return check.ipv4(at, raw, ("status", "podIP"))

    def _containers(self, at: At, raw: object) -> tuple[Container, ...]:
        # Replicas share a pod template, so identical containers are checked
        # once; replicas come one after another, so first try the last pod's.
        if raw == self._last_containers[0]:
            return self._last_containers[1]
        check = self.check
        field: tuple[Key, ...] = ("spec", "containers")
        items = check.sequence(at, raw, field)
        if not items:
            check.fail(at, field, "required: a pod has at least one container")
        key = _containers_key(items)
        cached = self._container_keys.get(key) if key is not None else None
        if cached is not None:
            self._last_containers = (raw, cached)
            return cached
        containers: list[Container] = []
        names: set[str] = set()
        port_names: set[str] = set()
        for index, item in enumerate(items):
            item = check.mapping(at, item, (*field, index))
            name = check.string(at, item.get("name"), (*field, index, "name"))
            check.dns_label(at, name, (*field, index, "name"))
            if name in names:
                check.fail(at, (*field, index, "name"), f"duplicate container name {quoted(name)}")
            names.add(name)
            ports: list[ContainerPort] = []
            for number, port in enumerate(
                check.sequence(at, item.get("ports"), (*field, index, "ports"))
            ):
                where = (*field, index, "ports", number)
                port = check.mapping(at, port, where)
                port_name = port.get("name")
                if port_name is not None:
                    port_name = check.string(at, port_name, (*where, "name"))
                    check.port_name(at, port_name, (*where, "name"))
                    if port_name in port_names:
                        check.fail(at, (*where, "name"), f"duplicate port name {quoted(port_name)}")
                    port_names.add(port_name)
                ports.append(
                    ContainerPort(
                        name=port_name,
                        container_port=check.port(
                            at, port.get("containerPort"), (*where, "containerPort")
                        ),
                        protocol=check.protocol(at, port.get("protocol"), (*where, "protocol")),
                    )
                )
            containers.append(Container(name=name, ports=tuple(ports)))
        result = tuple(containers)
        if key is not None:
            self._container_keys[key] = result
        self._last_containers = (raw, result)
        return result


def _containers_key(items: list[Any]) -> tuple[object, ...] | None:
    """What kubehop reads of `spec.containers`, hashable; None if it is not well formed."""
    key: list[object] = []
    for container in items:
        if not isinstance(container, dict):
            return None
        key.append(container.get("name"))
        ports = container.get("ports")
        if ports is None:
            key.append(None)
            continue
        if not isinstance(ports, list):
            return None
        for port in ports:
            if not isinstance(port, dict):
                return None
            key.append((port.get("name"), port.get("containerPort"), port.get("protocol")))
        key.append(len(ports))
    try:
        hash(tuple(key))
    except TypeError:  # a list or mapping where a name or number belongs
        return None
    return tuple(key)
