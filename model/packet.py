"""Packets and conntrack tuples, as the kernel sees them."""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Proto(StrEnum):
    """An L4 protocol, spelled as iptables spells it (`-p tcp`)."""

    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"
    IPIP = "ipencap"
    """IP-in-IP (IPPROTO_IPIP, 4), which /etc/protocols and so iptables call `ipencap`: the
    outer header of a tunnel such as Calico's `tunl0`. It has no ports."""
    ICMP = "icmp"
    """ICMP, which kubehop sends only as an error back to a sender (destination unreachable,
    after a REJECT or to a port nobody listens on): the packet it answers is in `inner`. It
    has no ports."""


PORTLESS = frozenset({Proto.IPIP, Proto.ICMP})
"""Protocols without ports: their packets and tuples carry port 0."""

VXLAN_OVERHEAD = 50
"""Bytes VXLAN adds around a frame: outer IPv4 20, UDP 8, VXLAN 8, and the inner frame's
Ethernet header 14 (which the outer packet carries and a plain IP packet does not)."""

ICMP_QUOTE_ROOM = 576 - 20 - 8
"""How much of a refused packet an ICMP error quotes at most (__icmp_send: the error stays
within 576 bytes), after its own IPv4 and ICMP headers."""


def default_length(proto: Proto, tcp_flags: str, inner: Packet | None) -> int:
    """The IPv4 total length a packet has when its maker gives none.

    A TCP SYN or SYN-ACK as Linux sends it: IPv4 20, TCP 20 and 20 of options
    (MSS, SACK permitted, timestamps, window scale); a RST 40; any other segment
    without data 52 (the timestamp option). UDP 28, without payload. An outer
    header adds its bytes to the packet it carries; an ICMP error quotes at most
    548 bytes of the packet it answers. SCTP: a bare INIT (kubehop models none
    of its parameters).
    """
    flags = tcp_flags.split(",")
    if proto is Proto.ICMP:
        return 28 + (min(inner.length, ICMP_QUOTE_ROOM) if inner is not None else 0)
    if proto is Proto.IPIP:
        return 20 + (inner.length if inner is not None else 0)
    if proto is Proto.UDP:
        return inner.length + VXLAN_OVERHEAD if inner is not None else 28
    if proto is Proto.SCTP:
        return 52
    if "SYN" in flags:
        return 60
    return 40 if "RST" in flags else 52


class Packet(BaseModel):
    """One IPv4 packet with its Ethernet header, at one moment of its path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    src: IPv4Address
    """IP source address."""
    dst: IPv4Address
    """IP destination address."""
    sport: int = Field(ge=0, le=65535)
    """L4 source port (0 for a protocol without ports)."""
    dport: int = Field(ge=0, le=65535)
    """L4 destination port (0 for a protocol without ports)."""
    proto: Proto = Proto.TCP
    """L4 protocol."""
    ttl: int = Field(default=64, ge=0, le=255)
    """IP time to live; routing decrements it, bridging does not."""
    src_mac: str | None = None
    """Ethernet source MAC, None before the packet is framed for a link."""
    dst_mac: str | None = None
    """Ethernet destination MAC, None before the packet is framed for a link."""
    mark: int = 0
    """The skb mark (`-j MARK`, `-m mark`); kube-proxy uses bit 0x4000."""
    tcp_flags: str = "SYN"
    """TCP flags shown on screen (SYN for a request, SYN,ACK for its reply)."""
    inner: Packet | None = None
    """The frame this packet carries inside a tunnel header (VXLAN, IP-in-IP), or the header
    an ICMP error quotes (the refused packet's IP header and first 8 bytes, its ports); None
    for a plain one.

    An encapsulated packet is a packet of its own: the host routes it, netfilter
    sees it (a UDP packet to port 8472 or 4789, an `ipencap` one), conntrack tracks it.
    """
    vni: int | None = None
    """The VXLAN network identifier of the header around `inner`."""
    length: int = Field(default=60, ge=20, le=65535)
    """The IPv4 total length in bytes, headers included (of this fragment, when it is one).
    Left out, it is what the protocol's packet without data has (`default_length`)."""
    df: bool = True
    """The Don't Fragment bit. Linux sets it on TCP and on a datagram that fits the route's
    MTU (IP_PMTUDISC_WANT, the default); an ICMP error and a VXLAN outer header have none."""
    mf: bool = False
    """More Fragments: this is the first fragment of a datagram, the others follow it."""
    datagram: int | None = None
    """On a first fragment: the total length of the whole datagram it was cut from, which
    reassembly gives back; None on a packet that is not a fragment."""
    frag_max: int | None = None
    """On a datagram reassembled on the way: the largest fragment it came in (the kernel's
    IPCB frag_max_size), to which forwarding cuts it again."""
    mss: int | None = None
    """On a TCP SYN or SYN-ACK: the MSS option, what the sender's route MTU leaves for a
    segment's data (MTU − 40)."""

    @model_validator(mode="before")
    @classmethod
    def _length_of_its_kind(cls, data: Any) -> Any:
        # A packet made without a length (a reply, a RST, a tunnel's outer header)
        # gets the one its kind has, so every packet on screen carries a true size.
        if not isinstance(data, dict) or "length" in data:
            return data
        inner = data.get("inner")
        if isinstance(inner, dict):
            inner = Packet.model_validate(inner)
        proto = Proto(data.get("proto", Proto.TCP))
        filled = dict(data, length=default_length(proto, data.get("tcp_flags", "SYN"), inner))
        if "df" not in data and proto is Proto.ICMP:
            filled["df"] = False  # the ICMP socket sends with IP_PMTUDISC_DONT
        return filled

    @model_validator(mode="after")
    def _ports_fit_the_protocol(self) -> Packet:
        # IP-in-IP has no ports, TCP, UDP and SCTP always have both: port 0
        # stands for "none" and is valid only where there are none.
        if self.proto in PORTLESS:
            if self.sport or self.dport:
                raise ValueError(f"{self.proto.value} has no ports: sport and dport must be 0")
        elif not (self.sport and self.dport):
            raise ValueError(f"{self.proto.value} ports must be 1-65535")
        return self

    def tuple(self) -> ConntrackTuple:
        """The conntrack tuple this packet belongs to, in its own direction."""
        return ConntrackTuple(
            proto=self.proto, src=self.src, dst=self.dst, sport=self.sport, dport=self.dport
        )


class ConntrackTuple(BaseModel):
    """A 5-tuple as conntrack keys it (`src=… dst=… sport=… dport=…`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    proto: Proto
    """L4 protocol."""
    src: IPv4Address
    """Source address."""
    dst: IPv4Address
    """Destination address."""
    sport: int = Field(ge=0, le=65535)
    """Source port (0 for a protocol without ports; a tuple is made from a packet, which
    checks its ports)."""
    dport: int = Field(ge=0, le=65535)
    """Destination port (0 for a protocol without ports)."""

    def inverted(self) -> ConntrackTuple:
        """The tuple of a packet going the other way."""
        return ConntrackTuple(
            proto=self.proto, src=self.dst, dst=self.src, sport=self.dport, dport=self.sport
        )

    def __str__(self) -> str:
        if self.proto in PORTLESS:
            return f"src={self.src} dst={self.dst}"
        return f"src={self.src} dst={self.dst} sport={self.sport} dport={self.dport}"


class CtState(StrEnum):
    """Conntrack's view of a packet (`-m conntrack --ctstate`)."""

    NEW = "NEW"
    ESTABLISHED = "ESTABLISHED"
    RELATED = "RELATED"
    INVALID = "INVALID"
    UNTRACKED = "UNTRACKED"


class ConntrackEntry(BaseModel):
    """One connection in a netns's conntrack table, as `conntrack -L` shows it.

    `reply` is what a reply packet looks like on the wire: when NAT rewrote the
    original direction, `reply` is not simply `original.inverted()`, and that
    difference is the whole of reverse NAT.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    original: ConntrackTuple
    """The tuple of the connection's first packet, as it arrived (before NAT)."""
    reply: ConntrackTuple
    """The tuple a reply must carry to belong to this connection (after NAT)."""
    state: CtState = CtState.NEW
    """NEW until a reply is seen, ESTABLISHED after."""
    mark: int = 0
    """The connection mark (ctmark)."""
    dnat: bool = False
    """The original direction's destination was rewritten (status DST_NAT)."""
    snat: bool = False
    """The original direction's source was rewritten (status SRC_NAT)."""
    confirmed: bool = False
    """Entered in the table (at POSTROUTING or INPUT); unconfirmed entries are per packet."""

    def __str__(self) -> str:
        flags = [f for f, on in (("DNAT", self.dnat), ("SNAT", self.snat)) if on]
        state = self.state.value if self.state is not CtState.NEW else "[UNREPLIED]"
        return (
            f"{self.original.proto.value} {self.original} {state} {self.reply}"
            f" mark={self.mark}" + (f" ({'+'.join(flags)})" if flags else "")
        )
