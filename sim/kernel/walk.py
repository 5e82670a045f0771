"""The kernel's paths for one packet: local out, veth, IP receive, forward, transmit.

`Walker` follows a packet hop by hop and records each hop. It asks the routing
table where a packet goes, ARP (the `Network`) whose MAC answers, the bridge's
FDB which port, and netfilter what each hook does with the node's rules; no hop
sequence is written by hand, so deleting a rule or a route changes the path.

- local out: route → OUTPUT → POSTROUTING → the device (lo, a veth, the bridge, eth0,
  a tunnel: `sim.kernel.tunnel`);
- a frame entering a bridge port: `sim.kernel.bridge`;
- IP receive: PREROUTING → local? INPUT → socket (`sim.kernel.sockets`) :
  FORWARD → POSTROUTING → out;
- sizes (`sim.kernel.mtu`): a forwarded packet too big for its out device with DF
  set ends in ICMP fragmentation needed; anything else too big leaves in
  fragments, and arrives reassembled.

ARP is answered by the address's owner, or by a device with proxy_arp on
(`Interface.proxy_arp`) for an address its netns routes out of another device;
a blackhole route (`Blackhole`) discards what it covers. A packet that crosses
into another netns (a veth, the wire) arrives without its skb mark, as the
kernel scrubs it there.

The walker knows Linux only. Whose rules it walks and what they mean come from
outside: `rules_of` hands it a node's `NodeRules`, the `Interpreter` puts a
hook's outcome in words; the `Network` says which namespaces and links exist.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from model.netfilter import Hook, Rule, UnknownMatch
from model.packet import ConntrackEntry, Packet
from model.trace import Direction, Hop, HopKind, TableWalk, Verdict, Where
from sim.kernel.bridge import bridge_in
from sim.kernel.conntrack import ConntrackTable
from sim.kernel.devices import Blackhole, IfKind, Interface, Netns, NetnsKind, Network
from sim.kernel.interpreter import Interpreter
from sim.kernel.ipset import set_match
from sim.kernel.mtu import cut, device_mtu, exceeds_mtu, reassembled, size_text
from sim.kernel.netfilter import HookContext, NetfilterState, RecentTable, traverse
from sim.kernel.outcome import End
from sim.kernel.route import Route
from sim.kernel.rules import NodeRules, nft_of
from sim.kernel.sockets import deliver
from sim.kernel.tunnel import encapsulate, ipip_encapsulate

if TYPE_CHECKING:
    from sim.kernel.ipvs import IpvsVerdict

__all__ = ["End", "Walker"]

_MAX_HOPS = 400


@dataclass
class Walker:
    """One trace being built, hop by hop.

    The only mutable object of the core, and short-lived: the tracer turns
    what it recorded into an immutable `Trace`.
    """

    network: Network
    """The namespaces walked."""
    rules_of: Callable[[str], NodeRules]
    """A node's netfilter rules, by node name."""
    interpreter: Interpreter
    """Says what a hook's rules meant, and steers random rules to a pinned endpoint."""
    rng: random.Random
    """The seeded generator behind every random choice."""
    state: dict[str, NetfilterState]
    """Conntrack and `recent` state per netns, shared with earlier requests."""
    t_us: int = 0
    """The virtual clock."""
    direction: Direction = Direction.REQUEST
    """Request or reply."""
    hops: list[Hop] = field(default_factory=list)
    """The hops so far."""
    current_rules: NodeRules | None = None
    """The rules of the hook being walked, which `decide` consults for `--pick`."""
    endpoint: str | None = None
    """The endpoint a DNAT chose, `IP:PORT`."""
    reply_socket: tuple[str, Packet] | None = None
    """The client's netns and its first packet, which the reply must answer."""
    assumptions: list[str] = field(default_factory=list)
    """What netfilter had to assume (rules it cannot evaluate)."""
    findings: list[str] = field(default_factory=list)
    """What a real node's rules do that the cluster dump does not explain (stale endpoints)."""
    verdict_rule: str | None = None
    """The rule that dropped or rejected the packet, as the hop's detail gives it."""
    ipvs_sent: IpvsVerdict | None = None
    """What IPVS did to the packet it is sending on itself (for `-m ipvs` on its way out)."""
    rejected_at: tuple[Hook, str] | None = None
    """The hook that rejected the packet and what it answers with (`icmp-port-unreachable`)."""
    refusal: str | None = None
    """The error the reply carries back to the client (`ECONNREFUSED`), while it travels."""
    too_big: tuple[int, str] | None = None
    """The MTU and device a forwarded packet with DF did not fit: the node answers with
    ICMP fragmentation needed carrying that MTU."""
    pmtu_outcome: str | None = None
    """What the sender made of the fragmentation needed, for the verdict."""

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

    def route(self, ns: Netns, dst: IPv4Address, src: IPv4Address | None = None) -> Route | None:
        """`ip route get DST [from SRC]`: the local table first, then the main table.

        None when no route takes the packet: none matches, or a blackhole does
        (`blackhole` names it).
        """
        if ns.is_local(dst):
            return Route(_host_net(dst), "lo", src=dst, proto="kernel", scope="host")
        found = ns.routes.lookup(dst)
        if found is None or isinstance(found, Blackhole):
            return None
        return found.resolved(src, dst)

    def blackhole(self, ns: Netns, dst: IPv4Address) -> Blackhole | None:
        """The blackhole route that swallows `dst` in `ns`, if that is what matches."""
        if ns.is_local(dst):
            return None
        found = ns.routes.lookup(dst)
        return found if isinstance(found, Blackhole) else None

    def no_route(self, ns: Netns, pkt: Packet, *, forwarded: bool) -> End:
        """No route takes `pkt` in `ns`: none matches (unreachable), or a blackhole does."""
        hole = self.blackhole(ns, pkt.dst)
        if hole is None:
            where = "on" if forwarded else "in"
            return self.unreachable(ns, pkt, f"no route to {pkt.dst} {where} {ns.label}")
        if not forwarded:
            return self.unreachable(
                ns,
                pkt,
                f"{pkt.dst} matches `{hole}` in {ns.label}: the kernel refuses to send there"
                " (connect() fails with EINVAL)",
            )
        reason = (
            f"{ns.label} drops the packet for {pkt.dst}: it matches `{hole}`, which discards"
            " what it covers without an ICMP error"
        )
        self.emit(HopKind.DROP, ns, pkt, pkt, reason, detail=f"ip route get {pkt.dst}: {hole}")
        return End(Verdict.DROPPED, reason, pkt, ns.name)

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
            if peer.master is not None:
                owner = self.network.bridge_member(peer_ns.node or "", addr)
            elif any(a.ip == addr for a in peer.addrs) or self.proxies(peer_ns, peer, addr):
                owner = (peer_ns.name, peer.name)
            else:
                owner = None
        else:
            owner = None
        if owner is None:
            return None
        owner_ns = self.network.netns(owner[0])
        return owner_ns, owner_ns.iface(owner[1])

    def proxies(self, ns: Netns, iface: Interface, addr: IPv4Address) -> bool:
        """Whether `iface` answers ARP for `addr` by proxy (arp_process, arp_fwd_proxy).

        With proxy_arp on and forwarding enabled, Linux answers with the
        device's own MAC when the route to `addr` is a unicast route out of
        another device; a blackhole, no route, or a route back out of the same
        device gets no answer.
        """
        if not iface.proxy_arp or not ns.forwarding or any(a.ip == addr for a in iface.addrs):
            return False
        route = ns.routes.lookup(addr)
        return route is not None and not isinstance(route, Blackhole) and route.dev != iface.name

    def fdb(self, ns: Netns, bridge: Interface, mac: str | None) -> Interface | None:
        """The bridge port behind which `mac` was learned."""
        port = self.network.bridge_port_for_mac(ns.node or "", mac)
        return ns.iface(port) if port is not None and ns.has_iface(port) else None

    # -- netfilter ------------------------------------------------------------------

    def ruleset_of(self, ns: Netns) -> NodeRules:
        """The rules of the node `ns` belongs to."""
        assert ns.node is not None
        return self.rules_of(ns.node)

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
        reinjected: bool = False,
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
            reinjected=reinjected,
        )
        ctx = replace(
            ctx,
            foreign=functools.partial(
                self._foreign, rules, ns, in_iface, hook=hook, reinjected=reinjected
            ),
        )
        nft = nft_of(rules)
        if nft is not None:
            from sim.kernel.nftables import NumgenSteering  # nftables mode only

            if isinstance(self.interpreter, NumgenSteering):
                ctx = replace(ctx, numgen=functools.partial(self.interpreter.numgen, rules=rules))
        ipvs = None
        if ns.node is not None and getattr(rules, "ipvs", None) is not None:
            from sim.kernel.ipvs import IpvsSteering, ipvs_of  # IPVS mode only

            ipvs = ipvs_of(rules)
            if ipvs is not None and isinstance(self.interpreter, IpvsSteering):
                ctx = replace(
                    ctx, ipvs_steer=functools.partial(self.interpreter.ipvs_pick, rules=rules)
                )
        state = self.state.get(ns.name) or NetfilterState(ConntrackTable.of(), RecentTable())
        result = traverse(ctx, pkt, rules.ruleset, state, self.rng, nft=nft, ipvs=ipvs)
        self.state[ns.name] = result.state
        self.assumptions.extend(result.assumptions)
        request = self.direction is Direction.REQUEST
        if pkt.dst != result.packet.dst and request:
            self.endpoint = f"{result.packet.dst}:{result.packet.dport}"
        story = self.interpreter.explain(
            hook,
            pkt,
            result,
            rules,
            node=ns.node,
            out_iface=out_iface.name if out_iface else None,
            request=request,
        )
        sentence, detail, notes = story.sentence, story.detail, list(story.notes)
        if story.finding is not None:
            self.findings.append(story.finding)
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
            if result.ipvs is not None and result.ipvs.stolen:
                return self.ipvs_xmit(ns, result.packet, result.ipvs, received=pkt)
            return result.packet
        self.verdict_rule = detail or None
        if result.verdict == "REJECT":
            self.rejected_at = (hook, result.reject_with or "icmp-port-unreachable")
        verdict = Verdict.REJECTED if result.verdict == "REJECT" else Verdict.DROPPED
        return End(verdict, sentence, result.packet, ns.name)

    def _foreign(
        self,
        rules: NodeRules,
        ns: Netns,
        in_iface: Interface | None,
        m: UnknownMatch,
        pkt: Packet,
        *,
        hook: Hook,
        reinjected: bool = False,
    ) -> bool | None:
        """The match modules the netfilter engine leaves to the node: `-m set` against its
        ipsets, `-m rpfilter` against its routes, `-m ipvs` against what IPVS did (None: not
        evaluated, assumed no match)."""
        if m.module == "set":
            return set_match(rules.ipsets, m, pkt) if rules.ipsets else None
        if m.module == "ipvs":
            from sim.kernel.ipvs import ipvs_match

            return ipvs_match(m.args, self.ipvs_sent if reinjected else None)
        if m.module == "rpfilter" and hook is Hook.PREROUTING and in_iface is not None:
            return self._rpfilter(ns, in_iface, m, pkt)
        return None

    def _rpfilter(self, ns: Netns, in_iface: Interface, m: UnknownMatch, pkt: Packet) -> bool:
        """xt_rpfilter: does the route back to the source leave by the device the packet came
        in on (strict; `--loose`: by any device)? `--invert` matches when it does not.

        `--validmark` uses the packet's mark in the lookup, which changes nothing
        here: kubehop models no policy routing.
        """
        args = set(m.args)
        if in_iface.kind is IfKind.LOOPBACK:
            ok = True
        elif ns.is_local(pkt.src):
            # The way back to one of the host's own addresses is a local route,
            # which passes only with --accept-local.
            ok = "--accept-local" in args
        else:
            back = ns.routes.lookup(pkt.src)
            ok = (
                back is not None
                and not isinstance(back, Blackhole)
                and ("--loose" in args or back.dev == in_iface.name)
            )
        return ok != ("--invert" in args)

    def decide(self, rule: Rule) -> bool | None:
        """For a random rule: whether it matches, to reach a pinned endpoint (None: draw)."""
        if self.current_rules is None:
            return None
        return self.interpreter.decide(rule, self.current_rules)

    def forward_route(self, ns: Netns, pkt: Packet) -> tuple[Route, Packet] | End:
        """The route a forwarded packet takes and the packet with its TTL one lower; the end
        of the walk when no route takes it or its TTL runs out."""
        route = self.route(ns, pkt.dst, pkt.src)
        if route is None:
            return self.no_route(ns, pkt, forwarded=True)
        if pkt.ttl <= 1:
            return End(
                Verdict.DROPPED, f"TTL exceeded on {ns.label} (a routing loop?)", pkt, ns.name
            )
        return route, pkt.model_copy(update={"ttl": pkt.ttl - 1})

    def ipvs_xmit(
        self, ns: Netns, pkt: Packet, verdict: IpvsVerdict, *, received: Packet | None = None
    ) -> End:
        """ip_vs_nat_xmit for a remote real server: IPVS routes the packet it rewrote and sends
        it on itself through LOCAL_OUT and POSTROUTING (ip_vs_nat_send_or_cont), with its
        conntrack entry; the hook it was taken at never sees it again."""
        # __ip_vs_get_out_rt's decrement_ttl: IPVS forwards, so the TTL drops by one.
        routed = self.forward_route(ns, pkt)
        if isinstance(routed, End):
            return routed
        route, sent = routed
        if exceeds_mtu(pkt, device_mtu(ns.iface(route.dev))):
            # __ip_vs_get_out_rt's ensure_mtu_is_adequate answers a packet too big with DF as
            # ip_forward does, but before ip_vs_nat_xmit rewrites it: the error quotes the
            # packet as it arrived, addressed to the Service.
            return self.frag_needed(
                ns,
                ns.iface(route.dev),
                received or pkt,
                how="IPVS (ip_vs_nat_xmit → __ip_vs_get_out_rt: ensure_mtu_is_adequate)",
                note="IPVS checks the size before it rewrites the packet, so the ICMP error"
                " quotes the packet as it arrived, addressed to the Service",
            )
        self.route_hop(
            ns,
            pkt,
            sent,
            route,
            f"IPVS sends the packet on to the real server {pkt.dst}:{pkt.dport} itself"
            f" (ip_vs_nat_xmit): {_route_sentence(ns, pkt.dst, route, local_out=True)}; the TTL"
            " drops by one, as for a forwarded packet, and the packet re-enters OUTPUT",
            asked=f"{pkt.dst}",
        )
        out = ns.iface(route.dev)
        self.ipvs_sent = verdict
        try:
            after = self.hook(ns, Hook.OUTPUT, sent, in_iface=None, out_iface=out, reinjected=True)
            if isinstance(after, End):
                return after
            after = self.hook(ns, Hook.POSTROUTING, after, in_iface=None, out_iface=out)
        finally:
            self.ipvs_sent = None
        if isinstance(after, End):
            return after
        return self.transmit(
            ns, out, after, route.via or after.dst, default=route.dst.prefixlen == 0
        )

    def begin_reply(self, client: Netns, request: Packet) -> None:
        """From now on the walk carries the server's reply to `request`, sent from `client`."""
        self.direction = Direction.REPLY
        self.reply_socket = (client.name, request)
        self.interpreter.reply_begins()
        self.t_us += 20  # a gap on the virtual clock between the request and the reply

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
        if route.assumed is not None:
            self.assumptions.append(route.assumed)
        self.emit(
            HopKind.ROUTE,
            ns,
            before,
            after,
            sentence,
            interface=route.dev,
            detail=f"ip route get {asked or before.dst}: {route}",
            note=route.assumed,
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
        route = self.route(ns, pkt.dst, pkt.src)
        if route is None:
            return self.no_route(ns, pkt, forwarded=False)
        self.route_hop(ns, pkt, pkt, route, _route_sentence(ns, pkt.dst, route, local_out=True))
        out = ns.iface(route.dev)
        if ns.netfilter:
            after = self.hook(ns, Hook.OUTPUT, pkt, in_iface=None, out_iface=out)
            if isinstance(after, End):
                return after
            if after.dst != pkt.dst:
                rerouted = self.route(ns, after.dst, after.src)
                if rerouted is None:
                    return self.no_route(ns, after, forwarded=False)
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

    def transmit(
        self, ns: Netns, out: Interface, pkt: Packet, nexthop: IPv4Address, *, default: bool = False
    ) -> End:
        pkt = self.fragment(ns, out, pkt)
        if out.kind is IfKind.VXLAN:
            return encapsulate(self, ns, out, pkt, nexthop)
        if out.kind is IfKind.IPIP:
            return ipip_encapsulate(self, ns, out, pkt, nexthop)
        neighbour = self.neighbour(ns, out, nexthop)
        if (
            neighbour is not None
            and default
            and ns.kind is NetnsKind.NODE
            and neighbour[0].routes.lookup(pkt.dst) is None
        ):
            # The router takes the packet, but the simulated network ends
            # there: it has routes only to the clients kubehop knows of.
            neighbour = None
        if neighbour is None and default and ns.kind is NetnsKind.NODE:
            return self.unreachable(
                ns,
                pkt,
                f"no route to {pkt.dst} on {ns.label}: {self.interpreter.unclaimed(pkt)}, so only"
                f" the default route would take it, to the router at {nexthop} and out of the"
                " cluster",
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
                f"{out.name} sends the frame to {peer.mac} ({peer_ns.label}) by port "
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
            _scrubbed(framed),
            f"{ns.label} {out.name} sends the frame to {nexthop} ({peer_ns.label}) on the "
            "node network" + (f"; {note}" if (note := self.network.wire_note(pkt)) else ""),
            interface=out.name,
            detail=f"neighbour {nexthop} lladdr {peer.mac}",
            note=(arp := self.network.arp_note(nexthop)),
            dt=40,
        )
        if arp is not None:
            self.assumptions.append(arp)
        return self.receive(peer_ns, peer, _scrubbed(framed))

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
        sentence = (
            f"the frame leaves {ns.label} by {veth.name} and comes out of the other end of the "
            f"veth pair, {peer.name} in {peer_ns.label}"
        )
        if nexthop is not None and neighbour is not None:
            detail = f"neighbour {nexthop} lladdr {neighbour.mac}; " + detail
            if neighbour is peer and self.proxies(peer_ns, peer, nexthop):
                via = peer_ns.routes.lookup(nexthop)
                assert via is not None
                detail += f"; proxy ARP: net.ipv4.conf.{peer.name}.proxy_arp=1"
                sentence += (
                    f"; no one holds {nexthop}: {peer.name} answered the ARP for it with its own"
                    f" MAC {peer.mac} (proxy ARP), since {peer_ns.label} routes {nexthop} out"
                    f" of {via.dev}"
                )
        arrived = _scrubbed(pkt)
        self.emit(HopKind.VETH, ns, pkt, arrived, sentence, interface=veth.name, detail=detail)
        return self.receive(peer_ns, peer, arrived)

    def receive(self, ns: Netns, iface: Interface, pkt: Packet) -> End:
        if iface.master is not None:
            return bridge_in(self, ns, iface, pkt)
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

    def ip_receive(self, ns: Netns, iface: Interface, pkt: Packet, *, prerouted: bool) -> End:
        if pkt.mf and ns.netfilter and not prerouted:
            pkt = self.reassemble(
                ns,
                iface,
                pkt,
                "conntrack's defrag (nf_defrag_ipv4, before conntrack at PREROUTING) holds the"
                " fragment until the rest of its datagram arrives",
                "netfilter sees only whole datagrams",
            )
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
            if pkt.mf:
                pkt = self.reassemble(
                    ns,
                    iface,
                    pkt,
                    "ip_local_deliver holds the fragment until the rest of its datagram arrives",
                    "the socket gets the whole datagram",
                )
            return deliver(self, ns, pkt)
        if not ns.forwarding:
            return End(
                Verdict.DROPPED,
                f"{ns.label} does not forward packets (ip_forward=0) and {pkt.dst} is not its own",
                pkt,
                ns.name,
            )
        found = self.forward_route(ns, pkt)
        if isinstance(found, End):
            return found
        route, routed = found
        self.route_hop(
            ns,
            pkt,
            routed,
            route,
            _route_sentence(ns, pkt.dst, route, local_out=False),
            asked=f"{pkt.dst} from {pkt.src} iif {iface.name}",
        )
        out = ns.iface(route.dev)
        if exceeds_mtu(pkt, device_mtu(out)):
            return self.frag_needed(ns, out, pkt)
        pkt = routed
        if ns.netfilter:
            after = self.forward(ns, pkt, iface, out)
            if isinstance(after, End):
                return after
            pkt = after
        return self.transmit(ns, out, pkt, route.via or pkt.dst, default=route.dst.prefixlen == 0)

    # -- sizes --------------------------------------------------------------------------

    def frag_needed(
        self,
        ns: Netns,
        out: Interface,
        pkt: Packet,
        *,
        how: str = "ip_forward: ip_exceeds_mtu",
        note: str = "ip_forward checks the size before the FORWARD hook, so no rule of the filter"
        " table sees this packet, and before it lowers the TTL: the packet dropped (and"
        " quoted in the ICMP error) still has the TTL it came with",
    ) -> End:
        """ip_forward (or IPVS): `pkt` has DF set and does not fit `out`; it is dropped, before
        FORWARD and before its TTL drops, and its source is sent ICMP fragmentation needed."""
        mtu = device_mtu(out)
        self.too_big = (mtu, out.name)
        reason = (
            f"{ns.label} drops the {pkt.length}-byte packet for {pkt.dst}: it is larger than"
            f" {out.name}'s MTU of {mtu} and has DF (don't fragment) set, so the kernel may not"
            f" cut it; it sends ICMP fragmentation needed (mtu {mtu}) back to {pkt.src}"
        )
        self.emit(
            HopKind.DROP,
            ns,
            pkt,
            pkt,
            reason,
            interface=out.name,
            detail=f"{how}: length {pkt.length} > mtu {mtu} of {out.name},"
            f" DF set; icmp_send(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu {mtu})",
            note=note,
        )
        return End(Verdict.DROPPED, reason, pkt, ns.name)

    def fragment(self, ns: Netns, out: Interface, pkt: Packet) -> Packet:
        """ip_finish_output: `pkt` leaves `out` whole, or cut into fragments (the first one
        returned, the others following it)."""
        mtu = device_mtu(out)
        pieces = cut(pkt, mtu)
        if pieces is None:
            return pkt
        first, lengths = pieces
        if pkt.frag_max:
            why = (
                f"it was reassembled from fragments of at most {pkt.frag_max} bytes on the way,"
                f" so ip_do_fragment cuts it again into fragments no larger (and within"
                f" {out.name}'s MTU of {mtu})"
            )
        elif pkt.df:
            why = (
                f"it is larger than {out.name}'s MTU of {mtu}; DF is set, but the socket's"
                " IP_PMTUDISC_WANT lets the kernel cut its own packets (ignore_df)"
            )
        else:
            why = f"it is larger than {out.name}'s MTU of {mtu} and DF is not set"
        sizes = " + ".join(str(n) for n in lengths)
        self.emit(
            HopKind.SEND,
            ns,
            pkt,
            first,
            f"{ns.label} sends the {pkt.length}-byte datagram out of {out.name} in"
            f" {len(lengths)} fragments ({sizes} bytes): {why}; kubehop follows the first"
            " fragment, the others take the same way behind it",
            interface=out.name,
            detail=f"ip_finish_output → ip_do_fragment: mtu {min(mtu, pkt.frag_max or mtu)};"
            f" fragments {sizes} (each but the last carries a multiple of 8 bytes); the first"
            f" has MF set: {size_text(first)}",
        )
        return first

    def reassemble(self, ns: Netns, iface: Interface, pkt: Packet, holds: str, so: str) -> Packet:
        """The fragment `pkt` waits for the rest of its datagram; the whole one goes on."""
        whole = reassembled(pkt)
        self.emit(
            HopKind.RECEIVE,
            ns,
            pkt,
            whole,
            f"{ns.label} reassembles the {whole.length}-byte datagram: {holds}, so {so}",
            interface=iface.name,
            detail=f"ip_defrag: {pkt.length}-byte first fragment (MF) + the rest → {whole.length}"
            f" bytes; frag_max_size {whole.frag_max}",
            note="kubehop follows the first fragment; the others come the same way",
        )
        return whole

    def unreachable(self, ns: Netns, pkt: Packet, reason: str) -> End:
        self.emit(HopKind.DROP, ns, pkt, pkt, reason)
        return End(Verdict.UNREACHABLE, reason, pkt, ns.name)


def _host_net(addr: IPv4Address) -> IPv4Network:
    return IPv4Network(f"{addr}/32")


def _route_sentence(ns: Netns, dst: IPv4Address, route: Route, *, local_out: bool) -> str:
    if route.dev == "lo":
        return f"{dst} is an address of {ns.label} itself, so the local table sends it to lo"
    verb = "routes" if local_out else "forwards"
    if route.via is not None:
        how = (
            "by its default route" if route.dst.prefixlen == 0 else f"by the route for {route.dst}"
        )
        if route.by is not None:
            how = f"by {route.by} for {route.dst}"
        elif route.proto == "bird":
            how = f"by the route BIRD learned over BGP for {route.dst}"
        return f"{ns.label} {verb} {dst} {how}: next hop {route.via} via {route.dev}"
    return f"{ns.label} {verb} {dst} straight out of {route.dev}: {route.dst} is directly connected"


def _bridge_note(hook: Hook, physdev_in: str | None, physdev_out: str | None) -> str | None:
    if physdev_in is None and physdev_out is None:
        return None
    return (
        "br_netfilter: bridged IPv4 frames pass iptables too "
        "(net.bridge.bridge-nf-call-iptables=1), with -i/-o the bridge and the ports as physdev"
    )


def _masquerade_address(ns: Netns, out: Interface | None) -> IPv4Address | None:
    """The address MASQUERADE takes: inet_select_addr() on the out device, scope universe.

    A device without a global address (lo with only the host-scope 127.0.0.1,
    a Calico veth with none at all) gives none, and the kernel takes the first
    global address of the namespace's devices, in their order, instead.
    """
    if out is None:
        return None
    if out.kind is not IfKind.LOOPBACK and out.primary is not None:
        return out.primary
    return next(
        (a.ip for i in ns.interfaces if i.kind is not IfKind.LOOPBACK for a in i.addrs), None
    )


def _scrubbed(pkt: Packet) -> Packet:
    """`pkt` as it arrives in another netns: without its mark (skb_scrub_packet with xnet:
    a veth's dev_forward_skb clears it, and a wire delivers a new skb)."""
    return pkt.model_copy(update={"mark": 0}) if pkt.mark else pkt
