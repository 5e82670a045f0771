"""The seam every kube-proxy mode plugs into: what it writes on a node, what the kernel walks.

A mode renders a node's state as a person would see it there (for iptables
mode, `iptables-save`) and hands the kernel the rules it evaluates
(`sim.kernel.rules.NodeRules`), and reads them back for the walker as it
meant them (`sim.kernel.interpreter.Interpreter`). iptables mode is `sim.proxy.iptables`; IPVS
and nftables are further implementations of `ProxyMode`, chosen by the
cluster's `KubeProxyConfiguration.mode` in `sim.proxy.mode_of`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Protocol

from model.cluster import Cluster, Node
from model.errors import RequestError
from model.netfilter import Rule
from sim.kernel.interpreter import Interpreter
from sim.kernel.rules import ForeignRules, NodeRules
from sim.readers.pages import Pages

__all__ = ["ProxyMode", "iptables_dnat_to", "nft_dnat_to", "node_named"]


def node_named(cluster: Cluster, node: str) -> Node:
    """The node `node` of `cluster`, for a mode to render; RequestError naming it if none."""
    found = cluster.node(node)
    if found is None:
        raise RequestError(f"node '{node}' is not in the cluster")
    return found


def iptables_dnat_to(endpoint: tuple[IPv4Address, int]) -> re.Pattern[str]:
    """An iptables-save line that DNATs to `endpoint` (its port may be left out)."""
    ip, port = re.escape(str(endpoint[0])), endpoint[1]
    return re.compile(rf"-j DNAT .*--to-destination {ip}(?::{port})?(?:\s|$)", re.MULTILINE)


def nft_dnat_to(endpoint: tuple[IPv4Address, int]) -> re.Pattern[str]:
    """An `nft list` line whose `dnat` statement sends to `endpoint`."""
    ip, port = re.escape(str(endpoint[0])), endpoint[1]
    return re.compile(rf"\bdnat (?:ip )?to {ip}(?::{port})?(?:\s|$)", re.MULTILINE)


class ProxyMode(Protocol):
    """One of kube-proxy's modes (`--proxy-mode`)."""

    @property
    def name(self) -> str:
        """The mode as KubeProxyConfiguration spells it: `iptables`, `ipvs`, `nftables`."""

    def render(self, cluster: Cluster, node: str, extra: ForeignRules | None = None) -> str:
        """What a person sees on `node` (for iptables mode: `iptables-save`), with the rules
        other agents write there (`extra`: the CNI's)."""

    def node_rules(
        self, cluster: Cluster, node: str, extra: ForeignRules | None = None
    ) -> NodeRules:
        """What the kernel of `node` evaluates, rendered and parsed, `extra` included."""

    def prepare(self, cluster: Cluster) -> None:
        """Index what every trace in this mode asks of `cluster` (which Service port owns an
        address and port), as the cluster loads, so the first trace costs what the next do."""

    def pages(self, cluster: Cluster, rules: NodeRules) -> tuple[tuple[str, Pages], ...] | None:
        """What a person sees of `rules` (a node's, as `node_rules` made them), command by
        command, as rows made when read; None where the mode gives the texts whole."""

    def pages_quick(self, cluster: Cluster) -> bool:
        """Whether `pages` of a node of `cluster` returns in milliseconds: what every node
        shares is counted already."""

    def interpreter(
        self,
        cluster: Cluster,
        *,
        pick: tuple[IPv4Address, int] | None = None,
        choose: Callable[[Rule], bool | None] | None = None,
    ) -> Interpreter:
        """A fresh reader of this mode's rules for one trace.

        `pick` pins the endpoint random rules lead to; `choose` overrides every
        random rule instead (True: it matches; None: draw).
        """
