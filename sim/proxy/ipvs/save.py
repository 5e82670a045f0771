"""What a person sees on a node in IPVS mode, command by command.

- `ipvsadm-save -n` (ipvsadm 1.31's `-S -n`): `-A -t VIP:PORT -s rr [-p T [-M MASK]] [-b
  FLAGS]` then its `-a -t VIP:PORT -r IP:PORT -m -w 1` lines; services and real servers
  sorted as libipvs sorts them (protocol, then the address compared as the signed 32-bit
  difference of the two, then the port: so 192.168.x.x sorts before 10.x.x.x);
- `ipvsadm -Ln`: the same, in the list format;
- `ipset save`: every set kube-proxy creates, in ipset.go's order (a real node creates them
  in a Go map's random order), members sorted (a hash set prints them in hash order);
  the headers as ipset before 7.11 prints them: later versions add `bucketsize 12 initval
  0x…`, whose random seed kubehop cannot know;
- `iptables-save`: kubelet's chains and kube-proxy's, as iptables 1.8.9 prints them;
- `ip addr show kube-ipvs0`: the dummy device (created down) with the bound addresses,
  each a /32; its index and MAC are kubehop's (a real node's differ).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from model.cluster import Cluster
from model.ipvs import FORWARD_FLAGS, IpvsTable, RealServer, VirtualServer
from sim.kernel.rules import ForeignRules
from sim.proxy.iptables import names as ipt
from sim.proxy.iptables.save import presaved, table_lines
from sim.proxy.iptables.sync import KUBE_FIREWALL_RULE, Tokens
from sim.proxy.ipvs.sync import FILTER_CHAINS, IPSETS, JUMPS, NAT_CHAINS, IpvsSync

__all__ = [
    "IpvsListing",
    "bound_lines",
    "ip_addr",
    "ip_addr_head",
    "ipset_save",
    "iptables_save",
    "ipvsadm_list",
    "ipvsadm_save",
    "listings_of",
    "real_lines",
    "ring_start",
    "set_lines",
    "sorted_services",
    "virtual_line",
]


def _signed(diff: int) -> int:
    """A C `int` of the difference of two u32s, as libipvs's comparators compute it."""
    diff &= 0xFFFFFFFF
    return diff - (1 << 32) if diff >= 1 << 31 else diff


_PROTO_NUMBER = {"tcp": 6, "udp": 17, "sctp": 132}


def _cmp_services(a: VirtualServer, b: VirtualServer) -> int:
    r = _PROTO_NUMBER.get(a.proto.value, 0) - _PROTO_NUMBER.get(b.proto.value, 0)
    if r:
        return r
    r = _signed(int(a.ip) - int(b.ip))
    return r if r else a.port - b.port


def _cmp_dests(a: RealServer, b: RealServer) -> int:
    r = _signed(int(a.ip) - int(b.ip))
    return r if r else a.port - b.port


def ring_start(addresses: list[int]) -> int | None:
    """Where libipvs's order of `addresses` starts, if it is an order: while they fit in less
    than half the address space, comparing signed differences is comparing offsets from the
    address after the widest gap between them; else None (the order depends on the sort)."""
    ordered = sorted(set(addresses))
    if not ordered:
        return 0
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    gaps.append(ordered[0] + (1 << 32) - ordered[-1])
    at = max(range(len(gaps)), key=gaps.__getitem__)
    return ordered[(at + 1) % len(ordered)] if gaps[at] > 1 << 31 else None


def sorted_services(table: IpvsTable) -> list[VirtualServer]:
    """The virtual servers in the order ipvsadm lists them (ipvs_cmp_services)."""
    return sorted(table.services, key=functools.cmp_to_key(_cmp_services))


def _sorted_dests(vs: VirtualServer) -> list[RealServer]:
    ips = [int(rs.ip) for rs in vs.real_servers]
    start = ring_start(ips) if len(ips) > 1 else None
    if start is None:
        return sorted(vs.real_servers, key=functools.cmp_to_key(_cmp_dests))
    # The same order, by a key: a big virtual server's thousands sort in a millisecond.
    keyed = sorted(
        range(len(ips)), key=lambda i: ((ips[i] - start) % (1 << 32), vs.real_servers[i].port)
    )
    return [vs.real_servers[i] for i in keyed]


def virtual_line(vs: VirtualServer) -> str:
    """`ipvsadm-save -n`'s `-A` line of `vs`."""
    line = f"-A {vs.save_name} -s {vs.scheduler}"
    if vs.persistent is not None:
        line += f" -p {vs.persistent}"
        if vs.netmask != IPv4Address("255.255.255.255"):
            line += f" -M {vs.netmask}"
    if vs.flags:
        line += " -b " + ",".join(vs.flags)
    return line


def real_lines(vs: VirtualServer) -> list[str]:
    """`ipvsadm-save -n`'s `-a` lines of `vs`, its real servers sorted as libipvs sorts them."""
    name = vs.save_name
    return [
        f"-a {name} -r {rs.addr} {FORWARD_FLAGS.get(rs.forward, '-m')} -w {rs.weight}"
        for rs in _sorted_dests(vs)
    ]


def ipvsadm_save(table: IpvsTable) -> str:
    """`ipvsadm-save -n`."""
    lines: list[str] = []
    for vs in sorted_services(table):
        lines.append(virtual_line(vs))
        lines += real_lines(vs)
    return "\n".join(lines) + ("\n" if lines else "")


_FORWARD_NAMES = {"masq": "Masq", "gate": "Route", "ipip": "Tunnel"}


def ipvsadm_list(table: IpvsTable) -> str:
    """`ipvsadm -Ln` (no connections: the counters of a node just synced)."""
    lines = [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    ]
    for vs in sorted_services(table):
        name = f"{vs.proto.value.upper():<4} {vs.ip}:{vs.port}"
        line = f"{name} {vs.scheduler}"
        if vs.flags:
            line += f" ({','.join(vs.flags)})"
        if vs.persistent is not None:
            line += f" persistent {vs.persistent}"
            if vs.netmask != IPv4Address("255.255.255.255"):
                line += f" mask {vs.netmask}"
        lines.append(line)
        lines += [
            f"  -> {rs.addr:<28} {_FORWARD_NAMES.get(rs.forward, 'Masq'):<7} {rs.weight:<6} "
            f"{0:<10} {0:<10}"
            for rs in _sorted_dests(vs)
        ]
    return "\n".join(lines) + "\n"


def _member_key(member: str) -> tuple[int, ...]:
    keys: list[int] = []
    for part in member.split(","):
        value = part.rpartition(":")[2].split("/")[0]
        keys.append(int(IPv4Address(value)) if "." in value else int(value))
    return tuple(keys)


def set_lines(name: str, kind: str, members: Iterable[str]) -> list[str]:
    """`ipset save`'s lines of one set: its `create` line, then its members (`ipset add`'s
    spelling, each once, in the order added) sorted."""
    if kind == "bitmap:port":
        head = f"create {name} {kind} range 0-65535"
    else:
        head = f"create {name} {kind} family inet hashsize 1024 maxelem 65536"
    return [head, *(f"add {name} {m}" for m in sorted(members, key=_member_key))]


def ipset_save(sync: IpvsSync) -> str:
    """`ipset save` of kube-proxy's sets."""
    lines: list[str] = []
    for name, kind, _ in IPSETS:
        lines += set_lines(name, kind, sync.members[name])
    return "\n".join(lines) + "\n"


def iptables_save(sync: IpvsSync, extra: ForeignRules | None = None) -> str:
    """`iptables-save` (mangle, filter, nat): kubelet's chains, kube-proxy's, then `extra`'s."""
    rules: dict[str, dict[str, list[Tokens]]] = {"mangle": {}, "filter": {}, "nat": {}}
    chains: dict[str, list[str]] = {
        "mangle": [ipt.KUBE_IPTABLES_HINT, ipt.KUBE_KUBELET_CANARY],
        "filter": [*FILTER_CHAINS, ipt.KUBE_FIREWALL, ipt.KUBE_KUBELET_CANARY],
        "nat": [*NAT_CHAINS, ipt.KUBE_KUBELET_CANARY],
    }
    # kubelet prepends its KUBE-FIREWALL jumps first; kube-proxy then prepends each of its own.
    rules["filter"]["INPUT"] = [("-A", "INPUT", "-j", ipt.KUBE_FIREWALL)]
    rules["filter"]["OUTPUT"] = [("-A", "OUTPUT", "-j", ipt.KUBE_FIREWALL)]
    for table, src, dst, comment in JUMPS:
        jump = ("-A", src, "-m", "comment", "--comment", f'"{comment}"', "-j", dst)
        rules[table].setdefault(src, []).insert(0, jump)
    rules["filter"][ipt.KUBE_FIREWALL] = [KUBE_FIREWALL_RULE]
    for table, written in (("nat", sync.nat), ("filter", sync.filter)):
        for rule in written:
            rules[table].setdefault(rule[1], []).append(rule)
    if extra is not None:
        for table, declared in chains.items():
            declared += extra.chains.get(table, ())
            for line in extra.rules.get(table, ()):
                rules[table].setdefault(line.split()[1], []).append(presaved(line))
    lines: list[str] = []
    for table in ("mangle", "filter", "nat"):
        lines += table_lines(table, chains[table], rules[table])
    return "\n".join(lines) + "\n"


def ip_addr_head(node: str, index: int) -> list[str]:
    """`ip addr show kube-ipvs0`'s first two lines: the dummy device (down, no ARP), its MAC."""
    digest = hashlib.sha256(f"{node}/kube-ipvs0".encode()).digest()
    mac = ":".join(f"{b:02x}" for b in (digest[0] & 0xFE | 0x02, *digest[1:6]))
    return [
        f"{index}: kube-ipvs0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN group default",
        f"    link/ether {mac} brd ff:ff:ff:ff:ff:ff",
    ]


def bound_lines(ip: IPv4Address) -> tuple[str, str]:
    """`ip addr show kube-ipvs0`'s two lines of a bound address."""
    return (
        f"    inet {ip}/32 scope global kube-ipvs0",
        "       valid_lft forever preferred_lft forever",
    )


def ip_addr(node: str, table: IpvsTable, index: int) -> str:
    """`ip addr show kube-ipvs0`: the dummy device kube-proxy creates (down, no ARP)."""
    lines = ip_addr_head(node, index)
    for ip in table.bound:
        lines += bound_lines(ip)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class IpvsListing:
    """One command a person runs on the node, and what it prints."""

    command: str
    """`ipvsadm-save -n`, `ipset save`, `iptables-save`, `ip addr show kube-ipvs0`."""
    text: str
    """Its output."""


def listings_of(
    cluster: Cluster, node: str, synced: IpvsSync, iptables: str
) -> tuple[IpvsListing, ...]:
    """The node's IPVS view, command by command."""
    table = synced.table(f"{node} (rendered)", cluster)
    # kube-ipvs0 comes after lo, eth0 and the CNI's bridge as kube-proxy creates it late.
    return (
        IpvsListing("ipvsadm-save -n", ipvsadm_save(table)),
        IpvsListing("ipset save", ipset_save(synced)),
        IpvsListing("iptables-save", iptables),
        IpvsListing("ip addr show kube-ipvs0", ip_addr(node, table, 4)),
    )
