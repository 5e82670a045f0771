"""`ipset save` text, so rules with `-m set --match-set` can be evaluated.

CNIs like Calico keep address lists in ipsets and match them from iptables
(`-m set --match-set cali40masq-ipam-pools src`). With the node's
`ipset save` next to its `iptables-save`, the engine looks the packet's
addresses up in the sets; without it such a match is assumed not to match
and the trace says so.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from model.errors import RulesParseError
from model.netfilter import UnknownMatch
from model.packet import Packet

__all__ = ["IpSet", "IpSets", "is_ipset_text", "parse_ipset_save", "set_match"]

# The set types whose members kubehop can compare with a packet: each
# dimension is an address (ip, net) or a port.
_DIMENSIONS = {
    "hash:ip": ("ip",),
    "hash:net": ("net",),
    "bitmap:ip": ("ip",),
    "hash:ip,port": ("ip", "port"),
    "hash:net,port": ("net", "port"),
    "hash:ip,port,ip": ("ip", "port", "ip"),
    "hash:ip,port,net": ("ip", "port", "net"),
    "hash:net,net": ("net", "net"),
    "hash:net,port,net": ("net", "port", "net"),
}


@dataclass(frozen=True)
class IpSet:
    """One set: its type and members, each a tuple with one value per dimension."""

    name: str
    """The set's name."""
    type: str
    """`hash:net`, `hash:ip,port`, …"""
    members: tuple[tuple[IPv4Network | tuple[str, int], ...], ...]
    """Each member's dimensions: a network (an address is a /32), or (protocol, port)."""
    ipv6: bool = False
    """`family inet6`: never matches an IPv4 packet."""

    def contains(self, values: tuple[IPv4Address | tuple[str, int], ...]) -> bool:
        """Whether a packet's looked-up values are a member."""
        for member in self.members:
            if len(member) != len(values):
                continue
            if all(_dim_matches(m, v) for m, v in zip(member, values, strict=True)):
                return True
        return False


def _dim_matches(
    member: IPv4Network | tuple[str, int], value: IPv4Address | tuple[str, int]
) -> bool:
    if isinstance(member, IPv4Network):
        return isinstance(value, IPv4Address) and value in member
    return member == value


IpSets = Mapping[str, IpSet]
"""Sets by name."""


def is_ipset_text(text: str) -> bool:
    """Whether `text` looks like `ipset save` output (its first line creates a set)."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first.startswith("create ")


def parse_ipset_save(text: str, source: str) -> dict[str, IpSet]:
    """The sets in `ipset save` text; one-line `RulesParseError` on a line it cannot read."""
    types: dict[str, str] = {}
    ipv6: set[str] = set()
    members: dict[str, list[tuple[IPv4Network | tuple[str, int], ...]]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as err:
            raise RulesParseError(f"{source}:{lineno}: cannot split into words: {err}") from None
        verb = words[0]
        if verb == "create" and len(words) >= 3:
            name, kind = words[1], words[2]
            types[name] = kind
            members[name] = []
            if "family" in words and words[words.index("family") + 1 :][:1] == ["inet6"]:
                ipv6.add(name)
        elif verb == "add" and len(words) >= 3:
            name = words[1]
            if name not in types:
                raise RulesParseError(
                    f"{source}:{lineno}: add to set {name!r} before its create line"
                )
            if name in ipv6 or types[name] not in _DIMENSIONS:
                continue
            members[name].append(_member(words[2], _DIMENSIONS[types[name]], source, lineno))
        else:
            raise RulesParseError(
                f"{source}:{lineno}: unexpected line {line[:40]!r} (expected create or add, as"
                " `ipset save` prints)"
            )
    return {
        name: IpSet(name, kind, tuple(members[name]), name in ipv6) for name, kind in types.items()
    }


def _member(
    text: str, dims: tuple[str, ...], source: str, lineno: int
) -> tuple[IPv4Network | tuple[str, int], ...]:
    parts = text.split(",")
    if len(parts) != len(dims):
        raise RulesParseError(
            f"{source}:{lineno}: member {text!r} has {len(parts)} parts, not {len(dims)}"
        )
    out: list[IPv4Network | tuple[str, int]] = []
    for part, dim in zip(parts, dims, strict=True):
        try:
            if dim == "port":
                proto, _, number = part.rpartition(":")
                out.append(((proto or "tcp").lower(), int(number)))
            elif "-" in part:
                # A range (10.0.0.1-10.0.0.9) is kept as its first address.
                out.append(IPv4Network(part.split("-")[0]))
            else:
                out.append(IPv4Network(part, strict=False))
        except ValueError:
            raise RulesParseError(f"{source}:{lineno}: {part!r} is not an IPv4 {dim}") from None
    return tuple(out)


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
    dims = _DIMENSIONS.get(found.type, ())
    for dim, flag in zip(dims, flags.split(","), strict=False):
        if dim == "port":
            values.append((pkt.proto.value, pkt.sport if flag == "src" else pkt.dport))
        else:
            values.append(pkt.src if flag == "src" else pkt.dst)
    if len(values) != len(dims):
        return None
    return found.contains(tuple(values)) != negate
