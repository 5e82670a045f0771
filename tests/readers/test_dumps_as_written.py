"""Dumps as real clusters and old tools write them: v1 Endpoints instead of slices, old kubectl.

A `kubectl cluster-info dump` has no EndpointSlices; `kubectl get endpoints`
writes v1 Endpoints, which kubehop mirrors into slices as kube-controller-manager
does. A Service without a selector and with neither has endpoints nobody can
tell. An old kubectl printed objects in Go's field names, which kubehop names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from model.cluster import Cluster
from model.errors import ClusterFileError
from sim.cluster.load import load
from sim.readers.cluster import parse_cluster, parse_clusters
from sim.readers.cluster.endpoints import MIRRORING_CONTROLLER
from tests import paths

DUMP = paths.REAL / "cluster-info-dump"
KUBEADM = paths.REAL / "kubeadm-flannel.yaml"


def endpoints_of(cluster: Cluster, key: str) -> list[tuple[str, bool]]:
    namespace, name = key.split("/")
    service = cluster.service(namespace, name)
    assert service is not None
    return sorted((str(e.ip), e.ready) for s in cluster.slices_of(service) for e in s.endpoints)


# --- A cluster-info dump with `kubectl get endpoints` next to it --------------------


def test_a_cluster_info_dump_reads_endpoints_as_the_mirroring_controller_would() -> None:
    cluster = load(DUMP)
    assert [s.key for s in cluster.services] == [
        "default/kubernetes",
        "default/legacy-db",
        "default/partner-api",
        "default/web",
        "kube-system/kube-dns",
    ]
    assert cluster.endpoint_slices == tuple(
        s for s in cluster.endpoint_slices if s.managed_by == MIRRORING_CONTROLLER
    )
    (api,) = cluster.slices_of(cluster.service("default", "kubernetes"))  # type: ignore[arg-type]
    assert (api.name, api.service, api.derived) == ("kubernetes-wg8vq", "kubernetes", False)
    assert [(p.name, p.port, p.protocol.value) for p in api.ports] == [("https", 6443, "tcp")]
    assert endpoints_of(cluster, "default/kubernetes") == [("10.0.0.10", True)]
    # notReadyAddresses mirror as ready: false; the IPv6 address is skipped with a note.
    assert endpoints_of(cluster, "default/legacy-db") == [("10.0.0.50", True), ("10.0.0.51", False)]
    assert endpoints_of(cluster, "default/web") == [("10.244.1.5", True), ("10.244.1.6", False)]
    (dns,) = cluster.slices_of(cluster.service("kube-system", "kube-dns"))  # type: ignore[arg-type]
    assert [(p.name, p.port) for p in dns.ports] == [
        ("dns-tcp", 53),
        ("dns", 53),
        ("metrics", 9153),
    ]
    assert [e.pod for e in dns.endpoints] == [
        "coredns-76f75df574-4xk2p",
        "coredns-76f75df574-tbq8m",
    ]
    assert [e.node for e in dns.endpoints] == ["k8s-cp", "k8s-cp"]
    assert {s.key: s.endpoints_known for s in cluster.services} == {
        "default/kubernetes": True,
        "default/legacy-db": True,
        "default/partner-api": False,
        "default/web": True,
        "kube-system/kube-dns": True,
    }
    assert [n.kube_proxy_version for n in cluster.nodes] == ["v1.29.4", "v1.29.4"]
    assert cluster.warnings[:3] == (
        f"{DUMP}/endpoints.json:55: Endpoints default/legacy-db: subsets[0].addresses[1].ip:"
        " skipped IPv6 address fd00:10::50 (kubehop simulates IPv4 only)",
        f"{DUMP}: 4 Services have no EndpointSlice in the files: read from their v1 Endpoints,"
        " as the EndpointSlice mirroring controller would",
        f"{DUMP}/default/services.json:78: Service default/partner-api: no selector, and"
        " neither an EndpointSlice nor an Endpoints object of it in the files, so its"
        " endpoints are unknown (dump them too: kubectl get endpointslices,endpoints -A -o"
        " yaml)",
    )


def test_without_endpoints_selectorless_services_are_unknown_and_the_rest_come_from_pods(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "dump"
    shutil.copytree(DUMP, bare)
    (bare / "endpoints.json").unlink()
    cluster = load(bare)
    assert {s.key: s.endpoints_known for s in cluster.services} == {
        "default/kubernetes": False,
        "default/legacy-db": False,
        "default/partner-api": False,
        "default/web": True,
        "kube-system/kube-dns": True,
    }
    assert all(s.derived for s in cluster.endpoint_slices)
    # The pods say what the Endpoints said: the same endpoints either way.
    mirrored = load(DUMP)
    for key in ("default/web", "kube-system/kube-dns"):
        assert endpoints_of(cluster, key) == endpoints_of(mirrored, key)
    unknown = [w for w in cluster.warnings if "endpoints are unknown" in w]
    assert [w.split(": ")[1] for w in unknown] == [
        "Service default/kubernetes",
        "Service default/legacy-db",
        "Service default/partner-api",
    ]


def test_a_dump_with_both_slices_and_endpoints_does_not_double_them() -> None:
    text = KUBEADM.read_text()
    before = load(KUBEADM)
    endpoints: list[dict[str, Any]] = []
    for slice_ in before.endpoint_slices:
        endpoints.append(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": slice_.service, "namespace": slice_.namespace},
                "subsets": [
                    {
                        "addresses": [{"ip": str(e.ip)} for e in slice_.endpoints],
                        "ports": [{"name": p.name, "port": p.port} for p in slice_.ports],
                    }
                ],
            }
        )
    both = parse_clusters(
        [(text, "kubeadm.yaml"), (json.dumps({"kind": "List", "items": endpoints}), "ep.json")]
    )
    given_slices = [s for s in before.endpoint_slices if not s.derived]
    assert [s for s in both.endpoint_slices] == given_slices
    assert not any("v1 Endpoints" in w for w in both.warnings)


# --- The same Endpoints, however they are written --------------------------------

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "db", "namespace": "data"},
    "spec": {"clusterIP": "10.96.5.5", "ports": [{"name": "sql", "port": 5432}]},
}
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "n1"},
    "spec": {"podCIDR": "10.244.0.0/24"},
    "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]},
}

addresses = st.lists(
    st.builds(lambda n: {"ip": f"10.0.{n // 250}.{n % 250 + 1}"}, st.integers(0, 600)),
    max_size=6,
)
ports = st.lists(
    st.builds(
        lambda name, port, proto: {"name": name, "port": port, "protocol": proto},
        st.sampled_from(["sql", "admin", "metrics"]),
        st.integers(1, 65535),
        st.sampled_from(["TCP", "UDP"]),
    ),
    max_size=3,
    unique_by=lambda p: p["name"],
)
subsets = st.lists(
    st.fixed_dictionaries({"addresses": addresses, "notReadyAddresses": addresses, "ports": ports}),
    max_size=3,
)


def _as(form: str, subsets_: list[dict[str, Any]]) -> str:
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "db", "namespace": "data"},
        "subsets": subsets_,
    }
    if form == "yaml documents":
        return yaml.safe_dump_all([NODE, SERVICE, endpoints])
    if form == "json list":
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": [NODE, SERVICE, endpoints]})
    typed = {**endpoints}
    del typed["kind"], typed["apiVersion"]
    return yaml.safe_dump_all(
        [NODE, SERVICE, {"apiVersion": "v1", "kind": "EndpointsList", "items": [typed]}]
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(subsets_=subsets)
def test_endpoints_mirror_the_same_whatever_their_spelling(
    subsets_: list[dict[str, Any]],
) -> None:
    clusters = [
        parse_cluster(_as(form, subsets_), "e.yaml")
        for form in ("yaml documents", "json list", "typed list")
    ]
    first = clusters[0]
    assert all(c.endpoint_slices == first.endpoint_slices for c in clusters)
    # Every address is in the one slice of its subset's ports, ready as listed.
    expected: dict[tuple[object, ...], set[tuple[str, bool]]] = {}
    for subset in subsets_:
        key = tuple(sorted((p["name"], p["port"], p["protocol"].lower()) for p in subset["ports"]))
        found = expected.setdefault(key, set())
        found |= {(a["ip"], True) for a in subset["addresses"]}
        found |= {(a["ip"], False) for a in subset["notReadyAddresses"]}
    got = {
        tuple(sorted((p.name, p.port, p.protocol.value) for p in s.ports)): {
            (str(e.ip), e.ready) for e in s.endpoints
        }
        for s in first.endpoint_slices
    }
    assert got == {key: found for key, found in expected.items() if found}
    assert first.services[0].endpoints_known
    assert len({s.name for s in first.endpoint_slices}) == len(first.endpoint_slices)


# --- Old kubectl's Go field names --------------------------------------------------

GO_FORM = (
    "an old kubectl's dump: objects in Go's field names (Items, ObjectMeta, Spec, PodCIDR…)"
    " instead of the API's (items, metadata, spec, podCIDR), which some kubectl versions"
    " printed by mistake; dump the cluster again with a current kubectl: kubectl get"
    " nodes,pods,services,endpointslices -A -o yaml"
)


def test_an_old_kubectl_dump_is_named_with_how_to_dump_again() -> None:
    path = paths.REAL / "old-kubectl.yaml"
    with pytest.raises(ClusterFileError) as err:
        load(path)
    assert str(err.value) == f"{path}:1: {GO_FORM}"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param(
            json.dumps({"Items": [{"ObjectMeta": {"Name": "n"}}], "TypeMeta": {"Kind": "List"}}),
            "g.yaml:1",
            id="json",
        ),
        pytest.param(
            "apiVersion: v1\nkind: List\nItems:\n- ObjectMeta: {Name: n}\n",
            "g.yaml:3: List",
            id="list",
        ),
        pytest.param(
            "apiVersion: v1\nkind: List\nitems:\n- kind: Node\n  ObjectMeta: {Name: n}\n"
            "  Spec: {PodCIDR: 10.244.0.0/24}\n",
            "g.yaml:5: Node",
            id="items",
        ),
        pytest.param(
            "ObjectMeta:\n  Name: n\nSpec:\n  PodCIDR: 10.244.0.0/24\n", "g.yaml:1", id="object"
        ),
    ],
)
def test_go_field_names_are_named_however_the_file_is_shaped(text: str, where: str) -> None:
    with pytest.raises(ClusterFileError) as err:
        parse_cluster(text, "g.yaml")
    assert str(err.value) == f"{where}: {GO_FORM}"
