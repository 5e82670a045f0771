"""A frame entering a Linux bridge port: br_netfilter, the FDB, hairpin, and up to the IP stack.

With br_netfilter loaded (`net.bridge.bridge-nf-call-iptables=1`), PREROUTING
runs at the bridge (`-i cni0`, the port as physdev). If it rewrote the
destination to another address on the same bridge, the frame is bridged to it
(br_netfilter's "bridged DNAT": only the destination MAC changes). A frame for
the bridge's own MAC goes up to the node's IP stack; any other is forwarded to
the port its FDB names, passing FORWARD and POSTROUTING with `-i/-o` the bridge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.netfilter import Hook
from model.packet import Packet
from model.trace import HopKind, Verdict
from sim.kernel.devices import Interface, Netns
from sim.kernel.outcome import End

if TYPE_CHECKING:
    from sim.kernel.walk import Walker

__all__ = ["bridge_in"]


def bridge_in(walker: Walker, ns: Netns, port: Interface, pkt: Packet) -> End:
    """A frame entering a bridge port: br_netfilter's PREROUTING, then up, across or back out."""
    assert port.master is not None
    bridge = ns.iface(port.master)
    if ns.bridge_nf_call_iptables and pkt.mf:
        pkt = walker.reassemble(
            ns,
            port,
            pkt,
            "br_netfilter runs IPv4's PREROUTING hooks, conntrack's defrag first"
            " (nf_defrag_ipv4), which holds the fragment until the rest of its datagram arrives",
            "netfilter sees only whole datagrams",
        )
    if ns.bridge_nf_call_iptables:
        after = walker.hook(
            ns, Hook.PREROUTING, pkt, in_iface=bridge, out_iface=None, physdev_in=port.name
        )
        if isinstance(after, End):
            return after
        if after.dst != pkt.dst:
            if ns.is_local(after.dst):
                after = after.model_copy(update={"dst_mac": bridge.mac})
            else:
                route = walker.route(ns, after.dst)
                if route is not None and route.dev == bridge.name:
                    neighbour = walker.neighbour(ns, bridge, after.dst)
                    if neighbour is None:
                        return walker.unreachable(
                            ns, after, f"ARP for {after.dst} on {bridge.name} gets no answer"
                        )
                    bridged = after.model_copy(update={"dst_mac": neighbour[1].mac})
                    walker.emit(
                        HopKind.BRIDGE,
                        ns,
                        after,
                        bridged,
                        f"the new destination {after.dst} is on this bridge, so br_netfilter "
                        f"bridges the frame instead of routing it: only the destination MAC "
                        f"changes (to {neighbour[0].label}'s), the TTL stays",
                        interface=bridge.name,
                        detail=f"ip route get {after.dst}: {route}; neighbour {after.dst} "
                        f"lladdr {neighbour[1].mac} (br_nf_pre_routing_finish: bridged DNAT)",
                    )
                    after = bridged
                else:
                    after = after.model_copy(update={"dst_mac": bridge.mac})
        pkt = after
    if pkt.dst_mac == bridge.mac:
        walker.emit(
            HopKind.BRIDGE,
            ns,
            pkt,
            pkt,
            f"the frame entering {bridge.name} by {port.name} is addressed to {bridge.name} "
            f"itself (the pods' gateway), so the bridge hands it up to {ns.label}'s IP stack",
            interface=bridge.name,
            detail=f"dst {pkt.dst_mac} is {bridge.name}'s own address; fdb learns "
            f"{pkt.src_mac} on {port.name}",
        )
        return walker.ip_receive(ns, bridge, pkt, prerouted=ns.bridge_nf_call_iptables)
    out_port = walker.fdb(ns, bridge, pkt.dst_mac)
    if out_port is None:
        return End(
            Verdict.DROPPED,
            f"{bridge.name} on {ns.label} knows no port for {pkt.dst_mac}",
            pkt,
            ns.name,
        )
    if out_port == port and not port.hairpin:
        return End(
            Verdict.DROPPED,
            f"{bridge.name} on {ns.label} would send the frame back out {port.name}, where it "
            "came from, and hairpin mode is off on that port",
            pkt,
            ns.name,
        )
    hairpin = out_port == port
    walker.emit(
        HopKind.BRIDGE,
        ns,
        pkt,
        pkt,
        (
            f"{bridge.name} sends the frame back out {port.name}, the port it came in by: "
            "hairpin mode (set by the CNI bridge plugin) allows it"
            if hairpin
            else f"{bridge.name} forwards the frame from {port.name} to {out_port.name}: "
            f"its FDB has {pkt.dst_mac} behind that port (L2, no routing, TTL unchanged)"
        ),
        interface=bridge.name,
        detail=f"fdb {pkt.dst_mac} dev {out_port.name} master {bridge.name}"
        + (" (hairpin on)" if hairpin else ""),
    )
    if ns.bridge_nf_call_iptables:
        after = walker.forward(
            ns, pkt, bridge, bridge, physdev_in=port.name, physdev_out=out_port.name
        )
        if isinstance(after, End):
            return after
        pkt = after
    # br_nf_dev_queue_xmit: a datagram defrag reassembled leaves the port in fragments again.
    return walker.cross_veth(ns, out_port, walker.fragment(ns, out_port, pkt))
