"""kube-proxy's modes and the CNIs in the app: `m` re-traces in the next mode, the rules pane
shows what the node prints in it, and a tunnelled packet is shown with its outer headers."""

from __future__ import annotations

from model.packet import Proto
from model.trace import HopKind
from sim.cluster.load import demo_cluster, with_cni, with_mode
from tests.app.support import (
    at,
    make_app,
    notices,
    plain_env,
    scenario,
    screen_of,
    shown,
    trace_of,
)
from tui.screens.help import HelpScreen
from tui.screens.trace import TraceScreen
from tui.session import Request
from tui.widgets.cluster_tree import ClusterTree
from tui.widgets.explanation import Explanation
from tui.widgets.path_map import PathMap
from tui.widgets.rules_view import RulesView, filter_rows, index_rules

__all__ = ["plain_env"]


def title(screen: TraceScreen) -> str:
    """The title bar's second part: mode · CNI · verdict…, or the nodes and keys."""
    return str(screen.sub_title)


def matched_lines(screen: TraceScreen) -> list[str]:
    """The lines the rules pane marks as matched, in their order in the listing."""
    rules = screen.query_one(RulesView)
    return [rules.index.lines[row].strip() for row in sorted(rules.matched_rows)]


def focused_line(screen: TraceScreen) -> str:
    """The line the rules pane scrolled to: the one that decided."""
    rules = screen.query_one(RulesView)
    assert rules.focus_row is not None
    return rules.index.lines[rules.focus_row].strip()


def inspected(screen: TraceScreen) -> str:
    """The packet pane's text, its lines' trailing blanks dropped."""
    from textual.widgets import Static

    text = "\n".join(shown(part) for part in screen.inspector.query(Static) if part.display)
    return "\n".join(line.rstrip() for line in text.splitlines())


async def test_m_cycles_the_modes_retracing_at_the_dnat_with_each_modes_rules() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        screen.go_to(at(screen, "dnat"))
        await pilot.pause()
        assert title(screen).startswith("iptables · host-gw · delivered → 192.168.2.2:8080")
        assert focused_line(screen) == (
            '-A KUBE-SEP-UGY2AY7XLGRWURZI -p tcp -m comment --comment "default/svc-b:http" '
            "-m tcp -j DNAT --to-destination 192.168.2.2:8080"
        )

        app.clear_notifications()
        await pilot.press("m")
        await pilot.pause()
        assert screen.session.mode == "nftables"
        assert title(screen).startswith("nftables · host-gw · delivered → 192.168.2.2:8080")
        assert trace_of(screen).seed == 7
        # Still at the DNAT, on the same node, now nft's.
        hop = trace_of(screen).hops[screen.index]
        assert screen.badges[screen.index].label == "DNAT" and hop.where.node == "node-a"
        (note,) = notices(app)
        assert note.startswith(
            "nftables mode: DNAT in endpoint-S2DO7VAZ-default/svc-b/tcp/http__192.168.2.2/8080 "
            "instead of KUBE-SEP-UGY2AY7XLGRWURZI"
        )
        assert note.endswith(f"Still at the DNAT hop on node-a ({screen.index + 1} of 37).")
        rules = screen.query_one(RulesView)
        assert rules.index.lines[:2] == ("# nft list table ip kube-proxy", "table ip kube-proxy {")
        assert "# iptables-save" in rules.index.lines  # kubelet's and the CNI's chains
        assert set(matched_lines(screen)) == {
            "ct state new jump firewall-check",
            "jump services",
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "numgen random mod 3 vmap { 0 : goto endpoint-PJCBDQ57-default/svc-b/tcp/http__"
            "192.168.1.3/8080, 1 : goto endpoint-476I5XZ6-default/svc-b/tcp/http__192.168.1.4/"
            "8080, 2 : goto endpoint-S2DO7VAZ-default/svc-b/tcp/http__192.168.2.2/8080 }",
            "meta l4proto tcp dnat to 192.168.2.2:8080",
        }
        assert focused_line(screen) == "meta l4proto tcp dnat to 192.168.2.2:8080"
        # On screen: the rule, its number in its chain, and the chain it is in above it.
        text = shown(rules)
        assert "▶ 2     meta l4proto tcp dnat to 192.168.2.2:8080" in text
        assert "chain endpoint-S2DO7VAZ-default/svc-b/tcp/http__192.168.2.2/8080 {" in text

        app.clear_notifications()
        await pilot.press("m")
        await pilot.pause()
        assert screen.session.mode == "ipvs"
        assert title(screen).startswith("ipvs · host-gw · delivered → 192.168.2.2:8080")
        hop = trace_of(screen).hops[screen.index]
        assert screen.badges[screen.index].label == "DNAT" and hop.where.node == "node-a"
        assert hop.where.hook is not None and hop.where.hook.value == "INPUT"
        (note,) = notices(app)
        assert note.startswith("ipvs mode: ")
        rules = screen.query_one(RulesView)
        assert rules.index.lines[:2] == ("# ipvsadm-save -n", "-A -t 192.168.1.1:30080 -s rr")
        for command in ("# ipset save", "# iptables-save", "# ip addr show kube-ipvs0"):
            assert command in rules.index.lines
        # IPVS's choice is marked as the rule that decided, with the iptables rules that
        # let the packet by (KUBE-IPVS-FILTER's RETURN for a ClusterIP).
        assert focused_line(screen) == "-a -t 10.101.100.102:80 -r 192.168.2.2:8080 -m -w 1"
        assert matched_lines(screen)[:2] == [
            "-A -t 10.101.100.102:80 -s rr",
            "-a -t 10.101.100.102:80 -r 192.168.2.2:8080 -m -w 1",
        ]
        assert (
            "-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN"
            in matched_lines(screen)
        )
        text = shown(rules)
        assert "▶   -a -t 10.101.100.102:80 -r 192.168.2.2:8080 -m -w 1" in text
        # Why the scenario's endpoint, in this mode's words.
        said = " ".join(shown(screen.query_one(Explanation)).split())
        assert "IPVS itself takes the real servers in turn (rr, round-robin)" in said

        await pilot.press("m")
        await pilot.pause()
        assert screen.session.mode == "iptables"
        assert screen.badges[screen.index].label == "DNAT"
        assert focused_line(screen).endswith("-j DNAT --to-destination 192.168.2.2:8080")


async def test_m_without_a_trace_switches_the_rules_shown_and_the_title() -> None:
    app = make_app(None)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        assert title(screen) == "3 nodes · iptables · host-gw · press p or 1–4"
        await pilot.press("m")
        await pilot.pause()
        assert title(screen) == "3 nodes · nftables · host-gw · press p or 1–4"
        assert "table ip kube-proxy {" in shown(screen.query_one(RulesView))
        (note,) = notices(app)
        assert note.startswith("kube-proxy runs in nftables mode now (it ran in iptables mode)")
        # The next trace is nft's.
        await pilot.press("3")
        await pilot.pause()
        assert title(screen).startswith("nftables · host-gw · delivered")


async def test_the_help_says_which_mode_m_goes_to() -> None:
    app = make_app(scenario("3"), cluster=with_mode(demo_cluster(), "nftables"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(shown(app.screen.query_one("#help-keys")).split())
        assert "re-trace in ipvs mode (kube-proxy in nftables mode now" in text


def test_an_nft_rule_is_filtered_with_the_chain_it_is_in() -> None:
    text = (
        "table ip kube-proxy {\n"
        "\tchain services {\n"
        "\t\tip daddr . meta l4proto . th dport vmap @service-ips\n"
        "\t}\n"
        "\tchain endpoint-S2DO7VAZ-default/svc-b/tcp/http__192.168.2.2/8080 {\n"
        "\t\tip saddr 192.168.2.2 jump mark-for-masquerade\n"
        "\t\tmeta l4proto tcp dnat to 192.168.2.2:8080\n"
        "\t}\n"
        "}\n"
    )
    index = index_rules(text)
    assert index.row_of[("ip kube-proxy", "services", 1)] == 2
    assert index.row_of[("ip kube-proxy", index.chains[6], 2)] == 6
    # Found by its address: the rule comes with its chain's line.
    assert [index.lines[r].strip() for r in filter_rows(index, "dnat to")] == [
        "chain endpoint-S2DO7VAZ-default/svc-b/tcp/http__192.168.2.2/8080 {",
        "meta l4proto tcp dnat to 192.168.2.2:8080",
    ]
    # Found by its chain's name, which no rule line says.
    assert len(filter_rows(index, "svc-b/tcp")) == 3


async def test_a_vxlan_packet_is_shown_header_by_header_with_what_was_added() -> None:
    app = make_app(scenario("3"), cluster=with_cni(demo_cluster(), "flannel-vxlan"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        assert title(screen).startswith("iptables · flannel-vxlan · delivered")
        encap = at(screen, "encap")
        screen.go_to(encap)
        await pilot.pause()
        text = inspected(screen)
        assert "⊂ ENCAP  node-a flannel.1" in text
        assert "flannel.1 wraps the packet in VXLAN: + marks the headers" in text
        # The outer headers, added; the pod's packet inside, unchanged.
        for line in (
            "+ IPv4    10.0.0.11 → 10.0.0.12 udp (17) ttl 64",
            "+ VXLAN   VNI 1",
            "    IPv4  192.168.1.2 → 192.168.2.2 tcp (6) ttl 63",
        ):
            assert line in text
        outer = trace_of(screen).hops[encap].after
        assert f"+ UDP     {outer.sport} → 8472" in text
        path = shown(screen.query_one(PathMap))
        assert "[flannel.1]⊂ ═ node-a ═ wire 10.0.0.11→10.0.0.12 ═ node-b ═ flannel.1⊃" in path

        decap = next(h.seq for h in trace_of(screen).hops if h.kind is HopKind.DECAP)
        screen.go_to(decap)
        await pilot.pause()
        text = inspected(screen)
        assert "flannel.1 takes the VXLAN header off (−): the packet inside" in text
        assert "− VXLAN   VNI 1" in text


async def test_the_cluster_pane_lists_each_nodes_tunnel_and_calicos_blocks() -> None:
    app = make_app(None, cluster=with_cni(demo_cluster(), "flannel-vxlan"))
    async with app.run_test(size=(160, 48)):
        tree = screen_of(app).query_one(ClusterTree)
        node_a = [str(n.label) for n in tree.root.children[0].children[0].children]
        assert node_a[:4] == [
            "podCIDR 192.168.1.0/24",
            "⊂ flannel.1 192.168.1.0",
            "↳ VNI 1 UDP 8472 MTU 1450",
            node_a[3],
        ]
        assert node_a[3].startswith("↳ VTEP ") and len(node_a[3]) == len("↳ VTEP ") + 17
    app = make_app(None, cluster=with_cni(demo_cluster(), "calico-ipip"))
    async with app.run_test(size=(160, 48)):
        tree = screen_of(app).query_one(ClusterTree)
        node_a = [str(n.label) for n in tree.root.children[0].children[0].children]
        assert "↳ IP-in-IP, MTU 1480" in node_a
        assert any(label.startswith("⊂ tunl0 ") for label in node_a)
        assert any(label.startswith("IPAM block ") for label in node_a)


async def test_an_icmp_error_is_shown_with_the_header_it_quotes() -> None:
    app = make_app(Request("pod1", "svc-empty:80"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        screen.go_to(next(h.seq for h in trace_of(screen).hops if h.after.proto is Proto.ICMP))
        await pilot.pause()
        text = inspected(screen)
        assert "An ICMP error: its headers, then the refused packet's header" in text
        assert "  IPv4    192.168.1.1 → 192.168.1.2 icmp (1) ttl 64" in text
        assert "  ICMP    type 3 destination unreachable, quoting:" in text
        assert "    IPv4  192.168.1.2 → 10.101.100.99 tcp (6) ttl 63" in text
        assert "wraps" not in text
