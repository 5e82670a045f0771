"""A trace's summary: where NAT happened and was undone, what decided, what was crossed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import model
from model.trace import Trace
from sim.cluster.load import demo_cluster, with_cni, with_derived_slices, with_mode
from sim.readers.cluster import parse_cluster
from sim.trace.export import trace_markdown
from sim.trace.presets import preset_for
from sim.trace.report import trace_json, trace_schema, trace_text
from sim.trace.request import Request
from sim.trace.summary import summarize, summary_lines
from sim.trace.tracer import trace


def _scenario(key: str, mode: str = "iptables", cni: str | None = None) -> Trace:
    preset = preset_for(key)
    assert preset is not None
    cluster = with_mode(demo_cluster(), mode)
    if cni is not None:
        cluster = with_cni(cluster, cni)
    return trace(cluster, replace(preset.request, seed=1))


def test_scenario_3_says_where_the_dnat_happened_and_where_it_was_undone() -> None:
    assert summary_lines(summarize(_scenario("3"))) == [
        "summary:",
        "  nodes: node-a → node-b",
        "  DNAT at hop 5 on node-a (10.101.100.102:80 → 192.168.2.2:8080), reversed at hop 33"
        " on node-a",
        "  decided by:",
        "    hop 5 node-a PREROUTING: KUBE-SEP-UGY2AY7XLGRWURZI #2 -j DNAT --to-destination"
        " 192.168.2.2:8080 (nat), reached by PREROUTING #1 → KUBE-SERVICES #3 →"
        " KUBE-SVC-G4RDBLL5YDRMFUB4 #4",
        "  outcome: DELIVERED (192.168.2.2:8080)",
    ]


def test_scenario_4_pairs_the_masquerade_with_the_reply_hop_that_undoes_it() -> None:
    summary = summarize(_scenario("4"))
    assert [(s.effect.value, s.hop, s.before, s.after, s.reversed_at) for s in summary.nat] == [
        ("dnat", 5, "10.0.0.12:30080", "192.168.3.3:8080", 32),
        ("masquerade", 8, "10.0.0.100:37170", "10.0.0.12:38327", 29),
    ]
    assert summary_lines(summary)[4:6] == [
        "  decided by:",
        "    hop 5 node-b PREROUTING: KUBE-SEP-5MUG4P5DJAELKTMT #2 -j DNAT --to-destination"
        " 192.168.3.3:8080 (nat), reached by PREROUTING #1 → KUBE-SERVICES #6 →"
        " KUBE-NODEPORTS #2 → KUBE-EXT-LOLE4ISW44XBNF3G #2 → KUBE-SVC-LOLE4ISW44XBNF3G #2",
    ]
    assert summary_lines(summary)[6] == (
        "    hop 8 node-b POSTROUTING: KUBE-POSTROUTING #3 -j MASQUERADE --random-fully (nat),"
        " reached by POSTROUTING #1"
    )


def test_scenario_1_crosses_no_node() -> None:
    assert summary_lines(summarize(_scenario("1"))) == [
        "summary:",
        "  nodes: none (the packets never left pod/default/pod1)",
        "  NAT: none",
        "  outcome: DELIVERED",
    ]


def test_ipvs_names_the_virtual_server_that_chose_the_endpoint() -> None:
    lines = summary_lines(summarize(_scenario("4", mode="ipvs")))
    assert lines[5] == (
        "    hop 6 node-b INPUT: DNAT by ipvs: -A -t 10.0.0.12:30080 -s rr;"
        " -a -t 10.0.0.12:30080 -r 192.168.3.3:8080 -m -w 1"
    )


def test_a_tunnel_is_named_with_its_device_and_node() -> None:
    lines = summary_lines(summarize(_scenario("3", cni="flannel-vxlan")))
    assert [line for line in lines if "tunnel" in line] == [
        "  tunnel: vxlan by flannel.1 on node-a at hop 10 (request)",
        "  tunnel: vxlan by flannel.1 on node-b at hop 36 (reply)",
    ]


@pytest.mark.parametrize(
    ("mode", "decided", "source"),
    [
        (
            "iptables",
            "    hop 8 node-a FORWARD: KUBE-SERVICES #1 -j REJECT --reject-with"
            " icmp-port-unreachable (filter), reached by FORWARD #3",
            "192.168.1.1",
        ),
        (
            "nftables",
            "    hop 8 node-a FORWARD: reject-chain #1 reject (ip kube-proxy), reached by"
            " filter-forward #1 → service-endpoints-check #1",
            "192.168.1.1",
        ),
        ("ipvs", "    hop 7 node-a INPUT: REJECT by ipvs: -A -t 10.101.100.99:80 -s rr", None),
    ],
)
def test_a_rejection_names_its_rule_and_the_answer(
    mode: str, decided: str, source: str | None
) -> None:
    t = trace(with_mode(demo_cluster(), mode), Request("pod1", "svc-empty:80", seed=1))
    lines = summary_lines(summarize(t))
    assert lines[4] == decided
    if source is not None:
        assert lines[5] == (
            f"  answer: ICMP destination unreachable from {source} at hop 9, reaches the client"
            " at hop 16: ECONNREFUSED"
        )
    assert lines[-1] == "  outcome: REJECTED"


def test_the_text_report_ends_with_the_summary() -> None:
    t = _scenario("3")
    text = trace_text(t)
    assert text.endswith("\n".join(summary_lines(summarize(t))) + "\n")
    assert "\nverdict: DELIVERED: " in text


def test_the_json_carries_the_summary_and_the_schema_declares_it() -> None:
    data = json.loads(trace_json(_scenario("3")))
    assert data["summary"]["nat"] == [
        {
            "effect": "dnat",
            "hop": 5,
            "node": "node-a",
            "hook": "PREROUTING",
            "before": "10.101.100.102:80",
            "after": "192.168.2.2:8080",
            "reversed_at": 33,
            "reversed_node": "node-a",
            "reversed_quoted": False,
        }
    ]
    assert data["summary"]["nodes"] == ["node-a", "node-b"]
    schema = trace_schema()
    assert schema["properties"]["summary"]["$ref"] == "#/$defs/TraceSummary"
    # Older output without a summary stays valid.
    assert "summary" not in schema["required"]


def test_markdown_ends_with_the_summary_as_a_list() -> None:
    md = trace_markdown(_scenario("4")).splitlines()
    assert md[-7:] == [
        "- nodes: node-b → node-c",
        "- DNAT at hop 5 on node-b (10.0.0.12:30080 → 192.168.3.3:8080), reversed at hop 32 on"
        " node-b",
        "- MASQ at hop 8 on node-b (10.0.0.100:37170 → 10.0.0.12:38327), reversed at hop 29 on"
        " node-b",
        "- decided by:",
        md[-3],
        "  - hop 8 node-b POSTROUTING: KUBE-POSTROUTING #3 -j MASQUERADE --random-fully (nat),"
        " reached by POSTROUTING #1",
        "- outcome: DELIVERED (192.168.3.3:8080)",
    ]
    assert md[-3].startswith("  - hop 5 node-b PREROUTING: KUBE-SEP-5MUG4P5DJAELKTMT #2")


def test_a_segment_of_a_natted_connection_names_conntrack_not_a_rule() -> None:
    # `--size` sends the first data segment after the handshake: conntrack rewrites it.
    sent = trace(demo_cluster(), Request("pod1", "svc-b:80", seed=1, size=3000))
    lines = summary_lines(summarize(sent))
    assert (
        "    hop 5 node-a PREROUTING: DNAT by conntrack: the connection's mapping"
        " (ESTABLISHED; no rule is consulted)"
    ) in lines


def test_an_icmp_error_from_the_node_reverses_the_dnat_in_the_header_it_quotes() -> None:
    # node-a cannot forward the datagram into flannel.1 (DF, 1500 > 1450) and answers the
    # client from its own address, which NAT never touched: conntrack rewrites the quoted
    # request's destination back to the NodePort.
    text = (Path(model.__file__).parent / "demo_cluster.yaml").read_text()
    udp = with_derived_slices(
        parse_cluster(text.replace("protocol: TCP", "protocol: UDP"), "u"), "u"
    )
    sent = trace(
        with_cni(udp, "flannel-vxlan"), Request("client", "10.0.0.11:30080/udp", seed=1, size=1472)
    )
    summary = summarize(sent)
    assert [(s.hop, s.reversed_at, s.reversed_quoted) for s in summary.nat] == [(5, 11, True)]
    assert summary_lines(summary)[2] == (
        "  DNAT at hop 5 on node-a (10.0.0.11:30080 → 192.168.3.3:8080), reversed at hop 11 on"
        " node-a (in the header the ICMP error quotes)"
    )
