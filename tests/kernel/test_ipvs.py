"""IPVS in the kernel: schedulers, persistence, connections and replies, as pure functions."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from model.ipvs import IpvsState, IpvsTable, RealServer, VirtualServer
from model.packet import Packet, Proto
from sim.kernel.ipvs import reply, request, schedule

VIP = IPv4Address("10.96.0.10")
A, B, C = (RealServer(IPv4Address(f"10.244.1.{i}"), 8080) for i in (2, 3, 4))


def _vs(
    scheduler: str = "rr", *servers: RealServer, persistent: int | None = None
) -> VirtualServer:
    return VirtualServer(
        Proto.TCP, VIP, 80, scheduler, persistent, real_servers=servers or (A, B, C)
    )


def _syn(src: str = "10.244.2.9", sport: int = 40000) -> Packet:
    return Packet(src=IPv4Address(src), dst=VIP, sport=sport, dport=80, tcp_flags="SYN")


def _picks(vs: VirtualServer, count: int) -> list[str]:
    """The real server each of `count` new connections (one client, fresh ports) gets."""
    table, state, out = IpvsTable((vs,)), IpvsState(), []
    for i in range(count):
        verdict = request(table, state, _syn(sport=40000 + i), now=0.0, local_addrs=frozenset())
        assert verdict is not None and verdict.server is not None
        state = verdict.state
        out.append(verdict.server.addr)
    return out


def test_rr_is_exactly_round_robin_over_many_requests() -> None:
    picks = _picks(_vs("rr"), 300)
    assert picks[:3] == [A.addr, B.addr, C.addr]
    assert picks == [A.addr, B.addr, C.addr] * 100


def test_rr_skips_a_real_server_of_weight_zero() -> None:
    drained = RealServer(B.ip, B.port, weight=0)
    assert _picks(_vs("rr", A, drained, C), 4) == [A.addr, C.addr, A.addr, C.addr]


def test_wrr_gives_each_server_its_weight_per_round() -> None:
    heavy = RealServer(A.ip, A.port, weight=3)
    assert _picks(_vs("wrr", heavy, B), 8) == [A.addr, A.addr, A.addr, B.addr] * 2


def test_wrr_with_equal_weights_is_round_robin() -> None:
    assert _picks(_vs("wrr"), 6) == [A.addr, B.addr, C.addr] * 2


def test_least_connection_balances_the_simulations_own_connections() -> None:
    assert _picks(_vs("lc"), 6) == [A.addr, B.addr, C.addr] * 2


def test_least_connection_says_what_it_assumes() -> None:
    choice = schedule(_vs("lc"), IpvsState(), _syn())
    assert choice.assumed is not None and "no other client's" in choice.assumed


@pytest.mark.parametrize(
    ("src", "bucket"),
    # hash_32(ntohl(addr)) >> 24, the kernel's ip_vs_sh_hashkey with no port.
    [("10.244.2.9", (((0x0AF40209 * 0x61C88647) & 0xFFFFFFFF) >> 24))],
)
def test_source_hashing_picks_the_bucket_of_the_source(src: str, bucket: int) -> None:
    choice = schedule(_vs("sh"), IpvsState(), _syn(src))
    # 256 buckets filled A, B, C, A, … (weight 1 each).
    assert choice.server == (A, B, C)[bucket % 3]
    assert f"bucket {bucket} of 256" in choice.why


def test_source_hashing_keeps_one_client_on_one_server() -> None:
    table, state = IpvsTable((_vs("sh"),)), IpvsState()
    seen = set()
    for port in range(40000, 40020):
        verdict = request(table, state, _syn(sport=port), now=0.0, local_addrs=frozenset())
        assert verdict is not None and verdict.server is not None
        state = verdict.state
        seen.add(verdict.server.addr)
    assert len(seen) == 1


def test_persistence_template_sends_a_client_back_to_its_server() -> None:
    vs = _vs("rr", persistent=10800)
    table, state = IpvsTable((vs,)), IpvsState()
    first = request(table, state, _syn(sport=40000), now=0.0, local_addrs=frozenset())
    assert first is not None and first.server == A and not first.persistent
    again = request(table, first.state, _syn(sport=40001), now=5.0, local_addrs=frozenset())
    assert again is not None and again.server == A and again.persistent
    other = request(
        table, again.state, _syn("10.244.2.77", 40002), now=5.0, local_addrs=frozenset()
    )
    assert other is not None and other.server == B
    expired = request(table, other.state, _syn(sport=40003), now=20000.0, local_addrs=frozenset())
    assert expired is not None and not expired.persistent


def test_a_virtual_server_without_real_servers_answers_port_unreachable() -> None:
    vs = VirtualServer(Proto.TCP, VIP, 80)
    verdict = request(IpvsTable((vs,)), IpvsState(), _syn(), now=0.0, local_addrs=frozenset())
    assert verdict is not None and verdict.kind == "no-dest" and verdict.server is None


def test_only_a_syn_opens_a_tcp_connection() -> None:
    ack = _syn().model_copy(update={"tcp_flags": "ACK"})
    assert request(IpvsTable((_vs(),)), IpvsState(), ack, now=0.0, local_addrs=frozenset()) is None


def test_the_reply_gets_the_virtual_address_back() -> None:
    table = IpvsTable((_vs(),))
    sent = request(table, IpvsState(), _syn(), now=0.0, local_addrs=frozenset())
    assert sent is not None and sent.stolen
    assert (sent.packet.dst, sent.packet.dport) == (A.ip, 8080)
    back = Packet(src=A.ip, dst=IPv4Address("10.244.2.9"), sport=8080, dport=40000)
    answered = reply(table, sent.state, back)
    assert answered is not None
    assert (answered.packet.src, answered.packet.sport) == (VIP, 80)


def test_a_local_real_server_is_not_stolen() -> None:
    table = IpvsTable((_vs("rr", A),))
    verdict = request(table, IpvsState(), _syn(), now=0.0, local_addrs=frozenset({A.ip}))
    assert verdict is not None and verdict.local and not verdict.stolen
