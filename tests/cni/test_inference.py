"""Which CNI a dump runs, from what the CNI wrote on its nodes and the pods it runs.

A dump without kubehop's CNIConfig is read for Flannel's and Calico's node
annotations, else for their DaemonSets' pods; the choice is said in a warning,
and the annotations' values (a VTEP MAC, a tunnel address, a public IP) are used.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from model.cluster import CNIPlugin
from sim.cluster.load import load, with_derived_slices
from sim.cluster.network import network_of
from sim.readers.cluster import parse_cluster
from tests import paths

NODES = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: node-a
    annotations: {ANNOTATIONS_A}
  spec: {{podCIDR: 10.244.0.0/24}}
  status: {{addresses: [{{type: InternalIP, address: 10.0.0.11}}]}}
- apiVersion: v1
  kind: Node
  metadata:
    name: node-b
    annotations: {ANNOTATIONS_B}
  spec: {{podCIDR: 10.244.1.0/24}}
  status: {{addresses: [{{type: InternalIP, address: 10.0.0.12}}]}}
"""


def flannel(backend: str, mac: str, public: str) -> str:
    return (
        "{flannel.alpha.coreos.com/backend-type: " + backend + ","
        ' flannel.alpha.coreos.com/backend-data: \'{"VNI":1,"VtepMAC":"' + mac + "\"}',"
        " flannel.alpha.coreos.com/public-ip: " + public + "}"
    )


def cluster_with(a: str, b: str):  # type: ignore[no-untyped-def]
    text = NODES.format(ANNOTATIONS_A=a, ANNOTATIONS_B=b)
    return with_derived_slices(parse_cluster(text, "nodes.yaml"), "nodes.yaml")


def test_flannels_annotations_name_the_backend_and_the_vtep() -> None:
    cluster = cluster_with(
        flannel("vxlan", "aa:bb:cc:00:00:0a", "10.0.0.11"),
        flannel("vxlan", "AA:BB:CC:00:00:0B", "10.0.0.12"),
    )
    assert cluster.cni.plugin is CNIPlugin.FLANNEL_VXLAN
    assert (
        "nodes.yaml: no CNIConfig: kubehop takes the CNI for flannel-vxlan (node node-a's"
        " annotation flannel.alpha.coreos.com/backend-type=vxlan)"
    ) in cluster.warnings
    device = network_of(cluster).netns("node-a").iface("flannel.1")
    assert device.mac == "aa:bb:cc:00:00:0a"
    assert device.vxlan is not None
    assert device.vxlan.fdb == {"aa:bb:cc:00:00:0b": IPv4Address("10.0.0.12")}


def test_flannels_host_gw_backend_is_read_too() -> None:
    cluster = cluster_with(
        flannel("host-gw", "aa:bb:cc:00:00:0a", "10.0.0.11"),
        flannel("host-gw", "aa:bb:cc:00:00:0b", "10.0.0.12"),
    )
    assert cluster.cni.plugin is CNIPlugin.FLANNEL_HOST_GW


@pytest.mark.parametrize(
    ("key", "plugin"),
    [
        ("projectcalico.org/IPv4VXLANTunnelAddr: 10.244.0.64", CNIPlugin.CALICO_VXLAN),
        ("projectcalico.org/IPv4IPIPTunnelAddr: 10.244.0.64", CNIPlugin.CALICO_IPIP),
        ("projectcalico.org/IPv4Address: 10.0.0.11/24", CNIPlugin.CALICO_BGP),
    ],
)
def test_calicos_annotations_name_the_encapsulation(key: str, plugin: CNIPlugin) -> None:
    cluster = cluster_with("{" + key + "}", "{}")
    assert cluster.cni.plugin is plugin


def test_nothing_named_is_host_gw_said_so() -> None:
    cluster = cluster_with("{}", "{}")
    assert cluster.cni.plugin is CNIPlugin.HOST_GW
    assert (
        "nodes.yaml: no CNIConfig, and nothing in the dump names a CNI: kubehop takes host-gw"
        " routing between nodes (each node routes another node's podCIDR via its InternalIP)"
    ) in cluster.warnings


def test_a_calico_dump_uses_the_tunnel_addresses_calico_node_wrote() -> None:
    cluster = load(paths.REAL / "calico")
    assert cluster.cni.plugin is CNIPlugin.CALICO_VXLAN
    device = network_of(cluster).netns("node-3").iface("vxlan.calico")
    assert [str(a.ip) for a in device.addrs] == ["10.42.3.0"]


def test_a_flannel_daemonset_names_flannel() -> None:
    cluster = load(paths.REAL / "kubeadm-flannel.yaml")
    assert cluster.cni.plugin is CNIPlugin.FLANNEL_VXLAN
    assert any(
        "kubehop takes the CNI for flannel-vxlan (the DaemonSet kube-flannel-ds's pod" in w
        for w in cluster.warnings
    )
