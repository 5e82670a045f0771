"""`kubehop routes` and `--cni`: a node's routes, neighbours and FDB, held against the node's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.cluster import CNIPlugin
from tui.cli import run
from tui.cli.parser import CNI_NAMES


def test_cni_names_are_the_models(capsys: pytest.CaptureFixture[str]) -> None:
    # The parser spells them out so that `--help` need not import the model.
    assert tuple(p.value for p in CNIPlugin) == CNI_NAMES


def test_routes_prints_the_nodes_tables_as_iproute2_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["routes", "--node", "node-a", "--cni", "flannel-vxlan"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "192.168.2.0/24 via 192.168.2.0 dev flannel.1 onlink" in out
    assert any(
        line.startswith("192.168.2.0 dev flannel.1 lladdr ") and line.endswith(" PERMANENT")
        for line in out
    )
    assert any(line.endswith(" dev flannel.1 dst 10.0.0.12 self permanent") for line in out)
    assert "0a:58:c0:a8:01:02 dev vethc9f19f6a master cni0" in out


def test_routes_diff_names_what_the_node_has_and_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `ip route; ip neigh; bridge fdb` printed on a node that runs Flannel's
    # VXLAN backend, held against the demo modelled with host-gw.
    assert run(["routes", "--node", "node-a", "--cni", "flannel-vxlan"]) == 0
    node_output = tmp_path / "node-a.routes"
    node_output.write_text(
        capsys.readouterr().out
        + "172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown\n"
        + "10.0.0.1 dev eth0 lladdr 52:54:00:12:34:56 REACHABLE\n"
    )
    assert run(["routes", "--node", "node-a", "--diff", str(node_output)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"node-a: {node_output} differs from kubehop's model of the node"
    assert "- 192.168.2.0/24 via 10.0.0.12 dev eth0   (kubehop has it; the node does not)" in out
    assert (
        "+ 192.168.2.0/24 via 192.168.2.0 dev flannel.1 onlink   (the node has it; kubehop does"
        " not model it)"
    ) in out
    assert any(line.startswith("+ 172.17.0.0/16 dev docker0") for line in out)
    assert not any("REACHABLE" in line for line in out)  # learned entries are not compared
    assert (
        run(["routes", "--node", "node-a", "--cni", "flannel-vxlan", "--diff", str(node_output)])
        == 1
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "docker0" in out[1]


def test_a_cluster_without_nodes_has_no_rules_or_routes_to_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    services_only = tmp_path / "svc.json"
    services_only.write_text(
        '{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service",'
        '"metadata":{"name":"web","namespace":"default"},"spec":{"clusterIP":"10.96.0.5",'
        '"ports":[{"port":80}]}}]}'
    )
    for command in ("rules", "routes"):
        assert run(["--cluster", str(services_only), command]) == 2
        assert capsys.readouterr().err == (
            "kubehop: error: the cluster has no nodes, so no node has rules or routes to show"
            " (dump them too: kubectl get nodes,pods,services,endpointslices -A -o yaml)\n"
        )


def test_a_mistyped_cni_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(["--cni", "flanel-vxlan", "routes"])
    assert exit_.value.code == 2
    assert "did you mean 'flannel-vxlan'?" in capsys.readouterr().err
