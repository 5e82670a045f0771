"""A node's routes, neighbours and FDB as iproute2 prints them, and where a real node differs.

`kubehop routes --node N` prints what kubehop models for a node in the form
`ip route`, `ip neigh` and `bridge fdb` print it, so a person can hold it
against the node itself; `--diff FILE` takes what those three commands printed
there (one after the other, in any order) and names the differences that
matter: routes by destination, gateway and device; permanent neighbour
entries; a VXLAN device's FDB entries. Entries the kernel learns and forgets
(reachable neighbours, a bridge's learned MACs) are shown but not compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim.cluster.network import ClusterNetwork
from sim.kernel.devices import IfKind, Netns

__all__ = ["RoutesDiff", "diff_routes", "show_routes"]

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\b", re.IGNORECASE)


def _route_lines(ns: Netns) -> list[str]:
    return [str(route) for route in ns.routes.routes]


def _neigh_lines(ns: Netns) -> list[str]:
    return [
        f"{addr} dev {iface.name} lladdr {mac} PERMANENT"
        for iface in ns.interfaces
        for addr, mac in iface.neighbours.items()
    ]


def _fdb_lines(network: ClusterNetwork, ns: Netns) -> list[str]:
    lines: list[str] = []
    for iface in ns.interfaces:
        if iface.vxlan is not None:
            lines += [
                f"{mac} dev {iface.name} dst {remote} self permanent"
                for mac, remote in iface.vxlan.fdb.items()
            ]
        elif iface.master is not None and iface.peer is not None:
            peer = network.netns(iface.peer[0]).iface(iface.peer[1])
            lines.append(f"{peer.mac} dev {iface.name} master {iface.master}")
    return lines


def show_routes(network: ClusterNetwork, node: str) -> str:
    """`ip route`, `ip neigh` (permanent entries) and `bridge fdb` of `node`, as kubehop has them."""
    ns = network.netns(node)
    sections = [
        (f"ip route   ({node}'s main table)", _route_lines(ns)),
        ("ip neigh   (permanent entries: the ones a CNI writes)", _neigh_lines(ns)),
        (
            "bridge fdb (VXLAN devices' entries, and the MACs the bridge learns)",
            _fdb_lines(network, ns),
        ),
    ]
    out: list[str] = []
    for title, lines in sections:
        out.append(f"# {title}")
        out += lines or ["# (none)"]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class RoutesDiff:
    """What differs between kubehop's model of a node and what the node printed."""

    missing: tuple[str, ...]
    """Lines kubehop models that the node lacks."""
    extra: tuple[str, ...]
    """Lines the node has that kubehop does not model (another agent's, or stale)."""

    @property
    def same(self) -> bool:
        """Nothing compared differs."""
        return not self.missing and not self.extra


def _route_key(line: str) -> tuple[str, str | None, str | None] | None:
    words = line.split()
    if not words or words[0] in ("local", "broadcast", "multicast", "unreachable", "prohibit"):
        return None
    dst = words[0]
    if dst == "blackhole" and len(words) > 1:
        return ("blackhole " + words[1], None, None)
    via = words[words.index("via") + 1] if "via" in words[:-1] else None
    dev = words[words.index("dev") + 1] if "dev" in words[:-1] else None
    return (dst, via, dev)


def _kind(line: str) -> str | None:
    words = line.split()
    if not words or line.startswith("#"):
        return None
    if _MAC.match(words[0]):
        return "fdb"
    if "lladdr" in words or words[-1] in ("FAILED", "INCOMPLETE") or "nud" in words:
        return "neigh"
    return "route"


def diff_routes(network: ClusterNetwork, node: str, text: str) -> RoutesDiff:
    """Compare `node` as kubehop models it with what `ip route; ip neigh; bridge fdb` printed."""
    ns = network.netns(node)
    routes: dict[tuple[str, str | None, str | None], str] = {}
    neigh: dict[str, str] = {}
    fdb: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        kind = _kind(line)
        if kind == "route":
            key = _route_key(line)
            if key is not None:
                routes[key] = line
        elif kind == "neigh" and line.endswith("PERMANENT"):
            words = line.split()
            neigh[f"{words[0]} {words[words.index('dev') + 1]} {_lladdr(words)}".lower()] = line
        elif kind == "fdb" and " dst " in f" {line} ":
            words = line.split()
            dev, dst = words[words.index("dev") + 1], words[words.index("dst") + 1]
            fdb[f"{words[0]} {dev} {dst}".lower()] = line
    want_routes = {_route_key(line): line for line in _route_lines(ns)}
    want_neigh = {
        f"{addr} {iface.name} {mac}".lower(): f"{addr} dev {iface.name} lladdr {mac} PERMANENT"
        for iface in ns.interfaces
        for addr, mac in iface.neighbours.items()
    }
    want_fdb = {
        f"{mac} {iface.name} {remote}".lower(): f"{mac} dev {iface.name} dst {remote} self permanent"
        for iface in ns.interfaces
        if iface.kind is IfKind.VXLAN and iface.vxlan is not None
        for mac, remote in iface.vxlan.fdb.items()
    }
    missing = [line for key, line in want_routes.items() if key not in routes]
    missing += [line for key, line in want_neigh.items() if key not in neigh]
    missing += [line for key, line in want_fdb.items() if key not in fdb]
    extra = [line for key, line in routes.items() if key not in want_routes]
    extra += [line for key, line in neigh.items() if key not in want_neigh]
    extra += [line for key, line in fdb.items() if key not in want_fdb]
    return RoutesDiff(tuple(missing), tuple(extra))


def _lladdr(words: list[str]) -> str:
    return words[words.index("lladdr") + 1] if "lladdr" in words[:-1] else ""
