"""A hop's counterpart in another mode's trace of the request, and what the app says differs."""

from __future__ import annotations

from model.trace import Trace
from sim.cluster.load import demo_cluster, with_mode
from sim.trace.counterpart import counterpart, differences
from sim.trace.effects import Effect, hop_effect
from sim.trace.request import Request
from sim.trace.tracer import trace


def _in(mode: str, pick: str | None = None) -> Trace:
    cluster = demo_cluster() if mode == "iptables" else with_mode(demo_cluster(), mode)
    return trace(cluster, Request("pod1", "svc-b:80", seed=7, pick=pick))


def _dnat(t: Trace) -> int:
    return next(h.seq for h in t.hops if hop_effect(h, t.verdict) is Effect.DNAT)


def test_the_dnat_hop_has_a_dnat_counterpart_in_every_mode() -> None:
    iptables = _in("iptables")
    for mode in ("nftables", "ipvs"):
        other = _in(mode, iptables.endpoint)
        found = counterpart(iptables, _dnat(iptables), other)
        assert found.same
        assert found.index == _dnat(other)
    # IPVS takes the packet at INPUT, two hops later than PREROUTING's DNAT.
    assert _dnat(_in("ipvs", iptables.endpoint)) == _dnat(iptables) + 2


def test_differences_name_the_rule_or_ipvs_that_rewrote_the_packet() -> None:
    iptables = _in("iptables")
    ipvs = _in("ipvs", iptables.endpoint)
    nftables = _in("nftables", iptables.endpoint)
    assert differences(iptables, ipvs) == (
        "DNAT in IPVS's virtual server 10.101.100.102:80 instead of KUBE-SEP-J3DIJWGB4SFSGEQN",
        "24 hops instead of 22",
    )
    assert differences(ipvs, nftables) == (
        "DNAT in endpoint-476I5XZ6-default/svc-b/tcp/http__192.168.1.4/8080 instead of IPVS's"
        " virtual server 10.101.100.102:80",
        "22 hops instead of 24",
    )
    assert differences(iptables, iptables) == ()
