"""Tunnels: a packet wrapped in an outer one to another host, and unwrapped there.

VXLAN, sending (vxlan_xmit): the route's next hop is looked up in the device's
neighbour entries (with learning off, only the permanent ones the CNI wrote),
the MAC found there in its FDB, which names the remote host; the frame goes
inside an outer IPv4/UDP/VXLAN header from the device's local address to that
host, and the host sends the outer packet as one of its own (OUTPUT,
POSTROUTING, its routes). Receiving: the outer packet is for the host itself;
after INPUT the device's UDP socket takes the header off and the frame
arrives on the device as if from a wire.

IP-in-IP (`tunl0`, the ipip module's device with neither local nor remote
address): the route's next hop is the remote host; the packet, without an
Ethernet header, goes inside an outer IPv4 header of protocol 4, from the
address the host's routes choose for that host, and the outer packet is the
host's own as with VXLAN. The receiving host's ipip handler takes it after
INPUT and the inner packet arrives on its `tunl0`.

Both keep the skb, so the outer packet carries the inner one's mark (the
mark is lost only where a packet crosses into another netns).
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from model.packet import VXLAN_OVERHEAD, Packet, Proto
from model.trace import HopKind, Verdict
from sim.kernel.devices import IfKind, Interface, Netns
from sim.kernel.mtu import device_mtu
from sim.kernel.outcome import End

if TYPE_CHECKING:
    from sim.kernel.walk import Walker

__all__ = [
    "IPIP_OVERHEAD",
    "OVERHEAD",
    "decapsulate",
    "encapsulate",
    "ipip_encapsulate",
    "tunnel_for",
]

OVERHEAD = VXLAN_OVERHEAD
"""Bytes VXLAN adds around an IP packet: outer IPv4 20, UDP 8, VXLAN 8, and the inner
frame's Ethernet header 14."""

IPIP_OVERHEAD = 20
"""Bytes IP-in-IP adds around a packet: the outer IPv4 header."""

_SOURCE_PORTS = (32768, 60999)
"""udp_flow_src_port's range: the netns's ip_local_port_range, by default."""


def source_port(inner: Packet) -> int:
    """The outer UDP source port: a hash of the inner flow, the same both ways.

    Linux takes skb_get_hash(), whose flow keys are put in a canonical order,
    so a flow and its reply hash alike; kubehop hashes the same fields with
    its own function, so the port differs from the kernel's but is as stable.
    """
    ends = sorted([(int(inner.src), inner.sport), (int(inner.dst), inner.dport)])
    key = f"{inner.proto.value}:{ends}".encode()
    value = int.from_bytes(hashlib.sha256(key).digest()[:4])
    low, high = _SOURCE_PORTS
    return low + (value * (high - low) >> 32)


def encapsulate(walker: Walker, ns: Netns, out: Interface, pkt: Packet, hop: IPv4Address) -> End:
    """Send `pkt` out of VXLAN device `out` towards next hop `hop`: wrap it, route the outer."""
    assert out.vxlan is not None
    tunnel = out.vxlan
    if hop not in out.neighbours:
        return walker.unreachable(
            ns,
            pkt,
            f"{out.name} on {ns.label} has no neighbour entry for {hop}: the CNI writes one"
            " per other node, and with learning off the device asks no one",
        )
    mac = out.neighbours[hop]
    remote = tunnel.fdb.get(mac)
    if remote is None:
        return walker.unreachable(
            ns,
            pkt,
            f"{out.name} on {ns.label} has no FDB entry for {mac}: it does not know which host"
            " that MAC is behind",
        )
    framed = pkt.model_copy(update={"src_mac": out.mac, "dst_mac": mac})
    # The device is created without `df set`: the outer header has no DF (vxlan_xmit_one).
    outer = Packet(
        src=tunnel.local,
        dst=remote,
        sport=source_port(framed),
        dport=tunnel.port,
        proto=Proto.UDP,
        tcp_flags="",
        mark=pkt.mark,
        inner=framed,
        vni=tunnel.vni,
        df=False,
    )
    walker.emit(
        HopKind.ENCAP,
        ns,
        framed,
        outer,
        f"{out.name} wraps the frame for {hop} in VXLAN (VNI {tunnel.vni}): {hop} is the"
        f" remote device {mac}, which the FDB places on {remote}, so the outer packet goes"
        f" {outer.src}:{outer.sport} → {outer.dst}:{outer.dport}/udp",
        interface=out.name,
        detail=f"neighbour {hop} lladdr {mac} PERMANENT; fdb {mac} dev {out.name} dst {remote}"
        f" self permanent; vxlan id {tunnel.vni} local {tunnel.local} dstport {tunnel.port}",
        note=f"VXLAN adds {OVERHEAD} bytes (outer IPv4 20, UDP 8, VXLAN 8, and the inner"
        f" frame's Ethernet header 14): {_outer_fits(walker, ns, out, pkt, outer, OVERHEAD)};"
        " the source port comes from a hash of the inner flow",
    )
    return walker.local_out(ns, outer)


def ipip_encapsulate(
    walker: Walker, ns: Netns, out: Interface, pkt: Packet, hop: IPv4Address
) -> End:
    """Send `pkt` out of IP-in-IP device `out` to next hop `hop`: the remote host itself."""
    way = walker.route(ns, hop)
    if way is None or way.dev == out.name:
        return walker.unreachable(
            ns,
            pkt,
            f"{out.name} on {ns.label} cannot reach {hop}, the tunnel's remote end: no route to"
            " it other than through the tunnel itself",
        )
    src = way.src or ns.iface(way.dev).primary
    assert src is not None
    inner = pkt.model_copy(update={"src_mac": None, "dst_mac": None})
    # tunl0's ttl is "inherit": the outer header takes the inner packet's, and (it has no
    # pmtudisc of its own) the inner packet's DF too (ip_tunnel_xmit).
    outer = Packet(
        src=src,
        dst=hop,
        sport=0,
        dport=0,
        proto=Proto.IPIP,
        ttl=pkt.ttl,
        tcp_flags="",
        mark=pkt.mark,
        inner=inner,
        df=pkt.df,
    )
    walker.emit(
        HopKind.ENCAP,
        ns,
        pkt,
        outer,
        f"{out.name} wraps the packet in an outer IPv4 header (protocol 4, IP-in-IP) to {hop},"
        f" the route's next hop and the tunnel's remote end: the outer packet goes"
        f" {outer.src} → {outer.dst}",
        interface=out.name,
        detail=f"ipip remote any local any dev {out.name}; outer {outer.src} → {outer.dst}"
        f" proto {Proto.IPIP.value} (4)",
        note=f"IP-in-IP adds {IPIP_OVERHEAD} bytes (the outer IPv4 header):"
        f" {_outer_fits(walker, ns, out, pkt, outer, IPIP_OVERHEAD)}",
    )
    return walker.local_out(ns, outer)


def _outer_fits(
    walker: Walker, ns: Netns, out: Interface, inner: Packet, outer: Packet, overhead: int
) -> str:
    """The outer packet's length against the MTU of the device it leaves by, in a clause."""
    way = walker.route(ns, outer.dst)
    under = ns.iface(way.dev) if way is not None and ns.has_iface(way.dev) else None
    text = f"the outer packet is {outer.length} bytes ({inner.length} + {overhead})"
    if under is None:
        return text
    mtu = device_mtu(under)
    verdict = "within" if outer.length <= mtu else "over"
    text += f", {verdict} {under.name}'s MTU of {mtu}"
    if outer.length <= mtu and out.mtu + overhead <= mtu:
        text += (
            f"; {out.name}'s MTU of {out.mtu} keeps every outer packet within {out.mtu + overhead}"
        )
    return text


def tunnel_for(ns: Netns, pkt: Packet) -> Interface | None:
    """The tunnel device of `ns` that takes `pkt`: the VXLAN device whose socket it is for
    (UDP to its port, its VNI), or the IP-in-IP device for a protocol 4 packet."""
    if pkt.inner is None:
        return None
    if pkt.proto is Proto.IPIP:
        return next((i for i in ns.interfaces if i.kind is IfKind.IPIP), None)
    if pkt.proto is not Proto.UDP:
        return None
    return next(
        (
            i
            for i in ns.interfaces
            if i.kind is IfKind.VXLAN
            and i.vxlan is not None
            and i.vxlan.port == pkt.dport
            and i.vxlan.vni == pkt.vni
        ),
        None,
    )


def decapsulate(walker: Walker, ns: Netns, device: Interface, pkt: Packet) -> End:
    """The device's socket unwraps `pkt`; the frame arrives on the device."""
    assert pkt.inner is not None
    if device.kind is IfKind.IPIP:
        return _ipip_decapsulate(walker, ns, device, pkt)
    assert device.vxlan is not None
    inner = pkt.inner.model_copy(update={"mark": pkt.mark})
    walker.emit(
        HopKind.DECAP,
        ns,
        pkt,
        inner,
        f"the VXLAN socket of {device.name} on UDP {device.vxlan.port} takes the packet from"
        f" {pkt.src} off its outer header (VNI {pkt.vni}) and hands the frame inside to"
        f" {device.name}",
        interface=device.name,
        detail=f"udp {pkt.dst}:{pkt.dport} ← {pkt.src}:{pkt.sport}; vxlan id {pkt.vni}",
    )
    if inner.dst_mac != device.mac:
        reason = (
            f"{device.name} on {ns.label} drops the frame for {inner.dst_mac}: not its MAC"
            f" ({device.mac})"
        )
        walker.emit(HopKind.DROP, ns, inner, inner, reason)
        return End(Verdict.DROPPED, reason, inner, ns.name)
    return walker.receive(ns, device, inner)


def _ipip_decapsulate(walker: Walker, ns: Netns, device: Interface, pkt: Packet) -> End:
    """The ipip handler takes the outer header off; the inner packet arrives on `device`."""
    assert pkt.inner is not None
    inner = pkt.inner.model_copy(update={"mark": pkt.mark})
    walker.emit(
        HopKind.DECAP,
        ns,
        pkt,
        inner,
        f"the ipip handler takes the packet from {pkt.src} (protocol 4) off its outer header and"
        f" hands the packet inside to {device.name}, which takes IP-in-IP from any host",
        interface=device.name,
        detail=f"ipip {pkt.src} → {pkt.dst} proto {Proto.IPIP.value} (4) on {device.name}",
    )
    return walker.ip_receive(ns, device, inner, prerouted=False)
