"""EndpointSlices as a dump has them: the IPv4 ones of a Service, with their endpoints' states.

Deriving slices from selectors is the EndpointSlice controller's job and lives
in `sim.cluster.endpointslices`; this module only reads the given ones.
"""

from __future__ import annotations

from typing import Any

from model.cluster import Endpoint, EndpointPort, EndpointSlice
from sim.readers.cluster.fields import FieldChecker
from sim.readers.cluster.messages import At
from sim.readers.cluster.quoting import quoted, yaml_type

__all__ = ["endpoint_slice"]


def endpoint_slice(
    check: FieldChecker, at: At, obj: dict[str, Any]
) -> tuple[At, EndpointSlice] | None:
    """The EndpointSlice `obj`; None (with a warning) if kube-proxy's IPv4 rules never use it."""
    meta, name, namespace = check.metadata(at, obj, namespaced=True)
    address_type = obj.get("addressType")
    if address_type != "IPv4":
        if address_type in ("IPv6", "FQDN"):
            check.warn(
                "EndpointSlices skipped",
                at,
                ("addressType",),
                f"{address_type} slice skipped (kube-proxy's IPv4 rules never use it)",
            )
            return None
        check.fail(at, ("addressType",), f"{quoted(address_type)} is not IPv4, IPv6 or FQDN")
    labels = check.mapping(at, meta.get("labels"), ("metadata", "labels"))
    service = labels.get("kubernetes.io/service-name")
    if service is None:
        check.warn(
            "EndpointSlices skipped",
            at,
            ("metadata", "labels"),
            "no kubernetes.io/service-name label, so kube-proxy ignores it; skipped",
        )
        return None
    service = check.string(at, service, ("metadata", "labels", "kubernetes.io/service-name"))
    ports: list[EndpointPort] = []
    for index, raw in enumerate(check.sequence(at, obj.get("ports"), ("ports",))):
        raw = check.mapping(at, raw, ("ports", index))
        port_name = check.string(at, raw.get("name") or "", ("ports", index, "name"))
        if port_name:
            check.dns_label(at, port_name, ("ports", index, "name"))
        ports.append(
            EndpointPort(
                name=port_name,
                port=check.port(at, raw.get("port"), ("ports", index, "port")),
                protocol=check.protocol(at, raw.get("protocol"), ("ports", index, "protocol")),
            )
        )
    endpoints: list[Endpoint] = []
    raw_endpoints = check.sequence(at, obj.get("endpoints"), ("endpoints",))
    if len(raw_endpoints) > 1000:
        check.fail(
            at, ("endpoints",), f"{len(raw_endpoints)} endpoints; a slice holds at most 1000"
        )
    for index, raw in enumerate(raw_endpoints):
        endpoints.append(_endpoint(check, at, raw, index))
    return at, EndpointSlice.checked(
        name=name,
        namespace=namespace,
        service=service,
        ports=tuple(ports),
        endpoints=tuple(endpoints),
        derived=False,
        managed_by=None,
    )


def _endpoint(check: FieldChecker, at: At, raw: object, index: int) -> Endpoint:
    if not isinstance(raw, dict):
        check.fail(at, ("endpoints", index), f"must be a mapping, not {yaml_type(raw)}")
    addresses = raw.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        check.fail(at, ("endpoints", index, "addresses"), "required: at least one address")
    ip = check.ipv4(at, addresses[0], ("endpoints", index, "addresses", 0))
    conditions = raw.get("conditions") or {}
    if not isinstance(conditions, dict):
        check.fail(
            at,
            ("endpoints", index, "conditions"),
            f"must be a mapping, not {yaml_type(conditions)}",
        )
    # The API says an unknown (null) condition counts as ready, serving
    # follows ready, and terminating is false.
    ready = conditions.get("ready")
    ready = True if ready is None else ready
    serving = conditions.get("serving")
    serving = ready if serving is None else serving
    terminating = conditions.get("terminating")
    terminating = False if terminating is None else terminating
    if not (type(ready) is bool and type(serving) is bool and type(terminating) is bool):
        for key in ("ready", "serving", "terminating"):
            check.boolean(at, conditions.get(key), ("endpoints", index, "conditions", key), False)
    node = raw.get("nodeName")
    if node is not None:
        if type(node) is not str:  # a call skipped for the usual value, which it returns
            node = check.string(at, node, ("endpoints", index, "nodeName"))
        node = check.shared(node)
    pod = None
    ref = raw.get("targetRef")
    if isinstance(ref, dict) and ref.get("kind") == "Pod":
        pod = ref.get("name")
        if type(pod) is not str:
            pod = check.string(at, pod, ("endpoints", index, "targetRef", "name"))
    return Endpoint.checked(
        ip=ip, ready=ready, serving=serving, terminating=terminating, node=node, pod=pod
    )
