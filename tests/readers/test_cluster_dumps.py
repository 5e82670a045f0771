"""Users' own cluster dumps as kubectl writes them: one file, several, a directory; progress."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model.errors import ClusterFileError
from sim.cluster.load import load
from sim.readers.cluster import parse_cluster
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths
from tui.cli import run

REAL = paths.REAL
KUBEADM = REAL / "kubeadm-flannel.yaml"
KIND = REAL / "kind.json"
CALICO = REAL / "calico"


def test_a_kubeadm_dump_reads_kube_proxys_config_map_and_skips_what_has_no_network() -> None:
    cluster = load(KUBEADM)
    # kubeadm's kube-system/kube-proxy ConfigMap holds the real clusterCIDR.
    assert str(cluster.kube_proxy.cluster_cidr) == "10.244.0.0/16"
    assert not cluster.kube_proxy.inferred
    assert [n.name for n in cluster.nodes] == ["k8s-cp", "k8s-worker-1", "k8s-worker-2"]
    pods = {p.key: p for p in cluster.pods}
    assert pods["kube-system/kube-apiserver-k8s-cp"].host_network
    assert str(pods["kube-system/kube-apiserver-k8s-cp"].ip) == "10.0.0.10"
    assert pods["default/frontend-6b8f9d7c5-qtz2v"].terminating
    assert "default/report-28930142-xk2lp" not in pods  # Pending, no node
    assert "default/backup-28930140-7vn2c" not in pods  # Succeeded
    assert len(cluster.services) == 5
    api = next(s for s in cluster.services if s.name == "api")
    assert sorted(str(e.ip) for sl in cluster.slices_of(api) for e in sl.endpoints) == [
        "10.244.1.7",
        "10.244.1.9",
        "10.244.2.8",
    ]
    assert any(
        "Service default/orders: spec.selector: app=orders matches no pod" in w
        for w in cluster.warnings
    )
    assert any(
        "no CNIConfig: kubehop takes the CNI for flannel-vxlan (the DaemonSet kube-flannel-ds's"
        " pod" in w
        for w in cluster.warnings
    )
    assert any(
        "Pod default/backup-28930140-7vn2c: status.phase: Succeeded" in w for w in cluster.warnings
    )


def test_a_kind_dump_in_json_skips_ipv6_with_a_note() -> None:
    cluster = load(KIND)
    assert str(cluster.kube_proxy.cluster_cidr) == "10.244.0.0/16"
    assert str(cluster.node("kind-worker2").pod_cidr) == "10.244.2.0/24"  # type: ignore[union-attr]
    assert str(cluster.pod("demo", "curl").ip) == "10.244.2.2"  # type: ignore[union-attr]
    assert (
        f"{KIND}:3329: EndpointSlice kube-system/kube-dns-pc2xw: addressType: IPv6 slice skipped"
        " (kube-proxy's IPv4 rules never use it)"
    ) in cluster.warnings
    assert any("skipped IPv6 CIDR fd00:10:244::/56" in w for w in cluster.warnings)


def test_a_directory_of_dumps_loads_as_one_cluster_and_derives_missing_slices() -> None:
    cluster = load(CALICO)
    assert [n.name for n in cluster.nodes] == ["node-1", "node-2", "node-3"]
    assert len(cluster.pods) == 14
    # The dump has no slices for node-exporter: they come from its selector,
    # and its endpoints are hostNetwork pods, so node addresses.
    exporter = cluster.service("monitoring", "node-exporter")
    assert exporter is not None
    (derived,) = cluster.slices_of(exporter)
    assert derived.derived
    assert sorted(str(e.ip) for e in derived.endpoints) == [
        "192.168.56.11",
        "192.168.56.12",
        "192.168.56.13",
    ]
    assert cluster.service("shop", "db").headless  # type: ignore[union-attr]
    assert (
        f"{CALICO}: no KubeProxyConfiguration: assuming mode iptables and clusterCIDR"
        " 10.42.0.0/22 (the smallest network covering every node's podCIDR)"
    ) in cluster.warnings


def test_several_files_and_a_directory_are_the_same_cluster(tmp_path: Path) -> None:
    files = sorted(p for p in CALICO.iterdir() if p.suffix in (".yaml", ".json"))
    from_files = load(files)
    from_dir = load(CALICO)
    assert from_files.pods == from_dir.pods
    assert from_files.endpoint_slices == from_dir.endpoint_slices


def test_an_error_names_the_file_it_is_in_among_several(tmp_path: Path) -> None:
    shutil.copytree(CALICO, tmp_path / "dump")
    services = tmp_path / "dump" / "services.yaml"
    services.write_text(services.read_text().replace("name: shop-api\n", "name: shop_api\n"))
    with pytest.raises(ClusterFileError) as caught:
        load(tmp_path / "dump")
    message = str(caught.value)
    assert message.startswith(f"{services}:")
    assert "Service shop/shop_api: metadata.name: must be a DNS-1035 label" in message


def test_a_duplicate_across_files_points_at_the_other_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text((CALICO / "nodes.yaml").read_text())
    (tmp_path / "b.yaml").write_text((CALICO / "nodes.yaml").read_text())
    with pytest.raises(ClusterFileError) as caught:
        load(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'b.yaml'}:")
    assert f"duplicate name (first defined at {tmp_path / 'a.yaml'}:" in str(caught.value)


def test_a_directory_without_dumps_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(
        ClusterFileError, match=r"no \.yaml, \.yml or \.json files in this directory"
    ):
        load(tmp_path)


def test_progress_is_told_bytes_then_objects() -> None:
    calls: list[tuple[str, int, int]] = []
    text = KIND.read_text()
    parse_cluster(text, "kind.json", progress=lambda *call: calls.append(call))
    reading = [c for c in calls if c[0].startswith("reading")]
    checking = [c for c in calls if c[0] == "checking objects"]
    assert reading[0] == ("reading kind.json", 0, len(text))
    assert reading[-1] == ("reading kind.json", len(text), len(text))
    # 3 nodes, 17 pods, 3 Services, 5 slices (the kinds kubehop reads), all checked.
    assert checking[-1] == ("checking objects", 28, 28)


def test_progress_ticks_every_1024_objects() -> None:
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "default"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"podIP": f"10.1.{i // 250}.{i % 250 + 2}"},
        }
        for i in range(2100)
    ]
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.1.0.0/16"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]},
    }
    calls: list[tuple[str, int, int]] = []
    parse_cluster(
        json.dumps({"kind": "List", "items": [node, *pods]}),
        "big.json",
        progress=lambda *call: calls.append(call),
    )
    assert [c for c in calls if c[0] == "checking objects"] == [
        ("checking objects", 1024, 2101),
        ("checking objects", 2048, 2101),
        ("checking objects", 2101, 2101),
    ]


def test_the_cli_draws_a_bar_only_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.cli.output import ProgressBar

    bar = ProgressBar()
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    for done in (0, 5000, 10000):
        bar("checking objects", done, 10000)
    bar.finish()
    err = capsys.readouterr().err
    assert "checking objects" in err
    assert "100% (10,000/10,000 objects)" in err
    assert err.endswith("\n")
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    quiet = ProgressBar()
    quiet("checking objects", 10000, 10000)
    quiet.finish()
    assert capsys.readouterr().err == ""


def test_the_issues_first_trace_works_on_a_kubeadm_dump(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(
        [
            "trace",
            "--cluster",
            str(KUBEADM),
            "default/frontend-7d9c5b7b4-x2k9p",
            "kube-dns.kube-system:53/udp",
            "--seed",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert (
        "DNAT in KUBE-SEP-6E7XQMQ4RAYOWTTM #2: destination 10.96.0.10:53 → 10.244.0.3:53,"
        " an endpoint of kube-system/kube-dns:dns"
    ) in out
    assert (
        "verdict: DELIVERED: frontend-7d9c5b7b4-x2k9p/nginx reached 10.244.0.3:53 through"
        " 10.96.0.10:53, and the reply came back from 10.96.0.10:53"
    ) in out.splitlines()


def test_a_directory_is_a_cluster_for_the_cli_too(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(
        [
            "--cluster",
            str(CALICO),
            "trace",
            "shop/shop-api-84d6f7c9b-kx7pq",
            "db:5432",
            "--seed",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "db resolves to db.shop.svc.cluster.local, a headless Service" in out
    assert "reached 10.42.1.10:5432, and the reply came back from 10.42.1.10:5432" in out


def test_a_hostnetwork_endpoint_is_the_nodes_own_address() -> None:
    cluster = load(CALICO)
    t = trace(
        cluster,
        Request(
            "shop/shop-api-84d6f7c9b-kx7pq",
            "node-exporter.monitoring:9100",
            seed=1,
            pick="192.168.56.12:9100",
        ),
    )
    assert t.endpoint == "192.168.56.12:9100"
    deliver = t.hops[[h.direction.value for h in t.hops].index("reply") - 1]
    assert deliver.where.netns == "node-2"
    assert deliver.sentence.startswith("node-exporter-n7w8f/node-exporter in node-2 accepts")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cluster", "nope.yaml", "trace", "a", "b:1"],
            "kubehop: error: nope.yaml: no such file\n",
        ),
    ],
)
def test_bad_dumps_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(args)
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err == message


def test_two_clusters_dumps_in_one_directory_name_the_second_kube_proxy_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = tmp_path / "dumps"
    both.mkdir()
    shutil.copy(KUBEADM, both)
    shutil.copy(KIND, both)
    status = run(["trace", "--cluster", str(both), "a", "b:1"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == (
        f"kubehop: error: {both / KUBEADM.name}:2817: ConfigMap kube-system/kube-proxy: a"
        " second KubeProxyConfiguration (kube-proxy runs with one; the first is at"
        f" {both / KIND.name}:3613)\n"
    )
