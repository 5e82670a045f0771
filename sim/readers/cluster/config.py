"""The cluster's configuration objects: kube-proxy's KubeProxyConfiguration and kubehop's CNIConfig.

Either may be missing (a dump of a real cluster rarely has them); then the
config is marked `inferred`, and the caller fills in what it can.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from model.cluster import CNIConfig, CNIPlugin, KubeProxyConfig, ProxyMode
from sim.readers.cluster.documents import Key
from sim.readers.cluster.fields import FieldChecker
from sim.readers.cluster.messages import At
from sim.readers.cluster.names import IFNAME_RULE, is_ifname
from sim.readers.cluster.quoting import quoted

__all__ = ["cni", "kube_proxy"]


def kube_proxy(check: FieldChecker, found: list[tuple[At, dict[str, Any]]]) -> KubeProxyConfig:
    """The one KubeProxyConfiguration in `found`, or an inferred one if there is none."""
    if not found:
        return KubeProxyConfig(inferred=True)
    if len(found) > 1:
        at = found[1][0]
        check.fail(
            at,
            (),
            "a second KubeProxyConfiguration (kube-proxy runs with one; the first is at"
            f" {check.report.line_ref(found[0][0], at, name=False)})",
        )
    at, obj = found[0]
    mode = obj.get("mode") or "iptables"
    if mode == "ipvs":
        check.fail(
            at,
            ("mode",),
            "kube-proxy mode 'ipvs' is not simulated yet (kubehop simulates iptables and"
            " nftables modes)",
        )
    if mode not in ("iptables", "nftables"):
        check.fail(
            at, ("mode",), f"{quoted(mode)} is not a kube-proxy mode (iptables, ipvs or nftables)"
        )
    # Each mode reads its own section (`iptables:` or `nftables:`) for the mark.
    section = "nftables" if mode == "nftables" else "iptables"
    cluster_cidr = None
    raw_cidr = obj.get("clusterCIDR")
    if raw_cidr:
        text = check.string(at, raw_cidr, ("clusterCIDR",))
        # Dual-stack clusters list one CIDR per family, comma-separated.
        for part in text.split(","):
            network = check.network(at, part, ("clusterCIDR",), dual=True)
            if network is not None and cluster_cidr is None:
                cluster_cidr = network
    else:
        check.warn(
            "configuration warnings",
            at,
            ("clusterCIDR",),
            "not set: kube-proxy cannot tell pod traffic from outside traffic, so it does"
            " not masquerade outside traffic to ClusterIPs",
        )
    settings = check.mapping(at, obj.get(section), (section,))
    masquerade_all = obj.get("masqueradeAll")
    masquerade_field: tuple[Key, ...] = ("masqueradeAll",)
    if masquerade_all is None:
        masquerade_all = settings.get("masqueradeAll")
        masquerade_field = (section, "masqueradeAll")
    bit = settings.get("masqueradeBit")
    addresses: list[IPv4Network] = []
    for index, raw in enumerate(
        check.sequence(at, obj.get("nodePortAddresses"), ("nodePortAddresses",))
    ):
        field = ("nodePortAddresses", index)
        if raw == "primary" and mode == "nftables":
            continue  # nftables mode's default: empty says the same
        if raw == "primary":
            check.fail(
                at,
                field,
                "'primary' is not simulated yet in iptables mode; list the nodes' network as a"
                " CIDR",
            )
        network = check.network(at, raw, field, dual=True)
        if network is not None:
            addresses.append(network)
    return KubeProxyConfig(
        mode=ProxyMode(mode),
        cluster_cidr=cluster_cidr,
        masquerade_all=check.boolean(at, masquerade_all, masquerade_field, False),
        masquerade_bit=14
        if bit is None
        else check.integer(at, bit, (section, "masqueradeBit"), 0, 31, "a bit number"),
        node_port_addresses=tuple(addresses),
    )


def cni(check: FieldChecker, found: list[tuple[At, dict[str, Any]]]) -> CNIConfig:
    """The one CNIConfig in `found`, or an inferred one if there is none."""
    if not found:
        return CNIConfig(inferred=True)
    if len(found) > 1:
        check.fail(found[1][0], (), "a second CNIConfig (a cluster has one CNI)")
    at, obj = found[0]
    check.metadata(at, obj, namespaced=False)
    # The fields live under spec; a flat object (like KubeProxyConfiguration) works too.
    base: tuple[Key, ...] = ("spec",) if "spec" in obj else ()
    spec = check.mapping(at, obj.get("spec"), base) if base else obj
    plugin = spec.get("plugin", "host-gw")
    known = {p.value: p for p in CNIPlugin}
    if not isinstance(plugin, str) or plugin not in known:
        check.fail(
            at,
            (*base, "plugin"),
            f"CNI plugin {quoted(plugin)} is not one kubehop simulates ({', '.join(known)})",
        )
    bridge = check.string(at, spec.get("bridge", "cni0"), (*base, "bridge"))
    if not is_ifname(bridge):
        # The name goes into commands for a root shell (`--reproduce`) and onto the screen.
        check.fail(at, (*base, "bridge"), f"{quoted(bridge)} {IFNAME_RULE}")
    mtu = spec.get("mtu", 1500)
    return CNIConfig(
        plugin=known[plugin],
        bridge=bridge,
        mtu=check.integer(at, mtu, (*base, "mtu"), 576, 9000, "an MTU kubehop accepts"),
        hairpin_mode=check.boolean(at, spec.get("hairpinMode"), (*base, "hairpinMode"), True),
    )


def service_cidrs(
    check: FieldChecker, found: list[tuple[At, dict[str, Any]]]
) -> tuple[IPv4Network, ...]:
    """The IPv4 ranges of the ServiceCIDR objects (networking.k8s.io), which nftables mode
    needs to tell an unallocated ClusterIP from an outside address."""
    cidrs: list[IPv4Network] = []
    for at, obj in found:
        check.metadata(at, obj, namespaced=False)
        spec = check.mapping(at, obj.get("spec"), ("spec",))
        for index, raw in enumerate(check.sequence(at, spec.get("cidrs"), ("spec", "cidrs"))):
            network = check.network(at, raw, ("spec", "cidrs", index), dual=True)
            if network is not None and network not in cidrs:
                cidrs.append(network)
    return tuple(cidrs)
