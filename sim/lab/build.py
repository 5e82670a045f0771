"""`lab up`: the cluster's network, built in network namespaces from `sim.cluster.network`.

The lab is made from the same `ClusterNetwork` the tracer walks: every netns,
interface, MAC, address and route comes from there, and after building, the
kernel's own view (`ip -j addr`, `ip -j route`) is compared with it. The node
network, which the simulation treats as a wire, is a bridge in its own lab
netns (`kh-<id>-net`); nothing is linked to the root namespace.

The CNI's data path is built as its agents build it: bridges and their ports,
Calico's proxy-ARP veths (`net.ipv4.conf.caliX.proxy_arp=1`, no proxy delay),
VXLAN devices with their FDB and neighbour entries, blackhole routes, and the
ipsets the CNI's rules match (`ipset restore` inside the node's netns) before
those rules. Nothing is loaded into the kernel: a CNI whose device the kernel
lacks (IP-in-IP without the ipip module) makes the lab unavailable, saying so.
In IPVS mode each node also gets what kube-proxy leaves there (`sim.lab.ipvs`):
its sysctls, `kube-ipvs0`, its ipsets and the virtual servers; a kernel without
IPVS makes the lab unavailable, saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Network
from types import FrameType

from model.cluster import Cluster, ProxyMode
from model.ipset import IpSets
from sim.cluster.network import (
    ROUTER_NS,
    ClusterNetwork,
    client_ns_name,
    node_ns_name,
    pod_ns_name,
)
from sim.cluster.rules import node_rules
from sim.kernel.devices import Blackhole, IfKind, Netns, NetnsKind
from sim.kernel.rules import NodeRules
from sim.lab import ipvs, nfacct
from sim.lab.failures import LabError, LabInterrupted, LabUnavailable
from sim.lab.netns import (
    add_netns,
    check_host,
    delete_netns,
    get_sysctl,
    in_netns,
    ip,
    lab_netns,
    run_id_of,
    set_sysctl,
)
from sim.lab.state import LabState
from sim.proxy.iptables.sync import sync
from sim.proxy.ipvs import RenderedIpvsRules
from sim.proxy.ipvs.sync import IPSETS
from sim.proxy.nftables import RenderedNftRules

NODE_NET_BRIDGE = "br0"
"""The bridge in `kh-<id>-net` that the nodes' and clients' eth0 plug into."""

FALLBACK_DEVICES = frozenset(
    {"tunl0", "gre0", "gretap0", "erspan0", "ip_vti0", "sit0", "ip6tnl0", "ip6gre0", "ip6_vti0"}
)
"""Devices a tunnel module, once in the kernel, puts in every new netns by itself."""


@dataclass
class Lab:
    """A lab that is up: its state file, the cluster it was built from, and its topology."""

    state: LabState
    """What was made, by which run."""
    cluster: Cluster
    """The cluster it was built from."""

    @cached_property
    def network(self) -> ClusterNetwork:
        """The simulation's topology of the cluster (what the lab mirrors)."""
        return ClusterNetwork(self.cluster)

    def netns(self, topology_name: str) -> str:
        """The lab netns standing for the simulation's netns `topology_name`."""
        return self.state.netns[topology_name]

    @property
    def node_netns(self) -> dict[str, str]:
        """Node name → its lab netns."""
        return {n.name: self.state.netns[node_ns_name(n.name)] for n in self.cluster.nodes}


def fingerprint(cluster: Cluster) -> str:
    """A hash of what the lab is built from: the cluster and every node's rules."""
    digest = hashlib.sha256(cluster.model_dump_json(exclude={"warnings"}).encode())
    return digest.hexdigest()[:16]


def topology_netns(cluster: Cluster) -> list[str]:
    """Every simulated netns the lab makes: nodes, pods (not hostNetwork), clients, and the
    node network's router when a client is beyond it."""
    names = [node_ns_name(n.name) for n in cluster.nodes]
    names += [pod_ns_name(p) for p in cluster.pods if not p.host_network]
    names += [client_ns_name(c) for c in cluster.clients]
    network = ClusterNetwork(cluster)
    if any(not network.on_node_network(c) for c in cluster.clients):
        names.append(ROUTER_NS)
    return names


def lab_netns_name(run_id: str, network: ClusterNetwork, topology_name: str) -> str:
    """`kh-<id>-n-node-a`, `kh-<id>-p-default.pod1`, `kh-<id>-c-client`."""
    ns = network.netns(topology_name)
    kind = {"node": "n", "pod": "p", "client": "c", "router": "r"}[ns.kind.value]
    tail = topology_name.split("/", 1)[-1].replace("/", ".")
    name = f"kh-{run_id}-{kind}-{tail}"
    if len(name) > 200:
        name = f"kh-{run_id}-{kind}-{hashlib.sha256(tail.encode()).hexdigest()[:16]}"
    return name


def _new_run_id() -> str:
    taken = {run_id_of(n) for n in lab_netns()}
    while True:
        run_id = secrets.token_hex(3)
        if run_id not in taken:
            return run_id


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise LabInterrupted (SIGINT already raises KeyboardInterrupt)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise LabInterrupted(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM must not cut a cleanup short and leave namespaces behind."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def build(cluster: Cluster, source: str, *, persistent: bool) -> Lab:
    """Build the cluster's network in new lab namespaces; on any failure remove them all."""
    check_host()
    network = ClusterNetwork(cluster)
    run_id = _new_run_id()
    names = {t: lab_netns_name(run_id, network, t) for t in topology_netns(cluster)}
    state = LabState(
        run_id=run_id,
        pid=os.getpid(),
        persistent=persistent,
        cluster_source=source,
        fingerprint=fingerprint(cluster),
        netns=names,
        net=f"kh-{run_id}-net",
    )
    # Written before anything exists, so a killed run leaves its names behind.
    state.save()
    lab = Lab(state, cluster)
    try:
        _Builder(lab, network).build()
        state.ready = True
        state.save()
    except BaseException:
        teardown(state)
        raise
    return lab


def teardown(state: LabState) -> None:
    """Remove every netns of a run (its processes first), then its state file."""
    with signals_ignored():
        mine = set(state.all_netns) | {n for n in lab_netns() if run_id_of(n) == state.run_id}
        for name in sorted(mine):
            delete_netns(name)
        state.remove()


class _Builder:
    """The commands that make one lab, in dependency order."""

    def __init__(self, lab: Lab, network: ClusterNetwork) -> None:
        self.lab = lab
        self.network = network
        self.state = lab.state
        self.cluster = lab.cluster

    def ns(self, topology_name: str) -> str:
        return self.state.netns[topology_name]

    @property
    def ipvs_mode(self) -> bool:
        """kube-proxy runs in IPVS mode: the nodes get virtual servers too."""
        return self.cluster.kube_proxy.mode is ProxyMode.IPVS

    def build(self) -> None:
        all_ns = [self.network.netns(t) for t in self.state.netns]
        add_netns(self.state.net)
        for topo in all_ns:
            add_netns(self.ns(topo.name))
        if self.ipvs_mode and self.cluster.nodes:
            # Looked for inside a node's netns, before anything asks IPVS for anything.
            ipvs.ensure_available(self.ns(node_ns_name(self.cluster.nodes[0].name)))
        self._sysctls(all_ns)
        ip(self.state.net, "link", "add", NODE_NET_BRIDGE, "type", "bridge")
        ip(self.state.net, "link", "set", NODE_NET_BRIDGE, "up")
        port = 0
        for topo in all_ns:
            for iface in topo.interfaces:
                if iface.kind is IfKind.ETHERNET:
                    port += 1
                    self._plug_into_node_network(topo, iface.name, iface.mac, f"nb{port}")
                elif iface.kind is IfKind.BRIDGE:
                    ip(self.ns(topo.name), "link", "add", iface.name, "address", iface.mac,
                       "type", "bridge")  # fmt: skip
                elif iface.kind is IfKind.DUMMY:
                    # kube-ipvs0 (IPVS mode): its addresses make the Service addresses local.
                    ip(self.ns(topo.name), "link", "add", iface.name, "address", iface.mac,
                       "type", "dummy")  # fmt: skip
        for topo in all_ns:
            for iface in topo.interfaces:
                if iface.kind is IfKind.VETH and topo.kind is NetnsKind.NODE and iface.peer:
                    self._pod_veth(topo, iface.name)
                elif iface.kind is IfKind.VETH and topo.kind is NetnsKind.ROUTER:
                    self._client_link(topo, iface.name)
                elif iface.kind is IfKind.VXLAN:
                    self._vxlan(topo, iface.name)
                elif iface.kind is IfKind.IPIP:
                    self._ipip(topo, iface.name)
                if iface.proxy_arp:
                    self._proxy_arp(topo, iface.name)
        for topo in all_ns:
            name = self.ns(topo.name)
            for iface in topo.interfaces:
                for addr in iface.addrs if iface.kind is not IfKind.LOOPBACK else ():
                    ip(name, "addr", "add", str(addr), "dev", iface.name)
                if iface.mtu != 1500 and iface.kind is not IfKind.LOOPBACK:
                    ip(name, "link", "set", "dev", iface.name, "mtu", str(iface.mtu))
            # Bridges first, so a port never comes up before its bridge. kube-proxy
            # leaves kube-ipvs0 down: its addresses are local all the same.
            for iface in sorted(topo.interfaces, key=lambda i: i.kind is not IfKind.BRIDGE):
                if iface.kind is not IfKind.DUMMY:
                    ip(name, "link", "set", iface.name, "up")
        for topo in all_ns:
            self._routes(topo)
            self._neighbours(topo)
        self._announcements(all_ns)
        for node in self.cluster.nodes:
            self._rules(node.name)
        problems = [p for topo in all_ns for p in compare_with_topology(self.ns(topo.name), topo)]
        if problems:
            raise LabError(f"the kernel's network differs from kubehop's topology: {problems[0]}")

    def _sysctls(self, all_ns: list[Netns]) -> None:
        set_sysctl(self.state.net, "net.ipv4.ip_forward", "0")
        if get_sysctl(self.state.net, "net.bridge.bridge-nf-call-iptables") is not None:
            # The node network is a plain switch: no netfilter on its bridge.
            set_sysctl(self.state.net, "net.bridge.bridge-nf-call-iptables", "0")
        for topo in all_ns:
            name = self.ns(topo.name)
            set_sysctl(name, "net.ipv4.ip_forward", "1" if topo.forwarding else "0")
            # kubehop does not model reverse-path filtering; a new netns may
            # inherit the machine's setting, so pin it off for repeatable runs.
            for scope in ("all", "default"):
                set_sysctl(name, f"net.ipv4.conf.{scope}.rp_filter", "0")
            # A server whose SYN-ACK is lost (a flow that fails by design)
            # would resend it for a minute, into the next flows' counters and
            # conntrack; one SYN-ACK keeps each flow's packets its own.
            set_sysctl(name, "net.ipv4.tcp_synack_retries", "0")
            if topo.bridge_nf_call_iptables:
                if get_sysctl(name, "net.bridge.bridge-nf-call-iptables") is None:
                    self._note(
                        "br_netfilter is not loaded (no /proc/sys/net/bridge in the node "
                        "namespaces), and the lab loads no modules: bridged traffic skips "
                        "iptables, so pod-to-Service flows between pods of one node and "
                        "hairpin flows cannot be checked"
                    )
                else:
                    set_sysctl(name, "net.bridge.bridge-nf-call-iptables", "1")
            if topo.node is not None and topo.netfilter:
                node = self.cluster.node(topo.node)
                assert node is not None
                # nftables and IPVS modes serve no localhost NodePorts and set no sysctl
                # for them.
                iptables_mode = self.cluster.kube_proxy.mode is ProxyMode.IPTABLES
                if iptables_mode and sync(self.cluster, node).localhost_nodeports:
                    # kube-proxy sets this when NodePorts answer on 127.0.0.1.
                    set_sysctl(name, "net.ipv4.conf.all.route_localnet", "1")
                if self.ipvs_mode:
                    release = ipvs.kernel_release()
                    for key, value in ipvs.ipvs_sysctls(self.cluster.kube_proxy, release):
                        set_sysctl(name, key, value)

    def _plug_into_node_network(self, topo: Netns, name: str, mac: str, port: str) -> None:
        # The veth is made inside the node-network netns with its far end
        # placed straight into the node's or client's: no end ever exists in
        # the root namespace.
        ip(self.state.net, "link", "add", port, "type", "veth", "peer", "name", name,
           "address", mac, "netns", self.ns(topo.name))  # fmt: skip
        ip(self.state.net, "link", "set", port, "master", NODE_NET_BRIDGE, "up")

    def _pod_veth(self, node: Netns, host_end: str) -> None:
        """A pod's veth pair, its host end a bridge port (the bridge plugin) or not (Calico)."""
        iface = node.iface(host_end)
        assert iface.peer is not None
        pod_ns, pod_if = iface.peer
        pod_iface = self.network.netns(pod_ns).iface(pod_if)
        here = self.ns(node.name)
        ip(here, "link", "add", host_end, "address", iface.mac, "type", "veth", "peer", "name",
           pod_if, "address", pod_iface.mac, "netns", self.ns(pod_ns))  # fmt: skip
        if iface.master is None:
            return
        ip(here, "link", "set", host_end, "master", iface.master)
        hairpin = "on" if iface.hairpin else "off"
        ip(here, "link", "set", "dev", host_end, "type", "bridge_slave", "hairpin", hairpin)

    def _proxy_arp(self, node: Netns, name: str) -> None:
        """Proxy ARP on a device, as Calico's CNI plugin sets it on each host-side veth.

        Linux delays a proxied answer to a broadcast request by up to
        proxy_delay (0.8 s); Calico sets it to 0, and so does the lab. It also
        sets route_localnet, as Calico does.
        """
        here = self.ns(node.name)
        set_sysctl(here, f"net.ipv4.conf.{name}.proxy_arp", "1")
        set_sysctl(here, f"net.ipv4.neigh.{name}.proxy_delay", "0")
        set_sysctl(here, f"net.ipv4.conf.{name}.route_localnet", "1")

    def _ipip(self, node: Netns, name: str) -> None:
        """The ipip module's `tunl0`, which Felix configures but never creates.

        With the module in the kernel every new netns has it; the lab loads no
        module (nor asks for `type ipip`, which could load one), so without it
        this cluster's CNI cannot be checked here.
        """
        here = self.ns(node.name)
        if not ip(here, "-o", "link", "show", name, check=False).strip():
            raise LabUnavailable(
                f"the kernel has no ipip: a new lab namespace has no {name} (the ipip module's"
                " device, which IP-in-IP needs); the lab loads no modules, so this cluster's"
                " CNI cannot be checked here"
            )

    def _vxlan(self, node: Netns, name: str) -> None:
        """A VXLAN device as the CNI makes it: no learning, its FDB written down."""
        iface = node.iface(name)
        assert iface.vxlan is not None
        here = self.ns(node.name)
        tunnel = iface.vxlan
        try:
            ip(here, "link", "add", name, "address", iface.mac, "type", "vxlan",
               "id", str(tunnel.vni), "local", str(tunnel.local), "dev", "eth0",
               "dstport", str(tunnel.port), "nolearning")  # fmt: skip
        except LabError as err:
            # The lab loads no modules: a kernel without vxlan says so here.
            raise LabUnavailable(
                f"the kernel cannot make a VXLAN device in a lab namespace ({err}); the lab"
                " loads no modules, so this cluster's CNI cannot be checked here"
            ) from None
        for mac, remote in tunnel.fdb.items():
            in_netns(here, ["bridge", "fdb", "append", mac, "dev", name, "dst", str(remote),
                            "self", "permanent"])  # fmt: skip

    def _neighbours(self, topo: Netns) -> None:
        """The permanent neighbour entries a device carries (a VXLAN device's remote VTEPs)."""
        for iface in topo.interfaces:
            for addr, mac in iface.neighbours.items():
                ip(self.ns(topo.name), "neigh", "replace", str(addr), "lladdr", mac,
                   "dev", iface.name, "nud", "permanent")  # fmt: skip

    def _announcements(self, all_ns: list[Netns]) -> None:
        """LoadBalancer IPs a node announces on the node network, as the others learn them.

        A layer-2 load balancer's speaker (MetalLB's) answers ARP from user space;
        the kernel's proxy ARP would not, the route to the address leading back
        out the same device. So the lab writes down what the answer teaches: a
        permanent neighbour entry in each client and router on the node network.
        """
        announcers = {addr: topo for topo in all_ns for addr in topo.proxy_arp}
        for topo in all_ns:
            if topo.kind not in (NetnsKind.CLIENT, NetnsKind.ROUTER):
                continue
            if not any(i.name == "eth0" and i.kind is IfKind.ETHERNET for i in topo.interfaces):
                continue
            for addr, node in announcers.items():
                mac = node.iface("eth0").mac
                ip(self.ns(topo.name), "neigh", "replace", str(addr), "lladdr", mac,
                   "dev", "eth0", "nud", "permanent")  # fmt: skip

    def _client_link(self, router: Netns, port: str) -> None:
        """The router's link to a client beyond the node network: a veth pair between them."""
        iface = router.iface(port)
        assert iface.peer is not None
        client_ns, client_if = iface.peer
        client_iface = self.network.netns(client_ns).iface(client_if)
        ip(self.ns(router.name), "link", "add", port, "address", iface.mac, "type", "veth",
           "peer", "name", client_if, "address", client_iface.mac,
           "netns", self.ns(client_ns))  # fmt: skip

    def _routes(self, topo: Netns) -> None:
        name = self.ns(topo.name)
        connected = [
            a.network for i in topo.interfaces for a in i.addrs if i.kind is not IfKind.LOOPBACK
        ]
        # A gateway reached by a link-scope route needs no `onlink` (Calico's pods
        # reach 169.254.1.1 so); such routes go in first.
        connected += [r.dst for r in topo.routes.routes if r.via is None and r.scope == "link"]
        for route in sorted(topo.routes.routes, key=lambda r: r.via is not None):
            if route.proto == "kernel":
                continue  # the kernel made it when the address was added
            if isinstance(route, Blackhole):
                ip(name, "route", "add", "blackhole", _dst(route.dst), "proto", "static")
                continue
            args = ["route", "add", _dst(route.dst)]
            if route.via is not None:
                args += ["via", str(route.via)]
            args += ["dev", route.dev, "proto", "static"]
            if route.src is not None:
                args += ["src", str(route.src)]
            if route.via is not None and not any(route.via in net for net in connected):
                args.append("onlink")
            ip(name, *args)

    def _rules(self, node: str) -> None:
        name = self.ns(node_ns_name(node))
        rules = node_rules(self.cluster, node)
        # The rules refer to the sets by name: they must exist first.
        restore_sets(name, rules)
        text = rules.text
        counters = nfacct.counters_in(text)
        try:
            for counter in counters:
                nfacct.add_counter(name, counter)
        except OSError as err:
            self._note(
                f"the kernel has no nfacct ({err}): the rules are loaded without their "
                "`-m nfacct` matches, as kube-proxy writes them when nfacct is missing "
                "(they only count packets)"
            )
            text = nfacct.without_nfacct(text)
        in_netns(name, ["iptables-restore", "-w", "5"], stdin=text)
        if isinstance(rules, RenderedNftRules):
            # nftables mode: kube-proxy's table, made by the transaction kube-proxy
            # hands nft, after kubelet's iptables rules as on a node.
            if shutil.which("nft") is None:
                raise LabUnavailable(
                    "this cluster's kube-proxy runs in nftables mode, and the lab needs nft to"
                    " load its table (Debian/Ubuntu: apt-get install nftables)"
                )
            in_netns(name, ["nft", "-f", "-"], stdin=rules.transaction)
        if isinstance(rules, RenderedIpvsRules):
            # IPVS mode: the virtual servers last, kube-ipvs0 and its addresses long made.
            timeouts = ipvs.timeouts_args(self.cluster.kube_proxy)
            if timeouts is not None:
                ipvs.ipvsadm(name, timeouts)
            saved = _listing(rules, "ipvsadm-save -n")
            ipvs.ipvsadm(name, ["-R"], stdin=ipvs.restore_text(rules.ipvs, saved))

    def _note(self, text: str) -> None:
        if text not in self.state.notes:
            self.state.notes.append(text)


def restore_sets(netns: str, rules: NodeRules) -> None:
    """Make the sets the node's rules match, in a lab netns: in IPVS mode kube-proxy's from
    the `ipset save` kubehop renders for the node, then the CNI's (`ipset_restore`)."""
    sets = dict(rules.ipsets)
    if not sets:
        return
    if shutil.which("ipset") is None:
        who = (
            "kube-proxy's IPVS mode"
            if isinstance(rules, RenderedIpvsRules)
            else "this cluster's CNI"
        )
        raise LabUnavailable(
            f"{who} matches ipsets, and the lab needs ipset to make them"
            " (Debian/Ubuntu: apt-get install ipset)"
        )
    if isinstance(rules, RenderedIpvsRules):
        in_netns(netns, ["ipset", "restore"], stdin=_listing(rules, "ipset save"))
        for kube_proxys, _, _ in IPSETS:
            sets.pop(kube_proxys, None)
    if sets:
        in_netns(netns, ["ipset", "restore"], stdin=ipset_restore(sets))


def _listing(rules: RenderedIpvsRules, command: str) -> str:
    """The text kubehop renders for `command` on the node (`ipset save`, `ipvsadm-save -n`)."""
    return next(item.text for item in rules.listings if item.command == command)


def ipset_restore(sets: IpSets) -> str:
    """`ipset restore` input making `sets`, as Felix makes its sets (hashsize 1024, maxelem
    1048576)."""
    lines: list[str] = []
    for name, found in sets.items():
        family = "inet6" if found.ipv6 else "inet"
        lines.append(f"create {name} {found.type} family {family} hashsize 1024 maxelem 1048576")
        for member in found.members:
            values = [
                (str(v.network_address) if v.prefixlen == 32 else str(v))
                if isinstance(v, IPv4Network)
                else f"{v[0]}:{v[1]}"
                for v in member
            ]
            lines.append(f"add {name} {','.join(values)}")
    return "\n".join(lines) + "\n"


def _dst(net: IPv4Network) -> str:
    """A destination as `ip route` prints it: `default`, a bare address for a host route."""
    if net.prefixlen == 0:
        return "default"
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def compare_with_topology(netns: str, topo: Netns) -> list[str]:
    """Where the kernel's interfaces and main routes in `netns` differ from the topology's."""
    problems: list[str] = []
    links = {link["ifname"]: link for link in json.loads(ip(netns, "-j", "addr", "show") or "[]")}
    for iface in topo.interfaces:
        link = links.get(iface.name)
        if link is None:
            problems.append(f"{topo.name}: no interface {iface.name}")
            continue
        if iface.kind is not IfKind.LOOPBACK and link.get("address") != iface.mac:
            problems.append(f"{topo.name} {iface.name}: MAC {link.get('address')} != {iface.mac}")
        addrs = {
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", ())
            if a["family"] == "inet"
        }
        if addrs != {str(a) for a in iface.addrs}:
            problems.append(f"{topo.name} {iface.name}: addresses {sorted(addrs)}")
        if iface.master is not None and link.get("master") != iface.master:
            problems.append(f"{topo.name} {iface.name}: not a port of {iface.master}")
        if iface.kind is IfKind.DUMMY and "UP" in link.get("flags", ()):
            problems.append(f"{topo.name} {iface.name}: up (kube-proxy leaves it down)")
    extra = set(links) - {i.name for i in topo.interfaces} - FALLBACK_DEVICES
    if extra:
        problems.append(f"{topo.name}: unexpected interfaces {sorted(extra)}")
    kernel_routes = {
        (r.get("type", "unicast"), r["dst"], r.get("gateway"), r.get("dev"))
        for r in json.loads(ip(netns, "-j", "route", "show", "table", "main") or "[]")
    }
    wanted = {
        (
            "blackhole" if isinstance(r, Blackhole) else "unicast",
            _dst(r.dst),
            str(r.via) if r.via else None,
            None if isinstance(r, Blackhole) else r.dev,
        )
        for r in topo.routes.routes
    }
    if kernel_routes != wanted:
        problems.append(f"{topo.name}: routes {sorted(kernel_routes ^ wanted, key=str)} differ")
    return problems
