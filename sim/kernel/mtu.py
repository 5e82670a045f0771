"""Packet sizes against MTUs: TCP's MSS, the DF bit, fragments and reassembly, as Linux does.

- A socket's packet: a TCP SYN advertises MSS = route MTU − 40 (tcp_advertise_mss);
  a UDP datagram gets DF only when it fits the route's MTU (__ip_make_skb with
  IP_PMTUDISC_WANT, the default), else the sender fragments it.
- Leaving a device (ip_finish_output): a packet larger than the device's MTU, or
  one reassembled on the way (frag_max_size), is cut into fragments
  (ip_do_fragment); kubehop follows the first, the others take the same path.
  A socket's own packet is cut even with DF set: IP_PMTUDISC_WANT sets ignore_df.
- Forwarding (ip_forward, before the TTL drops and before FORWARD): a packet
  larger than the out device's MTU with DF set is dropped and its source gets
  ICMP fragmentation needed with that MTU (`ip_exceeds_mtu`, `sim.kernel.reject`).
- Arriving: conntrack's defrag (nf_defrag_ipv4, before conntrack at PREROUTING)
  gives netfilter the whole datagram; a netns without netfilter reassembles in
  ip_local_deliver, before the socket.
"""

from __future__ import annotations

from model.packet import Packet, Proto
from sim.kernel.devices import IfKind, Interface

__all__ = [
    "IP_HEADER",
    "LOOPBACK_MTU",
    "MSS_HEADERS",
    "TCP_DATA_HEADER",
    "TIMESTAMP_OPTION",
    "UDP_HEADERS",
    "cut",
    "device_mtu",
    "exceeds_mtu",
    "fragment_lengths",
    "reassembled",
    "size_text",
]

IP_HEADER = 20
"""An IPv4 header without options."""

UDP_HEADERS = 28
"""IPv4 20 and UDP 8: a datagram is this plus its payload."""

MSS_HEADERS = 40
"""IPv4 20 and TCP 20: the MSS is the MTU less these."""

TIMESTAMP_OPTION = 12
"""The TCP timestamp option as every data segment carries it (net.ipv4.tcp_timestamps=1):
it comes out of the MSS."""

TCP_DATA_HEADER = MSS_HEADERS + TIMESTAMP_OPTION
"""IPv4 20, TCP 20 and the timestamp option 12: a data segment is this plus its data."""

LOOPBACK_MTU = 65536
"""lo's MTU, whatever the model's lo says."""


def device_mtu(iface: Interface) -> int:
    """The MTU a packet leaving `iface` must fit (ip_skb_dst_mtu: the device's, as no
    route of kubehop's sets an `mtu` of its own and no path MTU is learned before)."""
    return LOOPBACK_MTU if iface.kind is IfKind.LOOPBACK else iface.mtu


def fragment_lengths(length: int, mtu: int) -> tuple[int, ...]:
    """The total lengths of the fragments ip_do_fragment cuts a `length`-byte datagram into
    for `mtu`: each carries a multiple of 8 bytes of the payload but the last."""
    per = (mtu - IP_HEADER) // 8 * 8
    left = length - IP_HEADER
    lengths: list[int] = []
    while left > 0:
        chunk = per if left > per else left
        lengths.append(IP_HEADER + chunk)
        left -= chunk
    return tuple(lengths)


def exceeds_mtu(pkt: Packet, mtu: int) -> bool:
    """ip_exceeds_mtu for a forwarded packet: larger than `mtu` with DF set; without DF it
    is fragmented instead. (A datagram reassembled from fragments carries no DF: Linux
    cuts only datagrams without it, so the kernel's frag_max_size test never applies.)"""
    return pkt.length > mtu and pkt.df


def cut(pkt: Packet, mtu: int) -> tuple[Packet, tuple[int, ...]] | None:
    """The first fragment of `pkt` cut for `mtu`, and every fragment's length; None when it
    leaves whole (it fits, and was not reassembled from larger fragments on the way).

    A datagram reassembled on the way goes out in fragments no larger than those it
    came in (ip_do_fragment takes frag_max_size as the MTU when that is smaller).
    """
    limit = min(mtu, pkt.frag_max) if pkt.frag_max else mtu
    if pkt.length <= limit:
        return None
    lengths = fragment_lengths(pkt.length, limit)
    first = pkt.model_copy(
        update={
            "length": lengths[0],
            "df": False,
            "mf": True,
            "datagram": pkt.length,
            "frag_max": None,
        }
    )
    return first, lengths


def reassembled(pkt: Packet) -> Packet:
    """The whole datagram `pkt` is the first fragment of, as reassembly hands it on."""
    assert pkt.datagram is not None
    return pkt.model_copy(
        update={"length": pkt.datagram, "mf": False, "datagram": None, "frag_max": pkt.length}
    )


def size_text(pkt: Packet) -> str:
    """`1500 bytes, DF` / `1444 bytes, first fragment of 1500` / `60 bytes, DF, MSS 1410`."""
    parts = [f"{pkt.length} bytes"]
    if pkt.mf and pkt.datagram is not None:
        parts.append(f"first fragment of a {pkt.datagram}-byte datagram")
    if pkt.df:
        parts.append("DF")
    if pkt.mss is not None and pkt.proto is Proto.TCP:
        parts.append(f"MSS {pkt.mss}")
    return ", ".join(parts)
