"""`kubehop rules --diff`: meaning, not spelling; version and environment apart from drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.cluster import Cluster
from sim.cluster.load import demo_cluster, load
from sim.cluster.rules import node_rules
from sim.proxy.iptables import render_node_rules
from sim.proxy.iptables.diff import RulesDiff, diff_rules, diff_text, parse_version
from sim.readers.node_dump import node_rules_from_text
from tests import paths
from tui.cli import run

REAL = paths.REAL
KUBEADM = REAL / "kubeadm-flannel.yaml"
WORKER1 = REAL / "k8s-worker-1.iptables-legacy.rules"
RESTORE = REAL / "k8s-worker-1.kube-proxy-restore.txt"
OLD = REAL / "kubeadm-1.26"


@pytest.fixture(scope="module")
def kubeadm() -> Cluster:
    return load(KUBEADM)


def diff_of(cluster: Cluster, node: str, text: str, source: str = "node.rules") -> RulesDiff:
    real = node_rules_from_text(cluster, node, text, source)
    return diff_rules(node_rules(cluster, node), real)


# --- kube-proxy's restore input is its own rules -----------------------------------


def test_kube_proxys_restore_input_is_what_kube_proxy_should_write(kubeadm: Cluster) -> None:
    diff = diff_of(kubeadm, "k8s-worker-1", RESTORE.read_text(), str(RESTORE))
    assert diff.same and diff.partial and not diff.environment
    assert diff_text(diff).splitlines()[3:5] == [
        "k8s-worker-1: kube-proxy's rules are what kube-proxy should have written for this cluster",
        f"{RESTORE} declares no built-in chain (kube-proxy's restore input, for"
        " iptables-restore --noflush): only the chains it declares are compared",
    ]


# --- spelling is not meaning -----------------------------------------------------------

# Each rewrites an iptables-save line into another spelling iptables-restore takes for the
# same rule: what kube-proxy writes, what an older iptables prints, what a person types.
RESPELLINGS = {
    "or-mark": (r"--set-xmark (0x[0-9a-f]+)/\1\b", r"--or-mark \1"),
    "xor-mark": (r"--set-xmark (0x[0-9a-f]+)/0x0\b", r"--xor-mark \1"),
    "default reject": (r" --reject-with icmp-port-unreachable", ""),
    "recent defaults": (r" --mask 255\.255\.255\.255 --rsource", ""),
    "probability digits": (r"--probability (0\.\d{10})\d+", r"--probability \1"),
    "single quotes": (r'--comment "([^"\\]*)"', r"--comment '\1'"),
    "bare comment": (r'--comment "([^" \\]*)"', r"--comment \1"),
    "no /32": (r"(-[sd]) (\d+\.\d+\.\d+\.\d+)/32", r"\1 \2"),
    "module before -p": (r"-p (tcp|udp) (.*?)-m \1", r"\2-m \1 -p \1"),
    "counters": (r"^-A ", "[0:0] -A "),
    "padded mark": (r"--mark 0x4000/0x4000", "--mark 0x00004000/0x00004000"),
}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(sorted(RESPELLINGS)), min_size=1, max_size=6, unique=True))
def test_the_same_rules_spelled_otherwise_are_no_drift(chosen: list[str]) -> None:
    cluster = demo_cluster()
    lines = []
    for line in render_node_rules(cluster, "node-a").splitlines():
        if line.startswith("-A "):
            for name in chosen:
                pattern, to = RESPELLINGS[name]
                line = re.sub(pattern, to, line)
        lines.append(line)
    diff = diff_of(cluster, "node-a", "\n".join(lines) + "\n")
    assert (diff.missing, diff.extra, diff.environment) == ((), (), ())


def test_a_changed_rule_is_still_drift() -> None:
    cluster = demo_cluster()
    rule = (
        '-A KUBE-SEP-BO4IOD7Q2Z3O5LOG -p tcp -m comment --comment "default/svc-b:http" -m tcp'
        " -j DNAT --to-destination 192.168.1.3:8080"
    )
    text = render_node_rules(cluster, "node-a")
    assert text.count(rule) == 1
    diff = diff_of(cluster, "node-a", text.replace(rule, rule.replace(":8080", ":8081")))
    assert [r.line for r in diff.missing] == [rule]
    assert [r.line for r in diff.extra] == [rule.replace(":8080", ":8081")]
    assert not diff.same


def test_random_fully_is_the_nodes_environment_not_drift(kubeadm: Cluster) -> None:
    text = WORKER1.read_text().replace(
        '"kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        '"kubernetes service traffic requiring SNAT" -j MASQUERADE',
    )
    diff = diff_of(kubeadm, "k8s-worker-1", text, "w1.rules")
    assert diff.same
    assert diff_text(diff).splitlines()[4:7] == [
        "1 rule(s) differ only by --random-fully, which kube-proxy adds where the node's"
        " iptables and kernel support it: the node's environment, not drift",
        '  --A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring'
        ' SNAT" -j MASQUERADE --random-fully',
        '  +-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring'
        ' SNAT" -j MASQUERADE   (w1.rules:118)',
    ]


def test_canary_chains_are_nobodys_drift(kubeadm: Cluster) -> None:
    text = "".join(
        line
        for line in WORKER1.read_text().splitlines(keepends=True)
        if "CANARY" not in line and "KUBE-IPTABLES-HINT" not in line
    )
    assert diff_of(kubeadm, "k8s-worker-1", text).same


# --- a node of another kube-proxy version -------------------------------------------------


def test_a_126_node_differs_only_by_version_in_a_group_of_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = OLD / "k8s-worker-1.rules"
    status = run(
        [
            "rules",
            "--cluster",
            str(OLD / "cluster.yaml"),
            "--node",
            "k8s-worker-1",
            "--diff",
            str(rules),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[3:10] == [
        "k8s-worker-1: kube-proxy's rules are what kube-proxy should have written for this cluster",
        "kube-proxy v1.26.15 on k8s-worker-1 and v1.31 rendered by kubehop: 5 rule(s) differ"
        " only by version, not by the cluster",
        "  --A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name "
        " ct_state_invalid_dropped_pkts -j DROP   (1.30 counts the conntrack-INVALID drop with"
        " nfacct)",
        '  --A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "default/frontend:http"'
        " -m tcp --dport 30080 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j"
        " KUBE-EXT-UHJVR435UML62OOS   (1.31 counts packets to localhost NodePorts with nfacct)",
        '  +-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked'
        f' packets" -m mark --mark 0x8000/0x8000 -j DROP   ({rules}:55; kubelet 1.27 no longer'
        " writes KUBE-MARK-DROP and its 0x8000 drop)",
        "  +-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP   "
        f"({rules}:57; 1.30 counts the conntrack-INVALID drop with nfacct)",
        f"  +-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000   ({rules}:115; kubelet 1.27 no"
        " longer writes KUBE-MARK-DROP and its 0x8000 drop)",
    ]


def test_without_a_version_the_same_rules_are_drift_with_a_hint(kubeadm: Cluster) -> None:
    rules = OLD / "k8s-worker-1.rules"
    real = node_rules_from_text(kubeadm, "k8s-worker-1", rules.read_text(), str(rules))
    unknown = diff_rules(node_rules(kubeadm, "k8s-worker-1"), real, node_version="")
    assert (len(unknown.missing), len(unknown.extra), unknown.unexplained_versions) == (2, 3, 5)
    assert (
        "k8s-worker-1 reports no kubeProxyVersion: 5 of these differences match changes between"
        " kube-proxy versions (dump the Node with its status to tell)"
    ) in diff_text(unknown)
    # A 1.31 node's version explains nothing away.
    same = diff_rules(node_rules(kubeadm, "k8s-worker-1"), real, node_version="v1.31.2")
    assert (len(same.missing), len(same.extra), same.version_missing) == (2, 3, ())


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v1.26.15", (1, 26)),
        ("v1.28.5-eks-5e0fdde", (1, 28)),
        ("v1.27.3+k3s1", (1, 27)),
        ("1.30.0", (1, 30)),
        ("", None),
        (None, None),
        ("unknown", None),
    ],
)
def test_versions_as_nodes_report_them(text: str | None, version: tuple[int, int] | None) -> None:
    assert parse_version(text) == version


def test_the_version_group_lists_kube_proxys_changes_1_28_to_1_31(kubeadm: Cluster) -> None:
    rules = (OLD / "k8s-worker-1.rules").read_text()
    # kubelet's KUBE-MARK-DROP went in 1.27: on a node that says 1.28 it is drift.
    for node_version, grouped in (("v1.27.2", 3), ("v1.28.9", 3), ("v1.30.1", 1), ("v1.31.0", 0)):
        real = node_rules_from_text(kubeadm, "k8s-worker-1", rules, "w1.rules")
        diff = diff_rules(node_rules(kubeadm, "k8s-worker-1"), real, node_version=node_version)
        assert len(diff.version_missing) + len(diff.version_extra) == grouped, node_version


def test_rules_diff_is_one_line_per_rule_however_the_dump_was_written(
    kubeadm: Cluster, tmp_path: Path
) -> None:
    # The same node's rules as kube-proxy restores them and as iptables-save prints them.
    for source in (RESTORE, WORKER1):
        assert diff_of(kubeadm, "k8s-worker-1", source.read_text(), str(source)).same
