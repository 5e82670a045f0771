"""The cluster pane: nodes → pods → containers, Services → ports and endpoints, clients.

Under each node, what its CNI gives it besides the podCIDR: its tunnel device
(Flannel's `flannel.1`, Calico's `tunl0` or `vxlan.calico`) and Calico's IPAM
blocks, as the screen's lookup (the core's) finds them.

Children are added when a branch is first expanded, so a cluster of 5,000
nodes and 150,000 pods opens as quickly as the demo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Interface, IPv4Network
from typing import ClassVar, Protocol

from rich.text import Text
from textual import on
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from model.cluster import Cluster, ExternalClient, Node, Pod, Service
from tui.hopstyle import literal

_AUTO_EXPAND = 12
"""Branches with at most this many children open by themselves."""

Item = Cluster | Node | Pod | Service | ExternalClient | str | None
"""What a tree node stands for: its data."""


class TunnelDevice(Protocol):
    """A node's tunnel device, as the core describes it."""

    @property
    def device(self) -> str:
        """Its name (`flannel.1`)."""

    @property
    def kind(self) -> str:
        """`vxlan` or `ipip`."""

    @property
    def address(self) -> IPv4Interface | None:
        """Its address."""

    @property
    def mtu(self) -> int:
        """Its MTU."""

    @property
    def vni(self) -> int | None:
        """For VXLAN, its network identifier."""

    @property
    def port(self) -> int | None:
        """For VXLAN, the outer packets' UDP port."""

    @property
    def mac(self) -> str | None:
        """For VXLAN, the VTEP MAC the other nodes' neighbour entries hold."""


class NodeTunnels(Protocol):
    """What a node's CNI puts between it and the other nodes."""

    @property
    def tunnels(self) -> Sequence[TunnelDevice]:
        """Its tunnel devices."""

    @property
    def blocks(self) -> Sequence[IPv4Network]:
        """Calico's IPAM blocks affine to it."""

    @property
    def assumed_block(self) -> IPv4Network | None:
        """A block the core assumed, no pod showing one."""


def _label(*parts: tuple[str, str]) -> Text:
    text = Text(no_wrap=True)
    for part, style in parts:
        text.append(literal(part), style)
    return text


class ClusterTree(Tree[Item]):
    """The cluster as a tree; the cursor's pod is what delete and scale act on."""

    COMPONENT_CLASSES: ClassVar[set[str]] = Tree.COMPONENT_CLASSES | {"-address", "-involved"}

    DEFAULT_CSS = """
    ClusterTree {
        background: $surface;
    }
    """

    def __init__(
        self,
        *,
        tunnels: Callable[[str], NodeTunnels] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        # A Text, not a str: a str label is parsed as markup, which loads Rich's emoji table.
        super().__init__(Text("cluster"), id=id, classes=classes)
        self._tunnels = tunnels
        self.show_root = False
        self.guide_depth = 2
        self._cluster: Cluster | None = None
        self._to_show: Cluster | None = None
        self._ready = False
        # Set on mount (`is_mounted` is set only after the mount handlers have run).

    def on_mount(self) -> None:
        self._ready = True
        if self._to_show is not None:
            self.show(self._to_show)

    @property
    def selected_pod(self) -> Pod | None:
        """The pod under the cursor (a container selects its pod)."""
        if not self._ready:
            return None
        node = self.cursor_node
        while node is not None:
            if isinstance(node.data, Pod):
                return node.data
            node = node.parent
        return None

    def show(self, cluster: Cluster) -> None:
        """Show `cluster`, keeping open the branches that were open and the cursor's pod."""
        if not self._ready:
            self._to_show = cluster  # shown when mounted (a narrow terminal's hidden tab)
            return
        self._to_show = None
        if cluster is self._cluster:
            return
        was_open = {self._key(n) for n in self._walk(self.root) if n.is_expanded}
        cursor_pod = self.selected_pod
        old = self._cluster
        position = 0
        if cursor_pod is not None and old is not None:
            keys = [p.key for p in old.pods_on(cursor_pod.node)]
            position = keys.index(cursor_pod.key) if cursor_pod.key in keys else 0
        self._cluster = cluster
        self.clear()
        nodes = self.root.add(_label((f"Nodes ({len(cluster.nodes)})", "bold")), data="nodes")
        services = self.root.add(
            _label((f"Services ({len(cluster.services)})", "bold")), data="services"
        )
        if cluster.clients:
            clients = self.root.add(
                _label((f"Clients ({len(cluster.clients)})", "bold")), data="clients"
            )
            for client in cluster.clients:
                clients.add_leaf(_label((client.name, ""), (f"  {client.ip}", "dim")), data=client)
            clients.expand()
        for branch, size in ((nodes, len(cluster.nodes)), (services, len(cluster.services))):
            # A closed branch is filled when opened: 15,000 rows at the scale limits.
            if size <= _AUTO_EXPAND or self._key(branch) in was_open:
                self._fill(branch)
                branch.expand()
        for node in self._walk(self.root):
            if self._key(node) in was_open or (
                isinstance(node.data, Node) and len(cluster.nodes) <= _AUTO_EXPAND
            ):
                self._fill(node)
                node.expand()
        if cursor_pod is not None:
            # The rebuilt rows get their line numbers when the tree is next
            # drawn; the cursor can move to one only after that.
            key = (cursor_pod.namespace, cursor_pod.name, cursor_pod.node, position)
            self.call_after_refresh(self._restore_cursor, *key)

    def _restore_cursor(self, namespace: str, name: str, node: str, position: int) -> None:
        """Back to the pod that had the cursor; if it is gone, to the pod now in its place."""
        if self.select_pod(namespace, name):
            return
        for branch in self._walk(self.root):
            if isinstance(branch.data, Node) and branch.data.name == node:
                pods = [c for c in branch.children if isinstance(c.data, Pod)]
                self.move_cursor(pods[min(position, len(pods) - 1)] if pods else branch)
                return

    def select_pod(self, namespace: str, name: str) -> bool:
        """Move the cursor to a pod, opening its node; False if it is not there."""
        cluster = self._cluster
        if cluster is None:
            return False
        pod = cluster.pod(namespace, name)
        if pod is None:
            return False
        for node in self._walk(self.root):
            if isinstance(node.data, Node) and node.data.name == pod.node:
                self._fill(node)
                node.expand()
                for child in node.children:
                    if isinstance(child.data, Pod) and child.data.key == pod.key:
                        self.move_cursor(child)
                        return True
        return False

    def _add_tunnels(self, branch: TreeNode[Item], node: Node) -> None:
        """`node`'s tunnel devices (`⊂ flannel.1  192.168.1.0/32`, then its VNI, port, MTU
        and VTEP MAC as `ip -d link` says them) and IPAM blocks, where its CNI has them."""
        if self._tunnels is None:
            return
        wiring = self._tunnels(node.name)
        # Short enough for the 32-column pane: a tunnel device's /32 is shown as its address.
        for tunnel in wiring.tunnels:
            address = tunnel.address
            shown = (
                ""
                if address is None
                else f" {address.ip if address.network.prefixlen == 32 else address}"
            )
            branch.add_leaf(_label((f"⊂ {tunnel.device}", ""), (shown, "")), data=node)
            if tunnel.vni is not None:
                # No commas: the line fits the pane at the wide layout's 32 columns.
                detail = f"VNI {tunnel.vni} UDP {tunnel.port} MTU {tunnel.mtu}"
            else:
                detail = f"{'IP-in-IP' if tunnel.kind == 'ipip' else tunnel.kind}, MTU {tunnel.mtu}"
            branch.add_leaf(_label(("↳ ", "dim"), (detail, "dim")), data=node)
            if tunnel.mac is not None:
                branch.add_leaf(_label(("↳ VTEP ", "dim"), (tunnel.mac, "dim")), data=node)
        for block in wiring.blocks:
            assumed = " (assumed)" if block == wiring.assumed_block else ""
            branch.add_leaf(
                _label(("IPAM block ", "dim"), (str(block), ""), (assumed, "dim")), data=node
            )

    def _walk(self, node: TreeNode[Item]) -> list[TreeNode[Item]]:
        found: list[TreeNode[Item]] = []
        stack = list(node.children)
        while stack:
            current = stack.pop()
            found.append(current)
            stack.extend(current.children)
        return found

    @staticmethod
    def _key(node: TreeNode[Item]) -> str:
        data = node.data
        if isinstance(data, Node):
            return f"node:{data.name}"
        if isinstance(data, Pod):
            return f"pod:{data.key}"
        if isinstance(data, Service):
            return f"svc:{data.key}"
        return f"{type(data).__name__}:{data}"

    @on(Tree.NodeExpanded)
    def _branch_opened(self, event: Tree.NodeExpanded[Item]) -> None:
        self._fill(event.node)

    def _fill(self, branch: TreeNode[Item]) -> None:
        """Add `branch`'s children the first time it is opened."""
        cluster = self._cluster
        if cluster is None or branch.children:
            return
        data = branch.data
        # Labels are a name and an address, so they fit the 32-column pane;
        # everything longer is a child line, seen when the branch is opened.
        if data == "nodes":
            for node in cluster.nodes:
                branch.add(_label((node.name, "bold"), (f"  {node.internal_ip}", "")), data=node)
        elif data == "services":
            for service in cluster.services:
                ip = "headless" if service.cluster_ip is None else str(service.cluster_ip)
                branch.add(_label((service.name, "bold"), (f"  {ip}", "")), data=service)
        elif isinstance(data, Node):
            if data.pod_cidr:
                branch.add_leaf(_label(("podCIDR ", "dim"), (str(data.pod_cidr), "")), data=data)
            self._add_tunnels(branch, data)
            for pod in cluster.pods_on(data.name):
                pod_node = branch.add(
                    _label((pod.name, ""), (f"  {pod.ip}", "")), data=pod, expand=False
                )
                if pod.owner:
                    pod_node.add_leaf(
                        _label((f"{pod.owner.kind} ", "dim"), (pod.owner.name, "")), data=pod
                    )
                for container in pod.containers:
                    ports = ", ".join(
                        f"{p.container_port}/{p.protocol.value}" for p in container.ports
                    )
                    pod_node.add_leaf(
                        _label((container.name, ""), (f"  {ports}" if ports else "", "dim")),
                        data=pod,
                    )
        elif isinstance(data, Service):
            if data.type.value != "ClusterIP":
                branch.add_leaf(_label(("type ", "dim"), (data.type.value, "")), data=data)
            for port in data.ports:
                branch.add_leaf(
                    _label((f"port {port.port}/{port.protocol.value} → {port.target_port}", "")),
                    data=data,
                )
                if port.node_port:  # its own line: it would not fit beside the port
                    branch.add_leaf(
                        _label(("  ↳ nodePort ", "dim"), (str(port.node_port), "")), data=data
                    )
            endpoints = [e for s in cluster.slices_of(data) for e in s.endpoints]
            if not endpoints:
                branch.add_leaf(_label(("no endpoints", "italic")), data=data)
            for endpoint in endpoints:
                who = f"  {endpoint.pod or ''} {endpoint.node or ''}".rstrip()
                state = "" if endpoint.ready else "  not ready"
                branch.add_leaf(_label((str(endpoint.ip), ""), (who + state, "dim")), data=data)
