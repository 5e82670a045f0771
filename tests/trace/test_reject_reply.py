"""A refused request is answered: the ICMP error or RST travels back to the client, hop by hop."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import pytest

from model.netfilter import Hook, Table
from model.packet import ConntrackEntry, ConntrackTuple, CtState, Packet, Proto
from model.trace import Direction, Trace, Verdict
from sim.cluster.load import demo_cluster, with_mode
from sim.kernel.conntrack import ConntrackTable
from sim.kernel.netfilter import HookContext, NetfilterState, RecentTable, traverse
from sim.readers.iptables_save import parse_iptables_save
from sim.trace.effects import hop_effect
from sim.trace.request import Request
from sim.trace.tracer import trace


def _reply(t: Trace) -> list[str]:
    """The reply's hops as `EFFECT where`."""
    return [
        f"{hop_effect(h, t.verdict).label} {h.where}"
        for h in t.hops
        if h.direction is Direction.REPLY
    ]


def _traced(mode: str, destination: str) -> Trace:
    return trace(with_mode(demo_cluster(), mode), Request("pod1", destination, seed=1))


def test_a_reject_in_forward_is_answered_from_the_address_routing_picks_toward_the_client() -> None:
    t = _traced("iptables", "svc-empty:80")
    assert t.verdict is Verdict.REJECTED
    assert _reply(t) == [
        "SEND node-a",
        "ROUTE node-a cni0",
        "HOOK node-a cni0 OUTPUT",
        "HOOK node-a cni0 POSTROUTING",
        "BRIDGE node-a cni0",
        "VETH node-a vethc9f19f6a",
        "RECV pod/default/pod1 eth0",
        "DELIVER pod/default/pod1",
    ]
    sent = next(h for h in t.hops if h.direction is Direction.REPLY)
    # The rejected packet was forwarded, not for node-a: icmp_send takes the source the
    # route back to pod1 prefers, cni0's 192.168.1.1, and quotes the packet as it was
    # rejected (its TTL already lowered by the forwarding).
    assert (str(sent.after.src), str(sent.after.dst), sent.after.proto) == (
        "192.168.1.1",
        "192.168.1.2",
        Proto.ICMP,
    )
    quoted = sent.after.inner
    assert quoted is not None
    assert (str(quoted.src), quoted.sport, str(quoted.dst), quoted.dport, quoted.ttl) == (
        "192.168.1.2",
        37170,
        "10.101.100.99",
        80,
        63,
    )
    assert sent.detail == (
        "icmp type 3 code 3 (icmp-port-unreachable) 192.168.1.1 > 192.168.1.2; quotes"
        " 192.168.1.2:37170 → 10.101.100.99:80 tcp"
    )
    # Refused in FORWARD, the connection was never confirmed, but the error carries its
    # entry all the same (icmp_glue_bits → nf_ct_attach): RELATED, with no NAT to undo.
    output = t.hops[sent.seq + 2]
    nat = next(w for w in output.tables if w.table is Table.NAT)
    assert output.where.hook is Hook.OUTPUT and nat.skipped == (
        "nat rules are consulted only for a connection's first packet; entry [tcp"
        " src=192.168.1.2 dst=10.101.100.99 sport=37170 dport=80 [UNREPLIED] src=10.101.100.99"
        " dst=192.168.1.2 sport=80 dport=37170 mark=0] has nothing to rewrite here"
    )
    assert output.conntrack is not None and not output.conntrack.confirmed
    assert t.hops[-1].sentence == (
        "the ICMP error reaches the client socket in pod1: the header it quotes,"
        " 192.168.1.2:37170 → 10.101.100.99:80, is the socket's own connection, so connect()"
        " fails with ECONNREFUSED (connection refused)"
    )
    assert t.hops[-1].detail == "tcp_v4_err: sk_err = ECONNREFUSED"


def test_nftables_reject_chain_is_answered_the_same_way() -> None:
    t = _traced("nftables", "svc-empty:80")
    sent = next(h for h in t.hops if h.direction is Direction.REPLY)
    assert (str(sent.after.src), str(sent.after.dst)) == ("192.168.1.1", "192.168.1.2")
    assert _reply(t)[-1] == "DELIVER pod/default/pod1"


def test_ipvs_without_real_servers_answers_from_the_cluster_ip_it_owns() -> None:
    # IPVS refuses at INPUT a packet for kube-ipvs0's own address: icmp_send answers
    # from the address the packet was sent to.
    t = _traced("ipvs", "svc-empty:80")
    sent = next(h for h in t.hops if h.direction is Direction.REPLY)
    assert (str(sent.after.src), str(sent.after.dst)) == ("10.101.100.99", "192.168.1.2")
    assert sent.note == (
        "kubehop sends every error, where the kernel rate-limits them (net.ipv4.icmp_ratelimit,"
        " icmp_msgs_per_sec)"
    )
    assert _reply(t)[-1] == "DELIVER pod/default/pod1"


def test_a_closed_tcp_port_answers_with_a_rst_that_travels_back() -> None:
    t = _traced("iptables", "192.168.2.2:9999")
    assert t.verdict is Verdict.REFUSED
    sent = next(h for h in t.hops if h.direction is Direction.REPLY)
    assert sent.where.netns == "pod/default/pod4"
    assert (str(sent.after.src), sent.after.sport, str(sent.after.dst), sent.after.dport) == (
        "192.168.2.2",
        9999,
        "192.168.1.2",
        37170,
    )
    assert sent.after.tcp_flags == "RST,ACK"
    assert _reply(t)[-3:] == [
        "VETH node-a vethc9f19f6a",
        "RECV pod/default/pod1 eth0",
        "DELIVER pod/default/pod1",
    ]
    assert t.hops[-1].sentence.endswith("so connect() fails with ECONNREFUSED (connection refused)")


def test_a_closed_udp_port_answers_with_icmp_from_the_address_it_was_sent_to() -> None:
    t = _traced("iptables", "192.168.2.2:9999/udp")
    sent = next(h for h in t.hops if h.direction is Direction.REPLY)
    assert (str(sent.after.src), str(sent.after.dst), sent.after.proto) == (
        "192.168.2.2",
        "192.168.1.2",
        Proto.ICMP,
    )
    # The connection was confirmed on both nodes: the error is RELATED to it there.
    node_hooks = [h for h in t.hops if h.direction is Direction.REPLY and h.conntrack]
    assert node_hooks and all(h.where.netns in ("node-a", "node-b") for h in node_hooks)
    assert t.hops[-1].sentence.endswith(
        "so the connected UDP socket's next call fails with ECONNREFUSED (connection refused)"
    )


def _tuple(src: str, sport: int, dst: str, dport: int) -> ConntrackTuple:
    return ConntrackTuple(
        proto=Proto.UDP, src=IPv4Address(src), dst=IPv4Address(dst), sport=sport, dport=dport
    )


@pytest.mark.parametrize(
    ("hook", "src", "quoted_dst"),
    [
        # DST manip hooks would undo an SNAT, which this connection has not.
        (Hook.PREROUTING, "192.168.2.2", ("192.168.2.2", 53)),
        # POSTROUTING undoes the DNAT: the error seems to come from the ClusterIP and
        # quotes the packet as the client sent it.
        (Hook.POSTROUTING, "10.96.0.10", ("10.96.0.10", 53)),
    ],
    ids=["prerouting", "postrouting"],
)
def test_an_icmp_error_is_related_and_its_quoted_header_is_un_natted(
    hook: Hook, src: str, quoted_dst: tuple[str, int]
) -> None:
    entry = ConntrackEntry(
        original=_tuple("192.168.1.2", 40000, "10.96.0.10", 53),
        reply=_tuple("192.168.2.2", 53, "192.168.1.2", 40000),
        state=CtState.ESTABLISHED,
        dnat=True,
        confirmed=True,
    )
    quoted = Packet(
        src=IPv4Address("192.168.1.2"),
        dst=IPv4Address("192.168.2.2"),
        sport=40000,
        dport=53,
        proto=Proto.UDP,
        tcp_flags="",
    )
    error = Packet(
        src=IPv4Address("192.168.2.2"),
        dst=IPv4Address("192.168.1.2"),
        sport=0,
        dport=0,
        proto=Proto.ICMP,
        tcp_flags="",
        inner=quoted,
    )
    rules = parse_iptables_save(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
    )
    state = NetfilterState(ConntrackTable.of([entry]), RecentTable())
    first = hook if hook is Hook.PREROUTING else Hook.PREROUTING
    result = traverse(
        HookContext(hook=first, in_iface="eth0"), error, rules, state, random.Random(1)
    )
    if hook is Hook.POSTROUTING:
        result = traverse(
            HookContext(hook=hook, out_iface="cni0"),
            result.packet,
            rules,
            result.state,
            random.Random(1),
        )
    assert result.ctstate is CtState.RELATED
    assert str(result.packet.src) == src
    assert result.packet.inner is not None
    assert (str(result.packet.inner.dst), result.packet.inner.dport) == quoted_dst
    assert str(result.packet.inner.src) == "192.168.1.2"
