"""`--all-endpoints`, the output formats, the reproduce commands, and the lab's wiring."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from model.trace import HopKind, Trace, Verdict
from sim.cluster.load import demo_cluster, load
from sim.trace import effects
from sim.trace.effects import Effect, trace_effects
from sim.trace.export import reproduce_commands, trace_dot, trace_markdown
from sim.trace.fork import fork, fork_dict, fork_text
from sim.trace.report import trace_dict, trace_schema, trace_text
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths
from tui.cli import build_parser, run

REAL = paths.REAL
KUBEADM = REAL / "kubeadm-flannel.yaml"


def test_every_endpoint_is_a_third_through_one_third_then_a_half_then_the_rest() -> None:
    result = fork(demo_cluster(), Request("pod1", "svc-b:80", seed=1))
    assert [b.trace.endpoint for b in result.branches] == [
        "192.168.1.3:8080",
        "192.168.1.4:8080",
        "192.168.2.2:8080",
    ]
    assert [b.probability for b in result.branches] == [Fraction(1, 3)] * 3
    assert [[(c.index, c.matched, c.chance) for c in b.choices] for b in result.branches] == [
        [(2, True, Fraction(1, 3))],
        [(2, False, Fraction(2, 3)), (3, True, Fraction(1, 2))],
        [(2, False, Fraction(2, 3)), (3, False, Fraction(1, 2))],
    ]
    assert all(b.trace.verdict is Verdict.DELIVERED for b in result.branches)


def test_the_fork_tree_reads_like_the_rules() -> None:
    text = fork_text(fork(demo_cluster(), Request("pod1", "svc-b:80", seed=1)))
    assert text.splitlines()[:7] == [
        "kubehop trace pod1 → svc-b:80, every endpoint   (seed 1)",
        "",
        "KUBE-SVC-G4RDBLL5YDRMFUB4 (default/svc-b:http)",
        "├── #2 matches, probability 1/3 (--probability 0.33333333349) → 192.168.1.3:8080"
        " (default/pod2): DELIVERED   [overall 1/3]",
        "└── #2 does not match, 2/3",
        "    ├── #3 matches, probability 1/2 (--probability 0.50000000000) → 192.168.1.4:8080"
        " (default/pod3): DELIVERED   [overall 1/3]",
        "    └── #3 does not match, 1/2",
    ]
    assert text.splitlines()[7] == (
        "        └── the rest (#4) → 192.168.2.2:8080 (default/pod4): DELIVERED   [overall 1/3]"
    )


def test_each_branch_is_traced_to_its_own_end() -> None:
    # On the kubeadm dump one of api's endpoints, api-2, declares another port
    # than the one its EndpointSlice lists: only that branch rests on an assumption.
    result = fork(load(KUBEADM), Request("default/frontend-7d9c5b7b4-x2k9p", "api:80", seed=1))
    outcomes = [(b.trace.endpoint, b.trace.verdict) for b in result.branches]
    assert outcomes == [
        ("10.244.1.7:8080", Verdict.DELIVERED),
        ("10.244.1.9:8080", Verdict.DELIVERED),
        ("10.244.2.8:8080", Verdict.DELIVERED),
    ]
    data = fork_dict(result)
    assert [b["probability"] for b in data["branches"]] == ["1/3", "1/3", "1/3"]
    assumed = [
        w for b in data["branches"] for w in b["trace"]["warnings"] if w.startswith("assumed:")
    ]
    assert len(assumed) == 1
    assert assumed[0].startswith("assumed: default/api's endpoints list 10.244.1.9:8080/tcp")


def test_a_service_with_one_endpoint_has_one_path() -> None:
    result = fork(demo_cluster(), Request("pod1", "myapp-svc:80", seed=1))
    assert len(result.branches) == 2  # myapp-svc has two endpoints
    single = fork(load(KUBEADM), Request("default/frontend-7d9c5b7b4-x2k9p", "orders:80", seed=1))
    assert len(single.branches) == 1
    assert single.branches[0].probability == 1
    assert "the only path → no endpoint: REJECTED   [overall 1]" in fork_text(single)


def test_all_endpoints_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(["trace", "pod1", "svc-b:80", "--all-endpoints", "--seed", "1"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.count("=== branch ") == 3
    assert "branch 3 (1/3): DELIVERED: pod1/container01 reached 192.168.2.2:8080" in out
    status = run(["trace", "pod1", "svc-b:80", "--all-endpoints", "--seed", "1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert [b["trace"]["endpoint"] for b in data["branches"]] == [
        "192.168.1.3:8080",
        "192.168.1.4:8080",
        "192.168.2.2:8080",
    ]
    status = run(
        [
            "--cluster",
            str(KUBEADM),
            "trace",
            "frontend-7d9c5b7b4-x2k9p",
            "api:80",
            "--all-endpoints",
        ]
    )
    assert status == 0  # every branch delivered (api-2's on an assumption it states)
    capsys.readouterr()


def test_markdown_export() -> None:
    t = trace(demo_cluster(), Request("pod1", "svc-b:80", seed=1, pick="192.168.1.3:8080"))
    md = trace_markdown(t)
    lines = md.splitlines()
    assert lines[0] == "### `kubehop trace pod1 svc-b:80 --seed 1`"
    assert lines[2] == f"**DELIVERED**: {t.reason}"
    assert lines[4] == "| # | µs | direction | where | what happened | packet after |"
    assert len([line for line in lines if line.startswith("| ")]) == len(t.hops) + 1
    assert (
        "| 5 | 4 | request | node-a cni0 PREROUTING | DNAT in KUBE-SEP-BO4IOD7Q2Z3O5LOG #2:" in md
    )


def test_markdown_escapes_pipes_and_names_the_rule() -> None:
    t = trace(demo_cluster(), Request("pod1", "svc-empty:80", seed=1))
    md = trace_markdown(t)
    assert f"Rule: `{t.rule}`" in md
    assert t.rule is not None and t.rule.startswith("filter: -A KUBE-SERVICES")


def test_dot_export_draws_the_path_per_node() -> None:
    t = trace(demo_cluster(), Request("pod1", "svc-b:80", seed=1, pick="192.168.2.2:8080"))
    dot = trace_dot(t)
    assert dot.startswith("digraph kubehop {\n")
    assert dot.endswith("}\n")
    assert 'label="node-a";' in dot and 'label="node-b";' in dot
    assert '"node-a" -> "node-b" [label=' in dot
    assert ", style=dashed];" in dot  # the reply
    assert '"pod/default/pod4";' in dot


def test_dot_marks_where_a_packet_died() -> None:
    t = trace(demo_cluster(), Request("pod1", "svc-empty:80", seed=1))
    assert '"node-a" [color=red, xlabel="✗ rejected"];' in trace_dot(t)


def test_reproduce_commands_match_the_packet_on_each_node() -> None:
    t = trace(demo_cluster(), Request("pod1", "svc-b:80", seed=1, pick="192.168.2.2:8080"))
    text = reproduce_commands(t)
    assert "kubectl exec -n default pod1 -- nc -vz -w 2 10.101.100.102 80" in text
    # node-a sees the ClusterIP; node-b sees the endpoint (node-a DNATed it).
    assert (
        "iptables -t raw -I PREROUTING -p tcp -s 192.168.1.2 -d 10.101.100.102 --dport 80 -j TRACE"
        in text
    )
    assert (
        "iptables -t raw -I PREROUTING -p tcp -s 192.168.1.2 -d 192.168.2.2 --dport 8080 -j TRACE"
        in text
    )
    assert (
        "iptables -t raw -D PREROUTING -p tcp -s 192.168.1.2 -d 192.168.2.2 --dport 8080 -j TRACE"
        in text
    )
    assert "xtables-monitor --trace" in text
    assert "conntrack -E -p tcp -d 10.101.100.102 --dport 80" in text
    assert "tcpdump -ni eth0 'tcp and host 192.168.2.2 and port 8080'" in text
    assert text.count("# 1. on ") == 2


def test_a_node_source_traces_output_too() -> None:
    t = trace(demo_cluster(), Request("node-a", "10.101.100.102:80", seed=1))
    assert "iptables -t raw -I OUTPUT " in reproduce_commands(t)


@pytest.mark.parametrize(
    ("fmt", "start"),
    [
        ("text", "kubehop trace pod1 → svc-b:80   (seed 1)"),
        ("json", "{"),
        ("markdown", "### `kubehop trace pod1 svc-b:80 --seed 1`"),
        ("dot", "digraph kubehop {"),
    ],
)
def test_every_format_on_the_command_line(
    fmt: str, start: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(["trace", "pod1", "svc-b:80", "--seed", "1", "--format", fmt])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith(start)


def test_json_stays_the_short_form(capsys: pytest.CaptureFixture[str]) -> None:
    run(["trace", "pod1", "svc-b:80", "--seed", "1", "--json"])
    short = capsys.readouterr().out
    run(["trace", "pod1", "svc-b:80", "--seed", "1", "--format", "json"])
    assert capsys.readouterr().out == short
    assert run(["trace", "pod1", "svc-b:80", "--json", "--format", "dot"]) == 2
    assert "disagree" in capsys.readouterr().err


def test_reproduce_follows_the_trace(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(["trace", "pod1", "svc-b:80", "--seed", "1", "--reproduce"])
    out = capsys.readouterr().out
    assert status == 0
    assert "\n# Confirm `kubehop trace pod1 svc-b:80 --seed 1` on the cluster.\n" in out


def test_the_lab_is_a_subcommand() -> None:
    args = build_parser().parse_args(["lab", "down"])
    assert args.command == "lab"
    assert args.lab_command == "down"


def test_the_app_takes_one_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--cluster", "a.yaml", "--cluster", "b.yaml"]) == 2
    assert "the app takes one --cluster" in capsys.readouterr().err


def _headers(t: Trace) -> list[str]:
    """Each hop's header line (number, symbol, time, direction, effect, place), in hop order."""
    return [line for line in trace_text(t).splitlines() if line[:3].strip().isdigit()]


@pytest.mark.parametrize(
    ("request_", "wanted"),
    [
        (Request("pod1", "svc-b:80", seed=2), {4: "DNAT", 5: "BRIDGE", 18: "UN-NAT"}),
        (Request("client", "10.0.0.12:30080", seed=1), {4: "DNAT", 7: "MASQ", 28: "UN-NAT"}),
        (Request("pod1", "svc-empty:80", seed=1), {4: "HOOK", 7: "REJECT"}),
        (Request("pod1", "192.168.1.3:9999", seed=1), {9: "REFUSED"}),
        (Request("pod1", "localhost:8080", "container01", seed=1), {2: "LO", 3: "DELIVER"}),
    ],
    ids=["dnat and un-nat", "nodeport masquerade", "reject", "refused", "loopback"],
)
def test_the_text_header_names_what_each_hop_did(request_: Request, wanted: dict[int, str]) -> None:
    t = trace(demo_cluster(), request_)
    headers = _headers(t)
    # Numbered from 1, as the app counts hops (`5/22`); the JSON's seq is the index from 0.
    assert [int(line[:3]) for line in headers] == [hop.seq + 1 for hop in t.hops]
    for seq, label in wanted.items():
        assert headers[seq].split()[4] == label, headers[seq]
    assert not any("NETFILTER" in line for line in headers)


def test_the_readme_hop_reads_dnat() -> None:
    t = trace(demo_cluster(), Request("pod1", "svc-b:80", seed=2))
    assert _headers(t)[4] == "  5 #      4µs request DNAT    node-a cni0 PREROUTING"


def test_json_keeps_the_kind_and_adds_the_effect() -> None:
    t = trace(demo_cluster(), Request("client", "10.0.0.12:30080", seed=1))
    hops = trace_dict(t)["hops"]
    assert [list(hop)[3:5] for hop in hops] == [["kind", "effect"]] * len(hops)
    assert [hop["kind"] for hop in hops] == [hop.kind.value for hop in t.hops]
    assert [hop["effect"] for hop in hops] == [e.value for e in trace_effects(t)]
    assert (hops[4]["kind"], hops[4]["effect"]) == ("netfilter", "dnat")
    assert (hops[7]["kind"], hops[7]["effect"]) == ("netfilter", "masquerade")
    assert set(trace_schema()["$defs"]["Effect"]["enum"]) == {e.value for e in Effect}


def test_every_hop_kind_has_an_effect() -> None:
    # A new kind of hop must say what it does before a trace can show it.
    assert set(effects._BY_KIND) == set(HopKind)
    assert all(len(effect.label) <= 7 for effect in Effect)
