"""Deriving EndpointSlices the way the EndpointSlice controller writes them."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from model.cluster import (
    Cluster,
    Container,
    ContainerPort,
    Node,
    Pod,
    Service,
    ServicePort,
    ServiceType,
)
from model.packet import Proto
from sim.cluster.endpointslices import (
    derive_endpoint_slices,
    endpoint_ports,
    slice_name,
    slices_for,
)
from sim.cluster.load import demo_cluster, load, with_derived_slices

NODES = (
    Node(name="n1", internal_ip=IPv4Address("10.0.0.1"), pod_cidr=IPv4Network("10.1.1.0/24")),
    Node(name="n2", internal_ip=IPv4Address("10.0.0.2"), pod_cidr=IPv4Network("10.1.2.0/24")),
)


def pod(
    name: str,
    ip: str,
    *,
    app: str = "api",
    port: int = 8080,
    port_name: str | None = "http",
    node: str = "n1",
    ready: bool = True,
    terminating: bool = False,
    namespace: str = "default",
    host_network: bool = False,
) -> Pod:
    return Pod(
        name=name,
        namespace=namespace,
        labels=(("app", app),),
        node=node,
        ip=IPv4Address(ip),
        host_network=host_network,
        containers=(
            Container(name="c", ports=(ContainerPort(name=port_name, container_port=port),)),
        ),
        ready=ready,
        terminating=terminating,
    )


def service(
    name: str = "api",
    *ports: ServicePort,
    app: str | None = "api",
    type_: ServiceType = ServiceType.CLUSTER_IP,
    publish: bool = False,
) -> Service:
    return Service(
        name=name,
        type=type_,
        cluster_ip=None if type_ is ServiceType.EXTERNAL_NAME else IPv4Address("10.96.0.10"),
        ports=ports or (ServicePort(name="web", port=80, target_port="http"),),
        selector=None if app is None else (("app", app),),
        publish_not_ready_addresses=publish,
    )


def cluster(*pods: Pod, services: tuple[Service, ...] = ()) -> Cluster:
    return Cluster(nodes=NODES, pods=pods, services=services or (service(),))


def endpoints_by_slice(result: Cluster) -> list[tuple[tuple[tuple[str, int], ...], list[str]]]:
    return [
        (tuple((p.name, p.port) for p in s.ports), [e.pod or "" for e in s.endpoints])
        for s in result.endpoint_slices
    ]


# --- The demo cluster ---------------------------------------------------------


def test_demo_derives_slices_for_services_the_file_left_without() -> None:
    demo = demo_cluster()
    derived = {
        s.service: [(e.pod, str(e.ip), e.node) for e in s.endpoints]
        for s in demo.endpoint_slices
        if s.derived
    }
    assert derived == {
        "myapp-svc": [("myapp-1", "192.168.2.3", "node-b"), ("myapp-2", "192.168.3.2", "node-c")],
        "web": [("web-1", "192.168.3.3", "node-c")],
        "web-local": [("web-1", "192.168.3.3", "node-c")],
        "sticky": [
            ("pod2", "192.168.1.3", "node-a"),
            ("pod3", "192.168.1.4", "node-a"),
            ("pod4", "192.168.2.2", "node-b"),
        ],
        "svc-empty": [],
    }


def test_demo_named_target_port_resolves_to_the_container_port() -> None:
    demo = demo_cluster()
    myapp = demo.service("default", "myapp-svc")
    assert myapp is not None
    (slice_,) = demo.slices_of(myapp)
    assert [(p.name, p.port, p.protocol) for p in slice_.ports] == [("", 8080, Proto.TCP)]


def test_demo_svc_b_keeps_the_files_slice() -> None:
    demo = demo_cluster()
    svc_b = demo.service("default", "svc-b")
    assert svc_b is not None
    assert [s.name for s in demo.slices_of(svc_b)] == ["svc-b-x7q2t"]


def test_load_none_is_the_demo() -> None:
    assert load(None) is demo_cluster()


def test_load_a_file_derives_its_slices(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 10.1.1.0/24}\n"
        "status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: api}}\n"
        "spec: {nodeName: n1, containers: [{name: c}]}\nstatus: {podIP: 10.1.1.2}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\n"
        "spec: {clusterIP: 10.96.0.10, ports: [{port: 80, targetPort: 8080}],"
        " selector: {app: api}}\n"
    )
    result = load(path)
    assert [
        (s.service, s.derived, [str(e.ip) for e in s.endpoints]) for s in result.endpoint_slices
    ] == [("api", True, ["10.1.1.2"])]


# --- The controller's rules -----------------------------------------------------


def test_pods_with_different_numbers_for_a_named_port_get_separate_slices() -> None:
    result = with_derived_slices(
        cluster(pod("a", "10.1.1.2"), pod("b", "10.1.1.3", port=9000), pod("c", "10.1.2.2")),
        "c.yaml",
    )
    assert endpoints_by_slice(result) == [
        ((("web", 8080),), ["a", "c"]),
        ((("web", 9000),), ["b"]),
    ]


def test_pod_without_the_named_port_is_left_out_of_that_port() -> None:
    svc = service(
        "api",
        ServicePort(name="web", port=80, target_port="http"),
        ServicePort(name="admin", port=81, target_port=9901),
    )
    result = with_derived_slices(
        cluster(pod("a", "10.1.1.2"), pod("b", "10.1.1.3", port_name="other"), services=(svc,)),
        "c.yaml",
    )
    assert endpoints_by_slice(result) == [
        ((("web", 8080), ("admin", 9901)), ["a"]),
        ((("admin", 9901),), ["b"]),
    ]


def test_named_port_must_match_the_protocol() -> None:
    svc = service("dns", ServicePort(name="dns", port=53, protocol=Proto.UDP, target_port="http"))
    assert endpoint_ports(svc, pod("a", "10.1.1.2")) == ()


def test_readiness_and_termination_become_conditions() -> None:
    result = with_derived_slices(
        cluster(
            pod("up", "10.1.1.2"),
            pod("starting", "10.1.1.3", ready=False),
            pod("leaving", "10.1.1.4", terminating=True),
        ),
        "c.yaml",
    )
    assert [
        (e.pod, e.ready, e.serving, e.terminating) for e in result.endpoint_slices[0].endpoints
    ] == [
        ("up", True, True, False),
        ("starting", False, False, False),
        ("leaving", False, True, True),
    ]


def test_publish_not_ready_addresses_makes_every_endpoint_ready() -> None:
    result = with_derived_slices(
        cluster(pod("starting", "10.1.1.3", ready=False), services=(service(publish=True),)),
        "c.yaml",
    )
    assert result.endpoint_slices[0].endpoints[0].ready


def test_host_network_pod_is_reached_at_its_nodes_ip() -> None:
    result = with_derived_slices(
        cluster(pod("agent", "10.0.0.2", node="n2", host_network=True)), "c.yaml"
    )
    (endpoint,) = result.endpoint_slices[0].endpoints
    assert (str(endpoint.ip), endpoint.node) == ("10.0.0.2", "n2")


def test_slices_hold_at_most_100_endpoints() -> None:
    pods = [pod(f"p{i}", f"10.1.{1 + i // 200}.{2 + i % 200}") for i in range(250)]
    slices = slices_for(service(), pods)
    assert [len(s.endpoints) for s in slices] == [100, 100, 50]
    assert len({s.name for s in slices}) == 3


def test_only_pods_in_the_services_namespace_are_selected() -> None:
    result = with_derived_slices(
        cluster(pod("mine", "10.1.1.2"), pod("theirs", "10.1.1.3", namespace="other")), "c.yaml"
    )
    assert endpoints_by_slice(result) == [((("web", 8080),), ["mine"])]


def test_a_service_with_no_pods_gets_the_placeholder_slice() -> None:
    (slice_,) = slices_for(service(), [])
    assert (slice_.ports, slice_.endpoints, slice_.derived) == ((), (), True)


@pytest.mark.parametrize(
    "svc",
    [service(app=None), service(type_=ServiceType.EXTERNAL_NAME)],
    ids=["no selector", "ExternalName"],
)
def test_no_slices_without_a_selector_or_for_external_name(svc: Service) -> None:
    assert derive_endpoint_slices(cluster(pod("a", "10.1.1.2"), services=(svc,))) == ()


def test_slice_names_look_generated_and_are_stable() -> None:
    svc = service()
    name = slice_name(svc, "web:8080/tcp#0")
    assert re.fullmatch(r"api-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    assert slice_name(svc, "web:8080/tcp#0") == name
    assert slice_name(svc, "web:8080/tcp#0", {("default", name)}) != name


def test_long_service_names_are_cut_like_generate_name() -> None:
    svc = service("a" * 63)
    assert len(slice_name(svc, "k")) == 63


def test_unresolvable_target_port_is_a_warning() -> None:
    result = with_derived_slices(cluster(pod("a", "10.1.1.2", port_name="grpc")), "c.yaml")
    assert result.warnings == (
        "c.yaml: Service default/api: its pods declare none of its target ports, so kube-proxy"
        " has nothing to send its traffic to",
    )


def test_lookups_see_the_derived_slices() -> None:
    base = cluster(pod("a", "10.1.1.2"))
    assert base.slices_of(base.services[0]) == ()  # fills the lookup cache
    result = with_derived_slices(base, "c.yaml")
    assert len(result.slices_of(result.services[0])) == 1
