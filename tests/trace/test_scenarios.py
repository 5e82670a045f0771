"""End-to-end traces on the demo cluster: the article's four scenarios and the cases around them.

Every assertion is something a person reading the trace would check: which
endpoint served, which rule rewrote what, the address the server saw, the
address the reply came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from model.cluster import Cluster
from model.errors import KubehopError, RequestError
from model.netfilter import Hook
from model.trace import Direction, Hop, HopKind, Trace, Verdict
from sim.cluster.load import demo_cluster, load
from sim.cluster.rules import node_rules
from sim.kernel.rules import NodeRules
from sim.proxy.iptables import endpoint_chain_name, service_port_chain_name
from sim.readers.cluster import parse_cluster
from sim.readers.iptables_save import parse_iptables_save
from sim.readers.node_dump import NodeDump
from sim.trace.report import trace_json
from sim.trace.request import Request
from sim.trace.tracer import trace, trace_many
from tests import paths

SVC_B = "default/svc-b:http"
POD2, POD3, POD4 = "192.168.1.3:8080", "192.168.1.4:8080", "192.168.2.2:8080"


@pytest.fixture(scope="module")
def demo() -> Cluster:
    return demo_cluster()


def hops(t: Trace, direction: Direction | None = None) -> list[Hop]:
    return [h for h in t.hops if direction is None or h.direction is direction]


def kinds(t: Trace, direction: Direction | None = None) -> list[HopKind]:
    return [h.kind for h in hops(t, direction)]


def netfilter(t: Trace, node: str, hook: Hook, direction: Direction = Direction.REQUEST) -> Hop:
    found = [
        h
        for h in hops(t, direction)
        if h.where.node == node and h.where.hook is hook and h.where.netns == node
    ]
    assert found, f"no {hook} hop on {node}"
    return found[0]


def delivered_to(t: Trace) -> Hop:
    return next(h for h in t.hops if h.kind is HopKind.DELIVER)


def reply_delivery(t: Trace) -> Hop:
    return [h for h in t.hops if h.kind is HopKind.DELIVER][-1]


def matched_chains(hop: Hop) -> list[str]:
    return [ref.chain for walk in hop.tables for ref in walk.matched]


# -- scenario 1: containers in one pod -------------------------------------------------------


def test_scenario_1_localhost_stays_inside_the_pod(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "localhost:8080", container="container01", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert kinds(t, Direction.REQUEST) == [
        HopKind.SEND,
        HopKind.ROUTE,
        HopKind.LOOPBACK,
        HopKind.DELIVER,
    ]
    server = delivered_to(t)
    assert server.where.netns == "pod/default/pod1"
    assert "container02" in server.sentence
    assert server.after.src == IPv4Address("127.0.0.1")
    assert {h.where.node for h in t.hops} == {"node-a"}
    assert not any(h.kind is HopKind.NETFILTER for h in t.hops)


# -- scenarios 2 and 3: a ClusterIP Service ------------------------------------------------------


def test_scenario_2_same_node_endpoint_is_bridged_after_dnat(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "svc-b:80", seed=1, pick=POD2))
    assert t.verdict is Verdict.DELIVERED
    assert t.endpoint == POD2
    pre = netfilter(t, "node-a", Hook.PREROUTING)
    assert pre.where.interface == "cni0"
    assert (str(pre.before.dst), pre.before.dport) == ("10.101.100.102", 80)
    assert (str(pre.after.dst), pre.after.dport) == ("192.168.1.3", 8080)
    sep = endpoint_chain_name(SVC_B, "tcp", POD2)
    assert matched_chains(pre)[-1] == sep
    assert service_port_chain_name(SVC_B, "tcp") in matched_chains(pre)
    assert f"DNAT in {sep} #2" in pre.sentence
    # br_netfilter's bridged DNAT: the node never routes it, the TTL stays.
    node_hops = [h for h in hops(t, Direction.REQUEST) if h.where.netns == "node-a"]
    assert HopKind.ROUTE not in [h.kind for h in node_hops]
    assert delivered_to(t).after.ttl == 64
    assert delivered_to(t).after.src == IPv4Address("192.168.1.2")
    reply = reply_delivery(t)
    assert (str(reply.after.src), reply.after.sport) == ("10.101.100.102", 80)


def test_scenario_3_other_node_endpoint_crosses_the_node_network(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "svc-b:80", seed=1, pick=POD4))
    assert t.verdict is Verdict.DELIVERED
    assert t.endpoint == POD4
    wire = [h for h in hops(t, Direction.REQUEST) if h.kind is HopKind.WIRE]
    assert [(h.where.netns, h.where.interface) for h in wire] == [("node-a", "eth0")]
    assert "host-gw" in wire[0].sentence
    server = delivered_to(t)
    assert server.where.netns == "pod/default/pod4"
    # Pod-to-Service traffic from inside the cluster CIDR is not masqueraded.
    assert server.after.src == IPv4Address("192.168.1.2")
    assert server.after.ttl == 62  # routed by node-a and by node-b
    # node-b sees a plain pod-to-pod packet: its nat table rewrites nothing.
    pre_b = netfilter(t, "node-b", Hook.PREROUTING)
    assert pre_b.before.dst == pre_b.after.dst == IPv4Address("192.168.2.2")
    reply = reply_delivery(t)
    assert (str(reply.after.src), reply.after.sport) == ("10.101.100.102", 80)
    undo = netfilter(t, "node-a", Hook.POSTROUTING, Direction.REPLY)
    assert (str(undo.before.src), str(undo.after.src)) == ("192.168.2.2", "10.101.100.102")
    assert undo.sentence.startswith("Conntrack reverses the DNAT")


def test_the_seed_decides_the_endpoint_and_every_endpoint_is_reachable(demo: Cluster) -> None:
    endpoints = {trace(demo, Request("pod1", "svc-b:80", seed=s)).endpoint for s in range(40)}
    assert endpoints == {POD2, POD3, POD4}


def test_same_seed_same_trace_byte_for_byte(demo: Cluster) -> None:
    first = trace_json(trace(demo, Request("pod1", "svc-b:80", seed=7)))
    assert trace_json(trace(demo, Request("pod1", "svc-b:80", seed=7))) == first
    assert trace_json(trace(demo_cluster(), Request("pod1", "svc-b:80", seed=7))) == first


def test_dns_name_uses_the_search_path(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "myapp-svc.default.svc.cluster.local:80", seed=3))
    dns = t.hops[0]
    assert dns.kind is HopKind.DNS
    # Four dots is fewer than ndots:5, so the search domains are tried first.
    assert dns.detail.startswith("A? myapp-svc.default.svc.cluster.local.default.svc.cluster.local")
    assert dns.detail.endswith("→ 10.101.100.50")
    assert t.endpoint in {"192.168.2.3:8080", "192.168.3.2:8080"}
    assert t.verdict is Verdict.DELIVERED


# -- scenario 4: an external client to a NodePort -----------------------------------------------


def test_scenario_4_nodeport_is_masqueraded_to_the_node_address(demo: Cluster) -> None:
    t = trace(demo, Request("client", "10.0.0.12:30080", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert t.endpoint == "192.168.3.3:8080"
    pre = netfilter(t, "node-b", Hook.PREROUTING)
    assert "KUBE-NODEPORTS" in matched_chains(pre)
    assert "KUBE-MARK-MASQ" in matched_chains(pre)
    assert pre.after.mark == 0x4000
    post = netfilter(t, "node-b", Hook.POSTROUTING)
    assert post.before.src == IPv4Address("10.0.0.100")
    # MASQUERADE takes the address of the interface the packet leaves by:
    # node-b's eth0, not the Service's ClusterIP as the article says.
    assert post.after.src == IPv4Address("10.0.0.12")
    assert "MASQUERADE in KUBE-POSTROUTING" in post.sentence
    assert delivered_to(t).after.src == IPv4Address("10.0.0.12")
    reply = reply_delivery(t)
    assert reply.where.netns == "client/client"
    assert (str(reply.after.src), reply.after.sport) == ("10.0.0.12", 30080)


def test_nodeport_with_a_local_endpoint_masquerades_to_the_bridge(demo: Cluster) -> None:
    t = trace(demo, Request("client", "10.0.0.13:30080", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert delivered_to(t).after.src == IPv4Address("192.168.3.1")


def test_external_traffic_policy_local_keeps_the_client_address(demo: Cluster) -> None:
    t = trace(demo, Request("client", "10.0.0.13:30081", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert delivered_to(t).after.src == IPv4Address("10.0.0.100")


def test_external_traffic_policy_local_without_a_local_endpoint_drops(demo: Cluster) -> None:
    t = trace(demo, Request("client", "10.0.0.12:30081", seed=1))
    assert t.verdict is Verdict.DROPPED
    assert t.reason == (
        "DROP in KUBE-EXTERNAL-SERVICES: externalTrafficPolicy Local and no local endpoint on"
        " node-b (default/web-local, KUBE-EXTERNAL-SERVICES #1): the node drops it rather than"
        " send it to another node"
    )
    assert t.rule is not None and t.rule.startswith("filter: -A KUBE-EXTERNAL-SERVICES ")
    assert t.hops[-1].where.hook is Hook.INPUT


# -- around the scenarios -------------------------------------------------------------------------


def test_pod_to_pod_on_one_node_is_bridged_through_iptables(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "192.168.1.3:8080", seed=1))
    assert t.verdict is Verdict.DELIVERED
    node = [h for h in hops(t, Direction.REQUEST) if h.where.netns == "node-a"]
    assert [h.where.hook for h in node if h.kind is HopKind.NETFILTER] == [
        Hook.PREROUTING,
        Hook.FORWARD,
        Hook.POSTROUTING,
    ]
    assert all(h.where.interface == "cni0" for h in node if h.kind is HopKind.NETFILTER)
    assert delivered_to(t).after.ttl == 64


def test_pod_to_pod_across_nodes_is_routed_by_host_gw(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "192.168.2.2:8080", seed=1))
    route = next(h for h in t.hops if h.kind is HopKind.ROUTE and h.where.netns == "node-a")
    assert route.detail.endswith("192.168.2.0/24 via 10.0.0.12 dev eth0")
    assert "by the CNI's host-gw route for 192.168.2.0/24" in route.sentence
    assert delivered_to(t).after.src == IPv4Address("192.168.1.2")


def test_hairpin_a_pod_reaching_itself_through_its_service(demo: Cluster) -> None:
    t = trace(demo, Request("pod2", "svc-b:80", seed=1, pick=POD2))
    assert t.verdict is Verdict.DELIVERED
    bridge = [h for h in t.hops if h.kind is HopKind.BRIDGE and "hairpin" in h.sentence]
    assert bridge, "the frame must leave by the port it came in"
    post = netfilter(t, "node-a", Hook.POSTROUTING)
    assert post.after.src == IPv4Address("192.168.1.1")
    assert "hairpin" in post.sentence
    assert delivered_to(t).after.src == IPv4Address("192.168.1.1")
    reply = reply_delivery(t)
    assert (str(reply.after.src), reply.after.sport) == ("10.101.100.102", 80)


def test_session_affinity_keeps_one_client_on_one_endpoint(demo: Cluster) -> None:
    traces = trace_many(demo, Request("pod1", "sticky:80", seed=5), 6)
    assert all(t.verdict is Verdict.DELIVERED for t in traces)
    assert len({t.endpoint for t in traces}) == 1
    later = netfilter(traces[3], "node-a", Hook.PREROUTING)
    assert "session affinity" in later.sentence


def test_without_affinity_requests_spread(demo: Cluster) -> None:
    traces = trace_many(demo, Request("pod1", "svc-b:80", seed=5), 30)
    assert {t.endpoint for t in traces} == {POD2, POD3, POD4}
    assert len({t.hops[1].before.sport for t in traces}) == 30


def test_service_without_endpoints_is_rejected(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "svc-empty:80", seed=1))
    assert t.verdict is Verdict.REJECTED
    assert t.reason.startswith("REJECT in KUBE-SERVICES: default/svc-empty has no endpoints")
    assert [h for h in t.hops if h.direction is Direction.REQUEST][-1].where.hook is Hook.FORWARD


def test_a_port_nothing_listens_on_is_refused(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "192.168.1.3:9999", seed=1))
    assert t.verdict is Verdict.REFUSED
    assert "pod pod2 declares no port tcp/9999 (it declares tcp/8080" in t.reason


def test_a_node_process_reaching_a_cluster_ip_goes_through_output(demo: Cluster) -> None:
    t = trace(demo, Request("node-a", "10.101.100.102:80", seed=1, pick=POD3))
    assert t.verdict is Verdict.DELIVERED
    out = netfilter(t, "node-a", Hook.OUTPUT)
    assert out.after.dst == IPv4Address("192.168.1.4")
    # The node's source 10.0.0.11 is outside the cluster CIDR: masqueraded to cni0's address.
    assert delivered_to(t).after.src == IPv4Address("192.168.1.1")


# -- the walk follows the rules and routes, not a script -------------------------------------------


def _without(rules: NodeRules, needle: str) -> NodeRules:
    kept = [line for line in rules.text.splitlines() if needle not in line]
    text = "\n".join(kept) + "\n"
    assert text != rules.text
    return NodeDump(rules.node, text, parse_iptables_save(text, rules.node))


def test_deleting_the_masquerade_jump_breaks_the_nodeport_reply(demo: Cluster) -> None:
    edited = _without(node_rules(demo, "node-b"), "-j KUBE-MARK-MASQ")
    t = trace(demo, Request("client", "10.0.0.12:30080", seed=1), node_rules={"node-b": edited})
    # The server now sees the client's address and answers it directly,
    # bypassing node-b, so nothing undoes the DNAT.
    assert delivered_to(t).after.src == IPv4Address("10.0.0.100")
    assert t.verdict is Verdict.DROPPED
    assert "RST" in t.reason
    assert "192.168.3.3:8080" in t.reason


def test_removing_a_nodes_pod_cidr_removes_its_route(demo: Cluster) -> None:
    nodes = tuple(
        n.model_copy(update={"pod_cidr": None}) if n.name == "node-b" else n for n in demo.nodes
    )
    edited = demo.model_copy(update={"nodes": nodes})
    t = trace(edited, Request("pod1", "192.168.2.2:8080", seed=1))
    assert t.verdict is Verdict.UNREACHABLE
    assert "10.0.0.1" in t.reason  # only the default route is left, to a router outside


# -- bad input ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    name: str
    source: str
    destination: str
    message: str
    container: str | None = None
    pick: str | None = None


@pytest.mark.parametrize(
    "bad",
    [
        Bad("unknown pod", "pod9", "svc-b:80", "source 'pod9': no such pod"),
        Bad("port out of range", "pod1", "svc-b:70000", "port 70000 is out of range (1-65535)"),
        Bad("no port", "pod1", "svc-b", "expected HOST:PORT"),
        Bad("unknown container", "pod1", "svc-b:80", "has no container 'c9'", container="c9"),
        Bad("unknown service", "pod1", "nope:80", "'nope' does not resolve"),
        Bad(
            "pick not an endpoint",
            "pod1",
            "svc-b:80",
            "pinned endpoint (--pick) 10.9.9.9:80: not an endpoint of default/svc-b:http (ClusterIP) (its"
            " endpoints: 192.168.1.3:8080, 192.168.1.4:8080, 192.168.2.2:8080)",
            pick="10.9.9.9:80",
        ),
        Bad(
            "pick of another Service's endpoint",
            "pod1",
            "web:80",
            "pinned endpoint (--pick) 192.168.2.2:8080: not an endpoint of default/web (ClusterIP)"
            " (its endpoints: 192.168.3.3:8080)",
            pick=POD4,
        ),
        Bad(
            "pick without a Service",
            "pod1",
            "192.168.1.3:8080",
            "pinned endpoint (--pick) 192.168.1.3:8080: 192.168.1.3:8080 is no Service's address",
            pick=POD2,
        ),
        Bad(
            "pick on a Service without endpoints",
            "pod1",
            "svc-empty:80",
            "(its endpoints: none)",
            pick=POD2,
        ),
        Bad("dns from outside", "client", "svc-b:80", "cluster DNS names do not resolve there"),
        Bad("markup in a name", "[bold]x[/bold]", "svc-b:80", "source '[bold]x[/bold]'"),
        Bad("escape in a name", "pod\x1b[31m", "svc-b:80", "source 'pod\\x1b[31m'"),
        Bad("sctp", "pod1", "svc-b:80/sctp", "protocol 'sctp' is not simulated"),
        Bad("ipv6", "pod1", "[::1]:80", "'[::1]:80': IPv6 is not simulated (kubehop is IPv4 only)"),
        Bad(
            "container of a client",
            "client",
            "10.0.0.12:30080",
            "source client is an external client: -c 'app' applies to pods only",
            container="app",
        ),
    ],
    ids=lambda b: b.name,
)
def test_bad_flows_are_one_line_errors(bad: Bad, demo: Cluster) -> None:
    with pytest.raises(RequestError) as err:
        trace(
            demo,
            Request(bad.source, bad.destination, container=bad.container, seed=1, pick=bad.pick),
        )
    assert bad.message in str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, KubehopError)


# -- what a real cluster may contain -----------------------------------------------------------------


def test_a_headless_service_resolves_to_pods_and_skips_kube_proxy(demo: Cluster) -> None:
    from model.cluster import Service, ServicePort
    from sim.cluster.load import with_derived_slices

    headless = Service(
        name="backend-headless",
        cluster_ip=None,
        ports=(ServicePort(name="http", port=8080, target_port=8080),),
        selector=(("app", "backend"),),
    )
    cluster = with_derived_slices(
        demo.model_copy(update={"services": (*demo.services, headless)}), "test"
    )
    t = trace(cluster, Request("pod1", "backend-headless:8080", seed=1))
    assert t.hops[0].kind is HopKind.DNS
    assert "headless" in t.hops[0].sentence
    assert t.verdict is Verdict.DELIVERED
    assert all(h.before.dst == h.after.dst for h in hops(t, Direction.REQUEST))
    assert str(delivered_to(t).after.dst) in {"192.168.1.3", "192.168.1.4", "192.168.2.2"}


def test_a_pod_ip_outside_its_nodes_pod_cidr_is_unreachable_from_elsewhere(demo: Cluster) -> None:
    pods = tuple(
        p.model_copy(update={"ip": IPv4Address("192.168.9.7")}) if p.name == "pod4" else p
        for p in demo.pods
    )
    cluster = demo.model_copy(update={"pods": pods, "endpoint_slices": ()})
    t = trace(cluster, Request("pod1", "192.168.9.7:8080", seed=1))
    # host-gw routes only cover podCIDRs, so node-a sends it to its default router.
    assert t.verdict is Verdict.UNREACHABLE
    assert "10.0.0.1" in t.reason


# -- what the real-kernel lab taught us ---------------------------------------------------------------


def test_a_node_reaching_its_own_pod_leaves_from_the_bridge_address(demo: Cluster) -> None:
    t = trace(demo, Request("node-a", "192.168.1.2:8080", seed=1))
    # connect() binds the route's preferred source: "192.168.1.0/24 dev cni0 src 192.168.1.1".
    assert t.hops[0].after.src == IPv4Address("192.168.1.1")
    assert delivered_to(t).after.src == IPv4Address("192.168.1.1")


def test_masquerade_out_of_lo_takes_the_nodes_global_address() -> None:

    from sim.cluster.load import load

    cluster = load(paths.REAL / "kubeadm-flannel.yaml")
    control_plane = next(n for n in cluster.nodes if n.name == "k8s-cp")
    t = trace(cluster, Request("k8s-cp", "10.96.0.1:443", seed=1))
    assert t.verdict is Verdict.DELIVERED
    # The endpoint is the node's own hostNetwork apiserver: the packet goes out lo,
    # and the kernel skips lo's host-scope 127.0.0.1 for the node's first global address.
    assert delivered_to(t).after.src == control_plane.internal_ip


def test_a_syn_ack_of_a_connection_the_node_never_saw_is_invalid(demo: Cluster) -> None:
    # node-b DNATs pod1's request for its eTP Local NodePort without SNAT, so
    # web-1's SYN-ACK comes back to node-a directly, where conntrack knows nothing of it.
    t = trace(demo, Request("pod1", "10.0.0.12:30081", seed=1))
    assert t.verdict is Verdict.DROPPED
    assert t.hops[-1].where.node == "node-a" and t.hops[-1].where.hook is Hook.FORWARD
    assert "conntrack calls the packet INVALID (KUBE-FORWARD #1)" in t.reason


def test_a_refused_connection_leaves_no_conntrack_entry(demo: Cluster) -> None:
    import random

    from sim.trace.tracer import trace_shared

    _, state = trace_shared(
        demo, Request("pod1", "svc-b:80", seed=1, pick="192.168.1.3:8080"), rng=random.Random(1)
    )
    assert len(state.netfilter["node-a"].conntrack) == 1
    refused, after = trace_shared(
        demo, Request("pod1", "192.168.1.3:9999", seed=1), rng=random.Random(1), state=state
    )
    assert refused.verdict is Verdict.REFUSED
    # The RST that answers deletes the entry at once; the first connection's stays.
    assert len(after.netfilter["node-a"].conntrack) == 1


@pytest.mark.parametrize(
    ("pick", "message"),
    [
        ("[red]x", "pinned endpoint (--pick) '[red]x': expected an endpoint as IP:PORT"),
        ("foo:80", "pinned endpoint (--pick) 'foo:80': expected an endpoint as IP:PORT"),
        (
            "1.2.3.4:99999",
            "pinned endpoint (--pick) '1.2.3.4:99999': port 99999 is out of range (1-65535)",
        ),
    ],
)
def test_a_bad_pick_names_the_option(pick: str, message: str, demo: Cluster) -> None:
    with pytest.raises(RequestError) as err:
        trace(demo, Request("pod1", "svc-b:80", seed=1, pick=pick))
    assert str(err.value).startswith(message)


def test_an_externalname_service_is_a_cname_kubehop_does_not_follow(tmp_path: Path) -> None:
    demo_text = (paths.ROOT / "model" / "demo_cluster.yaml").read_text()
    extra = (
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db\n"
        "  namespace: default\nspec:\n  type: ExternalName\n"
        "  externalName: db.example.com\n"
    )
    path = tmp_path / "cluster.yaml"
    path.write_text(demo_text.rstrip("\n") + "\n" + extra)
    cluster = load(path)
    with pytest.raises(RequestError) as err:
        trace(cluster, Request("pod1", "db:5432", seed=1))
    assert str(err.value) == (
        "default/db is an ExternalName Service: DNS answers with a CNAME to 'db.example.com',"
        " a name outside the cluster, which kubehop does not resolve; kube-proxy writes no"
        " rules for it"
    )


def test_a_pod_the_file_has_but_no_network_says_why() -> None:
    cluster = parse_cluster(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 10.244.1.0/24}\n"
        "status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: waiting}\n"
        "spec: {containers: [{name: app}]}\nstatus: {phase: Pending}\n",
        "c.yaml",
    )
    with pytest.raises(RequestError) as err:
        trace(cluster, Request("waiting", "10.0.0.11:22", seed=1))
    assert str(err.value) == (
        "source 'waiting': the file's pod has no network here: spec.nodeName: not scheduled"
        " (no nodeName), so it has no network; left out"
    )


def test_service_names_resolve_whatever_their_case(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "SVC-B.Default:80", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert t.hops[0].before.dst == IPv4Address("10.101.100.102")


def test_an_unknown_port_on_a_clusterip_is_named_as_such(demo: Cluster) -> None:
    t = trace(demo, Request("pod1", "svc-b:81", seed=1))
    assert t.verdict is Verdict.UNREACHABLE
    assert t.reason.startswith(
        "no route to 10.101.100.102 on node-a: 10.101.100.102 is the ClusterIP of default/svc-b,"
        " which has no port 81/tcp (its ports: 80/tcp), so no kube-proxy rule DNATs the packet"
    )


# -- where the article and Linux disagree, the hop says so -----------------------------------------


def test_nodeport_hops_say_where_the_article_differs(demo: Cluster) -> None:
    t = trace(demo, Request("client", "10.0.0.12:30080", seed=1))
    dnat = netfilter(t, "node-b", Hook.PREROUTING)
    assert dnat.note is not None
    assert "kube-proxy DNATs NodeIP:NodePort straight to an endpoint" in dnat.note
    masq = netfilter(t, "node-b", Hook.POSTROUTING)
    assert masq.note is not None
    assert "MASQUERADE takes the address of the interface the packet leaves by (10.0.0.12)" in (
        masq.note
    )


def test_random_choice_says_the_article_speaks_of_round_robin(demo: Cluster) -> None:
    t = trace(
        demo, Request("pod1", "svc-b:80", seed=1)
    )  # the last endpoint rule: still a random choice
    dnat = netfilter(t, "node-a", Hook.PREROUTING)
    assert dnat.note is not None and "round-robin" in dnat.note
    hairpin = trace(demo, Request("pod2", "svc-b:80", seed=1, pick=POD2))
    post = netfilter(hairpin, "node-a", Hook.POSTROUTING)
    # A hairpin MASQUERADE is not the article's NodePort case: no note about the ClusterIP.
    assert post.note is None or "ClusterIP" not in post.note
