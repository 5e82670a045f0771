"""Clusters for the CNI tests (and the lab's): the demo under another CNI, and with Calico IPAM.

The loader reads no CNIConfig plugin but host-gw yet, so the demo is loaded as
it is and its CNIConfig swapped for a copy naming the plugin.
"""

from __future__ import annotations

import re

from model.cluster import Cluster, CNIPlugin
from sim.cluster.load import demo_cluster, with_derived_slices
from sim.readers.cluster import parse_cluster
from tests import paths

IPAM_MOVES = {
    # pod4: the first address of node-b's /26 block, where the bridge plugin
    # would have put cni0.
    "192.168.2.2": "192.168.2.1",
    # web-1 on node-c: an address borrowed from node-b's block.
    "192.168.3.3": "192.168.2.9",
    # myapp-2 on node-c: a block far from node-c's podCIDR.
    "192.168.3.2": "192.168.77.70",
}
"""Pod IPs of the demo → where Calico IPAM could have put them."""


def with_cni(plugin: CNIPlugin, cluster: Cluster | None = None) -> Cluster:
    """`cluster` (the demo by default) with `plugin` as its CNI."""
    base = demo_cluster() if cluster is None else cluster
    fields = {name: getattr(base, name) for name in Cluster.model_fields}
    fields["cni"] = base.cni.model_copy(update={"plugin": plugin})
    return Cluster(**fields)


def calico_ipam_demo(plugin: CNIPlugin) -> Cluster:
    """The demo with some pods where Calico IPAM, not the podCIDRs, put them (`IPAM_MOVES`)."""
    text = paths.DEMO.read_text()
    for old, new in IPAM_MOVES.items():
        text = re.sub(rf"(?<![\d.]){re.escape(old)}(?![\d.])", new, text)
    return with_cni(plugin, with_derived_slices(parse_cluster(text, "demo.yaml"), "demo.yaml"))
