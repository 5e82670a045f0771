"""A trace held against what the kernel reported: outcome, endpoint, source seen, conntrack.

`lab verify` (`sim.lab.verify`) sends a case for real and traces it; these
functions say where the two disagree, one sentence per difference, and how
each side is phrased in the table. Ports are compared only where they are
deterministic (`PortMap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from model.packet import ConntrackEntry, ConntrackTuple, Packet
from model.trace import Direction, HopKind, Trace, Verdict
from sim.lab.probe import KernelEntry, Observation, Outcome

__all__ = [
    "EXPECTED",
    "PortMap",
    "compare",
    "compare_drops",
    "kernel_endpoint",
    "kernel_phrase",
    "sim_phrase",
]


@dataclass(frozen=True)
class PortMap:
    """Maps the simulation's ports onto the kernel's (None: not deterministic)."""

    sim_sport: int
    real_sport: int
    fixed: frozenset[int]

    def expect(self, port: int) -> int | None:
        if port == self.sim_sport:
            return self.real_sport
        return port if port in self.fixed else None


EXPECTED: dict[Verdict, frozenset[Outcome]] = {
    Verdict.DELIVERED: frozenset({Outcome.DELIVERED}),
    # REJECT answers with ICMP port unreachable, which a TCP connect reports
    # as ECONNREFUSED, exactly like a RST from a port nobody listens on.
    Verdict.REFUSED: frozenset({Outcome.REFUSED}),
    # A packet a node's own OUTPUT chain drops or rejects fails the send with EPERM.
    Verdict.REJECTED: frozenset({Outcome.REFUSED, Outcome.DENIED}),
    # DROP sends nothing back, and neither does a client whose SYN-ACK came
    # from an address it did not connect to (it answers that with a RST).
    Verdict.DROPPED: frozenset({Outcome.TIMEOUT, Outcome.DENIED}),
    # No route is immediate (ENETUNREACH); an unanswered ARP reports
    # EHOSTUNREACH only after 3 s, past the connect timeout.
    Verdict.UNREACHABLE: frozenset({Outcome.UNREACHABLE, Outcome.TIMEOUT}),
    # kubehop makes no claim (no socket known to listen, endpoints not in the
    # dump), so whatever the kernel does agrees.
    Verdict.UNKNOWN: frozenset(Outcome),
}
"""Which outcomes of a real connection agree with each kubehop verdict."""


def kernel_endpoint(
    obs: Observation, kernel_ct: dict[str, list[KernelEntry]], request: Packet
) -> tuple[IPv4Address, int] | None:
    """The endpoint the kernel sent the connection to: as the server reported it, or else
    as the first conntrack entry of this connection says (its reply source)."""
    if obs.endpoint is not None:
        return obs.endpoint
    for entries in kernel_ct.values():
        for e in entries:
            _, dst, sport, dport = e.original
            mine = (dst, dport, sport) == (request.dst, request.dport, obs.sport)
            if mine and (e.reply[0], e.reply[2]) != (dst, dport):
                return e.reply[0], e.reply[2]
    return None


def request_deliver(t: Trace) -> Packet | None:
    hop = next(
        (h for h in t.hops if h.kind is HopKind.DELIVER and h.direction is Direction.REQUEST),
        None,
    )
    return hop.before if hop is not None else None


def sim_entries(t: Trace) -> dict[str, list[ConntrackEntry]]:
    """Each netns's confirmed connections after the trace (the last state of each)."""
    found: dict[str, dict[ConntrackTuple, ConntrackEntry]] = {}
    for hop in t.hops:
        entry = hop.conntrack
        if entry is not None:
            found.setdefault(hop.where.netns, {})[entry.original] = entry
    return {
        ns: [e for e in entries.values() if e.confirmed]
        for ns, entries in found.items()
        if any(e.confirmed for e in entries.values())
    }


def port_map(t: Trace, real_sport: int) -> PortMap:
    send_hop = next(h for h in t.hops if h.kind is HopKind.SEND)
    fixed: set[int] = set()
    for hop in t.hops:
        if hop.direction is Direction.REQUEST:
            fixed |= {hop.before.dport, hop.after.dport}
    return PortMap(send_hop.before.sport, real_sport, frozenset(fixed))


def tuple_matches(
    sim: ConntrackTuple, real: tuple[IPv4Address, IPv4Address, int, int], ports: PortMap
) -> bool:
    if (sim.src, sim.dst) != (real[0], real[1]):
        return False
    for sim_port, real_port in ((sim.sport, real[2]), (sim.dport, real[3])):
        want = ports.expect(sim_port)
        if want is not None and want != real_port:
            return False
    return True


def show_tuple(t: ConntrackTuple, ports: PortMap) -> str:
    def port(p: int) -> str:
        want = ports.expect(p)
        return str(want) if want is not None else "*"

    return f"{t.src}:{port(t.sport)}→{t.dst}:{port(t.dport)}"


def compare(
    t: Trace,
    obs: Observation,
    kernel_ct: dict[str, list[KernelEntry]],
    node_ns: dict[str, str],
) -> list[str]:
    differences: list[str] = []
    if obs.outcome not in EXPECTED[t.verdict]:
        differences.append(
            f"kubehop says {t.verdict.value} ({t.reason}); the kernel: {obs.outcome.value}"
            + (f" ({obs.error})" if obs.error else "")
        )
    ports = port_map(t, obs.sport)
    sent = next(h for h in t.hops if h.kind is HopKind.SEND).before
    if obs.src is not None and obs.src != sent.src:
        differences.append(
            f"the client's source address: kubehop sends from {sent.src}, the kernel chose "
            f"{obs.src} (source address selection: the route's preferred source, else the "
            "outgoing interface's first address)"
        )
    delivered = request_deliver(t)
    if t.verdict is Verdict.DELIVERED and obs.outcome is Outcome.DELIVERED and delivered:
        assert obs.peer is not None and obs.endpoint is not None
        sim_ep = (delivered.dst, delivered.dport)
        if sim_ep != obs.endpoint:
            differences.append(
                f"endpoint: kubehop {sim_ep[0]}:{sim_ep[1]}, the kernel "
                f"{obs.endpoint[0]}:{obs.endpoint[1]}"
            )
        want_port = ports.expect(delivered.sport)
        if delivered.src != obs.peer[0] or (want_port is not None and want_port != obs.peer[1]):
            shown = want_port if want_port is not None else "*"
            differences.append(
                f"the server saw the request from {obs.peer[0]}:{obs.peer[1]}; kubehop says "
                f"{delivered.src}:{shown}" + masq_hint(t, delivered.src, obs)
            )
    # A RST as the only reply deletes the connection from every conntrack on
    # its way (kubehop applies the same), so a refused flow leaves no entry to compare.
    sim_ct = {} if t.verdict is Verdict.REFUSED else sim_entries(t)
    for topo in node_ns:
        expected = list(sim_ct.get(topo, []))
        actual = list(kernel_ct.get(topo, []))
        for entry in expected:
            match = next(
                (
                    k
                    for k in actual
                    if tuple_matches(entry.original, k.original, ports)
                    and tuple_matches(entry.reply, k.reply, ports)
                ),
                None,
            )
            if match is not None:
                actual.remove(match)
                continue
            near = next(
                (k for k in actual if tuple_matches(entry.original, k.original, ports)), None
            )
            if near is not None:
                actual.remove(near)
                differences.append(
                    f"conntrack on {topo}: {show_tuple(entry.original, ports)} has reply "
                    f"{show_tuple(entry.reply, ports)} in kubehop, "
                    f"{near.reply[0]}:{near.reply[2]}→{near.reply[1]}:{near.reply[3]} in the kernel"
                )
            else:
                differences.append(
                    f"conntrack on {topo}: kubehop has {show_tuple(entry.original, ports)} "
                    f"(reply {show_tuple(entry.reply, ports)}), the kernel has no such entry"
                )
        for extra in actual:
            differences.append(f"conntrack on {topo}: the kernel has {extra}, kubehop has none")
    return differences


def sim_drops(t: Trace) -> dict[str, list[str]]:
    """The DROP and REJECT rules that ended the trace, by netns."""
    found: dict[str, list[str]] = {}
    for hop in t.hops:
        if hop.kind is not HopKind.DROP or hop.where.hook is None:
            continue
        for walk in hop.tables:
            if walk.verdict in ("DROP", "REJECT") and walk.matched:
                found.setdefault(hop.where.netns, []).append(walk.matched[-1].line)
    return found


def compare_drops(t: Trace, kernel: dict[str, list[tuple[str, int]]]) -> list[str]:
    """Which DROP/REJECT rule stopped the flow, and on which node, on both sides."""
    differences: list[str] = []
    sim = sim_drops(t)
    for topo in sorted(set(sim) | set(kernel)):
        sim_lines = set(sim.get(topo, []))
        kernel_lines = {line for line, _ in kernel.get(topo, [])}
        for line in sorted(kernel_lines - sim_lines):
            packets = dict(kernel.get(topo, []))[line]
            differences.append(
                f"on {topo} the kernel stopped {packets} packet(s) with `{line}`; kubehop "
                + ("does not" if not sim_lines else f"uses `{sorted(sim_lines)[0]}`")
            )
        for line in sorted(sim_lines - kernel_lines):
            if kernel_lines:
                continue  # already reported above
            differences.append(
                f"kubehop stops the flow on {topo} with `{line}`; the kernel does not"
            )
    return differences


def masq_hint(t: Trace, sim_src: IPv4Address, obs: Observation) -> str:
    sim_client = next(h for h in t.hops if h.kind is HopKind.SEND).before.src
    real_client = obs.src or sim_client
    assert obs.peer is not None
    sim_masq, real_masq = sim_src != sim_client, obs.peer[0] != real_client
    if sim_masq and not real_masq:
        return " (kubehop masquerades it, the kernel did not)"
    if real_masq and not sim_masq:
        return " (the kernel masqueraded it, kubehop does not)"
    return ""


def sim_phrase(t: Trace) -> str:
    if t.verdict is not Verdict.DELIVERED:
        return t.verdict.value
    delivered = request_deliver(t)
    if delivered is None:
        return t.verdict.value
    send_hop = next(h for h in t.hops if h.kind is HopKind.SEND)
    snat = " (SNAT)" if delivered.src != send_hop.before.src else ""
    return f"{delivered.dst}:{delivered.dport} from {delivered.src}{snat}"


def kernel_phrase(obs: Observation, chosen: tuple[IPv4Address, int] | None) -> str:
    if obs.outcome is Outcome.DELIVERED and obs.peer and obs.endpoint:
        snat = " (SNAT)" if obs.src is not None and obs.peer[0] != obs.src else ""
        return f"{obs.endpoint[0]}:{obs.endpoint[1]} from {obs.peer[0]}{snat}"
    via = f" by {chosen[0]}:{chosen[1]}" if chosen is not None else ""
    return f"{obs.outcome.value}{via}"


# -- the API the app calls ------------------------------------------------------------------
