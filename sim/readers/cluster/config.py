"""The cluster's configuration objects: kube-proxy's KubeProxyConfiguration and kubehop's CNIConfig.

Either may be missing (a dump of a real cluster rarely has them); then the
config is marked `inferred`, and the caller fills in what it can.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network
from typing import Any

from model.cluster import CNIConfig, CNIPlugin, KubeProxyConfig, ProxyMode
from model.ipvs import SCHEDULERS
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
    if mode not in ("iptables", "nftables", "ipvs"):
        check.fail(
            at, ("mode",), f"{quoted(mode)} is not a kube-proxy mode (iptables, ipvs or nftables)"
        )
    # Each mode reads its own section for the mark (IPVS mode: `iptables:`, as kube-proxy does).
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
                f"'primary' is not simulated yet in {mode} mode; list the nodes' network as a CIDR",
            )
        network = check.network(at, raw, field, dual=True)
        if network is not None:
            addresses.append(network)
    scheduler, strict_arp, timeouts = "rr", False, (0, 0, 0)
    if mode == "ipvs":
        scheduler, strict_arp, timeouts = _ipvs(check, at, obj)
    return KubeProxyConfig(
        mode=ProxyMode(mode),
        cluster_cidr=cluster_cidr,
        masquerade_all=check.boolean(at, masquerade_all, masquerade_field, False),
        masquerade_bit=14
        if bit is None
        else check.integer(at, bit, (section, "masqueradeBit"), 0, 31, "a bit number"),
        node_port_addresses=tuple(addresses),
        ipvs_scheduler=scheduler,
        ipvs_strict_arp=strict_arp,
        ipvs_timeouts=timeouts,
    )


def _ipvs(
    check: FieldChecker, at: At, obj: dict[str, Any]
) -> tuple[str, bool, tuple[int, int, int]]:
    """The `ipvs:` section's fields that change what a node does, refused where kube-proxy's
    validation (pkg/proxy/apis/config/validation) refuses them."""
    settings = check.mapping(at, obj.get("ipvs"), ("ipvs",))
    scheduler = settings.get("scheduler") or "rr"
    if not isinstance(scheduler, str) or scheduler not in SCHEDULERS:
        check.fail(
            at,
            ("ipvs", "scheduler"),
            f"{quoted(scheduler)} is not a scheduler kube-proxy accepts"
            f" ({', '.join(SCHEDULERS)}; blank means rr)",
        )
    strict_arp = check.boolean(at, settings.get("strictARP"), ("ipvs", "strictARP"), False)
    timeouts: list[int] = []
    for name in ("tcpTimeout", "tcpFinTimeout", "udpTimeout"):
        raw = settings.get(name)
        seconds = 0 if raw in (None, "") else go_duration_seconds(raw)
        if seconds is None:
            check.fail(
                at, ("ipvs", name), f"{quoted(raw)} is not a duration (such as 900s or 15m0s)"
            )
        elif seconds < 0:
            check.fail(at, ("ipvs", name), f"{quoted(raw)}: must be greater than or equal to 0")
        timeouts.append(max(int(seconds or 0), 0))
    return str(scheduler), strict_arp, (timeouts[0], timeouts[1], timeouts[2])


_DURATION = re.compile(r"(-?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+")
_UNIT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(raw: object) -> float | None:
    """A metav1.Duration as YAML holds it (Go's time.ParseDuration: `900s`, `1h2m3s`, `0`) in
    seconds; None when it is not one."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw) if raw == 0 else None
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text in ("0", "-0", "+0"):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not _DURATION.fullmatch(body):
        return None
    return sign * sum(float(n) * _SECONDS[unit] for n, unit in _UNIT.findall(body))


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
