"""v1 Endpoints, read as EndpointSlices the way kube-controller-manager mirrors them.

`kubectl cluster-info dump` and many tools write a Service's `Endpoints`, not
its EndpointSlices, and kube-proxy reads only slices. For a Service the dump
has no EndpointSlice of, its Endpoints are turned into the slices the
EndpointSlice mirroring controller writes (pkg/controller/endpointslicemirroring):
one slice per set of ports, `addresses` ready and `notReadyAddresses` not, at
most 1000 addresses a subset, labelled `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`,
named after the Endpoints with a suffix (stable here, random in Kubernetes).

The controller mirrors only Services without a selector, and skips Endpoints
labelled `endpointslice.kubernetes.io/skip-mirror` (the API server's own
`default/kubernetes`, and every Endpoints the Endpoints controller writes):
their slices are written by someone else from the same addresses. A dump
that lacks those slices still shows the addresses in the Endpoints, so kubehop
reads every Endpoints of a Service without slices, except those the
Endpoints controller truncated at 1000 addresses (then the slices are derived
from the pods, as the EndpointSlice controller does).
"""

from __future__ import annotations

import hashlib
from typing import Any

from model.cluster import Endpoint, EndpointPort, EndpointSlice, Service
from sim.readers.cluster.fields import FieldChecker
from sim.readers.cluster.messages import At
from sim.readers.cluster.quoting import yaml_type

__all__ = [
    "MAX_ENDPOINTS_PER_SUBSET",
    "MIRRORING_CONTROLLER",
    "endpoints_key",
    "mirrored_slices",
]

MIRRORING_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
"""The managed-by label of the slices the mirroring controller writes."""

MAX_ENDPOINTS_PER_SUBSET = 1000
"""kube-controller-manager's --mirroring-max-endpoints-per-subset default."""

# apimachinery's alphabet for generateName suffixes (no vowels, no 0, 1, 3).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"


def endpoints_key(obj: dict[str, Any]) -> tuple[object, object]:
    """(namespace, name) of an Endpoints object as written, without checking them."""
    meta = obj.get("metadata")
    if type(meta) is not dict:
        return None, None
    return meta.get("namespace") or "default", meta.get("name")


def mirrored_slices(
    check: FieldChecker, at: At, obj: dict[str, Any], service: Service
) -> tuple[EndpointSlice, ...] | None:
    """The slices mirrored from the Endpoints `obj` of `service`; None for Endpoints the
    Endpoints controller truncated, of a Service whose pods give the slices instead."""
    meta, name, namespace = check.metadata(at, obj, namespaced=True)
    annotations = check.mapping(at, meta.get("annotations"), ("metadata", "annotations"))
    if service.selector is not None and annotations.get(_OVER_CAPACITY) == "truncated":
        return None
    # One slice per set of ports, in the order the subsets first give them.
    ports_by_key: dict[tuple[tuple[str, int, str], ...], tuple[EndpointPort, ...]] = {}
    endpoints_by_key: dict[tuple[tuple[str, int, str], ...], dict[Endpoint, None]] = {}
    skipped = 0
    for index, raw in enumerate(check.sequence(at, obj.get("subsets"), ("subsets",))):
        field = ("subsets", index)
        subset = check.mapping(at, raw, field)
        ports = _ports(check, at, subset, field)
        key = tuple(sorted((p.name, p.port, p.protocol.value) for p in ports))
        ports_by_key.setdefault(key, ports)
        endpoints = endpoints_by_key.setdefault(key, {})
        added = 0
        for list_name, ready in (("addresses", True), ("notReadyAddresses", False)):
            for number, address in enumerate(
                check.sequence(at, subset.get(list_name), (*field, list_name))
            ):
                if added >= MAX_ENDPOINTS_PER_SUBSET:
                    skipped += 1
                    continue
                endpoint = _endpoint(check, at, address, (*field, list_name, number), ready)
                if endpoint is not None:
                    endpoints[endpoint] = None
                    added += 1
    if skipped:
        check.warn(
            "Endpoints with too many addresses to mirror",
            at,
            ("subsets",),
            f"{skipped} addresses not mirrored: the mirroring controller takes at most"
            f" {MAX_ENDPOINTS_PER_SUBSET} a subset",
        )
    return tuple(
        EndpointSlice(
            name=_slice_name(namespace, name, key),
            namespace=namespace,
            service=name,
            ports=ports_by_key[key],
            endpoints=tuple(endpoints)[:MAX_ENDPOINTS_PER_SUBSET],
            managed_by=MIRRORING_CONTROLLER,
        )
        for key, endpoints in endpoints_by_key.items()
        if endpoints
    )


def _ports(
    check: FieldChecker, at: At, subset: dict[str, Any], field: tuple[str | int, ...]
) -> tuple[EndpointPort, ...]:
    raw_ports = check.sequence(at, subset.get("ports"), (*field, "ports"))
    ports: list[EndpointPort] = []
    for index, raw in enumerate(raw_ports):
        where = (*field, "ports", index)
        raw = check.mapping(at, raw, where)
        port_name = raw.get("name")
        port_name = "" if port_name is None else check.string(at, port_name, (*where, "name"))
        if port_name:
            check.dns_label(at, port_name, (*where, "name"))
        ports.append(
            EndpointPort(
                name=port_name,
                port=check.port(at, raw.get("port"), (*where, "port")),
                protocol=check.protocol(at, raw.get("protocol"), (*where, "protocol")),
            )
        )
    return tuple(ports)


def _endpoint(
    check: FieldChecker, at: At, raw: object, field: tuple[str | int, ...], ready: bool
) -> Endpoint | None:
    """One address as the controller mirrors it; None (with a warning) for an IPv6 one."""
    if not isinstance(raw, dict):
        check.fail(at, field, f"must be a mapping, not {yaml_type(raw)}")
    ip = check.ipv4_dual(at, raw.get("ip"), (*field, "ip"))
    if ip is None:
        return None
    node = raw.get("nodeName")
    if node is not None:
        node = check.string(at, node, (*field, "nodeName"))
    pod = None
    ref = raw.get("targetRef")
    if isinstance(ref, dict) and ref.get("kind") == "Pod":
        pod = check.string(at, ref.get("name"), (*field, "targetRef", "name"))
    # The controller sets only `ready`; `serving` follows it and `terminating`
    # is unset (false), as the EndpointSlice API reads absent conditions.
    return Endpoint.checked(
        ip=ip, ready=ready, serving=ready, terminating=False, node=node, pod=pod
    )


def _slice_name(namespace: str, name: str, key: tuple[tuple[str, int, str], ...]) -> str:
    """`<endpoints name>-<5 characters>`, the suffix stable for the same Endpoints and ports."""
    digest = hashlib.sha256(f"{namespace}/{name}/{key}".encode()).digest()
    return f"{name}-" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:5])
