"""`kubehop compare`: one request under several kube-proxy modes, lined up hop by hop."""

from __future__ import annotations

import json

import pytest

from model.trace import Verdict
from sim.cluster.load import demo_cluster
from sim.trace.compare import compare, comparison_text
from sim.trace.request import Request
from tui.cli import run


def test_the_endpoint_drawn_first_is_pinned_in_the_other_modes() -> None:
    result = compare(demo_cluster(), Request("pod1", "svc-b:80", seed=7), ["iptables", "nftables"])
    assert result.pinned == "192.168.1.4:8080"
    assert [t.endpoint for t in result.traces] == ["192.168.1.4:8080", "192.168.1.4:8080"]
    assert all(t.verdict is Verdict.DELIVERED for t in result.traces)


def test_the_modes_differ_where_their_rules_do() -> None:
    result = compare(demo_cluster(), Request("pod1", "svc-b:80", seed=7), ["iptables", "nftables"])
    differing = [(row.first.direction.value, row.first.where.hook) for row in result.differing]
    # The DNAT (KUBE-SEP vs endpoint- chain) and the reply's FORWARD, which iptables mode's
    # KUBE-FORWARD accepts as established and nftables mode has no rule for.
    assert [(d, h.value if h else None) for d, h in differing] == [
        ("request", "PREROUTING"),
        ("reply", "FORWARD"),
    ]
    dnat = result.differing[0]
    iptables, nftables = dnat.hops
    assert iptables is not None and iptables.sentence.startswith("DNAT in KUBE-SEP-")
    assert nftables is not None and nftables.sentence.startswith("DNAT in endpoint-")
    assert iptables.after.dst == nftables.after.dst


def test_a_port_no_service_has_is_rejected_in_nftables_and_ipvs_modes_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["compare", "pod1", "10.101.100.102:81", "--seed", "1"]
    assert run(argv) == 1
    out = capsys.readouterr().out.splitlines()
    at = out.index("  ≠ request HOOK/REJECT node-a cni0 FORWARD")
    assert out[at + 1] == "      iptables  #7 No FORWARD rule changes or stops the packet"
    assert out[at + 2].startswith("      nftables  #7 REJECT in cluster-ips-check:")
    assert out[-3].startswith("iptables  UNREACHABLE: ")
    assert out[-2].startswith("nftables  REJECTED: REJECT in cluster-ips-check")
    assert out[-1].startswith("ipvs      REJECTED: REJECT in KUBE-IPVS-FILTER")


def test_the_text_says_how_many_hops_differ() -> None:
    result = compare(demo_cluster(), Request("pod1", "svc-b:80", seed=7), ["nftables", "iptables"])
    text = comparison_text(result)
    assert f"{len(result.differing)} of {len(result.rows)} hops differ\n" in text
    assert f"endpoint {result.pinned}: drawn in nftables mode, pinned in the others" in text


def test_json_holds_each_trace_and_the_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["compare", "pod1", "svc-b:80", "--seed", "7", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["modes"] == ["iptables", "nftables", "ipvs"]
    assert set(data["traces"]) == {"iptables", "nftables", "ipvs"}
    dnat = next(r for r in data["rows"] if r["effect"] == "dnat")
    assert dnat == {
        "same": False,
        "direction": "request",
        "effect": "dnat",
        "where": "node-a cni0 PREROUTING",
        "seq": {"iptables": 4, "nftables": 4, "ipvs": 4},
    }


def test_markdown_is_a_table_with_a_column_per_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["compare", "pod1", "svc-b:80", "--seed", "7", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| hop | iptables | nftables | ipvs |" in lines
    assert "| request DNS · pod/default/pod1 | same | same | same |" in lines


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--modes", "iptables"], "--modes: name at least two modes to compare"),
        (["--modes", "iptables,iptables"], "--modes iptables,iptables: a mode is named twice"),
        (["--modes", "iptables,ipvz"], "--modes iptables,ipvz: 'ipvz' is not a kube-proxy mode"),
        (["--mode", "nftables"], "compare takes its modes from --modes, not --mode"),
    ],
)
def test_bad_modes_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["compare", "pod1", "svc-b:80", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
