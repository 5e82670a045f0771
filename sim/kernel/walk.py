"""The kernel's paths for one packet: local out, veth, bridge (with br_netfilter), IP receive.

`Walker` follows a packet hop by hop and records each hop. It asks the routing
table where a packet goes, ARP (the topology) whose MAC answers, the bridge's
FDB which port, and netfilter what each hook does with the node's rules; no hop
sequence is written by hand, so deleting a rule or a route changes the path.

- local out: route → OUTPUT → POSTROUTING → the device (lo, a veth, the bridge, eth0);
- a frame entering a bridge port: with br_netfilter, PREROUTING runs at the
  bridge (`-i cni0`); if it rewrote the destination and the new one is on the
  same bridge, the frame is *bridged* to it (br_netfilter's "bridged DNAT"),
  otherwise a frame for the bridge's MAC goes up to the IP stack;
- bridged frames pass FORWARD and POSTROUTING with `-i cni0 -o cni0`;
- IP receive: PREROUTING → local? INPUT → socket : FORWARD → POSTROUTING → out.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from model.cluster import Cluster
from model.netfilter import (
    DnatTarget,
    Hook,
    JumpTarget,
    Rule,
    RuleRef,
    StatisticMatch,
)
from model.packet import ConntrackEntry, Packet, Proto
from model.trace import Direction, Hop, HopKind, TableWalk, Verdict, Where
from sim.cluster.network import IfKind, Interface, Netns, NetnsKind, Network
from sim.cni.host_gw import wire_sentence
from sim.kernel.conntrack import ConntrackTable
from sim.kernel.ipset import set_match
from sim.kernel.netfilter import HookContext, NetfilterState, RecentTable, traverse
from sim.kernel.route import Route
from sim.kernel.rules import NodeRules
from sim.proxy import rules_for
from sim.proxy.iptables.explain import (
    article_notes,
    comment_of,
    explain_hook,
    masq_is_external,
    masq_reason,
)
from sim.proxy.services import services_with_ip

_MAX_HOPS = 400


@dataclass(frozen=True)
class End:
    """How one direction of the walk ended."""

    verdict: Verdict
    """How it ended."""
    reason: str
    """Why, in one sentence (empty when delivered)."""
    packet: Packet
    """The packet as it was when it ended."""
    netns: str
    """Where it ended."""


@dataclass
class Walker:
    """One trace being built, hop by hop.

    The only mutable object of the core, and short-lived: the tracer turns
    what it recorded into an immutable `Trace`.
    """

    cluster: Cluster
    """The cluster walked."""
    network: Network
    """Its namespaces."""
    rng: random.Random
    """The seeded generator behind every random choice."""
    state: dict[str, NetfilterState]
    """Conntrack and `recent` state per netns, shared with earlier flows."""
    overrides: Mapping[str, NodeRules] | None
    """A real node's rules to walk instead of the rendered ones."""
    pick: tuple[IPv4Address, int] | None
    """The endpoint `--pick` pinned."""
    t_us: int = 0
    """The virtual clock."""
    direction: Direction = Direction.REQUEST
    """Request or reply."""
    hops: list[Hop] = field(default_factory=list)
    """The hops so far."""
    masq_because: str | None = None
    """Why KUBE-MARK-MASQ marked this packet, for the MASQUERADE hop's sentence."""
    masq_external: bool = False
    """The mark came from a NodePort/external chain (where the article says otherwise)."""
    current_rules: NodeRules | None = None
    """The rules of the hook being walked, which `decide` consults for `--pick`."""
    endpoint: str | None = None
    """The endpoint a DNAT chose, `IP:PORT`."""
    reply_socket: tuple[str, Packet] | None = None
    """The client's netns and its first packet, which the reply must answer."""
    assumptions: list[str] = field(default_factory=list)
    """What netfilter had to assume (rules it cannot evaluate)."""
    choose: Callable[[Rule], bool | None] | None = None
    """Overrides every `-m statistic` draw (the fork view walks each branch with it)."""
    findings: list[str] = field(default_factory=list)
    """What a real node's rules do that the cluster dump does not explain (stale endpoints)."""
    verdict_rule: str | None = None
    """The rule that dropped or rejected the packet, as the hop's detail gives it."""

    # -- recording ------------------------------------------------------------

    def emit(
        self,
        kind: HopKind,
        ns: Netns,
        before: Packet,
        after: Packet,
        sentence: str,
        *,
        interface: str | None = None,
        hook: Hook | None = None,
        tables: tuple[TableWalk, ...] = (),
        conntrack: ConntrackEntry | None = None,
        detail: str = "",
        note: str | None = None,
        dt: int = 1,
    ) -> None:
        if len(self.hops) >= _MAX_HOPS:
            raise RuntimeError("trace exceeded the hop limit: a forwarding loop in the topology")
        self.t_us += dt
        self.hops.append(
            Hop(
                seq=len(self.hops),
                t_us=self.t_us,
                direction=self.direction,
                kind=kind,
                where=Where(node=ns.node, netns=ns.name, interface=interface, hook=hook),
                before=before,
                after=after,
                tables=tables,
                conntrack=conntrack,
                detail=detail,
                sentence=sentence,
                note=note,
            )
        )

    # -- routing and neighbours ---------------------------------------------------

    def route(self, ns: Netns, dst: IPv4Address) -> Route | None:
        """`ip route get`: the local table first, then the main table."""
        if ns.is_local(dst):
            return Route(_host_net(dst), "lo", src=dst, proto="kernel", scope="host")
        return ns.routes.lookup(dst)

    def peer_of(self, ns: Netns, veth: Interface) -> tuple[Netns, Interface]:
        assert veth.peer is not None
        peer_ns = self.network.netns(veth.peer[0])
        return peer_ns, peer_ns.iface(veth.peer[1])

    def neighbour(
        self, ns: Netns, iface: Interface, addr: IPv4Address
    ) -> tuple[Netns, Interface] | None:
        """Who answers ARP for `addr` on `iface`'s segment."""
        if iface.kind is IfKind.ETHERNET:
            owner = self.network.segment_owner(addr)
        elif iface.kind is IfKind.BRIDGE or iface.master is not None:
            owner = self.network.bridge_member(ns.node or "", addr) if ns.node else None
        elif iface.peer is not None:
            peer_ns = self.network.netns(iface.peer[0])
            peer = peer_ns.iface(iface.peer[1])
            if peer.master is None:
                owner = (peer_ns.name, peer.name) if any(a.ip == addr for a in peer.addrs) else None
            else:
                owner = self.network.bridge_member(peer_ns.node or "", addr)
        else:
            owner = None
        if owner is None:
            return None
        owner_ns = self.network.netns(owner[0])
        return owner_ns, owner_ns.iface(owner[1])

    def fdb(self, ns: Netns, bridge: Interface, mac: str | None) -> Interface | None:
        """The bridge port behind which `mac` was learned."""
        port = self.network.bridge_port_for_mac(ns.node or "", mac)
        return ns.iface(port) if port is not None and ns.has_iface(port) else None

    # -- netfilter ------------------------------------------------------------------

    def ruleset_of(self, ns: Netns) -> NodeRules:
        """The rules of the node `ns` belongs to."""
        assert ns.node is not None
        return rules_for(self.cluster, ns.node, self.overrides)

    def hook(
        self,
        ns: Netns,
        hook: Hook,
        pkt: Packet,
        *,
        in_iface: Interface | None,
        out_iface: Interface | None,
        physdev_in: str | None = None,
        physdev_out: str | None = None,
    ) -> Packet | End:
        rules = self.ruleset_of(ns)
        self.current_rules = rules
        ctx = HookContext(
            hook=hook,
            in_iface=in_iface.name if in_iface else None,
            out_iface=out_iface.name if out_iface else None,
            local_addrs=ns.local_addrs,
            out_iface_addr=_masquerade_address(ns, out_iface),
            physdev_in=physdev_in,
            physdev_out=physdev_out,
            now_s=self.t_us / 1_000_000,
            bridged=physdev_in is not None or physdev_out is not None,
            decide=self.decide,
        )
        if rules.ipsets:
            ctx = replace(ctx, foreign=functools.partial(set_match, rules.ipsets))
        state = self.state.get(ns.name) or NetfilterState(ConntrackTable.of(), RecentTable())
        result = traverse(ctx, pkt, rules.ruleset, state, self.rng)
        self.state[ns.name] = result.state
        self.assumptions.extend(result.assumptions)
        matched = _matched_rules(rules, result.tables)
        why = masq_reason(matched)
        if why is not None:
            self.masq_because = why
            self.masq_external = masq_is_external(matched)
        notes = article_notes(
            pkt, result.packet, matched, rules.ruleset, external_masq=self.masq_external
        )
        if pkt.dst != result.packet.dst and self.direction is Direction.REQUEST:
            self.endpoint = f"{result.packet.dst}:{result.packet.dport}"
            if not rules.rendered:
                stale = self.stale_endpoint(ns.node or "", rules, result.packet, matched)
                if stale is not None:
                    self.findings.append(stale)
                    notes.append(stale)
        sentence, detail = explain_hook(
            hook,
            pkt,
            result.packet,
            result.verdict,
            result.tables,
            matched,
            out_iface=out_iface.name if out_iface else None,
            masq_because=self.masq_because,
            picked=self.pick is not None,
            ruleset=rules.ruleset,
            node=ns.node,
            rules_source=None if rules.rendered else rules.ruleset.source,
        )
        if result.assumptions:
            notes.append(
                "kubehop had to assume here: " + "; ".join(dict.fromkeys(result.assumptions))
            )
        bridge = _bridge_note(hook, physdev_in, physdev_out)
        if bridge is not None:
            notes.append(bridge)
        shown = in_iface or out_iface
        iface = shown.name if shown is not None else None
        self.emit(
            HopKind.NETFILTER if result.verdict == "ACCEPT" else HopKind.DROP,
            ns,
            pkt,
            result.packet,
            sentence,
            interface=iface,
            hook=hook,
            tables=result.tables,
            conntrack=result.entry,
            detail=detail,
            note="; ".join(notes) or None,
            dt=2,
        )
        if result.verdict == "ACCEPT":
            return result.packet
        self.verdict_rule = detail or None
        verdict = Verdict.REJECTED if result.verdict == "REJECT" else Verdict.DROPPED
        return End(verdict, sentence, result.packet, ns.name)

    def stale_endpoint(
        self, node: str, rules: NodeRules, after: Packet, matched: tuple[Rule, ...]
    ) -> str | None:
        """A sentence when a real node's rules DNAT to an address no EndpointSlice lists."""
        known = _endpoints_of(self.cluster)
        if (after.dst, after.dport) in known:
            return None
        dnat = next((r for r in matched if isinstance(r.target, DnatTarget)), None)
        if dnat is None or not dnat.chain.startswith("KUBE-"):
            return None
        service = comment_of(dnat)
        of = f" of {service}" if service else ""
        return (
            f"{node}'s rules ({rules.ruleset.source}:{dnat.lineno}) DNAT to {after.dst}:"
            f"{after.dport}{of}, but no EndpointSlice in the cluster dump lists that endpoint:"
            " a stale rule kube-proxy has not removed (or a dump older than the rules)"
        )

    def decide(self, rule: Rule) -> bool | None:
        """For `--pick`: whether a statistic rule leads to the pinned endpoint (None: draw)."""
        if self.choose is not None and any(isinstance(m, StatisticMatch) for m in rule.matches):
            return self.choose(rule)
        if self.pick is None or not any(isinstance(m, StatisticMatch) for m in rule.matches):
            return None
        target = rule.target
        if not isinstance(target, JumpTarget):
            return None
        ruleset = self.current_rules
        if ruleset is None:
            return None
        return _chain_dnats_to(ruleset, rule, target.chain, self.pick)

    def route_hop(
        self,
        ns: Netns,
        before: Packet,
        after: Packet,
        route: Route,
        sentence: str,
        *,
        asked: str | None = None,
    ) -> None:
        """Record a routing decision, with the `ip route get` line that shows it."""
        self.emit(
            HopKind.ROUTE,
            ns,
            before,
            after,
            sentence,
            interface=route.dev,
            detail=f"ip route get {asked or before.dst}: {route}",
        )

    def forward(
        self,
        ns: Netns,
        pkt: Packet,
        in_iface: Interface,
        out_iface: Interface,
        *,
        physdev_in: str | None = None,
        physdev_out: str | None = None,
    ) -> Packet | End:
        """FORWARD then POSTROUTING, for a routed packet or (br_netfilter) a bridged frame."""
        for hook in (Hook.FORWARD, Hook.POSTROUTING):
            after = self.hook(
                ns,
                hook,
                pkt,
                in_iface=in_iface if hook is Hook.FORWARD else None,
                out_iface=out_iface,
                physdev_in=physdev_in,
                physdev_out=physdev_out,
            )
            if isinstance(after, End):
                return after
            pkt = after
        return pkt

    # -- the paths ------------------------------------------------------------------

    def local_out(self, ns: Netns, pkt: Packet) -> End:
        route = self.route(ns, pkt.dst)
        if route is None:
            return self.unreachable(ns, pkt, f"no route to {pkt.dst} in {ns.label}")
        self.route_hop(ns, pkt, pkt, route, _route_sentence(ns, pkt.dst, route, local_out=True))
        out = ns.iface(route.dev)
        if ns.netfilter:
            after = self.hook(ns, Hook.OUTPUT, pkt, in_iface=None, out_iface=out)
            if isinstance(after, End):
                return after
            if after.dst != pkt.dst:
                rerouted = self.route(ns, after.dst)
                if rerouted is None:
                    return self.unreachable(ns, after, f"no route to {after.dst} in {ns.label}")
                route, out = rerouted, ns.iface(rerouted.dev)
                self.route_hop(
                    ns,
                    after,
                    after,
                    route,
                    f"OUTPUT rewrote the destination, so the kernel routes again: {after.dst} "
                    f"leaves by {route.dev}",
                )
            pkt = after
            after = self.hook(ns, Hook.POSTROUTING, pkt, in_iface=None, out_iface=out)
            if isinstance(after, End):
                return after
            pkt = after
        if out.kind is IfKind.LOOPBACK:
            self.emit(
                HopKind.LOOPBACK,
                ns,
                pkt,
                pkt,
                f"the packet loops back through lo inside {ns.label}: every container of a pod "
                "shares its netns, so localhost reaches the other container",
                interface="lo",
            )
            return self.ip_receive(ns, out, pkt, prerouted=False)
        return self.transmit(ns, out, pkt, route.via or pkt.dst, default=route.dst.prefixlen == 0)

    def _whose(self, pkt: Packet) -> str:
        """Why nothing in the cluster takes `pkt`'s destination address."""
        for service in services_with_ip(self.cluster, pkt.dst):
            what = "ClusterIP" if service.cluster_ip == pkt.dst else "external address"
            if any(p.port == pkt.dport and p.protocol is pkt.proto for p in service.ports):
                return (
                    f"{pkt.dst}:{pkt.dport} is the {what} of {service.key}, but no rule of this"
                    " node's DNATs it (the node's rules lack the Service's), and no interface"
                    " holds a Service address"
                )
            ports = ", ".join(f"{p.port}/{p.protocol.value}" for p in service.ports)
            return (
                f"{pkt.dst} is the {what} of {service.key}, which has no port"
                f" {pkt.dport}/{pkt.proto.value} (its ports: {ports or 'none'}), so no kube-proxy"
                " rule DNATs the packet, and no interface holds a Service address"
            )
        return "no pod, node or Service kubehop knows has that address"

    def transmit(
        self, ns: Netns, out: Interface, pkt: Packet, nexthop: IPv4Address, *, default: bool = False
    ) -> End:
        neighbour = self.neighbour(ns, out, nexthop)
        if neighbour is None and default and ns.kind is NetnsKind.NODE:
            return self.unreachable(
                ns,
                pkt,
                f"no route to {pkt.dst} on {ns.label}: {self._whose(pkt)}, so only the default"
                f" route (via {nexthop}, a gateway outside the simulated network) would take it",
            )
        if neighbour is None:
            return self.unreachable(
                ns,
                pkt,
                f"ARP for {nexthop} on {ns.label} {out.name} gets no answer: "
                f"no host on that link has the address",
            )
        peer_ns, peer = neighbour
        framed = pkt.model_copy(update={"src_mac": out.mac, "dst_mac": peer.mac})
        if out.kind is IfKind.BRIDGE:
            port = self.fdb(ns, out, peer.mac)
            assert port is not None
            self.emit(
                HopKind.BRIDGE,
                ns,
                pkt,
                framed,
                f"{out.name} sends the frame to {peer.mac} ({_ns_label(peer_ns)}) by port "
                f"{port.name}: the FDB learned that MAC behind that port",
                interface=out.name,
                detail=f"neighbour {nexthop} lladdr {peer.mac}; fdb {peer.mac} dev {port.name} master {out.name}",
            )
            return self.cross_veth(ns, port, framed)
        if out.kind is IfKind.VETH:
            return self.cross_veth(ns, out, framed, nexthop=nexthop, neighbour=peer)
        self.emit(
            HopKind.WIRE,
            ns,
            pkt,
            framed,
            f"{ns.label} {out.name} sends the frame to {nexthop} ({_ns_label(peer_ns)}) on the "
            "node network" + (f"; {wire_sentence(self.cluster)}" if self._pod_traffic(pkt) else ""),
            interface=out.name,
            detail=f"neighbour {nexthop} lladdr {peer.mac}",
            dt=40,
        )
        return self.receive(peer_ns, peer, framed)

    def _pod_traffic(self, pkt: Packet) -> bool:
        cidr = self.cluster.kube_proxy.cluster_cidr
        if cidr is not None:
            return pkt.src in cidr or pkt.dst in cidr
        cidrs = [n.pod_cidr for n in self.cluster.nodes if n.pod_cidr is not None]
        return any(pkt.src in c or pkt.dst in c for c in cidrs)

    def cross_veth(
        self,
        ns: Netns,
        veth: Interface,
        pkt: Packet,
        *,
        nexthop: IPv4Address | None = None,
        neighbour: Interface | None = None,
    ) -> End:
        peer_ns, peer = self.peer_of(ns, veth)
        detail = f"{veth.name}@{peer.name} → {peer.name}@{veth.name} in {peer_ns.name}"
        if nexthop is not None and neighbour is not None:
            detail = f"neighbour {nexthop} lladdr {neighbour.mac}; " + detail
        self.emit(
            HopKind.VETH,
            ns,
            pkt,
            pkt,
            f"the frame leaves {ns.label} by {veth.name} and comes out of the other end of the "
            f"veth pair, {peer.name} in {_ns_label(peer_ns)}",
            interface=veth.name,
            detail=detail,
        )
        return self.receive(peer_ns, peer, pkt)

    def receive(self, ns: Netns, iface: Interface, pkt: Packet) -> End:
        if iface.master is not None:
            return self.bridge_in(ns, iface, pkt)
        if pkt.dst_mac != iface.mac:
            return End(
                Verdict.DROPPED,
                f"{ns.label} {iface.name} drops a frame for {pkt.dst_mac}: not its MAC",
                pkt,
                ns.name,
            )
        self.emit(
            HopKind.RECEIVE,
            ns,
            pkt,
            pkt,
            f"{iface.name} of {ns.label} takes the frame: the destination MAC is its own",
            interface=iface.name,
        )
        return self.ip_receive(ns, iface, pkt, prerouted=False)

    def bridge_in(self, ns: Netns, port: Interface, pkt: Packet) -> End:
        assert port.master is not None
        bridge = ns.iface(port.master)
        if ns.bridge_nf_call_iptables:
            after = self.hook(
                ns, Hook.PREROUTING, pkt, in_iface=bridge, out_iface=None, physdev_in=port.name
            )
            if isinstance(after, End):
                return after
            if after.dst != pkt.dst:
                if ns.is_local(after.dst):
                    after = after.model_copy(update={"dst_mac": bridge.mac})
                else:
                    route = self.route(ns, after.dst)
                    if route is not None and route.dev == bridge.name:
                        neighbour = self.neighbour(ns, bridge, after.dst)
                        if neighbour is None:
                            return self.unreachable(
                                ns, after, f"ARP for {after.dst} on {bridge.name} gets no answer"
                            )
                        bridged = after.model_copy(update={"dst_mac": neighbour[1].mac})
                        self.emit(
                            HopKind.BRIDGE,
                            ns,
                            after,
                            bridged,
                            f"the new destination {after.dst} is on this bridge, so br_netfilter "
                            f"bridges the frame instead of routing it: only the destination MAC "
                            f"changes (to {_ns_label(neighbour[0])}'s), the TTL stays",
                            interface=bridge.name,
                            detail=f"ip route get {after.dst}: {route}; neighbour {after.dst} "
                            f"lladdr {neighbour[1].mac} (br_nf_pre_routing_finish: bridged DNAT)",
                        )
                        after = bridged
                    else:
                        after = after.model_copy(update={"dst_mac": bridge.mac})
            pkt = after
        if pkt.dst_mac == bridge.mac:
            self.emit(
                HopKind.BRIDGE,
                ns,
                pkt,
                pkt,
                f"the frame entering {bridge.name} by {port.name} is addressed to {bridge.name} "
                f"itself (the pods' gateway), so the bridge hands it up to {ns.label}'s IP stack",
                interface=bridge.name,
                detail=f"dst {pkt.dst_mac} is {bridge.name}'s own address; fdb learns "
                f"{pkt.src_mac} on {port.name}",
            )
            return self.ip_receive(ns, bridge, pkt, prerouted=ns.bridge_nf_call_iptables)
        out_port = self.fdb(ns, bridge, pkt.dst_mac)
        if out_port is None:
            return End(
                Verdict.DROPPED,
                f"{bridge.name} on {ns.label} knows no port for {pkt.dst_mac}",
                pkt,
                ns.name,
            )
        if out_port == port and not port.hairpin:
            return End(
                Verdict.DROPPED,
                f"{bridge.name} on {ns.label} would send the frame back out {port.name}, where it "
                "came from, and hairpin mode is off on that port",
                pkt,
                ns.name,
            )
        hairpin = out_port == port
        self.emit(
            HopKind.BRIDGE,
            ns,
            pkt,
            pkt,
            (
                f"{bridge.name} sends the frame back out {port.name}, the port it came in by: "
                "hairpin mode (set by the CNI bridge plugin) allows it"
                if hairpin
                else f"{bridge.name} forwards the frame from {port.name} to {out_port.name}: "
                f"its FDB has {pkt.dst_mac} behind that port (L2, no routing, TTL unchanged)"
            ),
            interface=bridge.name,
            detail=f"fdb {pkt.dst_mac} dev {out_port.name} master {bridge.name}"
            + (" (hairpin on)" if hairpin else ""),
        )
        if ns.bridge_nf_call_iptables:
            after = self.forward(
                ns, pkt, bridge, bridge, physdev_in=port.name, physdev_out=out_port.name
            )
            if isinstance(after, End):
                return after
            pkt = after
        return self.cross_veth(ns, out_port, pkt)

    def ip_receive(self, ns: Netns, iface: Interface, pkt: Packet, *, prerouted: bool) -> End:
        if ns.netfilter and not prerouted:
            after = self.hook(ns, Hook.PREROUTING, pkt, in_iface=iface, out_iface=None)
            if isinstance(after, End):
                return after
            pkt = after
        if ns.is_local(pkt.dst):
            if ns.netfilter:
                after = self.hook(ns, Hook.INPUT, pkt, in_iface=iface, out_iface=None)
                if isinstance(after, End):
                    return after
                pkt = after
            return self.deliver(ns, pkt)
        if not ns.forwarding:
            return End(
                Verdict.DROPPED,
                f"{ns.label} does not forward packets (ip_forward=0) and {pkt.dst} is not its own",
                pkt,
                ns.name,
            )
        route = self.route(ns, pkt.dst)
        if route is None:
            return self.unreachable(ns, pkt, f"no route to {pkt.dst} on {ns.label}")
        if pkt.ttl <= 1:
            return End(
                Verdict.DROPPED, f"TTL exceeded on {ns.label} (a routing loop?)", pkt, ns.name
            )
        routed = pkt.model_copy(update={"ttl": pkt.ttl - 1})
        self.route_hop(
            ns,
            pkt,
            routed,
            route,
            _route_sentence(ns, pkt.dst, route, local_out=False),
            asked=f"{pkt.dst} from {pkt.src} iif {iface.name}",
        )
        out = ns.iface(route.dev)
        pkt = routed
        if ns.netfilter:
            after = self.forward(ns, pkt, iface, out)
            if isinstance(after, End):
                return after
            pkt = after
        return self.transmit(ns, out, pkt, route.via or pkt.dst, default=route.dst.prefixlen == 0)

    def deliver(self, ns: Netns, pkt: Packet) -> End:
        if self.direction is Direction.REPLY:
            assert self.reply_socket is not None
            client_ns, request = self.reply_socket
            expected = (request.dst, request.dport)
            if ns.name != client_ns or pkt.dport != request.sport or pkt.dst != request.src:
                return End(
                    Verdict.DROPPED,
                    f"the reply reaches {ns.label}, but no socket there is waiting for "
                    f"{pkt.dst}:{pkt.dport}",
                    pkt,
                    ns.name,
                )
            if (pkt.src, pkt.sport) != expected:
                reason = (
                    f"the reply arrives from {pkt.src}:{pkt.sport}, but the socket is connected "
                    f"to {expected[0]}:{expected[1]}, so the client's TCP stack answers with RST "
                    "and the connection fails: the reply was not reverse-NATed (it did not pass "
                    "back through the node that rewrote the request)"
                )
                self.emit(HopKind.DROP, ns, pkt, pkt, reason, dt=2)
                return End(Verdict.DROPPED, reason, pkt, ns.name)
            self.emit(
                HopKind.DELIVER,
                ns,
                pkt,
                pkt,
                f"the reply reaches the client socket in {ns.label}: it comes from "
                f"{pkt.src}:{pkt.sport}, exactly the address the request was sent to, so the "
                "connection is established",
                dt=2,
            )
            return End(Verdict.DELIVERED, "", pkt, ns.name)
        listener = ns.listener(pkt.proto, pkt.dport)
        if listener is None:
            declared = sorted({f"{s.proto.value}/{s.port}" for s in ns.listeners})
            if ns.kind is NetnsKind.NODE:
                what = (
                    f" (they declare {', '.join(declared)}" if declared else " (none declares any"
                )
                who = f"no hostNetwork pod on {ns.label} declares port"
            else:
                what = f" (it declares {', '.join(declared)}" if declared else " (it declares none"
                who = f"pod {ns.label} declares no port"
            reason = (
                f"{who} {pkt.proto.value}/{pkt.dport}{what}; kubehop "
                "takes declared container ports as the listening ones): "
                + (
                    "the kernel answers with a TCP RST"
                    if pkt.proto is Proto.TCP
                    else "the kernel answers with ICMP port unreachable"
                )
            )
            self.emit(HopKind.DROP, ns, pkt, pkt, reason, dt=2)
            return End(Verdict.REFUSED, reason, pkt, ns.name)
        self.emit(
            HopKind.DELIVER,
            ns,
            pkt,
            pkt,
            f"{listener.owner} in {ns.label} accepts the connection on port {pkt.dport}; it sees "
            f"the request coming from {pkt.src}:{pkt.sport}",
            detail=f"{pkt.proto.value} LISTEN 0.0.0.0:{pkt.dport} ({listener.owner})",
            note="kubehop takes a container's declared ports as the ports it listens on",
            dt=2,
        )
        return End(Verdict.DELIVERED, "", pkt, ns.name)

    def unreachable(self, ns: Netns, pkt: Packet, reason: str) -> End:
        self.emit(HopKind.DROP, ns, pkt, pkt, reason)
        return End(Verdict.UNREACHABLE, reason, pkt, ns.name)


_ENDPOINTS: dict[int, tuple[Cluster, frozenset[tuple[IPv4Address, int]]]] = {}


def _endpoints_of(cluster: Cluster) -> frozenset[tuple[IPv4Address, int]]:
    """Every (address, port) some EndpointSlice lists, once per cluster object."""
    hit = _ENDPOINTS.get(id(cluster))
    if hit is not None and hit[0] is cluster:
        return hit[1]
    found = frozenset(
        (endpoint.ip, port.port)
        for slice_ in cluster.endpoint_slices
        for endpoint in slice_.endpoints
        for port in slice_.ports
    )
    if len(_ENDPOINTS) > 8:
        _ENDPOINTS.clear()
    _ENDPOINTS[id(cluster)] = (cluster, found)
    return found


def _host_net(addr: IPv4Address) -> IPv4Network:
    return IPv4Network(f"{addr}/32")


def _ns_label(ns: Netns) -> str:
    return ns.label


def _route_sentence(ns: Netns, dst: IPv4Address, route: Route, *, local_out: bool) -> str:
    if route.dev == "lo":
        return f"{dst} is an address of {ns.label} itself, so the local table sends it to lo"
    verb = "routes" if local_out else "forwards"
    if route.via is not None:
        how = (
            "by its default route" if route.dst.prefixlen == 0 else f"by the route for {route.dst}"
        )
        if route.proto == "host-gw":
            how = f"by the CNI's host-gw route for {route.dst}"
        return f"{ns.label} {verb} {dst} {how}: next hop {route.via} via {route.dev}"
    return f"{ns.label} {verb} {dst} straight out of {route.dev}: {route.dst} is directly connected"


def _bridge_note(hook: Hook, physdev_in: str | None, physdev_out: str | None) -> str | None:
    if physdev_in is None and physdev_out is None:
        return None
    return (
        "br_netfilter: bridged IPv4 frames pass iptables too "
        "(net.bridge.bridge-nf-call-iptables=1), with -i/-o the bridge and the ports as physdev"
    )


def _matched_rules(rules: NodeRules, tables: tuple[TableWalk, ...]) -> tuple[Rule, ...]:
    found: list[Rule] = []
    for walk in tables:
        for ref in walk.matched:
            rule = _rule_at(rules, ref)
            if rule is not None:
                found.append(rule)
    return tuple(found)


def _rule_at(rules: NodeRules, ref: RuleRef) -> Rule | None:
    chain = rules.ruleset.chain(ref.table, ref.chain)
    if chain is None or not 1 <= ref.index <= len(chain.rules):
        return None
    return chain.rules[ref.index - 1]


def _chain_dnats_to(
    rules: NodeRules, rule: Rule, chain_name: str, pick: tuple[IPv4Address, int]
) -> bool:
    chain = rules.ruleset.chain(rule.table, chain_name)
    if chain is None:
        return False
    for r in chain.rules:
        t = r.target
        if isinstance(t, DnatTarget) and t.addr == pick[0]:
            port = t.ports.lo if t.ports is not None else None
            if port is None or port == pick[1]:
                return True
    return False


# -- entry points --------------------------------------------------------------------


def _masquerade_address(ns: Netns, out: Interface | None) -> IPv4Address | None:
    """The address MASQUERADE takes: inet_select_addr() on the out device, scope universe.

    lo has only the host-scope 127.0.0.1, which the kernel skips, taking the
    first global address of the namespace's other devices instead.
    """
    if out is None:
        return None
    if out.kind is not IfKind.LOOPBACK:
        return out.primary
    return next(
        (a.ip for i in ns.interfaces if i.kind is not IfKind.LOOPBACK for a in i.addrs), None
    )
