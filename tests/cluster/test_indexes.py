"""A loaded cluster comes indexed, and a cluster rewired by `--cni` or `--mode` keeps the
indexes of what it shares with the original (a big cluster's take a second to build)."""

from __future__ import annotations

from pathlib import Path

from model.cluster import ProxyMode
from sim.cluster.generate import generate
from sim.cluster.indexes import prepare
from sim.cluster.load import _replaced, demo_cluster, load, with_dataplane, with_derived_slices
from sim.proxy.iptables import lazy
from sim.proxy.nftables import lazy as nft_lazy
from sim.readers.cluster import parse_cluster
from sim.trace.request import Request
from sim.trace.tracer import trace


def test_a_loaded_cluster_has_its_service_ports_indexed(tmp_path: Path) -> None:
    path = tmp_path / "gen.json"
    path.write_text(generate(nodes=3, pods=30, services=8, seed=2))
    stages: list[tuple[str, int, int]] = []
    cluster = load(path, progress=lambda stage, done, total: stages.append((stage, done, total)))
    assert ("indexing Services and pods", 1, 1) in stages
    assert lazy.service_table.peek(cluster) is not None
    for index in ("_pods_by_key", "_services_by_key", "_pods_by_node", "_slices_by_service"):
        assert index in cluster.__dict__, index


def test_another_mode_keeps_the_pod_index_and_finds_the_same_pods() -> None:
    cluster = prepare(demo_cluster())
    rewired = with_dataplane(cluster, mode="nftables", cni="calico-vxlan")
    assert rewired.kube_proxy.mode is ProxyMode.NFTABLES
    assert rewired.__dict__["_pods_by_key"] is cluster.__dict__["_pods_by_key"]
    assert rewired.pod("default", "pod4") == cluster.pod("default", "pod4")
    result = trace(rewired, Request("pod1", "svc-b:80", seed=1))
    assert any(walk.nft for hop in result.hops for walk in hop.tables)


def test_an_index_of_a_changed_field_is_built_again() -> None:
    text = generate(nodes=2, pods=6, services=2, seed=3)
    cluster = prepare(with_derived_slices(parse_cluster(text, "gen.json"), "gen.json"))
    first, second = cluster.pods[0], cluster.pods[1]
    fewer = _replaced(cluster, pods=cluster.pods[1:])
    assert fewer.pod(first.namespace, first.name) is None
    assert fewer.pod(second.namespace, second.name) == second
    assert fewer.__dict__.get("_services_by_key") is cluster.__dict__["_services_by_key"]


def test_a_cluster_loaded_in_another_mode_is_indexed_for_that_mode(tmp_path: Path) -> None:
    path = tmp_path / "gen.json"
    path.write_text(generate(nodes=3, pods=30, services=8, seed=4))
    cluster = load(path, mode="nftables", cni="flannel-vxlan")
    assert cluster.kube_proxy.mode is ProxyMode.NFTABLES
    assert cluster.cni.plugin.value == "flannel-vxlan"
    assert nft_lazy.port_index.peek(cluster) is not None
    # Nothing of iptables mode's was indexed, for this cluster or the file's own.
    assert not any(kept.pods is cluster.pods for kept in lazy.service_table.clusters())
