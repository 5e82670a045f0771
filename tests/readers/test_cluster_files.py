"""Reading cluster files: what loads, what is refused and how the refusal reads."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib.resources import files
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.cluster import Cluster, CNIConfig, CNIPlugin, ServiceType, TrafficPolicy
from model.errors import ClusterFileError
from model.packet import Proto
from sim.readers.cluster import load_cluster_file, parse_cluster
from tests import paths

DATA = paths.DATA

NODE = """\
apiVersion: v1
kind: Node
metadata:
  name: node-a
spec:
  podCIDR: 10.244.1.0/24
status:
  addresses:
  - type: InternalIP
    address: 10.0.0.11
"""


def pod(
    name: str = "p1",
    ip: str = "10.244.1.5",
    node: str = "node-a",
    labels: str = "app: web",
    extra: str = "",
) -> str:
    return f"""\
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  nodeName: {node}
  containers:
  - name: app
    ports:
    - containerPort: 8080
      name: http
status:
  podIP: {ip}
{extra}"""


def service(
    name: str = "web",
    port: str = "80",
    target: str = "8080",
    type_: str = "ClusterIP",
    node_port: str = "",
    cluster_ip: str = "10.96.0.10",
) -> str:
    return f"""\
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: {type_}
  clusterIP: {cluster_ip}
  ports:
  - port: {port}
    targetPort: {target}
{node_port}  selector:
    app: web
"""


def parse(text: str) -> Cluster:
    return parse_cluster(text, "c.yaml")


@pytest.fixture(scope="module")
def demo() -> Cluster:
    return parse_cluster(files("model").joinpath("demo_cluster.yaml").read_text(), "demo.yaml")


# --- The demo cluster is the cast other tests rely on ---------------------------


def test_demo_nodes(demo: Cluster) -> None:
    assert [(n.name, str(n.internal_ip), str(n.pod_cidr)) for n in demo.nodes] == [
        ("node-a", "10.0.0.11", "192.168.1.0/24"),
        ("node-b", "10.0.0.12", "192.168.2.0/24"),
        ("node-c", "10.0.0.13", "192.168.3.0/24"),
    ]
    assert demo.node_network == IPv4Network("10.0.0.0/24")
    assert [(c.name, str(c.ip)) for c in demo.clients] == [("client", "10.0.0.100")]


def test_demo_configuration(demo: Cluster) -> None:
    assert demo.kube_proxy.cluster_cidr == IPv4Network("192.168.0.0/16")
    assert not demo.kube_proxy.inferred
    assert demo.kube_proxy.masquerade_bit == 14
    assert demo.cni == CNIConfig(bridge="cni0", mtu=1500, hairpin_mode=True)


def test_demo_pods(demo: Cluster) -> None:
    assert [(p.name, p.node, str(p.ip), p.label_map()) for p in demo.pods] == [
        ("pod1", "node-a", "192.168.1.2", {"app": "frontend"}),
        ("pod2", "node-a", "192.168.1.3", {"app": "backend"}),
        ("pod3", "node-a", "192.168.1.4", {"app": "backend"}),
        ("pod4", "node-b", "192.168.2.2", {"app": "backend"}),
        ("myapp-1", "node-b", "192.168.2.3", {"app": "myapp"}),
        ("myapp-2", "node-c", "192.168.3.2", {"app": "myapp"}),
        ("web-1", "node-c", "192.168.3.3", {"app": "web"}),
    ]
    pod1 = demo.pod("default", "pod1")
    assert pod1 is not None
    assert [(c.name, [(p.name, p.container_port) for p in c.ports]) for c in pod1.containers] == [
        ("container01", []),
        ("container02", [("http", 8080)]),
    ]
    pod2 = demo.pod("default", "pod2")
    assert pod2 is not None and pod2.owner is not None
    assert (pod2.owner.kind, pod2.owner.name) == ("ReplicaSet", "backend-5d8f7b")


def test_demo_services(demo: Cluster) -> None:
    shown = [
        (
            s.name,
            s.type,
            str(s.cluster_ip),
            [(p.port, p.target_port, p.node_port) for p in s.ports],
            s.external_traffic_policy,
            s.session_affinity_timeout,
        )
        for s in demo.services
    ]
    cluster, node_port = ServiceType.CLUSTER_IP, ServiceType.NODE_PORT
    assert shown == [
        ("svc-b", cluster, "10.101.100.102", [(80, 8080, None)], TrafficPolicy.CLUSTER, None),
        ("myapp-svc", cluster, "10.101.100.50", [(80, "web", None)], TrafficPolicy.CLUSTER, None),
        ("web", node_port, "10.101.100.80", [(80, 8080, 30080)], TrafficPolicy.CLUSTER, None),
        ("web-local", node_port, "10.101.100.81", [(80, 8080, 30081)], TrafficPolicy.LOCAL, None),
        ("sticky", cluster, "10.101.100.90", [(80, 8080, None)], TrafficPolicy.CLUSTER, 10800),
        ("svc-empty", cluster, "10.101.100.99", [(80, 8080, None)], TrafficPolicy.CLUSTER, None),
    ]
    assert demo.services[0].ports[0].name == "http"


def test_demo_has_svc_b_slice_only(demo: Cluster) -> None:
    (slice_,) = demo.endpoint_slices
    assert slice_.service == "svc-b" and not slice_.derived
    assert [(e.pod, str(e.ip), e.node) for e in slice_.endpoints] == [
        ("pod2", "192.168.1.3", "node-a"),
        ("pod3", "192.168.1.4", "node-a"),
        ("pod4", "192.168.2.2", "node-b"),
    ]
    assert [(p.name, p.port, p.protocol) for p in slice_.ports] == [("http", 8080, Proto.TCP)]


def test_demo_warns_only_about_svc_empty(demo: Cluster) -> None:
    assert len(demo.warnings) == 1
    assert demo.warnings[0].startswith("demo.yaml:")
    assert demo.warnings[0].endswith(
        ": Service default/svc-empty: spec.selector: app=nothing matches no pod, so the"
        " Service has no endpoints and kube-proxy rejects its traffic"
    )


# --- Real dumps load: other kinds and unknown fields are skipped -----------------


def test_kubectl_json_dump_loads() -> None:
    cluster = load_cluster_file(DATA / "kubectl_dump.json")
    (node,) = cluster.nodes
    assert (node.name, node.internal_ip) == ("kind-worker", IPv4Address("172.18.0.3"))
    echo, proxy = cluster.pods
    assert (echo.ip, echo.ready, echo.namespace) == (IPv4Address("10.244.1.7"), False, "demo")
    # A hostNetwork pod shares its node's IP: not a duplicate.
    assert (proxy.host_network, proxy.ip) == (True, node.internal_ip)
    (svc,) = cluster.services
    assert (svc.cluster_ip, svc.ports[0].target_port) == (IPv4Address("10.96.45.12"), "http")
    # The IPv6 slice of the dual-stack Service is skipped.
    assert [s.name for s in cluster.endpoint_slices] == ["echo-h7w2k"]


def test_dual_stack_addresses_are_skipped_with_a_warning_on_their_line() -> None:
    cluster = load_cluster_file(DATA / "kubectl_dump.json")
    lines = (DATA / "kubectl_dump.json").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if '"fd00:10:244:1::7"}' in text)
    assert (
        f"{DATA / 'kubectl_dump.json'}:{line}: Pod demo/echo-6c9d8b7f4-2xkqz:"
        " status.podIPs[1].ip: skipped IPv6 address fd00:10:244:1::7"
        " (kubehop simulates IPv4 only)"
    ) in cluster.warnings


def test_yaml_and_json_give_the_same_cluster(tmp_path: Path) -> None:
    yaml_text = NODE + pod() + service()
    import yaml

    as_json = json.dumps({"kind": "List", "items": list(yaml.safe_load_all(yaml_text))}, indent=1)
    path = tmp_path / "c.json"
    path.write_text(as_json)
    from_json = load_cluster_file(path)
    from_yaml = parse(yaml_text)
    assert from_json.model_dump(exclude={"warnings"}) == from_yaml.model_dump(exclude={"warnings"})


def test_missing_configuration_is_inferred() -> None:
    cluster = parse(NODE + pod())
    assert cluster.kube_proxy.inferred and cluster.cni.inferred
    assert cluster.kube_proxy.cluster_cidr == IPv4Network("10.244.1.0/24")
    assert cluster.warnings == (
        "c.yaml: no KubeProxyConfiguration: assuming mode iptables and clusterCIDR"
        " 10.244.1.0/24 (the smallest network covering every node's podCIDR)",
    )


def test_nftables_mode_reads_its_own_section_and_the_service_cidrs() -> None:
    text = (
        NODE + "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        "mode: nftables\nnodePortAddresses: [primary]\n"
        "iptables: {masqueradeBit: 3}\nnftables: {masqueradeBit: 9}\n"
        "---\napiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\n"
        "metadata: {name: kubernetes}\nspec: {cidrs: [10.96.0.0/16]}\n"
        "---\napiVersion: networking.k8s.io/v1beta1\nkind: ServiceCIDR\n"
        "metadata: {name: extra}\nspec: {cidrs: [10.97.0.0/24, 10.96.0.0/16]}\n"
    )
    cluster = parse_cluster(text, "c.yaml")
    assert cluster.kube_proxy.mode.value == "nftables"
    assert cluster.kube_proxy.masquerade_bit == 9
    assert cluster.kube_proxy.node_port_addresses == ()
    assert cluster.service_cidrs == (IPv4Network("10.96.0.0/16"), IPv4Network("10.97.0.0/24"))


def test_ipvs_mode_reads_its_section() -> None:
    text = (
        NODE + "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        "mode: ipvs\niptables: {masqueradeBit: 5}\n"
        "ipvs: {scheduler: wrr, strictARP: true, tcpTimeout: 15m0s, tcpFinTimeout: 30s,"
        " udpTimeout: 1h}\n"
    )
    proxy = parse_cluster(text, "c.yaml").kube_proxy
    assert proxy.mode.value == "ipvs"
    assert proxy.masquerade_bit == 5
    assert (proxy.ipvs_scheduler, proxy.ipvs_strict_arp) == ("wrr", True)
    assert proxy.ipvs_timeouts == (900, 30, 3600)


def test_ipvs_blank_scheduler_means_rr() -> None:
    text = (
        NODE + "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        'mode: ipvs\nipvs: {scheduler: ""}\n'
    )
    assert parse_cluster(text, "c.yaml").kube_proxy.ipvs_scheduler == "rr"


def test_cluster_cidr_covers_every_pod_cidr() -> None:
    second = NODE.replace("node-a", "node-b").replace("10.244.1.0", "10.244.6.0")
    cluster = parse(NODE + "---\n" + second.replace("10.0.0.11", "10.0.1.200"))
    assert cluster.kube_proxy.cluster_cidr == IPv4Network("10.244.0.0/21")
    assert cluster.node_network == IPv4Network("10.0.0.0/23")


def test_node_network_is_at_least_a_slash_24() -> None:
    assert parse(NODE).node_network == IPv4Network("10.0.0.0/24")


@dataclass(frozen=True)
class Consequence:
    name: str
    text: str
    warning: str


CONSEQUENCES = [
    Consequence(
        "endpoint of a pod not in the file",
        NODE + pod() + service() + "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: web-abc, labels: {kubernetes.io/service-name: web}}\n"
        "addressType: IPv4\nports: [{name: '', port: 8080}]\n"
        "endpoints: [{addresses: [10.244.1.9], targetRef: {kind: Pod, name: gone}}]\n",
        "c.yaml:45: EndpointSlice default/web-abc: endpoints[0].targetRef.name: no Pod"
        " default/gone in the file (a stale slice or a partial dump); kube-proxy sends traffic"
        " to 10.244.1.9 all the same",
    ),
    Consequence(
        "pod on its bridge's address",
        NODE + pod(ip="10.244.1.1"),
        "c.yaml:25: Pod default/p1: status.podIP: 10.244.1.1 is the first address of node"
        " node-a's podCIDR, which the bridge CNI gives the node's bridge (host-local IPAM never"
        " hands it to a pod): the pod and the bridge clash",
    ),
    Consequence(
        "pod IP outside podCIDR",
        NODE + pod(ip="10.9.9.9"),
        "c.yaml:25: Pod default/p1: status.podIP: 10.9.9.9 is outside node node-a's podCIDR"
        " 10.244.1.0/24 (IPAM like Calico's does this; a host-gw route by podCIDR will not"
        " reach it)",
    ),
    Consequence(
        "selector matching nothing",
        NODE + pod(labels="app: api") + service(),
        "c.yaml:37: Service default/web: spec.selector: app=web matches no pod, so the"
        " Service has no endpoints and kube-proxy rejects its traffic",
    ),
    Consequence(
        "node without podCIDR",
        NODE.replace("  podCIDR: 10.244.1.0/24\n", "") + pod(),
        "c.yaml:17: Pod default/p1: spec.nodeName: node node-a has no podCIDR, so no route"
        " sends other nodes' traffic for 10.244.1.5 to it",
    ),
    Consequence(
        "unscheduled pod",
        NODE + pod().replace("  nodeName: node-a\n", ""),
        "c.yaml:17: Pod default/p1: spec.nodeName: not scheduled (no nodeName), so it has no network;"
        " left out",
    ),
    Consequence(
        "pod on a node not in the file",
        NODE + pod(node="node-z"),
        "c.yaml:18: Pod default/p1: spec.nodeName: its node 'node-z' is not among the file's"
        " nodes, so it has no network here; left out",
    ),
    Consequence(
        "node that never reported an address",
        NODE.replace("    address: 10.0.0.11\n", "    address: node-a.example\n").replace(
            "type: InternalIP", "type: Hostname"
        )
        + "---\n"
        + NODE.replace("node-a", "node-b")
        .replace("10.0.0.11", "10.0.0.12")
        .replace("10.244.1.0/24", "10.244.2.0/24"),
        "c.yaml:8: Node node-a: status.addresses: no IPv4 InternalIP address (kubehop puts a"
        " node on the network by it), so the node and its pods are left out",
    ),
    Consequence(
        "NodePort Service without a nodePort",
        NODE + service(type_="NodePort"),
        "c.yaml:20: Service default/web: spec.ports[0].nodePort: not set on a NodePort Service,"
        " so kube-proxy makes no NodePort rule for this port (kubehop does not allocate one)",
    ),
    Consequence(
        "finished pod",
        NODE + pod(extra="  phase: Succeeded\n"),
        "c.yaml:26: Pod default/p1: status.phase: Succeeded: its sandbox and IP are released;"
        " left out",
    ),
]


@pytest.mark.parametrize("case", CONSEQUENCES, ids=lambda c: c.name)
def test_consequential_things_are_warnings(case: Consequence) -> None:
    assert case.warning in parse(case.text).warnings


@pytest.mark.parametrize("node_port", [80, 1, 29999, 32768, 65535])
def test_any_node_port_loads_for_the_api_servers_range_is_its_own(node_port: int) -> None:
    # --service-node-port-range is the API server's to set; 30000-32767 is a default.
    cluster = parse(NODE + service(type_="NodePort", node_port=f"    nodePort: {node_port}\n"))
    assert cluster.services[0].ports[0].node_port == node_port
    assert not any("nodePort" in w for w in cluster.warnings)


def test_many_warnings_of_one_sort_are_summarised() -> None:
    pods = "".join(pod(name=f"p{i}", ip=f"10.9.9.{i}") for i in range(1, 26))
    warnings = parse(NODE + pods).warnings
    outside = [w for w in warnings if "is outside node" in w]
    assert len(outside) == 10
    assert "c.yaml: … and 15 more pods with IPs outside their node's podCIDR" in warnings


def test_host_network_pods_share_their_nodes_ip() -> None:
    host = pod(name="agent", ip="10.0.0.11", extra="").replace(
        "spec:\n", "spec:\n  hostNetwork: true\n"
    )
    cluster = parse(
        NODE
        + host
        + pod(name="agent-2", ip="10.0.0.11").replace("spec:\n", "spec:\n  hostNetwork: true\n")
    )
    assert [str(p.ip) for p in cluster.pods] == ["10.0.0.11", "10.0.0.11"]


def test_terminating_pod_is_marked() -> None:
    text = NODE + pod().replace(
        "  labels:", "  deletionTimestamp: '2025-01-15T10:00:00Z'\n  labels:"
    )
    assert parse(text).pods[0].terminating


def test_other_namespaces_and_typed_lists() -> None:
    text = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PodList",  # the API's own list: items carry no kind
            "items": [
                {
                    "metadata": {"name": "p", "namespace": "team-a"},
                    "spec": {"nodeName": "n", "containers": [{"name": "c"}]},
                    "status": {"podIP": "10.1.0.2"},
                }
            ],
        }
    )
    node = '{"kind": "Node", "metadata": {"name": "n"}, "status": {"addresses":'
    node += ' [{"type": "InternalIP", "address": "10.0.0.2"}]}}'
    cluster = parse(node + "\n---\n" + text)
    assert [p.key for p in cluster.pods] == ["team-a/p"]


# --- Bad input: one line, naming the file, line, object and field ----------------


@dataclass(frozen=True)
class Bad:
    name: str
    text: str
    error: str


DNS1123_SUBDOMAIN = (
    "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and"
    " ending with a letter or digit, at most 253 characters"
)

BAD = [
    Bad(
        "a key given twice",
        NODE + pod().replace("  name: p1\n", "  name: p1\n  name: p2\n"),
        "c.yaml:16: not valid YAML: key 'name' appears twice in one mapping (first at line 15)",
    ),
    Bad(
        "EndpointSlice port name with an escape",
        NODE + pod() + service() + "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: web-abc, labels: {kubernetes.io/service-name: web}}\n"
        'addressType: IPv4\nports: [{name: "h\\e[31m", port: 8080}]\n'
        "endpoints: [{addresses: [10.244.1.5]}]\n",
        "c.yaml:44: EndpointSlice default/web-abc: ports[0].name: must be a DNS-1123 label:"
        " lowercase letters, digits and '-', starting and ending with a letter or digit, at"
        " most 63 characters",
    ),
    Bad(
        "ClusterIP that is a pod's IP",
        NODE + pod() + service(cluster_ip="10.244.1.5"),
        "c.yaml:33: Service default/web: spec.clusterIP: 10.244.1.5 is already the IP of Pod"
        " default/p1 (line 15)",
    ),
    Bad(
        "clusterIPs disagreeing with clusterIP",
        NODE
        + pod()
        + service().replace(
            "  clusterIP: 10.96.0.10\n", "  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.11]\n"
        ),
        "c.yaml:34: Service default/web: spec.clusterIPs[0]: '10.96.0.11' must be"
        " spec.clusterIP's address '10.96.0.10' (Kubernetes requires clusterIPs[0] == clusterIP)",
    ),
    Bad(
        "node IP in another node's podCIDR",
        NODE
        + "---\n"
        + NODE.replace("node-a", "node-b")
        .replace("10.244.1.0/24", "10.244.2.0/24")
        .replace("10.0.0.11", "10.244.1.50"),
        "c.yaml:19: Node node-b: status.addresses: InternalIP 10.244.1.50 lies in Node"
        " node-a's podCIDR 10.244.1.0/24 (node and pod addresses come from separate ranges)",
    ),
    Bad(
        "namespace read as a boolean",
        NODE + pod().replace("  name: p1\n", "  name: p1\n  namespace: no\n"),
        "c.yaml:16: Pod false/p1: metadata.namespace: must be a string, not a boolean (false);"
        " quote it",
    ),
    Bad(
        "port with a fraction",
        NODE + pod() + service(port="80.5"),
        "c.yaml:35: Service default/web: spec.ports[0].port: must be a whole number, not 80.5",
    ),
    Bad("empty file", "", "c.yaml: file is empty (expected Kubernetes objects in YAML or JSON)"),
    Bad(
        "only comments",
        "# a cluster\n---\n",
        "c.yaml: file is empty (expected Kubernetes objects in YAML or JSON)",
    ),
    Bad(
        "not YAML",
        "kind: Pod\n  metadata: [\n",
        "c.yaml:2: not valid YAML: mapping values are not allowed in this context",
    ),
    Bad(
        "tab indentation",
        "kind: Pod\nmetadata:\n\tname: x\n",
        "c.yaml:3: not valid YAML: found character that cannot start any token",
    ),
    Bad(
        "top-level scalar",
        "just some words\n",
        "c.yaml:1: document is a string, not a Kubernetes object (a mapping with apiVersion"
        " and kind)",
    ),
    Bad(
        "top-level list",
        "- kind: Pod\n",
        "c.yaml:1: document is a list, not a Kubernetes object (a mapping with apiVersion"
        " and kind)",
    ),
    Bad(
        "object without kind",
        NODE + "---\napiVersion: v1\nmetadata:\n  name: lost\n",
        "c.yaml:12: object lost: kind: required (every object names its kind: Pod, Service, …)",
    ),
    Bad(
        "Service name with underscore",
        NODE + service(name="svc_B"),
        "c.yaml:15: Service default/svc_B: metadata.name: must be a DNS-1035 label: lowercase"
        " letters, digits and '-', starting with a letter, ending with a letter or digit, at"
        " most 63 characters",
    ),
    Bad(
        "pod name with capitals",
        NODE + pod(name="Pod1"),
        f"c.yaml:15: Pod default/Pod1: metadata.name: {DNS1123_SUBDOMAIN}",
    ),
    Bad(
        "bad namespace",
        NODE + pod().replace("  name: p1\n", "  name: p1\n  namespace: team.a\n"),
        "c.yaml:16: Pod team.a/p1: metadata.namespace: must be a DNS-1123 label: lowercase"
        " letters, digits and '-', starting and ending with a letter or digit, at most 63"
        " characters",
    ),
    Bad(
        "port out of range",
        NODE + service(port="70000"),
        "c.yaml:20: Service default/web: spec.ports[0].port: 70000 is not a port number (1-65535)",
    ),
    Bad(
        "quoted number as targetPort",
        NODE + service(target='"8080"'),
        "c.yaml:21: Service default/web: spec.ports[0].targetPort: '8080' is quoted: a port"
        " number must not be, and a port name must contain a letter",
    ),
    Bad(
        "targetPort name too long",
        NODE + service(target="a-very-long-port-name"),
        "c.yaml:21: Service default/web: spec.ports[0].targetPort: 'a-very-long-port-name'"
        " must be an IANA_SVC_NAME: at most 15 lowercase letters, digits and '-', with at"
        " least one letter, no '--', starting and ending with a letter or digit",
    ),
    Bad(
        "nodePort on a ClusterIP Service",
        NODE + service(node_port="    nodePort: 30080\n"),
        "c.yaml:22: Service default/web: spec.ports[0].nodePort: may not be set on a ClusterIP"
        " Service (only NodePort and LoadBalancer)",
    ),
    Bad(
        "bad pod IP",
        NODE + pod(ip="10.244.1.300"),
        "c.yaml:25: Pod default/p1: status.podIP: '10.244.1.300' is not an IPv4 address",
    ),
    Bad(
        "single-stack IPv6 pod",
        NODE + pod(ip="fd00::5"),
        "c.yaml:25: Pod default/p1: status.podIP: 'fd00::5' is IPv6; kubehop simulates IPv4 only",
    ),
    Bad(
        "duplicate pod IP",
        NODE + pod() + pod(name="p2"),
        "c.yaml:40: Pod default/p2: status.podIP: 10.244.1.5 is already the IP of Pod"
        " default/p1 (line 15)",
    ),
    Bad(
        "duplicate pod name",
        NODE + pod() + pod(ip="10.244.1.6"),
        "c.yaml:30: Pod default/p1: metadata.name: duplicate name (first defined at line 15)",
    ),
    Bad(
        "duplicate ClusterIP",
        NODE + service() + service(name="api"),
        "c.yaml:31: Service default/api: spec.clusterIP: 10.96.0.10 is already the ClusterIP"
        " of Service default/web (line 15)",
    ),
    Bad(
        "ipvs mode with a scheduler kube-proxy refuses (mh is the kernel's, not kube-proxy's)",
        NODE + "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
        "kind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  scheduler: mh\n",
        "c.yaml:16: KubeProxyConfiguration: ipvs.scheduler: 'mh' is not a scheduler kube-proxy"
        " accepts (rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq; blank means rr)",
    ),
    Bad(
        "ipvs mode with a negative timeout",
        NODE + "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
        "kind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  tcpTimeout: -5s\n",
        "c.yaml:16: KubeProxyConfiguration: ipvs.tcpTimeout: '-5s': must be greater than or"
        " equal to 0",
    ),
    Bad(
        "primary node-port addresses in iptables mode",
        '{"apiVersion": "kubeproxy.config.k8s.io/v1alpha1",\n'
        ' "kind": "KubeProxyConfiguration",\n "nodePortAddresses": ["primary"]}',
        "c.yaml:3: KubeProxyConfiguration: nodePortAddresses[0]: 'primary' is not simulated yet"
        " in iptables mode; list the nodes' network as a CIDR",
    ),
    Bad(
        "another CNI",
        "apiVersion: kubehop.dev/v1alpha1\nkind: CNIConfig\nmetadata:\n  name: cni\nspec:\n"
        "  plugin: vxlan\n",
        "c.yaml:6: CNIConfig cni: spec.plugin: CNI plugin 'vxlan' is not one kubehop simulates"
        f" ({', '.join(p.value for p in CNIPlugin)})",
    ),
    Bad(
        "wrong apiVersion",
        "apiVersion: v2\nkind: Pod\nmetadata:\n  name: p\n",
        "c.yaml:1: Pod p: apiVersion: 'v2' is not Pod's API version (expected v1)",
    ),
    Bad(
        "label value not a string",
        NODE + pod(labels="enabled: true"),
        "c.yaml:16: Pod default/p1: metadata.labels.enabled: must be a string, not a boolean"
        " (true); quote it",
    ),
    Bad(
        "JSON syntax error deep in a list",
        '{"kind": "List", "items": [\n {"kind": "Node"},\n {"kind": "Pod",, }\n]}',
        "c.yaml:3: not valid JSON: Expecting property name enclosed in double quotes (column 17)",
    ),
    Bad(
        "JSON field error reported on its line",
        '{"kind": "List", "items": [\n {"kind": "Node",\n  "metadata": {"name": "Node_A"}}\n]}',
        f"c.yaml:3: Node Node_A: metadata.name: {DNS1123_SUBDOMAIN}",
    ),
    Bad(
        "escape sequence in a name",
        NODE + pod(name='"\\e[31mred\\nx"'),
        f"c.yaml:15: Pod default/'\\x1b[31mred\\nx': metadata.name: {DNS1123_SUBDOMAIN}",
    ),
    Bad(
        "markup in a name is left for the screen to escape",
        NODE + pod(name='"[bold red]x"'),
        f"c.yaml:15: Pod default/[bold red]x: metadata.name: {DNS1123_SUBDOMAIN}",
    ),
    Bad(
        "overlapping podCIDRs",
        NODE + "---\n" + NODE.replace("node-a", "node-b").replace("10.0.0.11", "10.0.0.12"),
        "c.yaml:17: Node node-b: spec.podCIDR: 10.244.1.0/24 overlaps Node node-a's podCIDR"
        " 10.244.1.0/24 (line 4)",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_bad_input_is_one_exact_line(case: Bad) -> None:
    with pytest.raises(ClusterFileError) as caught:
        parse(case.text)
    assert str(caught.value) == case.error
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClusterFileError, match=r"^.*/nope\.yaml: no such file$"):
        load_cluster_file(tmp_path / "nope.yaml")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ClusterFileError) as caught:
        load_cluster_file(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a directory, not a cluster file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(NODE)
    path.chmod(0)
    with pytest.raises(ClusterFileError) as caught:
        load_cluster_file(path)
    assert str(caught.value) == f"{path}: permission denied"


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"kind: Pod\n\xff\xfe")
    with pytest.raises(ClusterFileError) as caught:
        load_cluster_file(path)
    assert str(caught.value) == f"{path}:2: not UTF-8 text (byte 0xff at offset 10)"


def test_control_characters_in_the_path_are_escaped(tmp_path: Path) -> None:
    with pytest.raises(ClusterFileError) as caught:
        load_cluster_file(tmp_path / "a\nb.yaml")
    assert "\n" not in str(caught.value)
    assert str(caught.value).endswith("a\\nb.yaml': no such file")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_loads_or_fails_in_one_line(text: str) -> None:
    try:
        parse(text)
    except ClusterFileError as err:
        assert "\n" not in str(err) and str(err).startswith("c.yaml")


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["metadata", "spec", "status", "name", "ports", "items", "kind"]),
                children,
                max_size=4,
            )
        ),
        max_leaves=12,
    ),
    st.sampled_from(["Node", "Pod", "Service", "EndpointSlice", "List", "ExternalClient"]),
)
def test_any_shape_of_object_fails_in_one_line(body: object, kind: str) -> None:
    obj = dict(body) if isinstance(body, dict) else {"spec": body}
    obj["kind"] = kind
    try:
        parse(json.dumps(obj, indent=1))
    except ClusterFileError as err:
        assert "\n" not in str(err)
