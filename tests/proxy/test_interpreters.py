"""Why nothing takes a packet's address, as each mode's interpreter says it on the hop
where the packet is routed nowhere: the same sentence, in the mode's words."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

import pytest

from model.packet import Packet
from sim.cluster.load import demo_cluster
from sim.proxy.interpreter import ProxyInterpreter
from sim.proxy.iptables.interpret import IptablesInterpreter
from sim.proxy.ipvs.interpret import IpvsInterpreter
from sim.proxy.nftables.interpret import NftablesInterpreter


@dataclass(frozen=True)
class Unclaimed:
    name: str
    mode: type[ProxyInterpreter]
    dst: str
    dport: int
    said: str


TAIL = ", and no interface holds a Service address"
WRONG_PORT = (
    "10.101.100.102 is the ClusterIP of default/svc-b, which has no port 81/tcp (its ports:"
    " 80/tcp), so no kube-proxy rule DNATs the packet" + TAIL
)
NOBODY = "no pod, node or Service kubehop knows has that address"


@pytest.mark.parametrize(
    "case",
    [
        Unclaimed(
            "iptables: a Service port without rules",
            IptablesInterpreter,
            "10.101.100.102",
            80,
            "10.101.100.102:80 is the ClusterIP of default/svc-b, but no rule of this node's"
            " DNATs it (the node's rules lack the Service's)" + TAIL,
        ),
        Unclaimed(
            "nftables: a Service port without an element",
            NftablesInterpreter,
            "10.101.100.102",
            80,
            "10.101.100.102:80 is the ClusterIP of default/svc-b, but no element of this node's"
            " kube-proxy table (@service-ips) DNATs it" + TAIL,
        ),
        Unclaimed(
            "ipvs: a Service port without a virtual server",
            IpvsInterpreter,
            "10.101.100.102",
            80,
            "10.101.100.102:80 is the ClusterIP of default/svc-b, but no virtual server of this"
            " node's takes it (the node's rules lack the Service's)" + TAIL,
        ),
        Unclaimed(
            "iptables: a port the Service lacks",
            IptablesInterpreter,
            "10.101.100.102",
            81,
            WRONG_PORT,
        ),
        Unclaimed(
            "nftables: a port the Service lacks",
            NftablesInterpreter,
            "10.101.100.102",
            81,
            WRONG_PORT,
        ),
        Unclaimed(
            "ipvs: a port the Service lacks", IpvsInterpreter, "10.101.100.102", 81, WRONG_PORT
        ),
        Unclaimed("iptables: nobody's address", IptablesInterpreter, "203.0.113.9", 80, NOBODY),
        Unclaimed("nftables: nobody's address", NftablesInterpreter, "203.0.113.9", 80, NOBODY),
        Unclaimed("ipvs: nobody's address", IpvsInterpreter, "203.0.113.9", 80, NOBODY),
    ],
    ids=lambda c: c.name,
)
def test_unclaimed_names_the_service_in_the_modes_words(case: Unclaimed) -> None:
    interpreter = case.mode(demo_cluster())
    pkt = Packet(
        src=IPv4Address("192.168.1.2"), dst=IPv4Address(case.dst), sport=37170, dport=case.dport
    )
    assert interpreter.unclaimed(pkt) == case.said
