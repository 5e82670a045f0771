"""The real-kernel lab: kubehop's traces agree with Linux running the same rules.

Each module-scoped fixture builds one lab (a netns per node, pod and client)
and removes it at the end; the flows run against it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model.cluster import Cluster, CNIPlugin
from model.errors import KubehopError
from sim.cluster.generate import generate
from sim.cluster.load import demo_cluster, load, with_derived_slices
from sim.cluster.rules import node_rules
from sim.lab import verify_trace
from sim.lab.build import Lab, build, teardown
from sim.lab.cases import Case, spreads, standard_cases
from sim.lab.failures import LabUnavailable
from sim.lab.netns import in_netns, ip, lab_netns
from sim.lab.probe import Listeners
from sim.lab.verify import Check, Verifier
from sim.readers.cluster import parse_cluster
from sim.trace.presets import PRESETS, Preset
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths
from tests.cni.support import calico_ipam_demo, with_cni
from tests.lab.support import require_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def demo_lab() -> Iterator[Lab]:
    require_lab()
    lab = build(demo_cluster(), "demo", persistent=False)
    try:
        yield lab
    finally:
        teardown(lab.state)


@pytest.fixture(scope="module")
def demo(demo_lab: Lab) -> Iterator[Verifier]:
    verifier = Verifier(demo_lab)
    with Listeners(verifier.listen_specs()):
        yield verifier


def _show(check: Check) -> str:
    return f"{check.command}\n  kubehop: {check.kubehop}\n  kernel: {check.kernel}\n  " + (
        "\n  ".join(check.differences)
    )


def _case_params(cluster: Cluster) -> list[object]:
    params: list[object] = []
    for case in standard_cases(cluster):
        params.append(pytest.param(case, id=case.name))
    return params


@pytest.mark.parametrize("scenario", PRESETS, ids=lambda s: f"scenario {s.key}: {s.title}")
def test_every_scenario_agrees_with_the_kernel(scenario: Preset, demo: Verifier) -> None:
    case = Case(scenario.title, scenario.request)
    check = demo.check(case)
    assert check.agree, _show(check)
    assert check.observation is not None
    if scenario.key == "4":
        # The NodePort scenario is masqueraded: the pod sees node-b's address.
        assert check.observation.peer is not None
        assert str(check.observation.peer[0]) == "10.0.0.12"


@pytest.mark.parametrize("case", _case_params(demo_cluster()))
def test_demo_cases_agree_with_the_kernel(case: Case, demo: Verifier) -> None:
    check = demo.check(case)
    assert check.agree, _show(check)


def test_the_kernel_reaches_every_endpoint(demo: Verifier) -> None:
    checks = [demo.spread(s) for s in spreads(demo.cluster)]
    assert {c.name.split(" spread")[0] for c in checks} >= {
        "pod1 → default/svc-b:80",
        "pod1 → default/sticky:80",
    }
    for check in checks:
        assert check.agree, _show(check)


def test_the_kernel_loads_the_rules_kubehop_renders(demo: Verifier) -> None:
    for check in demo.rules():
        assert check.agree, _show(check)


def test_verify_trace_checks_the_trace_on_screen(demo: Verifier) -> None:
    shown = trace(demo_cluster(), Request("pod1", "svc-b:80", seed=5, pick="192.168.2.2:8080"))
    check = verify_trace(shown, demo_cluster())
    assert check.agree, _show(check)
    assert check.trace == shown
    assert check.observation is not None and check.observation.endpoint is not None
    assert str(check.observation.endpoint[0]) == "192.168.2.2"


def test_verify_trace_refuses_a_cluster_the_lab_was_not_built_from(demo: Verifier) -> None:
    other = with_derived_slices(parse_cluster(generate(2, 3, 2, seed=1), "gen.json"), "gen.json")
    shown = trace(other, Request(other.pods[0].key, f"{other.services[0].cluster_ip}:80", seed=1))
    with pytest.raises(KubehopError, match="not this cluster"):
        verify_trace(shown, other)


# -- the lab catches real mistakes -------------------------------------------------------

SCENARIO_4 = Case("client to NodePort via node-b", Request("client", "10.0.0.12:30080"))
POD_TO_POD_OTHER_NODE = Case("pod1 to pod4", Request("default/pod1", "192.168.2.2:8080"))


def _restore_rules(lab: Lab, node: str) -> None:
    in_netns(lab.node_netns[node], ["iptables-restore", "-w", "5"],
             stdin=node_rules(lab.cluster, node).text)  # fmt: skip


def test_a_deleted_masquerade_jump_is_a_disagreement(demo: Verifier) -> None:
    lab = demo.lab
    chain = next(
        line.split()[1]
        for line in node_rules(lab.cluster, "node-b").text.splitlines()
        if "masquerade traffic for default/web external destinations" in line
    )
    assert demo.check(SCENARIO_4).agree
    in_netns(lab.node_netns["node-b"], ["iptables", "-w", "5", "-t", "nat", "-D", chain,
             "-m", "comment", "--comment",
             "masquerade traffic for default/web external destinations",
             "-j", "KUBE-MARK-MASQ"])  # fmt: skip
    try:
        check = demo.check(SCENARIO_4)
    finally:
        _restore_rules(lab, "node-b")
    assert not check.agree
    # Unmasqueraded, web-1 answers the client directly: its SYN-ACK comes from
    # the pod's address, so the client never connects.
    assert check.kernel.startswith("timeout")
    assert any("conntrack on node-b" in d for d in check.differences), check.differences
    assert not [c for c in demo.rules() if not c.agree]
    assert demo.check(SCENARIO_4).agree


def test_a_deleted_route_is_a_disagreement(demo: Verifier) -> None:
    lab = demo.lab
    node_a = lab.node_netns["node-a"]
    assert demo.check(POD_TO_POD_OTHER_NODE).agree
    ip(node_a, "route", "del", "192.168.2.0/24")
    try:
        check = demo.check(POD_TO_POD_OTHER_NODE)
    finally:
        ip(node_a, "route", "add", "192.168.2.0/24", "via", "10.0.0.12", "dev", "eth0",
           "proto", "static")  # fmt: skip
    assert not check.agree
    assert check.kubehop.startswith("192.168.2.2:8080")
    assert demo.check(POD_TO_POD_OTHER_NODE).agree


# -- a generated cluster ----------------------------------------------------------------

# 3 nodes, 9 pods, 10 Services (seed 12): Services with two ports and named
# target ports, a NodePort Service (eTP Local), Services without endpoints.
GENERATED = (3, 9, 10, 12)


def _generated() -> Cluster:
    text = generate(*GENERATED)
    return with_derived_slices(parse_cluster(text, "generated.json"), "generated.json")


@pytest.fixture(scope="module")
def generated() -> Iterator[Verifier]:
    require_lab()
    cluster = _generated()
    lab = build(cluster, "generated.json", persistent=False)
    try:
        verifier = Verifier(lab)
        with Listeners(verifier.listen_specs()):
            yield verifier
    finally:
        teardown(lab.state)


def test_the_generated_cluster_has_what_the_lab_must_cover() -> None:
    cluster = _generated()
    names = [f.name for f in standard_cases(cluster)]
    assert any("NodePort" in n for n in names)
    assert any("no endpoints" in n for n in names)
    assert any(len(s.ports) > 1 for s in cluster.services)
    assert any(isinstance(p.target_port, str) for s in cluster.services for p in s.ports)
    assert len(cluster.nodes) == 3


@pytest.mark.parametrize("case", _case_params(_generated()))
def test_generated_cases_agree_with_the_kernel(case: Case, generated: Verifier) -> None:
    check = generated.check(case)
    assert check.agree, _show(check)


def test_generated_spreads_agree(generated: Verifier) -> None:
    checks = [generated.spread(s) for s in spreads(generated.cluster)]
    assert checks
    for check in checks:
        assert check.agree, _show(check)


def test_nothing_of_the_module_labs_is_left_after_teardown() -> None:
    require_lab()
    lab = build(demo_cluster(), "demo", persistent=False)
    names = set(lab.state.all_netns)
    assert names <= set(lab_netns())
    teardown(lab.state)
    assert not names & set(lab_netns())
    assert not lab.state.path.exists()


# -- the awkward cases: UDP, LoadBalancer, Local policies, hostNetwork ---------------------------

ZOO = paths.DATA / "lab" / "zoo.yaml"


@pytest.fixture(scope="module")
def zoo() -> Iterator[Verifier]:
    require_lab()
    cluster = load(ZOO)
    lab = build(cluster, "zoo.yaml", persistent=False)
    try:
        verifier = Verifier(lab)
        with Listeners(verifier.listen_specs()):
            yield verifier
    finally:
        teardown(lab.state)


@pytest.mark.parametrize("case", _case_params(load(ZOO)))
def test_zoo_cases_agree_with_the_kernel(case: Case, zoo: Verifier) -> None:
    check = zoo.check(case)
    assert check.agree, _show(check)


def _demo_with_client_at(address: str) -> Cluster:
    text = paths.DEMO.read_text().replace("ip: 10.0.0.100", f"ip: {address}")
    return with_derived_slices(parse_cluster(text, "demo.yaml"), "demo.yaml")


@pytest.fixture(scope="module")
def beyond_router() -> Iterator[Verifier]:
    require_lab()
    lab = build(_demo_with_client_at("203.0.113.5"), "demo.yaml", persistent=False)
    try:
        verifier = Verifier(lab)
        with Listeners(verifier.listen_specs()):
            yield verifier
    finally:
        teardown(lab.state)


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in standard_cases(_demo_with_client_at("203.0.113.5"))
        if c.request.source == "client"
    ],
    ids=lambda c: c.name,
)
def test_a_client_beyond_the_router_agrees_with_the_kernel(
    case: Case, beyond_router: Verifier
) -> None:
    check = beyond_router.check(case)
    assert check.agree, _show(check)


@pytest.mark.parametrize(
    "case",
    [
        Case("laptop → web's LoadBalancer IP (eTP Cluster)", Request("laptop", "10.1.0.200:80")),
        Case(
            "laptop → web-lb-local's LoadBalancer IP (eTP Local)",
            Request("laptop", "10.1.0.202:80"),
        ),
    ],
    ids=lambda c: c.name,
)
def test_a_load_balancer_ip_announced_on_the_node_network_agrees(case: Case, zoo: Verifier) -> None:
    check = zoo.check(case)
    assert check.agree, _show(check)


def _flannel_demo() -> Cluster:
    demo = demo_cluster()
    fields = {name: getattr(demo, name) for name in Cluster.model_fields}
    fields["cni"] = demo.cni.model_copy(update={"plugin": CNIPlugin.FLANNEL_VXLAN})
    return Cluster(**fields)


@pytest.fixture(scope="module")
def flannel() -> Iterator[Verifier]:
    require_lab()
    lab = build(_flannel_demo(), "demo.yaml (flannel-vxlan)", persistent=False)
    try:
        verifier = Verifier(lab)
        with Listeners(verifier.listen_specs()):
            yield verifier
    finally:
        teardown(lab.state)


@pytest.mark.parametrize("case", _case_params(_flannel_demo()))
def test_flannel_vxlan_cases_agree_with_the_kernel(case: Case, flannel: Verifier) -> None:
    # VXLAN devices, their neighbour and FDB entries, Flannel's chains: the
    # kernel's outer UDP conntrack entries are compared too.
    check = flannel.check(case)
    assert check.agree, _show(check)


# -- Calico -------------------------------------------------------------------------------


def _calico_lab(cluster: Cluster, source: str) -> Iterator[Verifier]:
    require_lab()
    lab = build(cluster, source, persistent=False)
    try:
        verifier = Verifier(lab)
        with Listeners(verifier.listen_specs()):
            yield verifier
    finally:
        teardown(lab.state)


@pytest.fixture(scope="module")
def calico_bgp() -> Iterator[Verifier]:
    yield from _calico_lab(with_cni(CNIPlugin.CALICO_BGP), "demo.yaml (calico-bgp)")


@pytest.fixture(scope="module")
def calico_vxlan() -> Iterator[Verifier]:
    yield from _calico_lab(with_cni(CNIPlugin.CALICO_VXLAN), "demo.yaml (calico-vxlan)")


@pytest.fixture(scope="module")
def calico_ipam() -> Iterator[Verifier]:
    cluster = calico_ipam_demo(CNIPlugin.CALICO_VXLAN)
    yield from _calico_lab(cluster, "demo.yaml, Calico IPAM (calico-vxlan)")


# An address of a node's block that no pod holds: Calico's blackhole route
# swallows it, silently.
CALICO_BLACKHOLE = [
    pytest.param(Case(name, Request(source, "192.168.1.60:8080")), id=name)
    for source, name in (
        ("pod4", "pod4 → an unused address of node-a's block"),
        ("pod1", "pod1 → an unused address of its own block"),
    )
]


@pytest.mark.parametrize("case", _case_params(with_cni(CNIPlugin.CALICO_BGP)) + CALICO_BLACKHOLE)
def test_calico_bgp_cases_agree_with_the_kernel(case: Case, calico_bgp: Verifier) -> None:
    # Proxy ARP for 169.254.1.1 on the cali veths, /32 and block routes,
    # blackholes, Felix's chains and ipsets, no encapsulation.
    check = calico_bgp.check(case)
    assert check.agree, _show(check)


@pytest.mark.parametrize("case", _case_params(with_cni(CNIPlugin.CALICO_VXLAN)) + CALICO_BLACKHOLE)
def test_calico_vxlan_cases_agree_with_the_kernel(case: Case, calico_vxlan: Verifier) -> None:
    # vxlan.calico with its FDB and neighbours; Felix leaves the outer packets
    # untracked (raw NOTRACK), and the kernel's conntrack says the same.
    check = calico_vxlan.check(case)
    assert check.agree, _show(check)


@pytest.mark.parametrize("case", _case_params(calico_ipam_demo(CNIPlugin.CALICO_VXLAN)))
def test_calico_ipam_cases_agree_with_the_kernel(case: Case, calico_ipam: Verifier) -> None:
    # A pod at the first address of its block, one in a block far from its
    # node's podCIDR, one on an address borrowed from another node's block.
    check = calico_ipam.check(case)
    assert check.agree, _show(check)


def test_the_kernel_holds_felixs_rules_as_kubehop_renders_them(calico_vxlan: Verifier) -> None:
    # iptables-save in each node's netns prints back exactly kubehop's text,
    # raw and mangle tables, hash comments and Felix's spellings included.
    for check in calico_vxlan.rules():
        assert check.agree, _show(check)


def test_calico_ipip_is_checked_only_where_the_kernel_has_ipip() -> None:
    require_lab()
    try:
        lab = build(with_cni(CNIPlugin.CALICO_IPIP), "demo.yaml (calico-ipip)", persistent=False)
    except LabUnavailable as err:
        pytest.skip(str(err))
    try:
        verifier = Verifier(lab)
        with Listeners(verifier.listen_specs()):
            for case in standard_cases(lab.cluster):
                check = verifier.check(case)
                assert check.agree, _show(check)
    finally:
        teardown(lab.state)


# -- kube-proxy in nftables mode --------------------------------------------------------------


def _nftables_demo() -> Cluster:
    """The demo in nftables mode, with a ServiceCIDR object for its Services' range."""
    from ipaddress import IPv4Network

    from model.cluster import ProxyMode

    demo = demo_cluster()
    config = demo.kube_proxy.model_copy(update={"mode": ProxyMode.NFTABLES})
    cidrs = (IPv4Network("10.101.100.0/24"),)
    return demo.model_copy(update={"kube_proxy": config, "service_cidrs": cidrs})


@pytest.fixture(scope="module")
def nftables() -> Iterator[Verifier]:
    require_lab()
    lab = build(_nftables_demo(), "demo.yaml (nftables mode)", persistent=False)
    try:
        verifier = Verifier(lab)
        with Listeners(verifier.listen_specs()):
            yield verifier
    finally:
        teardown(lab.state)


def _nft_agrees(check: Check, cluster: Cluster) -> bool:
    """Agreement, but for which rule dropped a flow where that rule is kube-proxy's nft rule.

    The lab reads which rule dropped a flow from iptables' counters; kube-proxy's
    nft rules have none, so for them the kernel's side of that one comparison is
    empty, while the flow's outcome (refused, timeout) is still compared.
    """
    listed = {
        line.strip()
        for node in cluster.nodes
        for line in node_rules(cluster, node.name).nft_text.splitlines()  # type: ignore[attr-defined]
    }
    for difference in check.differences:
        if not difference.startswith("kubehop stops the flow on"):
            return False
        if difference.split("`")[1] not in listed:
            return False
    return True


def _without_learned(text: str) -> str:
    """`nft list` text without the elements the packet path added to affinity sets."""
    kept: list[str] = []
    in_affinity = skipping = False
    for line in text.splitlines():
        if line.startswith("\tset affinity-"):
            in_affinity = True
        elif line == "\t}":
            in_affinity = False
        if in_affinity and line.startswith("\t\telements = "):
            skipping = not line.endswith(" }")
            continue
        if skipping:
            skipping = not line.endswith(" }")
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize("case", _case_params(_nftables_demo()))
def test_nftables_mode_cases_agree_with_the_kernel(case: Case, nftables: Verifier) -> None:
    # kube-proxy's table at its priorities beside kubelet's iptables rules:
    # numgen, the no-endpoint maps and reject-chain, nodeport-ips, masquerading.
    check = nftables.check(case)
    assert _nft_agrees(check, nftables.cluster), _show(check)


NFTABLES_OWN = [
    pytest.param(Case(name, Request(source, destination)), id=name)
    for name, source, destination in (
        ("pod1 → an undefined port of svc-b's ClusterIP", "pod1", "10.101.100.102:81"),
        ("node-a (host) → an undefined port of svc-b's ClusterIP", "node-a", "10.101.100.102:81"),
        ("pod1 → an unallocated ClusterIP", "pod1", "10.101.100.77:80"),
        ("node-a (host) → an unallocated ClusterIP", "node-a", "10.101.100.77:80"),
        ("pod1 → NodePort default/web on node-a's primary address", "pod1", "10.0.0.11:30080"),
    )
]


@pytest.mark.parametrize("case", NFTABLES_OWN)
def test_what_only_nftables_mode_does_agrees_with_the_kernel(
    case: Case, nftables: Verifier
) -> None:
    # cluster-ips-check rejects undefined ports and drops unallocated
    # addresses of the ServiceCIDR; iptables mode has neither rule.
    check = nftables.check(case)
    assert _nft_agrees(check, nftables.cluster), _show(check)


@pytest.mark.parametrize(
    ("source", "destination"), [("node-a", "127.0.0.1:30080"), ("pod1", "192.168.1.1:30080")]
)
def test_nftables_mode_has_no_node_ports_off_the_primary_address(
    source: str, destination: str, nftables: Verifier
) -> None:
    # Nothing DNATs these (iptables mode would); nothing listens there, so the
    # kernel refuses, where kubehop cannot know the node's sockets.
    check = nftables.check(Case(f"{source} → {destination}", Request(source, destination)))
    assert check.trace is not None and check.trace.endpoint is None
    assert check.kernel == "refused", _show(check)


def test_nftables_mode_spreads_agree(nftables: Verifier) -> None:
    for check in [nftables.spread(s) for s in spreads(nftables.cluster)]:
        assert check.agree, _show(check)


def _nft_lists_as_rendered(verifier: Verifier) -> None:
    for node, lab_ns in verifier.lab.node_netns.items():
        want = node_rules(verifier.cluster, node).nft_text  # type: ignore[attr-defined]
        listed = in_netns(lab_ns, ["nft", "list", "table", "ip", "kube-proxy"]).stdout
        assert _without_learned(listed) == want, f"{node}: nft list differs from kubehop's"
    # kubelet's iptables rules beside the table print back as rendered too.
    for check in verifier.rules():
        assert check.agree, _show(check)


def test_nft_lists_kube_proxys_table_as_kubehop_renders_it(nftables: Verifier) -> None:
    _nft_lists_as_rendered(nftables)


def _nftables_zoo() -> Cluster:
    from model.cluster import ProxyMode

    zoo = load(ZOO)
    return zoo.model_copy(
        update={"kube_proxy": zoo.kube_proxy.model_copy(update={"mode": ProxyMode.NFTABLES})}
    )


@pytest.fixture(scope="module")
def nftables_zoo() -> Iterator[Verifier]:
    require_lab()
    if True:
        lab = build(_nftables_zoo(), "zoo.yaml (nftables mode)", persistent=False)
        try:
            verifier = Verifier(lab)
            with Listeners(verifier.listen_specs()):
                yield verifier
        finally:
            teardown(lab.state)


NFTABLES_ZOO_OWN = [
    pytest.param(Case(name, Request(source, destination)), id=name)
    for name, source, destination in (
        ("laptop → web's LoadBalancer IP (eTP Cluster)", "laptop", "10.1.0.200:80"),
        ("laptop → web-lb-local's LoadBalancer IP (eTP Local)", "laptop", "10.1.0.202:80"),
        ("n1 (host) → web's LB IP, outside its source ranges", "n1", "10.1.0.200:80"),
        ("dns-1 → web's LB IP, outside its source ranges", "kube-system/dns-1", "10.1.0.200:80"),
        ("dns-1 → web's external IP", "kube-system/dns-1", "10.1.0.201:80"),
    )
]


@pytest.mark.parametrize("case", _case_params(_nftables_zoo()) + NFTABLES_ZOO_OWN)
def test_nftables_mode_zoo_cases_agree_with_the_kernel(case: Case, nftables_zoo: Verifier) -> None:
    # UDP, ClientIP affinity on UDP, LoadBalancer IPs with source ranges,
    # external IPs, both traffic policies Local, hostNetwork endpoints.
    check = nftables_zoo.check(case)
    assert _nft_agrees(check, nftables_zoo.cluster), _show(check)


def test_nftables_mode_zoo_spreads_and_rules_agree(nftables_zoo: Verifier) -> None:
    for check in [nftables_zoo.spread(s) for s in spreads(nftables_zoo.cluster)]:
        assert check.agree, _show(check)
    _nft_lists_as_rendered(nftables_zoo)
