"""IPVS's schedulers: which real server a new connection gets (net/netfilter/ipvs/ip_vs_*.c).

Each is a pure function of the virtual server, the netns's `IpvsState` and the
packet; it returns the chosen real server (None: none available), the new
state, and why, in a clause. Real servers are walked in the kernel's list
order, which `VirtualServer.real_servers` keeps.

What a walk cannot know it assumes and says: the least-connection family
(lc, wlc, sed, nq, lblc, lblcr) counts connections, and kubehop counts only
those this simulation opened (each taken to be established and still open; no
other client's); a scheduler kube-proxy does not offer (mh, fo, ovf, twos, read
from a node's dump) is walked as rr. Overload flags (`-x` thresholds) are not
modelled: kube-proxy sets none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from ipaddress import IPv4Address
from typing import TypeVar

from immutables import Map

from model.frozen import frozen
from model.ipvs import IpvsState, RealServer, VirtualServer
from model.packet import Packet

__all__ = ["LIVE_COUNTS", "Choice", "removed", "schedule", "updated"]

K = TypeVar("K")
V = TypeVar("V")

_GOLDEN_RATIO_32 = 0x61C88647
_TAB_BITS = 8
_TAB_SIZE = 1 << _TAB_BITS
_U32 = 0xFFFFFFFF

LIVE_COUNTS = (
    "kubehop counts only the connections this simulation opened (each taken to be established"
    " and still open) and no other client's: the node's live counts (ipvsadm -Ln's ActiveConn,"
    " InActConn) are unknown to it"
)
"""What the least-connection schedulers assume, said on the hop."""


@frozen
class Choice:
    """A scheduler's decision."""

    server: RealServer | None
    """The real server chosen; None when none is available."""
    state: IpvsState
    """The netns's IPVS state after the choice (scheduler positions, lblc's assignments)."""
    why: str
    """Why this one, in a clause."""
    assumed: str | None = None
    """What the choice rests on that the walk cannot know."""


def _available(rs: RealServer) -> bool:
    return rs.weight > 0


def _active(state: IpvsState, vs: VirtualServer, rs: RealServer) -> int:
    return state.active.get((vs.key, rs.addr), 0)


def schedule(vs: VirtualServer, state: IpvsState, pkt: Packet) -> Choice:
    """`vs`'s scheduler picks a real server for a new connection of `pkt`."""
    servers = vs.real_servers
    if not any(_available(rs) for rs in servers):
        return Choice(None, state, "it has no real server with a weight above 0")
    name = vs.scheduler
    if name == "rr":
        return _rr(vs, state)
    if name == "wrr":
        return _wrr(vs, state)
    if name in ("lc", "wlc", "sed", "nq"):
        return _least(vs, state, name)
    if name in ("lblc", "lblcr"):
        return _lblc(vs, state, pkt)
    if name == "sh":
        return _hashed(vs, state, pkt.src, pkt.sport if "sh-port" in vs.flags else 0, source=True)
    if name == "dh":
        return _hashed(vs, state, pkt.dst, 0, source=False)
    choice = _rr(vs, state)
    return replace(
        choice,
        assumed=f"scheduler {name} is not simulated (kube-proxy does not offer it); kubehop"
        " walked it as rr",
    )


def _rr(vs: VirtualServer, state: IpvsState) -> Choice:
    """ip_vs_rr_schedule: the next real server after the last one chosen, skipping weight 0."""
    servers = vs.real_servers
    last, _ = state.positions.get(vs.key, (-1, 0))
    for step in range(1, len(servers) + 1):
        at = (last + step) % len(servers)
        if _available(servers[at]):
            positions = updated(state.positions, vs.key, (at, 0))
            turn = f"{at + 1} of {len(servers)}"
            why = (
                f"round-robin: the first new connection takes the first real server in the list"
                f" ({turn})"
                if last < 0
                else f"round-robin: the real server after the one the previous new connection got"
                f" ({turn} in the kernel's list; after the last it starts over)"
            )
            return Choice(servers[at], replace(state, positions=positions), why)
    return Choice(None, state, "no real server has a weight above 0")


def _wrr(vs: VirtualServer, state: IpvsState) -> Choice:
    """ip_vs_wrr_schedule: round-robin in passes, a server taken while its weight ≥ the
    current weight, which drops by the weights' gcd after each pass."""
    servers = vs.real_servers
    weights = [rs.weight for rs in servers]
    di = _gcd(weights)
    mw = max(weights) - (di - 1)
    last, cw = state.positions.get(vs.key, (-1, mw))
    at = last
    for _ in range(len(servers) * (mw // max(di, 1) + 2)):
        at += 1
        if at >= len(servers):
            at = -1
            cw -= di
            if cw <= 0:
                cw = mw
            continue
        if servers[at].weight >= cw and _available(servers[at]):
            positions = updated(state.positions, vs.key, (at, cw))
            why = (
                f"weighted round-robin: the next real server whose weight {servers[at].weight} is"
                f" at least the current weight {cw}"
                + (" (all weights equal: plain round-robin)" if len(set(weights)) == 1 else "")
            )
            return Choice(servers[at], replace(state, positions=positions), why)
    return Choice(None, state, "no real server has a weight above 0")


def _gcd(values: list[int]) -> int:
    from math import gcd

    out = 0
    for value in values:
        if value > 0:
            out = gcd(out, value)
    return out or 1


def _least(vs: VirtualServer, state: IpvsState, name: str) -> Choice:
    """lc, wlc, sed, nq: the fewest connections (per weight); ties go to the earlier server."""
    best: RealServer | None = None
    best_load = 0
    for rs in vs.real_servers:
        if not _available(rs):
            continue
        active = _active(state, vs, rs)
        if name == "nq" and active == 0:
            best, best_load = rs, 1
            break
        load = active * 256 if name in ("lc", "wlc") else active + 1
        if best is None:
            best, best_load = rs, load
        elif name == "lc":
            if load < best_load:
                best, best_load = rs, load
        elif best_load * rs.weight > load * best.weight:
            best, best_load = rs, load
    if best is None:
        return Choice(None, state, "no real server has a weight above 0")
    counts = ", ".join(f"{rs.addr} {_active(state, vs, rs)}" for rs in vs.real_servers)
    why = f"{name}: the real server with the fewest connections (per weight): {counts}"
    return Choice(best, state, why, LIVE_COUNTS)


def _lblc(vs: VirtualServer, state: IpvsState, pkt: Packet) -> Choice:
    """lblc: the server this destination address was given, unless it is overloaded; else wlc.

    lblcr keeps a set of servers per destination; kubehop walks it as lblc and says so.
    """
    key = (vs.key, pkt.dst)
    kept = state.assigned.get(key)
    current = next((rs for rs in vs.real_servers if rs.addr == kept), None)
    assumed = LIVE_COUNTS
    if vs.scheduler == "lblcr":
        assumed += "; lblcr's server sets are walked as lblc's single server"
    if current is not None and _available(current) and not _overloaded(vs, state, current):
        why = f"{vs.scheduler}: {pkt.dst} was given {current.addr} before, and it is not overloaded"
        return Choice(current, state, why, assumed)
    choice = _least(vs, state, "wlc")
    if choice.server is None:
        return choice
    assigned = updated(state.assigned, key, choice.server.addr)
    why = (
        f"{vs.scheduler}: the first connection to {pkt.dst} (or its server overloaded) takes the"
        f" least-loaded server, {choice.server.addr}, which later ones to {pkt.dst} keep"
    )
    return Choice(choice.server, replace(state, assigned=assigned), why, assumed)


def _overloaded(vs: VirtualServer, state: IpvsState, rs: RealServer) -> bool:
    """lblc's is_overloaded: more connections than its weight while some server is below half."""
    if _active(state, vs, rs) <= rs.weight:
        return False
    return any(_active(state, vs, d) * 2 < d.weight for d in vs.real_servers)


def _hashed(
    vs: VirtualServer, state: IpvsState, addr: IPv4Address, port: int, *, source: bool
) -> Choice:
    """sh and dh: a 256-bucket table filled with the servers in list order, each `weight`
    buckets in a row; the address (sh: the client's, dh: the destination's) picks a bucket."""
    table = _buckets(vs.real_servers)
    if source:
        bucket = (((port + int(addr)) & _U32) * _GOLDEN_RATIO_32 & _U32) >> (32 - _TAB_BITS)
        what = f"source {addr}" + (f" port {port}" if port else "")
    else:
        bucket = (int(addr) * 2654435761) & (_TAB_SIZE - 1)
        what = f"destination {addr}"
    rs = table[bucket]
    if rs is None or not _available(rs):
        if source and "sh-fallback" in vs.flags:
            rs = next((r for r in vs.real_servers if _available(r)), None)
        else:
            return Choice(None, state, f"{vs.scheduler}: bucket {bucket}'s server is unavailable")
    assert rs is not None
    kind = "source" if source else "destination"
    why = (
        f"{vs.scheduler} ({kind} hashing): {what} hashes to bucket {bucket} of {_TAB_SIZE}, which"
        f" holds {rs.addr}; every connection from there gets the same server"
        if source
        else f"dh (destination hashing): {what} hashes to bucket {bucket} of {_TAB_SIZE}, which"
        f" holds {rs.addr}; every connection to this address gets the same server"
    )
    return Choice(rs, state, why)


def _buckets(servers: tuple[RealServer, ...]) -> list[RealServer | None]:
    """ip_vs_sh_reassign / ip_vs_dh_reassign."""
    if not servers:
        return [None] * _TAB_SIZE
    out: list[RealServer | None] = []
    at, count = 0, 0
    for _ in range(_TAB_SIZE):
        rs = servers[at]
        out.append(rs)
        count += 1
        if count >= rs.weight:
            at = (at + 1) % len(servers)
            count = 0
    return out


def updated(mapping: Mapping[K, V], key: K, value: V) -> Mapping[K, V]:
    """`mapping` with `key` set to `value`: a persistent map's O(log n) copy."""
    base = mapping if isinstance(mapping, Map) else Map(mapping)
    return base.set(key, value)


def removed(mapping: Mapping[K, V], key: K) -> Mapping[K, V]:
    """`mapping` without `key`."""
    base = mapping if isinstance(mapping, Map) else Map(mapping)
    return base.delete(key) if key in base else base
