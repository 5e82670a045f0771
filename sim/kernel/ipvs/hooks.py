"""IPVS at its netfilter hooks (net/netfilter/ipvs/ip_vs_core.c), as pure functions.

IPVS registers, for IPv4:

- LOCAL_IN: `ip_vs_reply4` at NF_IP_PRI_NAT_SRC - 2 (98) and `ip_vs_remote_request4` at
  NF_IP_PRI_NAT_SRC - 1 (99), after the filter table's INPUT chain;
- LOCAL_OUT: `ip_vs_local_reply4` at NF_IP_PRI_NAT_DST + 1 (-99) and `ip_vs_local_request4`
  at NF_IP_PRI_NAT_DST + 2 (-98), after the nat table's OUTPUT chain;
- FORWARD: `ip_vs_reply4` at 100, after the filter table's FORWARD chain.

A request hook (`request`) finds the packet's connection or, for a new one (a
TCP SYN, any UDP packet) to a virtual server, schedules a real server and
makes one; with NAT forwarding it rewrites the destination. ip_vs_nat_xmit
then routes the packet to the real server: a remote one is sent on at once
through LOCAL_OUT and POSTROUTING (`ip_vs_nat_send_or_cont`, NF_STOLEN), the
rest of the hook never seeing it; a local one continues up the stack
(NF_ACCEPT). A virtual server without a usable real server answers with ICMP
port unreachable and drops the packet (`ip_vs_leave`). A reply hook (`reply`)
puts the virtual address back as the source of a real server's packet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Literal

from model.frozen import frozen
from model.ipvs import IpvsConn, IpvsState, IpvsTable, RealServer, VirtualServer
from model.packet import Packet, Proto
from sim.kernel.ipvs.schedule import schedule, updated

__all__ = ["IpvsVerdict", "Steer", "reply", "request"]

Kind = Literal["new", "existing", "reply", "no-dest"]

Steer = Callable[[VirtualServer], RealServer | None]
"""Picks the real server in advance (`--pick`, the fork view); None: the scheduler picks."""


@frozen
class IpvsVerdict:
    """What IPVS did to one packet at one hook."""

    kind: Kind
    """`new`: a connection scheduled; `existing`: a packet of a known connection; `reply`: a
    real server's packet un-NATed; `no-dest`: the virtual server had no real server."""
    service: VirtualServer
    """The virtual server."""
    server: RealServer | None
    """The real server (None for `no-dest`)."""
    before: Packet
    """The packet as IPVS found it."""
    packet: Packet
    """The packet after IPVS's rewrite."""
    state: IpvsState
    """The netns's IPVS state after the packet."""
    why: str = ""
    """Why this real server, in a clause."""
    persistent: bool = False
    """The real server came from the client's persistence template (session affinity)."""
    pinned: bool = False
    """The real server was chosen in advance (`--pick`, the fork view), not by the scheduler."""
    assumed: str | None = None
    """What the choice rests on that the walk cannot know."""
    local: bool = False
    """The real server's address is the node's own: the packet continues up the stack."""

    @property
    def stolen(self) -> bool:
        """IPVS sent the packet on itself (to a remote real server): the hook ends here."""
        return self.kind in ("new", "existing") and not self.local


_PROTOS = (Proto.TCP, Proto.UDP, Proto.SCTP)


def _timeout(table: IpvsTable, proto: Proto) -> int:
    tcp, _, udp = table.timeouts
    return udp if proto is Proto.UDP else tcp


def request(
    table: IpvsTable,
    state: IpvsState,
    pkt: Packet,
    *,
    now: float,
    local_addrs: frozenset[IPv4Address],
    steer: Steer | None = None,
) -> IpvsVerdict | None:
    """ip_vs_in: None when IPVS leaves the packet alone (no connection, no virtual server)."""
    if pkt.proto not in _PROTOS:
        return None
    key = (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
    conn = state.conns.get(key)
    syn = pkt.proto is Proto.TCP and set(pkt.tcp_flags.split(",")) == {"SYN"}
    if conn is not None and syn:
        # A new SYN on a connection IPVS still has: the client reused the port of a closed
        # connection (TIME_WAIT), and with conn_reuse_mode=1 IPVS expires the old entry and
        # schedules anew (is_new_conn_expected). kubehop takes every earlier one as closed.
        old = (conn.proto, conn.vaddr, conn.vport)
        count = state.active.get((old, f"{conn.daddr}:{conn.dport}"), 1)
        state = replace(
            state,
            active=updated(state.active, (old, f"{conn.daddr}:{conn.dport}"), max(count - 1, 0)),
        )
        conn = None
    if conn is not None and conn.expires >= now:
        vs = table.lookup(pkt.proto, conn.vaddr, conn.vport)
        server = RealServer(conn.daddr, conn.dport)
        if vs is not None:
            server = next((rs for rs in vs.real_servers if rs.addr == server.addr), server)
        after = pkt.model_copy(update={"dst": conn.daddr, "dport": conn.dport})
        return IpvsVerdict(
            "existing",
            vs or VirtualServer(pkt.proto, pkt.dst, pkt.dport),
            server,
            pkt,
            after,
            state,
            "the packet belongs to a connection IPVS already has",
            local=_local(conn.daddr, local_addrs),
        )
    vs = table.lookup(pkt.proto, pkt.dst, pkt.dport)
    if vs is None:
        return None
    if pkt.proto is Proto.TCP:
        flags = set(pkt.tcp_flags.split(","))
        # tcp_conn_schedule: only a SYN (and not a RST) opens a connection.
        if "SYN" not in flags or "RST" in flags:
            return None
    chosen, state, why, persistent, pinned, assumed = _choose(vs, state, pkt, now, steer)
    if chosen is None:
        return IpvsVerdict("no-dest", vs, None, pkt, pkt, state, why)
    conn = IpvsConn(
        pkt.proto,
        pkt.src,
        pkt.sport,
        pkt.dst,
        pkt.dport,
        chosen.ip,
        chosen.port,
        now + _timeout(table, pkt.proto),
    )
    count = state.active.get((vs.key, chosen.addr), 0) + 1
    state = replace(
        state,
        conns=updated(state.conns, conn.key, conn),
        replies=updated(state.replies, conn.out_key, conn.key),
        active=updated(state.active, (vs.key, chosen.addr), count),
    )
    after = pkt.model_copy(update={"dst": chosen.ip, "dport": chosen.port})
    if chosen.forward != "masq":
        assumed = "; ".join(
            filter(
                None,
                (assumed, f"forwarding method {chosen.forward} is not simulated: walked as masq"),
            )
        )
    return IpvsVerdict(
        "new",
        vs,
        chosen,
        pkt,
        after,
        state,
        why,
        persistent,
        pinned,
        assumed,
        _local(chosen.ip, local_addrs),
    )


def _local(addr: IPv4Address, local_addrs: frozenset[IPv4Address]) -> bool:
    return addr in local_addrs or addr.is_loopback


def _choose(
    vs: VirtualServer, state: IpvsState, pkt: Packet, now: float, steer: Steer | None
) -> tuple[RealServer | None, IpvsState, str, bool, bool, str | None]:
    """The real server for a new connection: the persistence template's, a pinned one, or the
    scheduler's (ip_vs_sched_persist, ip_vs_schedule)."""
    template_key = None
    if vs.persistent is not None:
        masked = IPv4Address(int(pkt.src) & int(vs.netmask))
        template_key = (vs.proto, masked, vs.ip, vs.port)
        template = state.templates.get(template_key)
        if template is not None and template.expires >= now:
            kept = next(
                (
                    rs
                    for rs in vs.real_servers
                    if (rs.ip, rs.port) == (template.daddr, template.dport) and rs.weight > 0
                ),
                None,
            )
            if kept is not None:
                # Each use restarts the template's timer (ip_vs_conn_put).
                state = replace(
                    state,
                    templates=updated(
                        state.templates,
                        template_key,
                        replace(template, expires=now + vs.persistent),
                    ),
                )
                why = (
                    f"persistence: the template for client {masked} (-p {vs.persistent}) sends it"
                    f" to {kept.addr} again"
                )
                return kept, state, why, True, False, None
    pinned = steer(vs) if steer is not None else None
    assumed: str | None = None
    if pinned is not None:
        chosen: RealServer | None = pinned
        why = "the real server chosen in advance"
    else:
        choice = schedule(vs, state, pkt)
        chosen, state, why, assumed = choice.server, choice.state, choice.why, choice.assumed
    if chosen is not None and template_key is not None and vs.persistent is not None:
        template = IpvsConn(
            vs.proto, template_key[1], 0, vs.ip, vs.port, chosen.ip, chosen.port,
            now + vs.persistent,
        )  # fmt: skip
        state = replace(state, templates=updated(state.templates, template_key, template))
        why += (
            f"; a persistence template now keeps client {template_key[1]} on {chosen.addr} for"
            f" {vs.persistent} s (-p {vs.persistent})"
        )
    return chosen, state, why, False, pinned is not None, assumed


def reply(table: IpvsTable, state: IpvsState, pkt: Packet) -> IpvsVerdict | None:
    """ip_vs_out: a real server's packet of a known connection gets the virtual address back."""
    if pkt.proto not in _PROTOS:
        return None
    client = state.replies.get((pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport))
    conn = state.conns.get(client) if client is not None else None
    if conn is None:
        return None
    vs = table.lookup(pkt.proto, conn.vaddr, conn.vport) or VirtualServer(
        pkt.proto, conn.vaddr, conn.vport
    )
    server = next(
        (rs for rs in vs.real_servers if (rs.ip, rs.port) == (conn.daddr, conn.dport)),
        RealServer(conn.daddr, conn.dport),
    )
    after = pkt.model_copy(update={"src": conn.vaddr, "sport": conn.vport})
    return IpvsVerdict("reply", vs, server, pkt, after, state, "the reply of a connection IPVS has")
