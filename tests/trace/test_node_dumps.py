"""A real node's iptables-save walked instead of kubehop's rules; `rules --diff`; verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.cluster import Cluster
from model.errors import KubehopError, RulesParseError
from model.trace import Direction, Hop, HopKind, Trace, Verdict
from sim.cluster.load import load
from sim.cluster.rules import node_rules
from sim.kernel.rules import NodeRules
from sim.proxy.iptables.diff import diff_rules, diff_text
from sim.readers.node_dump import load_node_rules, node_rules_from_text
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths
from tui.cli import run

REAL = paths.REAL
KUBEADM = REAL / "kubeadm-flannel.yaml"
WORKER1 = REAL / "k8s-worker-1.iptables-legacy.rules"
KIND = REAL / "kind.json"
KIND_W2 = REAL / "kind-worker2.iptables-nft.rules"
CALICO = REAL / "calico"
NODE3 = CALICO / "node-3.rules"
NODE3_IPSET = CALICO / "node-3.ipset"
FRONTEND = "default/frontend-7d9c5b7b4-x2k9p"


@pytest.fixture(scope="module")
def kubeadm() -> Cluster:
    return load(KUBEADM)


def worker1(cluster: Cluster, text: str | None = None) -> dict[str, NodeRules]:
    text = WORKER1.read_text() if text is None else text
    return {"k8s-worker-1": node_rules_from_text(cluster, "k8s-worker-1", text, str(WORKER1))}


def without(text: str, needle: str) -> str:
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if needle not in line]
    assert len(kept) == len(lines) - 1, f"{needle!r} is not on exactly one line"
    return "".join(kept)


def path_of(t: Trace) -> list[tuple[str, str, str | None, str, str]]:
    """What a trace does, rule names aside: each hop's kind, place and packets."""
    return [
        (h.kind.value, h.where.netns, h.where.hook, str(h.before), str(h.after)) for h in t.hops
    ]


def hop_at(t: Trace, netns: str, hook: str) -> Hop:
    return next(h for h in t.hops if h.where.netns == netns and h.where.hook == hook)


# -- a real node's rules agree with kubehop's when they are equivalent ---------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_real_dump_with_other_chains_agrees_with_the_rendered_rules(
    kubeadm: Cluster, seed: int
) -> None:
    real = trace(kubeadm, Request(FRONTEND, "api:80", seed=seed), node_rules=worker1(kubeadm))
    rendered = trace(kubeadm, Request(FRONTEND, "api:80", seed=seed))
    assert path_of(real) == path_of(rendered)
    assert (real.verdict, real.endpoint, real.reason) == (
        rendered.verdict,
        rendered.endpoint,
        rendered.reason,
    )


def test_the_real_rule_is_named_by_file_and_line(kubeadm: Cluster) -> None:
    t = trace(
        kubeadm,
        Request(FRONTEND, "api:80", seed=1, pick="10.244.2.8:8080"),
        node_rules=worker1(kubeadm),
    )
    dnat = hop_at(t, "k8s-worker-1", "PREROUTING")
    assert dnat.detail == (
        f"{WORKER1}:134: nat: -A KUBE-SEP-NDJNM7K5P45BJSR5 -p tcp -m comment --comment"
        ' "default/api:http" -m tcp -j DNAT --to-destination 10.244.2.8:8080'
    )
    # Docker set FORWARD's policy to DROP; flannel's rule is what lets pod traffic through.
    forward = hop_at(t, "k8s-worker-1", "FORWARD")
    assert forward.sentence == "FLANNEL-FWD #1 accepts the packet (flanneld forward)"
    assert forward.detail.startswith(f"{WORKER1}:53: filter: -A FLANNEL-FWD -s 10.244.0.0/16")
    assert t.endpoint == "10.244.2.8:8080"
    assert t.verdict is Verdict.DELIVERED


def test_flannels_masquerade_is_in_the_dump_and_in_kubehops_rules(kubeadm: Cluster) -> None:
    # A pod reaching the API server (a node address) leaves the pod network:
    # Flannel's FLANNEL-POSTRTG masquerades it, in the node's real rules and in the
    # rules kubehop renders for a Flannel cluster (the dump's DaemonSet says Flannel).
    real = trace(kubeadm, Request(FRONTEND, "10.96.0.1:443", seed=1), node_rules=worker1(kubeadm))
    post = hop_at(real, "k8s-worker-1", "POSTROUTING")
    assert post.sentence == (
        "MASQUERADE in FLANNEL-POSTRTG #5: source 10.244.1.5:37170 → 10.0.0.11:38327, the"
        " address of eth0 with a random port (--random-fully; flanneld masq)"
    )
    rendered = trace(kubeadm, Request(FRONTEND, "10.96.0.1:443", seed=1))
    again = hop_at(rendered, "k8s-worker-1", "POSTROUTING")
    assert again.after.src == post.after.src
    assert again.sentence.startswith("MASQUERADE in FLANNEL-POSTRTG #5:")


# -- and show the difference when a rule was deleted or an endpoint is stale -----------


def test_a_deleted_cni_rule_drops_at_the_forward_policy(kubeadm: Cluster) -> None:
    text = without(WORKER1.read_text(), '-A FORWARD -m comment --comment "flanneld forward"')
    t = trace(
        kubeadm,
        Request(FRONTEND, "api:80", seed=1, pick="10.244.2.8:8080"),
        node_rules=worker1(kubeadm, text),
    )
    assert t.verdict is Verdict.DROPPED
    assert t.reason == (
        "DROP: the filter table's FORWARD policy is DROP and no rule accepted the packet"
    )
    assert t.rule == "filter: :FORWARD DROP"
    assert t.hops[-1].where.netns == "k8s-worker-1"


def test_a_deleted_service_rule_sends_the_cluster_ip_nowhere(
    kubeadm: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = without(
        WORKER1.read_text(), '"default/api:http cluster IP" -m tcp --dport 80 -j KUBE-SVC'
    )
    t = trace(kubeadm, Request(FRONTEND, "api:80", seed=1), node_rules=worker1(kubeadm, text))
    assert t.verdict is Verdict.UNREACHABLE
    assert t.reason.startswith(
        "no route to 10.96.120.15 on k8s-worker-1: 10.96.120.15:80 is the ClusterIP of"
        " default/api, but no rule of this node's DNATs it (the node's rules lack the Service's)"
    )
    broken = tmp_path / "k8s-worker-1.rules"
    broken.write_text(text)
    status = run(
        [
            "trace",
            "--cluster",
            str(KUBEADM),
            FRONTEND,
            "api:80",
            "--seed",
            "1",
            "--node-rules",
            f"k8s-worker-1={broken}",
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    lines = out.rstrip().splitlines()
    assert f"verdict: UNREACHABLE: {t.reason}" in lines
    assert lines[-2:] == [
        "  outcome: UNREACHABLE",
        "with kube-proxy's rendered rules instead: DELIVERED: frontend-7d9c5b7b4-x2k9p/nginx"
        " reached 10.244.2.8:8080 through 10.96.120.15:80, and the reply came back from"
        " 10.96.120.15:80",
    ]


def test_a_stale_endpoint_is_named(kubeadm: Cluster) -> None:
    # api-1 went away and kube-proxy on this node did not sync: its rules still
    # send a third of the traffic to the old address.
    text = WORKER1.read_text().replace("10.244.2.8", "10.244.2.99")
    t = trace(
        kubeadm,
        Request(FRONTEND, "api:80", seed=1, pick="10.244.2.99:8080"),
        node_rules=worker1(kubeadm, text),
    )
    assert t.endpoint == "10.244.2.99:8080"
    assert t.verdict is Verdict.UNREACHABLE
    stale = (
        f"k8s-worker-1's rules ({WORKER1}:134) DNAT to 10.244.2.99:8080 of default/api:http, but"
        " no EndpointSlice in the cluster dump lists that endpoint: a stale rule kube-proxy has"
        " not removed (or a dump older than the rules)"
    )
    assert stale in t.warnings
    assert stale in (hop_at(t, "k8s-worker-1", "PREROUTING").note or "")


# -- ipsets, nft flavour -------------------------------------------------------------


def test_m_set_is_evaluated_with_the_nodes_ipset_save() -> None:
    cluster = load(CALICO)
    with_sets = load_node_rules(cluster, [f"node-3={NODE3}"], [f"node-3={NODE3_IPSET}"])
    t = trace(
        cluster,
        Request(
            "shop/shop-api-84d6f7c9b-kx7pq",
            "node-exporter.monitoring:9100",
            seed=1,
            pick="192.168.56.11:9100",
        ),
        node_rules=with_sets,
    )
    post = hop_at(t, "node-3", "POSTROUTING")
    assert post.sentence.startswith(
        "MASQUERADE in cali-nat-outgoing #1: source 10.42.3.5:37170 → 192.168.56.13:"
    )
    assert post.sentence.endswith(
        "the address of eth0 with a random port (--random-fully; cali:flqWnvo8yq4ULQLa)"
    )
    assert not any("cannot evaluate -m set" in w for w in t.warnings)
    assert t.verdict is Verdict.DELIVERED
    assert not any("-m set" in w for w in with_sets["node-3"].ruleset.warnings)


def test_without_the_ipset_the_trace_says_what_it_assumed() -> None:
    cluster = load(CALICO)
    bare = load_node_rules(cluster, [f"node-3={NODE3}"])
    assert (
        f"{NODE3}:218: nat/cali-nat-outgoing #1: cannot evaluate -m set; assumed it does not"
        " match (give the node's `ipset save` with --ipset node-3=FILE)"
    ) in bare["node-3"].ruleset.warnings
    t = trace(
        cluster,
        Request(
            "shop/shop-api-84d6f7c9b-kx7pq",
            "node-exporter.monitoring:9100",
            seed=1,
            pick="192.168.56.11:9100",
        ),
        node_rules=bare,
    )
    post = hop_at(t, "node-3", "POSTROUTING")
    assert post.before == post.after  # not masqueraded
    assumed = (
        "nat/cali-nat-outgoing #1: cannot evaluate -m set --match-set cali40masq-ipam-pools src;"
        " assumed it does not match"
    )
    assert any(assumed in w for w in t.warnings)
    assert post.note is not None and "kubehop had to assume here: " in post.note


def test_an_nft_dump_from_a_kind_node_masquerades_by_kind_masq_agent() -> None:
    cluster = load(KIND)
    real = load_node_rules(cluster, [f"kind-worker2={KIND_W2}"])
    assert real["kind-worker2"].ruleset.warnings == (
        f"{KIND_W2}:1: Warning: iptables-legacy tables present, use iptables-legacy-save to see them",
    )
    t = trace(cluster, Request("demo/curl", "kubernetes.default:443", seed=1), node_rules=real)
    post = hop_at(t, "kind-worker2", "POSTROUTING")
    assert post.sentence == (
        "MASQUERADE in KIND-MASQ-AGENT #2: source 10.244.2.2:37170 → 172.18.0.4:37170, the"
        " address of eth0 (kind-masq-agent: outbound traffic is subject to MASQUERADE (must be"
        " last in chain))"
    )
    echo = trace(cluster, Request("demo/curl", "echo:80", seed=1), node_rules=real)
    assert echo.endpoint == "10.244.2.3:8080"
    assert echo.verdict is Verdict.DELIVERED


# -- bad rules files: one line, exit 2 ---------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "content", "message"),
    [
        ("k8s-worker-1", None, "--node-rules 'k8s-worker-1': expected NODE=FILE"),
        ("k8s-worker-9=@", "*nat\nCOMMIT\n", "@: no node 'k8s-worker-9' in the cluster"),
        ("k8s-worker-1=@", "hello\n", "@: no tables in it (expected the output of"),
        ("k8s-worker-1=@", "*nat\n-A NOPE -j ACCEPT\nCOMMIT\n", "@:2: rule appended to undeclared chain 'NOPE'"),
        ("k8s-worker-1=@", "create s hash:ip family inet\n", "@: this is `ipset save` output; give it with --ipset k8s-worker-1=@"),
        ("k8s-worker-1=@", b"\xff\xfe*nat", "@:1: not text"),
    ],
)  # fmt: skip
def test_bad_node_rules_are_one_line(
    spec: str,
    content: str | bytes | None,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "node.rules"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    status = run(
        [
            "trace",
            "--cluster",
            str(KUBEADM),
            FRONTEND,
            "api:80",
            "--seed",
            "1",
            "--node-rules",
            spec.replace("@", str(path)),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert message.replace("@", str(path)) in err


def test_an_ipset_without_its_rules_is_an_error(kubeadm: Cluster) -> None:
    with pytest.raises(KubehopError, match="give k8s-worker-1's rules with --node-rules too"):
        load_node_rules(kubeadm, [], [f"k8s-worker-1={NODE3_IPSET}"])


def test_a_bad_ipset_line_names_file_and_line(kubeadm: Cluster, tmp_path: Path) -> None:
    sets = tmp_path / "sets"
    sets.write_text("create a hash:net family inet\nadd a not-an-ip\n")
    with pytest.raises(RulesParseError, match=r":2: 'not-an-ip' is not an IPv4 net"):
        load_node_rules(kubeadm, [f"k8s-worker-1={WORKER1}"], [f"k8s-worker-1={sets}"])


# -- kubehop rules --diff ------------------------------------------------------------------


def test_diff_of_an_equivalent_dump_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(
        ["rules", "--cluster", str(KUBEADM), "--node", "k8s-worker-1", "--diff", str(WORKER1)]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out == (
        "--- kube-proxy's rules for k8s-worker-1, rendered from the cluster\n"
        f"+++ {WORKER1}\n"
        "\n"
        "k8s-worker-1: kube-proxy's rules are what kube-proxy should have written for this cluster\n"
        "not kube-proxy's, not compared: filter/DOCKER (0), filter/DOCKER-ISOLATION-STAGE-1 (2),"
        " filter/DOCKER-ISOLATION-STAGE-2 (2), filter/DOCKER-USER (1), filter/FLANNEL-FWD (2),"
        " nat/DOCKER (1), nat/FLANNEL-POSTRTG (6)\n"
    )


def test_diff_shows_a_deleted_rule_and_a_stale_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = without(
        WORKER1.read_text(), '"default/api:http cluster IP" -m tcp --dport 80 -j KUBE-SVC'
    )
    text = text.replace("10.244.2.8", "10.244.2.99")
    dump = tmp_path / "k8s-worker-1.rules"
    dump.write_text(text)
    status = run(
        ["rules", "--cluster", str(KUBEADM), "--node", "k8s-worker-1", "--diff", str(dump)]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert (
        "@@ *nat KUBE-SERVICES @@\n"
        '--A KUBE-SERVICES -d 10.96.120.15/32 -p tcp -m comment --comment "default/api:http cluster'
        ' IP" -m tcp --dport 80 -j KUBE-SVC-KKDGWRPDK6Z5NCHS\n'
    ) in out
    assert (
        '+-A KUBE-SEP-NDJNM7K5P45BJSR5 -p tcp -m comment --comment "default/api:http" -m tcp -j'
        f" DNAT --to-destination 10.244.2.99:8080   ({dump}:134)\n"
    ) in out
    assert "k8s-worker-1: 4 kube-proxy rule(s) missing, 3 the cluster does not explain\n" in out
    assert (
        "missing endpoint: 10.244.2.8:8080 (default/api:http) (in the EndpointSlices, not in the node's rules)\n"
        in out
    )
    assert (
        "stale endpoint: 10.244.2.99:8080 (default/api:http) (in the node's rules, in no EndpointSlice"
        in out
    )


def test_diff_counts_rules_not_lines(kubeadm: Cluster) -> None:
    # Counters, header comments and chain order do not count as differences.
    rendered = node_rules(kubeadm, "k8s-worker-1")
    real = worker1(kubeadm)["k8s-worker-1"]
    diff = diff_rules(rendered, real)
    assert diff.same and not diff.missing_endpoints and not diff.stale_endpoints
    assert diff_text(diff).splitlines()[3].endswith("should have written for this cluster")


# -- every kind of verdict, in plain words, with the rule -----------------------------


VERDICTS = [
    (
        "reject: a Service without endpoints",
        (FRONTEND, "orders:80"),
        {},
        Verdict.REJECTED,
        "REJECT in KUBE-SERVICES: default/orders:http has no endpoints (KUBE-SERVICES #1): no"
        " ready pod backs it, so kube-proxy rejects its traffic; the kernel answers with"
        " icmp-port-unreachable",
        'filter: -A KUBE-SERVICES -d 10.96.44.7/32 -p tcp -m comment --comment "default/orders:http'
        ' has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable',
    ),
    (
        "drop: externalTrafficPolicy Local, no local endpoint",
        ("k8s-worker-1", "10.0.0.10:30080"),
        {},
        Verdict.DROPPED,
        "DROP in KUBE-EXTERNAL-SERVICES: externalTrafficPolicy Local and no local endpoint on"
        " k8s-cp (default/frontend:http, KUBE-EXTERNAL-SERVICES #1): the node drops it rather"
        " than send it to another node",
        'filter: -A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/frontend:http has'
        ' no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DROP',
    ),
    (
        "no route",
        (FRONTEND, "10.250.0.7:80"),
        {},
        Verdict.UNREACHABLE,
        "no route to 10.250.0.7 on k8s-worker-1: no pod, node or Service kubehop knows has that"
        " address, so only the default route would take it, to the router at 10.0.0.1 and out of"
        " the cluster",
        None,
    ),
    (
        "a pod that declares another port, on a port nothing lists",
        (FRONTEND, "10.244.1.9:9999"),
        {},
        Verdict.REFUSED,
        "pod api-2 declares no port tcp/9999 (it declares tcp/9000; kubehop takes declared"
        " container ports as the listening ones): the kernel answers with a TCP RST",
        None,
    ),
    (
        "a node's port no pod declares (etcd's, on the control plane)",
        (FRONTEND, "10.0.0.10:2379"),
        {},
        Verdict.UNKNOWN,
        "the request reaches k8s-cp on tcp/2379, and no socket kubehop knows of listens there:"
        " k8s-cp runs processes no pod declares (its hostNetwork pods declare tcp/6443), and"
        " the dump cannot show listening sockets, so whether the connection is accepted or"
        " refused is unknown",
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "flow", "extra", "verdict", "reason", "rule"), VERDICTS, ids=[v[0] for v in VERDICTS]
)
def test_every_verdict_is_one_plain_sentence_naming_its_rule(
    kubeadm: Cluster,
    name: str,
    flow: tuple[str, str],
    extra: dict[str, str],
    verdict: Verdict,
    reason: str,
    rule: str | None,
) -> None:
    t = trace(kubeadm, Request(*flow, seed=1, pick=extra.get("pick")))
    assert t.verdict is verdict
    assert t.reason == reason
    assert t.rule == rule
    # The request ends with that sentence, at the hop where the packet died (a refusal's
    # answer then travels back to the client as the reply).
    died = [h for h in t.hops if h.direction is Direction.REQUEST][-1]
    assert died.kind is (HopKind.UNKNOWN if verdict is Verdict.UNKNOWN else HopKind.DROP)
    assert died.sentence == reason


def test_masquerade_says_why_the_mark_was_set(kubeadm: Cluster) -> None:
    t = trace(kubeadm, Request("k8s-worker-1", "10.96.120.15:80", seed=1, pick="10.244.2.8:8080"))
    post = hop_at(t, "k8s-worker-1", "POSTROUTING")
    # The dump's cluster runs Flannel's VXLAN (its DaemonSet's pods say so): the
    # packet leaves by flannel.1, and MASQUERADE takes that device's address.
    assert post.sentence == (
        "MASQUERADE in KUBE-POSTROUTING #3: source 10.0.0.11:37170 → 10.244.1.0:38327, the"
        " address of flannel.1 with a random port (--random-fully), because KUBE-MARK-MASQ set"
        " 0x4000 (the source is outside the cluster"
        " CIDR 10.244.0.0/16: KUBE-SVC-KKDGWRPDK6Z5NCHS #1)"
    )
    assert post.detail == (
        'nat: -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring'
        ' SNAT" -j MASQUERADE --random-fully'
    )


def test_verdict_and_rule_are_in_the_json(
    kubeadm: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    status = run(
        ["trace", "--cluster", str(KUBEADM), FRONTEND, "orders:80", "--seed", "1", "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    assert status == 1
    assert data["verdict"] == "rejected"
    assert data["reason"].startswith(
        "REJECT in KUBE-SERVICES: default/orders:http has no endpoints"
    )
    assert data["rule"].startswith("filter: -A KUBE-SERVICES -d 10.96.44.7/32")


def test_an_endpoint_port_a_pod_does_not_declare_is_assumed_to_listen(kubeadm: Cluster) -> None:
    # containerPort is informational: api's EndpointSlice lists api-2 on 8080, so
    # the Service sends there and kubehop assumes it listens, saying so.
    t = trace(kubeadm, Request(FRONTEND, "api:80", seed=1, pick="10.244.1.9:8080"))
    assert t.verdict is Verdict.DELIVERED
    deliver = next(h for h in t.hops if h.kind is HopKind.DELIVER)
    assumed = (
        "assumed: default/api's endpoints list 10.244.1.9:8080/tcp, so kubehop takes a process"
        " in api-2 to listen there (its containers declare tcp/9000: if only those listen, the"
        " kernel refuses); the dump cannot show listening sockets"
    )
    assert deliver.note == assumed
    assert deliver.detail == "tcp LISTEN 0.0.0.0:8080 (assumed: listed by default/api)"
    assert assumed in t.warnings


# -- a node in nftables mode: iptables-save and nft list ruleset in one file ---------------

IPTABLES_NFT_NAT = (
    "# Warning: table ip nat is managed by iptables-nft, do not touch!\n"
    "table ip nat {\n"
    "\tchain PREROUTING {\n"
    "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
    '\t\t xt match "comment" counter packets 4 bytes 240 jump KUBE-SERVICES\n'
    "\t}\n"
    "}\n"
)


def _nft_node_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, int]:
    """node-a's rules as `kubehop rules --mode nftables` prints them, with iptables-nft's nat
    table appended as `nft list ruleset` shows it; and the line of that table."""
    assert run(["rules", "--mode", "nftables", "--node", "node-a"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "node-a.rules"
    path.write_text(text + IPTABLES_NFT_NAT)
    return path, text.count("\n") + 2


def test_an_nftables_node_is_read_with_iptables_nfts_tables_left_to_iptables_save(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, nat_line = _nft_node_file(tmp_path, capsys)
    cluster = load(None)
    dump = load_node_rules(cluster, [f"node-a={path}"])["node-a"]
    assert dump.nft is not None
    assert [t.label for t in dump.nft.tables] == ["ip kube-proxy"]
    assert dump.ruleset.warnings == (
        f"{path}:{nat_line}: table ip nat is iptables-nft's; its rules are read from the"
        " iptables-save text",
    )
    # kubelet's KUBE-FIREWALL, from the iptables-save part, is there once.
    assert "KUBE-FIREWALL" in dump.ruleset.tables["filter"]


def test_a_trace_walks_the_nodes_own_nft_table_in_nftables_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = _nft_node_file(tmp_path, capsys)
    argv = ["trace", "pod1", "svc-b:80", "--seed", "3", "--node-rules", f"node-a={path}"]
    assert run(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == (
        "kubehop: node-a's rules hold kube-proxy's nft table (ip kube-proxy): tracing in"
        " nftables mode, not the cluster file's iptables (from its KubeProxyConfiguration)"
    )
    lines = captured.out.splitlines()
    assert lines[0].endswith("(the node's iptables-save and nft list ruleset); 1 rule(s) kubehop"
                             " cannot evaluate")  # fmt: skip
    dnat = next(i for i, line in enumerate(lines) if " DNAT " in line)
    rule = lines[dnat + 2].strip()
    # The DNAT is the dump's rule, named by its file and line.
    assert rule.startswith(f"{path}:")
    assert rule.endswith("dnat to 192.168.2.2:8080") and ": ip kube-proxy endpoint-" in rule


def test_a_file_of_nft_alone_is_read_and_says_iptables_rules_are_unknown(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node-a.nft"
    path.write_text(IPTABLES_NFT_NAT)
    dump = load_node_rules(load(None), [f"node-a={path}"])["node-a"]
    assert dump.nft is not None and dump.nft.tables == ()
    assert dump.ruleset.warnings == (
        f"{path}:2: table ip nat is iptables-nft's; its rules are read from the iptables-save"
        " text, which this file lacks, so they are unknown",
    )
