"""Reading a node's dumps as people paste them: stale chains, ipset list, IPVS, restore text."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.cluster import Cluster, ProxyMode
from model.errors import KubehopError, RulesParseError
from model.netfilter import Table
from sim.cluster.load import load
from sim.readers.ipset import parse_ipsets
from sim.readers.iptables_save import parse_iptables_save
from sim.readers.node_dump import NodeDump, load_node_rules
from sim.readers.proxy_mode import infer_proxy_mode
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths

REAL = paths.REAL
KUBEADM = REAL / "kubeadm-flannel.yaml"
STALE = REAL / "k8s-worker-1.stale-chain.rules"
RESTORE = REAL / "k8s-worker-1.kube-proxy-restore.txt"
IPVS_RULES = REAL / "ipvs" / "k8s-worker-2.rules"
IPVS_SETS = REAL / "ipvs" / "k8s-worker-2.ipset"
CALICO = REAL / "calico"
FRONTEND = "default/frontend-7d9c5b7b4-x2k9p"


@pytest.fixture(scope="module")
def kubeadm() -> Cluster:
    return load(KUBEADM)


def read(cluster: Cluster, node: str, rules: Path, ipset: Path | None = None) -> NodeDump:
    sets = [f"{node}={ipset}"] if ipset is not None else []
    return load_node_rules(cluster, [f"{node}={rules}"], sets)[node]


# --- One unreadable line does not reject the dump ------------------------------------


def test_a_stale_garbled_chain_is_listed_and_the_rest_is_walked(kubeadm: Cluster) -> None:
    dump = read(kubeadm, "k8s-worker-1", STALE)
    assert dump.ruleset.warnings == (
        f"{STALE}:34: filter/FORWARD #1: target NFLOG --nflog-group 5 [unsupported revision]"
        " is not simulated; assumed to continue to the next rule",
        f"{STALE}:138: nat/KUBE-SEP-QH4NOLX3ZQCUWJ5R #2: cannot read -j DNAT"
        " (--to-destination 0.0.0.0:0: port 0 is not a valid NAT port); assumed to continue to"
        " the next rule",
    )
    stale = dump.ruleset.chain(Table.NAT, "KUBE-SEP-QH4NOLX3ZQCUWJ5R")
    assert stale is not None and len(stale.rules) == 2
    # A pod's packet crosses FORWARD and meets the garbled rule: the trace says so.
    crossing = trace(
        kubeadm, Request(FRONTEND, "10.244.2.8:8080", seed=1), node_rules={"k8s-worker-1": dump}
    )
    assert (
        "filter/FORWARD #1: target NFLOG --nflog-group 5 [unsupported revision] is not"
        " simulated; assumed to continue"
    ) in crossing.warnings
    # Nothing jumps to the stale chain: no trace mentions it.
    assert not any("KUBE-SEP-QH4NOLX3ZQCUWJ5R" in w for w in crossing.warnings)
    node = trace(
        kubeadm,
        Request("k8s-worker-1", "10.96.120.15:80", seed=1),
        node_rules={"k8s-worker-1": dump},
    )
    assert node.endpoint is not None and node.endpoint.endswith(":8080")
    assert not any("FORWARD #1" in w or "QH4NOLX3ZQCUWJ5R" in w for w in node.warnings)


# --- kube-proxy's restore input reads as its iptables-save ---------------------------


def test_kube_proxys_restore_input_is_read_with_nothing_to_assume(kubeadm: Cluster) -> None:
    dump = read(kubeadm, "k8s-worker-1", RESTORE)
    assert dump.ruleset.warnings == ()
    rule = next(
        r
        for r in dump.ruleset.tables[Table.NAT]["KUBE-SERVICES"].rules
        if "default/kubernetes:https cluster IP" in r.line
    )
    saved = (
        parse_iptables_save(
            "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]\n"
            "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment"
            ' "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y\n'
            "COMMIT\n"
        )
        .tables[Table.NAT]["KUBE-SERVICES"]
        .rules[0]
    )
    assert set(rule.matches) == set(saved.matches)
    assert rule.target == saved.target


# --- IPVS nodes without their ipvsadm-save are named, not walked -------------------------

IPVS_LINE = (
    "k8s-worker-2's kube-proxy runs in IPVS mode (chains KUBE-NODE-PORT, KUBE-LOAD-BALANCER …;"
    " line 43: -m set --match-set KUBE-CLUSTER-IP{sets}), whose Services live in the kernel's"
    " IPVS table: add the node's `ipvsadm-save -n` output to the file"
)


def test_an_ipvs_node_gets_one_line_saying_what_showed_it(kubeadm: Cluster) -> None:
    with pytest.raises(RulesParseError) as err:
        read(kubeadm, "k8s-worker-2", IPVS_RULES)
    assert str(err.value) == f"{IPVS_RULES}: " + IPVS_LINE.format(sets="")
    with pytest.raises(RulesParseError) as err:
        read(kubeadm, "k8s-worker-2", IPVS_RULES, IPVS_SETS)
    assert str(err.value) == f"{IPVS_RULES}: " + IPVS_LINE.format(
        sets=f"; {IPVS_SETS}: sets KUBE-CLUSTER-IP, KUBE-HEALTH-CHECK-NODE-PORT …"
    )


def test_the_mode_is_inferred_from_rules_sets_or_configuration() -> None:
    node = parse_iptables_save(IPVS_RULES.read_text(), "b.rules")
    sets = parse_ipsets(IPVS_SETS.read_text(), "b.ipset")
    iptables_node = parse_iptables_save(
        (REAL / "k8s-worker-1.iptables-legacy.rules").read_text(), "a"
    )
    assert infer_proxy_mode(node).mode is ProxyMode.IPVS
    only_sets = infer_proxy_mode(None, sets, ipset_source="b.ipset")
    assert (only_sets.mode, only_sets.said()) == (
        ProxyMode.IPVS,
        "b.ipset: sets KUBE-CLUSTER-IP, KUBE-HEALTH-CHECK-NODE-PORT …",
    )
    configured = infer_proxy_mode(None, configured=ProxyMode.IPVS)
    assert configured.said() == "the cluster's KubeProxyConfiguration: mode ipvs"
    # The node's own rules decide over a configuration that may be out of date.
    assert infer_proxy_mode(node, configured=ProxyMode.IPTABLES).mode is ProxyMode.IPVS
    plain = infer_proxy_mode(iptables_node)
    assert (plain.mode, plain.assumed, plain.said()) == (
        ProxyMode.IPTABLES,
        False,
        "a: KUBE-SVC-/KUBE-SEP- chains",
    )
    assert infer_proxy_mode().assumed


# --- ipset save and ipset list; errors name the ipset file -----------------------------


def test_ipset_list_reads_as_ipset_save() -> None:
    save = parse_ipsets((CALICO / "node-3.ipset").read_text(), "node-3.ipset")
    listed = parse_ipsets((CALICO / "node-3.ipset-list").read_text(), "node-3.ipset-list")
    assert listed == save
    assert len(save) == 6


def test_ipset_list_makes_calicos_sets_evaluable_like_ipset_save() -> None:
    cluster = load(CALICO)
    rules = CALICO / "node-3.rules"
    for sets in ("node-3.ipset", "node-3.ipset-list"):
        dump = read(cluster, "node-3", rules, CALICO / sets)
        assert not any("-m set" in w for w in dump.ruleset.warnings), sets


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("create cali40this-host hash:ip family inet\nadd cali40this-host 10.0.0.999\n", 2),
        ("Name: cali40this-host\nType: hash:ip\nMembers:\n10.0.0.1\n10.0.0.999\n", 5),
    ],
    ids=["save", "list"],
)
def test_an_error_in_the_ipset_file_names_the_ipset_file(
    tmp_path: Path, text: str, line: int
) -> None:
    cluster = load(CALICO)
    sets = tmp_path / "node-3.ipset"
    sets.write_text(text)
    with pytest.raises(RulesParseError) as err:
        read(cluster, "node-3", CALICO / "node-3.rules", sets)
    assert str(err.value) == f"{sets}:{line}: '10.0.0.999' is not an IPv4 ip"


def test_ipset_list_appended_to_the_rules_names_its_line_in_that_file(tmp_path: Path) -> None:
    cluster = load(CALICO)
    rules = (CALICO / "node-3.rules").read_text()
    both = tmp_path / "node-3.all"
    both.write_text(rules + "Name: extra\nType: hash:net\nMembers:\n10.1.0.0/33\n")
    with pytest.raises(RulesParseError) as err:
        read(cluster, "node-3", both)
    assert str(err.value) == f"{both}:{rules.count(chr(10)) + 4}: '10.1.0.0/33' is not an IPv4 net"
    both.write_text(rules + (CALICO / "node-3.ipset-list").read_text())
    dump = read(cluster, "node-3", both)
    assert not any("-m set" in w for w in dump.ruleset.warnings)


@pytest.mark.parametrize(
    ("flag", "wrong", "message"),
    [
        (
            "--node-rules",
            IPVS_SETS,
            "{path}: this is `ipset list` output; give it with --ipset k8s-worker-2={path}",
        ),
        (
            "--ipset",
            IPVS_RULES,
            "{path}: this is `iptables-save` output, not ipsets; give it with --node-rules"
            " k8s-worker-2={path}",
        ),
    ],
)
def test_a_file_given_with_the_wrong_option_is_named(
    kubeadm: Cluster, flag: str, wrong: Path, message: str
) -> None:
    right = IPVS_RULES if flag == "--ipset" else None
    with pytest.raises(KubehopError) as err:
        if right is None:
            read(kubeadm, "k8s-worker-2", wrong)
        else:
            read(kubeadm, "k8s-worker-2", REAL / "k8s-worker-1.iptables-legacy.rules", wrong)
    assert str(err.value) == message.format(path=wrong)
