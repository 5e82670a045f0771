"""nftables at each hook: kube-proxy's nft table evaluated as the kernel evaluates it.

The table below is in the shape kube-proxy 1.31 leaves on a node in nftables
mode, as `nft list table ip kube-proxy` prints it (nft 1.0.6), for a node at
172.18.0.2 with pods in 10.244.0.0/16: shop/web (two endpoints, NodePort
30080), shop/sticky (ClientIP affinity, 60 s), shop/cart (no endpoints,
NodePort 31544), shop/lb (a LoadBalancer IP with source ranges), and Service
CIDR 10.96.0.0/16.
"""

# nft lists a set's further elements after tabs and then spaces, so the text does too.
# ruff: noqa: E101

from __future__ import annotations

import random
from collections import Counter
from ipaddress import IPv4Address

import pytest

from model.errors import RulesParseError
from model.netfilter import Hook, Ruleset, Table
from model.nftables import NftCmp, NftMark, NftNat, NftRuleset, NftVmap
from model.packet import CtState, Packet, Proto
from sim.kernel.netfilter import HookContext, HookResult, NetfilterState, traverse
from sim.readers.iptables_save import parse_iptables_save
from sim.readers.nft_listing import nft_list_text
from sim.readers.nftables import parse_nft

NODE_IP = IPv4Address("172.18.0.2")
CNI0_IP = IPv4Address("10.244.1.1")
LOCAL = frozenset({NODE_IP, CNI0_IP})
POD = IPv4Address("10.244.1.5")
CLIENT = IPv4Address("192.168.1.50")
WEB = IPv4Address("10.96.14.20")
STICKY = IPv4Address("10.96.33.9")
CART = IPv4Address("10.96.201.17")
LB_IP = IPv4Address("198.51.100.7")

TABLE = """\
table ip kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips {
		type ipv4_addr
		comment "Active ClusterIPs"
		elements = { 10.96.14.20, 10.96.33.9,
			     10.96.77.3, 10.96.201.17 }
	}

	set nodeport-ips {
		type ipv4_addr
		comment "IPs that accept NodePort traffic"
	}

	map no-endpoint-services {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to services with no endpoints"
		elements = { 10.96.201.17 . tcp . 80 comment "shop/cart:http" : goto reject-chain }
	}

	map no-endpoint-nodeports {
		type inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to service nodeports with no endpoints"
		elements = { tcp . 31544 comment "shop/cart:http" : goto reject-chain }
	}

	map firewall-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "destinations that are subject to LoadBalancerSourceRanges"
		elements = { 198.51.100.7 . tcp . 443 : goto firewall-LB-shop/lb/tcp/https }
	}

	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = { 10.96.33.9 . tcp . 80 : goto service-STICKY-shop/sticky/tcp/,
			     10.96.14.20 . tcp . 80 : goto service-WEB-shop/web/tcp/http,
			     10.96.77.3 . tcp . 443 : goto service-LB-shop/lb/tcp/https,
			     198.51.100.7 . tcp . 443 : goto external-LB-shop/lb/tcp/https }
	}

	map service-nodeports {
		type inet_proto . inet_service : verdict
		comment "NodePort traffic"
		elements = { tcp . 30080 : goto external-WEB-shop/web/tcp/http }
	}

	set affinity-S1-shop/sticky/tcp/__10.244.1.8/8080 {
		type ipv4_addr
		size 65535
		flags dynamic,timeout
		timeout 1m
	}

	set affinity-S2-shop/sticky/tcp/__10.244.2.8/8080 {
		type ipv4_addr
		size 65535
		flags dynamic,timeout
		timeout 1m
	}

	chain filter-prerouting {
		type filter hook prerouting priority dstnat - 10; policy accept;
		ct state new jump firewall-check
	}

	chain filter-input {
		type filter hook input priority -110; policy accept;
		ct state new jump nodeport-endpoints-check
		ct state new jump service-endpoints-check
	}

	chain filter-forward {
		type filter hook forward priority -110; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump cluster-ips-check
	}

	chain filter-output {
		type filter hook output priority -110; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump firewall-check
	}

	chain filter-output-post-dnat {
		type filter hook output priority -90; policy accept;
		ct state new jump cluster-ips-check
	}

	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}

	chain nat-output {
		type nat hook output priority -100; policy accept;
		jump services
	}

	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}

	chain nodeport-endpoints-check {
		ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
	}

	chain service-endpoints-check {
		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
	}

	chain firewall-check {
		ip daddr . meta l4proto . th dport vmap @firewall-ips
	}

	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
		fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
	}

	chain masquerading {
		meta mark & 0x00004000 == 0x00000000 return
		meta mark set meta mark ^ 0x00004000
		masquerade fully-random
	}

	chain cluster-ips-check {
		ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
		ip daddr 10.96.0.0/16 drop comment "Drop traffic to unallocated ClusterIPs"
	}

	chain mark-for-masquerade {
		meta mark set meta mark | 0x00004000
	}

	chain reject-chain {
		comment "helper for @no-endpoint-services / @no-endpoint-nodeports"
		reject
	}

	chain endpoint-A-shop/web/tcp/http__10.244.1.6/8080 {
		ip saddr 10.244.1.6 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.1.6:8080
	}

	chain endpoint-B-shop/web/tcp/http__10.244.2.6/8080 {
		ip saddr 10.244.2.6 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.2.6:8080
	}

	chain service-WEB-shop/web/tcp/http {
		ip daddr 10.96.14.20 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 2 vmap { 0 : goto endpoint-A-shop/web/tcp/http__10.244.1.6/8080, 1 : goto endpoint-B-shop/web/tcp/http__10.244.2.6/8080 }
	}

	chain external-WEB-shop/web/tcp/http {
		jump mark-for-masquerade
		goto service-WEB-shop/web/tcp/http
	}

	chain endpoint-S1-shop/sticky/tcp/__10.244.1.8/8080 {
		ip saddr 10.244.1.8 jump mark-for-masquerade
		update @affinity-S1-shop/sticky/tcp/__10.244.1.8/8080 { ip saddr }
		meta l4proto tcp dnat to 10.244.1.8:8080
	}

	chain endpoint-S2-shop/sticky/tcp/__10.244.2.8/8080 {
		ip saddr 10.244.2.8 jump mark-for-masquerade
		update @affinity-S2-shop/sticky/tcp/__10.244.2.8/8080 { ip saddr }
		meta l4proto tcp dnat to 10.244.2.8:8080
	}

	chain service-STICKY-shop/sticky/tcp/ {
		ip daddr 10.96.33.9 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		ip saddr @affinity-S1-shop/sticky/tcp/__10.244.1.8/8080 goto endpoint-S1-shop/sticky/tcp/__10.244.1.8/8080
		ip saddr @affinity-S2-shop/sticky/tcp/__10.244.2.8/8080 goto endpoint-S2-shop/sticky/tcp/__10.244.2.8/8080
		numgen random mod 2 vmap { 0 : goto endpoint-S1-shop/sticky/tcp/__10.244.1.8/8080, 1 : goto endpoint-S2-shop/sticky/tcp/__10.244.2.8/8080 }
	}

	chain endpoint-L-shop/lb/tcp/https__10.244.1.9/8443 {
		ip saddr 10.244.1.9 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.1.9:8443
	}

	chain service-LB-shop/lb/tcp/https {
		ip daddr 10.96.77.3 tcp dport 443 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 1 vmap { 0 : goto endpoint-L-shop/lb/tcp/https__10.244.1.9/8443 }
	}

	chain external-LB-shop/lb/tcp/https {
		jump mark-for-masquerade
		goto service-LB-shop/lb/tcp/https
	}

	chain firewall-LB-shop/lb/tcp/https {
		ip saddr != { 192.168.1.0/24, 203.0.113.0/25 } drop
	}
}
"""

# What kubelet leaves in iptables on the same node (nftables mode writes no iptables rules).
KUBELET = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
-A INPUT -j KUBE-FIREWALL
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
"""


@pytest.fixture(scope="module")
def nft() -> NftRuleset:
    return parse_nft(TABLE, source="node.nft")


@pytest.fixture(scope="module")
def ipt() -> Ruleset:
    return parse_iptables_save(KUBELET, source="node.rules")


def packet(src: IPv4Address, dst: IPv4Address, dport: int, sport: int = 40000) -> Packet:
    return Packet(src=src, dst=dst, sport=sport, dport=dport, proto=Proto.TCP)


def run(
    hook: Hook,
    pkt: Packet,
    nft: NftRuleset,
    ipt: Ruleset,
    state: NetfilterState | None = None,
    *,
    seed: int = 1,
    in_iface: str | None = None,
    out_iface: str | None = None,
    out_addr: IPv4Address | None = None,
    now: float = 0.0,
    numgen: int | None = None,
) -> HookResult:
    ctx = HookContext(
        hook=hook,
        in_iface=in_iface,
        out_iface=out_iface,
        local_addrs=LOCAL,
        out_iface_addr=out_addr,
        now_s=now,
        numgen=(lambda rule: numgen) if numgen is not None else None,
    )
    return traverse(ctx, pkt, ipt, state or NetfilterState(), random.Random(seed), nft=nft)


def chains_walked(result: HookResult) -> list[str]:
    return [f"{w.nft or w.table.value}:{s.chain}" for w in result.tables for s in w.spans]


# --- the reader ---------------------------------------------------------------------


def test_the_listing_reads_back_to_the_same_text(nft: NftRuleset) -> None:
    (table,) = nft.tables
    assert table.label == "ip kube-proxy"
    assert nft_list_text(table) == TABLE
    assert not nft.warnings


def test_rules_are_read_into_expressions(nft: NftRuleset) -> None:
    (table,) = nft.tables
    services = table.chains["services"].rules
    assert services[0].exprs == (
        NftVmap(left=("ip daddr", "meta l4proto", "th dport"), map="service-ips"),
    )
    assert services[1].exprs[0] == NftCmp(left=("fib daddr type",), values=("local",))
    masq = table.chains["masquerading"].rules
    assert masq[0].exprs[0] == NftCmp(left=("meta mark",), mask=0x4000, values=("0x00000000",))
    assert masq[1].exprs == (NftMark(mask=0xFFFFFFFF, xor=0x4000),)
    assert masq[2].exprs == (NftNat(action="masquerade", flags=("fully-random",)),)
    assert table.chains["filter-prerouting"].priority == -110
    assert table.chains["filter-output-post-dnat"].priority == -90
    assert table.sets["affinity-S1-shop/sticky/tcp/__10.244.1.8/8080"].timeout == 60


def test_kube_proxys_transaction_reads_into_the_same_rules() -> None:
    tx = "\n".join(
        [
            'add table ip kube-proxy { comment "rules for kube-proxy" ; }',
            "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }",
            "add chain ip kube-proxy masquerading",
            "add rule ip kube-proxy nat-postrouting jump masquerading",
            "add rule ip kube-proxy masquerading mark and 0x00004000 == 0 return",
            "add rule ip kube-proxy masquerading mark set mark xor 0x00004000",
            "add rule ip kube-proxy masquerading masquerade fully-random",
            "add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto ."
            ' inet_service : verdict ; comment "vmap to drop or reject packets to services with'
            ' no endpoints" ; }',
            "add element ip kube-proxy no-endpoint-services { 10.96.201.17 . tcp . 80 comment"
            ' "shop/cart:http" : goto reject-chain }',
        ]
    )
    (table,) = parse_nft(tx, source="tx.nft").tables
    (listed,) = parse_nft(TABLE).tables
    assert [r.exprs for r in table.chains["masquerading"].rules] == [
        r.exprs for r in listed.chains["masquerading"].rules
    ]
    assert table.chains["nat-postrouting"].priority == 100
    assert table.chains["nat-postrouting"].policy == "accept"
    assert table.sets["no-endpoint-services"] == listed.sets["no-endpoint-services"].model_copy(
        update={"lineno": table.sets["no-endpoint-services"].lineno}
    )


def test_a_broken_file_names_its_line() -> None:
    with pytest.raises(RulesParseError, match=r"^bad.nft:3: .*missing"):
        parse_nft("table ip kube-proxy {\n\tchain x {\n\t\tdrop\n", source="bad.nft")
    with pytest.raises(RulesParseError, match=r"^bad.nft:1: unknown table family 'ipx'"):
        parse_nft("table ipx t {\n}\n", source="bad.nft")


def test_what_kubehop_cannot_evaluate_is_listed_not_refused() -> None:
    text = "table ip t {\n\tchain c {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tlimit rate 10/second accept\n\t}\n}\n"
    rules = parse_nft(text, source="odd.nft")
    assert rules.warnings == (
        "odd.nft:4: chain c: kubehop cannot evaluate 'limit rate 10/second accept'; the rule is"
        " assumed not to match",
    )
    result = run(Hook.INPUT, packet(CLIENT, NODE_IP, 22), rules, Ruleset())
    assert result.verdict == "ACCEPT"
    assert result.assumptions == (
        "ip t c #1: cannot evaluate 'limit rate 10/second accept'; assumed the rule does not match",
    )


# --- the hooks -----------------------------------------------------------------------


def test_a_pod_to_a_cluster_ip_is_dnated_by_the_service_ips_map(
    nft: NftRuleset, ipt: Ruleset
) -> None:
    result = run(Hook.PREROUTING, packet(POD, WEB, 80), nft, ipt, numgen=1, in_iface="cni0")
    assert result.verdict == "ACCEPT"
    assert (result.packet.dst, result.packet.dport) == (IPv4Address("10.244.2.6"), 8080)
    assert result.packet.mark == 0  # from inside the cluster CIDR: no masquerade
    assert chains_walked(result) == [
        "ip kube-proxy:filter-prerouting",
        "ip kube-proxy:firewall-check",
        "ip kube-proxy:filter-prerouting",
        "ip kube-proxy:nat-prerouting",
        "ip kube-proxy:services",
        "ip kube-proxy:service-WEB-shop/web/tcp/http",
        "ip kube-proxy:endpoint-B-shop/web/tcp/http__10.244.2.6/8080",
    ]
    nat = next(w for w in result.tables if w.nft and w.table is Table.NAT)
    assert nat.matched[-1].line == "meta l4proto tcp dnat to 10.244.2.6:8080"
    # The NAT core stops at the first nat chain that binds: iptables' nat table is
    # registered at the same priority, earlier, so it comes after and is not consulted.
    assert result.tables[-1].table is Table.NAT and result.tables[-1].nft is None
    assert "consults no further nat chain" in (result.tables[-1].skipped or "")
    assert result.entry is not None and result.entry.dnat


def test_numgen_spreads_uniformly_over_the_endpoints(nft: NftRuleset, ipt: Ruleset) -> None:
    rng = random.Random(11)
    seen: Counter[IPv4Address] = Counter()
    runs = 3000
    for i in range(runs):
        pkt = packet(POD, WEB, 80, sport=1024 + i)
        ctx = HookContext(hook=Hook.PREROUTING, in_iface="cni0", local_addrs=LOCAL)
        seen[traverse(ctx, pkt, ipt, NetfilterState(), rng, nft=nft).packet.dst] += 1
    assert set(seen) == {IPv4Address("10.244.1.6"), IPv4Address("10.244.2.6")}
    # Binomial(3000, 1/2): the standard deviation is 27; 4 sigma is a safe bound.
    assert all(abs(n - runs / 2) < 4 * 27.4 for n in seen.values())


def test_an_external_client_is_marked_for_masquerade_and_masqueraded(
    nft: NftRuleset, ipt: Ruleset
) -> None:
    pre = run(Hook.PREROUTING, packet(CLIENT, NODE_IP, 30080), nft, ipt, numgen=0, in_iface="eth0")
    assert (pre.packet.dst, pre.packet.mark) == (IPv4Address("10.244.1.6"), 0x4000)
    post = run(
        Hook.POSTROUTING, pre.packet, nft, ipt, pre.state, out_iface="cni0", out_addr=CNI0_IP
    )
    assert post.packet.src == CNI0_IP
    assert post.packet.mark == 0  # masquerading clears the bit
    assert post.entry is not None and post.entry.snat and post.entry.confirmed


def test_nodeports_are_not_on_localhost(nft: NftRuleset, ipt: Ruleset) -> None:
    result = run(Hook.OUTPUT, packet(IPv4Address("127.0.0.1"), IPv4Address("127.0.0.1"), 30080),
                 nft, ipt, out_iface="lo")  # fmt: skip
    assert result.packet.dst == IPv4Address("127.0.0.1")


def test_a_service_without_endpoints_is_rejected_before_dnat(nft: NftRuleset, ipt: Ruleset) -> None:
    result = run(Hook.OUTPUT, packet(NODE_IP, CART, 80), nft, ipt, out_iface="eth0")
    assert result.verdict == "REJECT"
    assert result.reject_with == "icmp-port-unreachable"
    walk = result.tables[-1]
    assert (walk.nft, walk.verdict) == ("ip kube-proxy", "REJECT")
    assert [s.chain for s in walk.spans] == [
        "filter-output",
        "service-endpoints-check",
        "reject-chain",
    ]
    nodeport = run(Hook.INPUT, packet(CLIENT, NODE_IP, 31544), nft, ipt, in_iface="eth0")
    assert nodeport.verdict == "REJECT"


def test_an_invalid_port_of_a_cluster_ip_is_rejected_after_dnat(
    nft: NftRuleset, ipt: Ruleset
) -> None:
    result = run(Hook.OUTPUT, packet(NODE_IP, WEB, 81), nft, ipt, out_iface="eth0")
    assert result.verdict == "REJECT"
    last = result.tables[-1]
    assert last.spans[0].chain == "filter-output-post-dnat"
    assert last.matched[-1].line == (
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"'
    )
    # A valid port was DNATed at -100, so the check at -90 sees the endpoint.
    ok = run(Hook.OUTPUT, packet(NODE_IP, WEB, 80), nft, ipt, out_iface="eth0", numgen=0)
    assert ok.verdict == "ACCEPT" and ok.packet.dst == IPv4Address("10.244.1.6")


def test_an_unallocated_cluster_ip_is_dropped(nft: NftRuleset, ipt: Ruleset) -> None:
    forwarded = run(Hook.FORWARD, packet(POD, IPv4Address("10.96.9.9"), 80), nft, ipt,
                    in_iface="cni0", out_iface="eth0")  # fmt: skip
    assert forwarded.verdict == "DROP"
    assert (
        forwarded.tables[-1]
        .matched[-1]
        .line.endswith('drop comment "Drop traffic to unallocated ClusterIPs"')
    )


def test_load_balancer_source_ranges_drop_before_dnat(nft: NftRuleset, ipt: Ruleset) -> None:
    allowed = run(Hook.PREROUTING, packet(CLIENT, LB_IP, 443), nft, ipt, in_iface="eth0")
    assert allowed.verdict == "ACCEPT" and allowed.packet.dst == IPv4Address("10.244.1.9")
    outside = IPv4Address("203.0.113.200")
    dropped = run(Hook.PREROUTING, packet(outside, LB_IP, 443), nft, ipt, in_iface="eth0")
    assert dropped.verdict == "DROP"
    assert dropped.packet.dst == LB_IP  # filter-prerouting runs at -110, before DNAT
    assert [s.chain for s in dropped.tables[-1].spans] == [
        "filter-prerouting",
        "firewall-check",
        "firewall-LB-shop/lb/tcp/https",
    ]


def test_affinity_sticks_until_the_timeout_on_the_virtual_clock(
    nft: NftRuleset, ipt: Ruleset
) -> None:
    first = run(Hook.PREROUTING, packet(POD, STICKY, 80), nft, ipt, in_iface="cni0", numgen=1)
    assert first.packet.dst == IPv4Address("10.244.2.8")
    (learned,) = first.state.nft_sets.values()
    assert list(learned.values()) == [60.0]
    later = first.state
    for i, now in enumerate((10.0, 59.0)):
        again = run(Hook.PREROUTING, packet(POD, STICKY, 80, sport=40001 + i), nft, ipt, later,
                    in_iface="cni0", numgen=0, now=now)  # fmt: skip
        assert again.packet.dst == IPv4Address("10.244.2.8")  # the set wins over numgen
        later = again.state
    # Each packet refreshed the element (update): it now expires at 59 + 60.
    expired = run(Hook.PREROUTING, packet(POD, STICKY, 80, sport=40009), nft, ipt, later,
                  in_iface="cni0", numgen=0, now=119.5)  # fmt: skip
    assert expired.packet.dst == IPv4Address("10.244.1.8")


def test_the_reply_is_un_natted_by_conntrack_not_by_rules(nft: NftRuleset, ipt: Ruleset) -> None:
    pre = run(Hook.PREROUTING, packet(POD, WEB, 80), nft, ipt, in_iface="cni0", numgen=0)
    post = run(Hook.POSTROUTING, pre.packet, nft, ipt, pre.state, out_iface="cni0",
               out_addr=CNI0_IP)  # fmt: skip
    reply = Packet(src=IPv4Address("10.244.1.6"), dst=POD, sport=8080, dport=40000,
                   tcp_flags="SYN,ACK")  # fmt: skip
    back = run(Hook.PREROUTING, reply, nft, ipt, post.state, in_iface="cni0")
    assert back.ctstate is CtState.ESTABLISHED
    assert back.packet == reply  # the source is restored at POSTROUTING, not here
    nat = [w for w in back.tables if w.table is Table.NAT]
    assert nat and all(w.skipped for w in nat)
    out = run(Hook.POSTROUTING, back.packet, nft, ipt, back.state, out_iface="cni0")
    assert (out.packet.src, out.packet.sport) == (WEB, 80)


def test_iptables_only_nodes_walk_as_before(ipt: Ruleset) -> None:
    pkt = packet(POD, WEB, 80)
    ctx = HookContext(hook=Hook.PREROUTING, in_iface="cni0", local_addrs=LOCAL)
    without = traverse(ctx, pkt, ipt, NetfilterState(), random.Random(1))
    empty = traverse(ctx, pkt, ipt, NetfilterState(), random.Random(1), nft=NftRuleset())
    assert without == empty
    assert [w.nft for w in without.tables] == [None]


def test_a_whole_ruleset_is_read_with_what_it_cannot_evaluate_listed() -> None:
    # `nft list ruleset` of a node: iptables-nft's own tables (with xt matches),
    # a netdev ingress chain, a typeof set, and kube-proxy's table.
    text = (
        "# Warning: table ip nat is managed by iptables-nft, do not touch!\n"
        "table ip nat {\n"
        "\tchain PREROUTING {\n"
        "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        '\t\t xt match "comment" counter packets 4 bytes 240 jump KUBE-SERVICES\n'
        "\t}\n"
        "\n"
        "\tchain KUBE-SERVICES {\n"
        "\t}\n"
        "}\n"
        "table netdev filter {\n"
        "\tset seen {\n"
        "\t\ttypeof ip saddr\n"
        "\t}\n"
        "\n"
        "\tchain ingress {\n"
        '\t\ttype filter hook ingress device "eth0" priority filter; policy accept;\n'
        "\t}\n"
        "}\n" + TABLE
    )
    rules = parse_nft(text, source="node.ruleset")
    assert [t.label for t in rules.tables] == ["ip nat", "netdev filter", "ip kube-proxy"]
    assert rules.warnings == (
        'node.ruleset:5: chain PREROUTING: kubehop cannot evaluate \'xt match "comment" counter'
        " packets 4 bytes 240 jump KUBE-SERVICES'; the rule is assumed not to match",
        "node.ruleset:17: chain ingress: type filter hook ingress is not a hook kubehop walks;"
        " read as a regular chain",
    )
    kube_proxy = rules.table("ip", "kube-proxy")
    assert kube_proxy is not None and nft_list_text(kube_proxy) == TABLE


def test_a_packet_conntrack_calls_invalid_is_forwarded(nft: NftRuleset, ipt: Ruleset) -> None:
    # nftables mode has no `ct state invalid drop` (iptables mode's KUBE-FORWARD has).
    stray = Packet(src=IPv4Address("10.244.2.6"), dst=CLIENT, sport=8080, dport=40000,
                   tcp_flags="SYN,ACK")  # fmt: skip
    result = run(Hook.FORWARD, stray, nft, ipt, in_iface="eth0", out_iface="eth1")
    assert (result.verdict, result.ctstate) == ("ACCEPT", CtState.INVALID)
    assert result.entry is None
