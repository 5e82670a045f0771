"""Packet sizes against MTUs: MSS, DF, fragments, ICMP fragmentation needed (`--size`)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

import model
from model.cluster import Cluster
from model.errors import RequestError
from model.packet import Proto
from model.trace import Direction, Hop, HopKind, Trace, Verdict
from sim.cluster.load import demo_cluster, with_cni, with_dataplane, with_derived_slices
from sim.readers.cluster import parse_cluster
from sim.trace.report import trace_dict, trace_text
from sim.trace.request import Request
from sim.trace.tracer import trace
from tui.cli.dispatch import run


@cache
def _udp_demo(cni: str) -> Cluster:
    """The demo cluster with every port UDP: NodePort 30080 of Service web (web-1 on node-c)
    answers on UDP."""
    text = (Path(model.__file__).parent / "demo_cluster.yaml").read_text()
    udp = text.replace("protocol: TCP", "protocol: UDP")
    return with_cni(with_derived_slices(parse_cluster(udp, "udp-demo"), "udp-demo"), cni)


def _hops(t: Trace, kind: HopKind, direction: Direction = Direction.REQUEST) -> list[Hop]:
    return [h for h in t.hops if h.kind is kind and h.direction is direction]


def _nodeport(cni: str, size: int) -> Trace:
    """The external client to node-a's NodePort; the endpoint, web-1, is on node-c."""
    return trace(_udp_demo(cni), Request("client", "10.0.0.11:30080/udp", seed=1, size=size))


def test_a_datagram_too_big_for_flannel_1_gets_fragmentation_needed_from_the_node() -> None:
    t = _nodeport("flannel-vxlan", 1472)
    sent = _hops(t, HopKind.SEND)[0].before
    assert (sent.length, sent.df) == (1500, True)  # 20 + 8 + 1472 fits eth0's 1500: DF
    drop = _hops(t, HopKind.DROP)[0]
    assert (drop.where.netns, drop.where.interface) == ("node-a", "flannel.1")
    assert drop.detail == (
        "ip_forward: ip_exceeds_mtu: length 1500 > mtu 1450 of flannel.1, DF set;"
        " icmp_send(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu 1450)"
    )
    # Dropped before FORWARD: no FORWARD hook of node-a is walked for the request.
    assert not [
        h for h in _hops(t, HopKind.NETFILTER) if h.where.hook and h.where.hook.value == "FORWARD"
    ]
    error = _hops(t, HopKind.SEND, Direction.REPLY)[0].after
    assert (str(error.src), str(error.dst), error.proto, error.length, error.df) == (
        "10.0.0.11",
        "10.0.0.100",
        Proto.ICMP,
        576,
        False,
    )
    # It quotes the packet as ip_forward saw it: DNATed, not yet masqueraded, TTL unlowered.
    assert error.inner is not None
    quoted = error.inner
    assert (str(quoted.dst), quoted.dport, str(quoted.src), quoted.ttl, quoted.length) == (
        "192.168.3.3",
        8080,
        "10.0.0.100",
        64,
        1500,
    )
    assert _hops(t, HopKind.SEND, Direction.REPLY)[0].detail == (
        "icmp type 3 code 4 (icmp-frag-needed) 10.0.0.11 > 10.0.0.100; quotes"
        " 10.0.0.100:37170 → 192.168.3.3:8080 udp; mtu 1450; 576 bytes"
    )
    # The error carries the unconfirmed entry (nf_ct_attach): POSTROUTING undoes the DNAT
    # in the header it quotes, so the client's socket knows it as its own.
    post = _hops(t, HopKind.NETFILTER, Direction.REPLY)[1]
    assert post.where.hook is not None and post.where.hook.value == "POSTROUTING"
    assert post.after.inner is not None
    assert (str(post.after.inner.dst), post.after.inner.dport) == ("10.0.0.11", 30080)
    last = t.hops[-1]
    assert (last.kind, last.where.netns, last.detail) == (
        HopKind.DELIVER,
        "client/client",
        "udp_err: ICMP_FRAG_NEEDED mtu 1450: sk_err = EMSGSIZE",
    )
    assert t.verdict is Verdict.DROPPED
    assert t.reason.startswith(
        "node-a drops the 1500-byte packet for 192.168.3.3: it is larger than flannel.1's MTU"
        " of 1450 and has DF (don't fragment) set"
    )
    assert "ICMP fragmentation needed (mtu 1450)" in t.reason
    assert t.reason.endswith(
        "udp_err: the route to 10.0.0.11 learns MTU 1450 (ipv4_sk_update_pmtu) and the connected"
        " socket's next call fails with EMSGSIZE; from then on a datagram larger than 1450 bytes"
        " leaves without DF, in fragments (IP_PMTUDISC_WANT)"
    )


def test_ipvs_checks_before_its_rewrite_so_the_client_learns_the_path_mtu() -> None:
    cluster = with_dataplane(_udp_demo("flannel-vxlan"), mode="ipvs")
    t = trace(cluster, Request("client", "10.0.0.11:30080/udp", seed=1, size=1472))
    drop = _hops(t, HopKind.DROP)[0]
    assert drop.detail.startswith(
        "IPVS (ip_vs_nat_xmit → __ip_vs_get_out_rt: ensure_mtu_is_adequate): length 1500 > mtu"
        " 1450 of flannel.1"
    )
    error = _hops(t, HopKind.SEND, Direction.REPLY)[0].after
    assert error.inner is not None
    assert (str(error.inner.dst), error.inner.dport) == ("10.0.0.11", 30080)
    last = t.hops[-1]
    assert (last.kind, last.where.netns, last.detail) == (
        HopKind.DELIVER,
        "client/client",
        "udp_err: ICMP_FRAG_NEEDED mtu 1450: sk_err = EMSGSIZE",
    )
    assert t.verdict is Verdict.DROPPED
    assert t.reason.endswith(
        "udp_err: the route to 10.0.0.11 learns MTU 1450 (ipv4_sk_update_pmtu) and the connected"
        " socket's next call fails with EMSGSIZE; from then on a datagram larger than 1450 bytes"
        " leaves without DF, in fragments (IP_PMTUDISC_WANT)"
    )


def test_ip_in_ip_leaves_20_bytes_and_says_so_with_its_mtu() -> None:
    t = _nodeport("calico-ipip", 1472)
    drop = _hops(t, HopKind.DROP)[0]
    assert (drop.where.netns, drop.where.interface) == ("node-a", "tunl0")
    assert "length 1500 > mtu 1480 of tunl0" in drop.detail
    assert "mtu 1480" in _hops(t, HopKind.SEND, Direction.REPLY)[0].detail


def test_a_datagram_that_fits_the_tunnel_is_delivered_and_the_encap_hop_says_the_outer_size() -> (
    None
):
    t = _nodeport("flannel-vxlan", 1400)
    assert t.verdict is Verdict.DELIVERED and t.endpoint == "192.168.3.3:8080"
    encap = _hops(t, HopKind.ENCAP)[0]
    assert (encap.before.length, encap.before.df) == (1428, True)
    assert (encap.after.length, encap.after.df) == (1478, False)
    assert encap.note is not None
    assert encap.note.startswith(
        "VXLAN adds 50 bytes (outer IPv4 20, UDP 8, VXLAN 8, and the inner frame's Ethernet"
        " header 14): the outer packet is 1478 bytes (1428 + 50), within eth0's MTU of 1500;"
        " flannel.1's MTU of 1450 keeps every outer packet within 1500"
    )
    assert "length" in encap.changed and "df" in encap.changed
    deliver = _hops(t, HopKind.DELIVER)[0]
    assert deliver.after.length == 1428
    assert "      size: 1428 bytes, DF → 1478 bytes" in trace_text(t).splitlines()


@pytest.mark.parametrize(
    ("cni", "mss", "mtu"),
    [
        ("host-gw", 1460, 1500),
        ("flannel-host-gw", 1460, 1500),
        ("flannel-vxlan", 1410, 1450),
        ("calico-bgp", 1460, 1500),
        ("calico-ipip", 1440, 1480),
        ("calico-vxlan", 1410, 1450),
    ],
)
def test_a_syn_offers_the_pod_mtu_less_40_and_so_does_the_syn_ack(
    cni: str, mss: int, mtu: int
) -> None:
    t = trace(with_cni(demo_cluster(), cni), Request("pod1", "svc-b:80", seed=2))
    send = _hops(t, HopKind.SEND)[0]
    assert (send.before.tcp_flags, send.before.length, send.before.mss) == ("SYN", 60, mss)
    assert send.sentence.endswith(
        f"its SYN (60 bytes, DF set) offers MSS {mss}: pod1's eth0 MTU {mtu} − 40"
    )
    synack = _hops(t, HopKind.SEND, Direction.REPLY)[0]
    assert (synack.before.tcp_flags, synack.before.mss) == ("SYN,ACK", mss)
    assert synack.sentence.endswith(f"offers MSS {mss}: pod2's eth0 MTU {mtu} − 40")


def test_an_external_client_offers_its_own_eth0_mss() -> None:
    t = trace(
        with_cni(demo_cluster(), "flannel-vxlan"), Request("client", "10.0.0.11:30080", seed=1)
    )
    assert _hops(t, HopKind.SEND)[0].before.mss == 1460
    assert _hops(t, HopKind.SEND, Direction.REPLY)[0].before.mss == 1410


def test_tcp_size_traces_the_first_data_segment_cut_to_the_smaller_mss() -> None:
    cluster = with_cni(demo_cluster(), "flannel-vxlan")
    t = trace(cluster, Request("client", "10.0.0.11:30080", seed=1, size=3000))
    first = _hops(t, HopKind.SEND)[0]
    # min(1460, 1410) − 12 bytes of timestamps = 1398 bytes of data: 1450 on the wire,
    # exactly flannel.1's MTU, so the segment is never too big for the tunnel.
    assert (first.before.tcp_flags, first.before.length, first.before.df) == ("ACK", 1450, True)
    assert first.sentence.endswith(
        "it carries 1398 of the 3000 bytes (1450 bytes with IPv4 20, TCP 20 and timestamps 12,"
        " DF set): the handshake's MSS are 1460 (its SYN) and 1410 (the SYN-ACK), so a segment"
        " holds at most min(1460, 1410) − 12 = 1398 bytes; the other 1602 bytes follow in"
        " further segments"
    )
    assert t.verdict is Verdict.DELIVERED
    encap = _hops(t, HopKind.ENCAP)[0]
    assert (encap.before.length, encap.after.length) == (1450, 1500)
    # The handshake left the connection established: nat is not consulted again.
    dnat = next(h for h in _hops(t, HopKind.NETFILTER) if h.where.netns == "node-a")
    assert dnat.conntrack is not None and dnat.conntrack.state.value == "ESTABLISHED"
    assert dnat.sentence.startswith(
        "Conntrack applies the connection's DNAT again: destination 10.0.0.11:30080 →"
        " 192.168.3.3:8080 (no rule is consulted"
    )
    ack = _hops(t, HopKind.SEND, Direction.REPLY)[0].before
    assert (ack.tcp_flags, ack.length) == ("ACK", 52)
    assert "reads the segment's 1398 bytes" in _hops(t, HopKind.DELIVER)[0].sentence
    # The same request without --size is the SYN; the source port is the handshake's.
    syn = trace(cluster, Request("client", "10.0.0.11:30080", seed=1))
    assert _hops(syn, HopKind.SEND)[0].before.sport == first.before.sport


def test_a_pod_sends_a_datagram_larger_than_its_eth0_in_fragments_reassembled_on_the_way() -> None:
    t = trace(
        _udp_demo("flannel-vxlan"), Request("pod1", "10.101.100.80:80/udp", seed=1, size=1472)
    )
    sent = _hops(t, HopKind.SEND)[0].before
    assert (sent.length, sent.df) == (1500, False)  # larger than eth0's 1450: no DF
    cuts = [h for h in _hops(t, HopKind.SEND)[1:] if h.after.mf]
    assert [(h.where.netns, h.where.interface) for h in cuts] == [
        ("pod/default/pod1", "eth0"),
        ("node-a", "flannel.1"),
        ("node-c", "cni0"),
    ]
    assert cuts[0].detail.startswith(
        "ip_finish_output → ip_do_fragment: mtu 1450; fragments 1444 + 76"
    )
    assert (cuts[0].after.length, cuts[0].after.datagram) == (1444, 1500)
    # Defrag before conntrack: node-a's PREROUTING (through br_netfilter) sees 1500 bytes.
    joined = [h for h in _hops(t, HopKind.RECEIVE) if h.after.length != h.before.length]
    assert [(h.where.netns, h.before.length, h.after.length) for h in joined] == [
        ("node-a", 1444, 1500),
        ("node-c", 1444, 1500),
        ("pod/default/web-1", 1444, 1500),
    ]
    prerouting = next(h for h in _hops(t, HopKind.NETFILTER) if h.where.netns == "node-a")
    assert (prerouting.before.length, prerouting.before.mf) == (1500, False)
    assert "reassembled from fragments of at most 1444 bytes" in cuts[2].sentence
    encap = _hops(t, HopKind.ENCAP)[0]
    assert encap.after.length == 1494
    assert t.verdict is Verdict.DELIVERED
    assert _hops(t, HopKind.DELIVER)[0].after.length == 1500


def test_a_client_datagram_larger_than_its_link_leaves_in_fragments_of_1500() -> None:
    t = _nodeport("host-gw", 2000)
    cut = next(h for h in _hops(t, HopKind.SEND) if h.after.mf)
    assert cut.where.netns == "client/client"
    assert "in 2 fragments (1500 + 548 bytes)" in cut.sentence
    assert t.verdict is Verdict.DELIVERED


def test_the_json_carries_length_df_and_mss() -> None:
    t = trace(with_cni(demo_cluster(), "flannel-vxlan"), Request("pod1", "svc-b:80", seed=2))
    hop = json.loads(json.dumps(trace_dict(t)))["hops"][1]["before"]
    assert (hop["length"], hop["df"], hop["mss"], hop["mf"]) == (60, True, 1410, False)


def test_size_out_of_range_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RequestError, match=r"--size 70000: out of range \(0-65507"):
        Request("pod1", "svc-b:80", size=70000)
    assert run(["trace", "pod1", "svc-b:80", "--size", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "kubehop: error: --size -1: out of range (0-65507, the most a UDP datagram carries in one IPv4 packet)"
    ]
    with pytest.raises(RequestError, match="--size 0 with svc-b:80: a TCP connection sends no"):
        trace(demo_cluster(), Request("pod1", "svc-b:80", seed=1, size=0))
