"""`-m set --match-set`: a packet's addresses and ports looked up in the node's ipsets.

CNIs like Calico keep address lists in ipsets and match them from iptables
(`-m set --match-set cali40masq-ipam-pools src`). With the node's sets known,
the match is evaluated as the kernel's xt_set would; without them netfilter
assumes it does not match and says so.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from model.ipset import IPSET_DIMENSIONS, IpSets
from model.netfilter import UnknownMatch
from model.packet import Packet

__all__ = ["set_match"]


def set_match(sets: IpSets, m: UnknownMatch, pkt: Packet) -> bool | None:
    """`-m set [!] --match-set NAME src[,dst…]` against `sets`; None for any other match."""
    if m.module != "set":
        return None
    args = list(m.args)
    negate = False
    if "--match-set" not in args:
        return None
    at = args.index("--match-set")
    if at > 0 and args[at - 1] == "!":
        negate = True
    if len(args) < at + 3:
        return None
    name, flags = args[at + 1], args[at + 2]
    found = sets.get(name)
    if found is None:
        return None
    if found.ipv6:
        return negate
    values: list[IPv4Address | tuple[str, int]] = []
    dims = IPSET_DIMENSIONS.get(found.type, ())
    for dim, flag in zip(dims, flags.split(","), strict=False):
        if dim == "port":
            values.append((pkt.proto.value, pkt.sport if flag == "src" else pkt.dport))
        else:
            values.append(pkt.src if flag == "src" else pkt.dst)
    if len(values) != len(dims):
        return None
    return found.contains(tuple(values)) != negate
