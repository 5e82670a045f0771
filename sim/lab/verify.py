"""`lab verify`: send each case for real and hold kubehop's trace of it against the kernel.

For one flow the kernel is asked, in order: did the connection succeed (or
was it refused, or did it time out); which endpoint answered (the server
reports the address it was reached at); which address did the server see the
request come from (MASQUERADE or not); and what each node's conntrack holds
(original and reply tuples). kubehop is then asked for the trace of the same
flow pinned to the endpoint the kernel chose, and every answer must agree.

Ports: the simulation draws its own client port and its own --random-fully
port, so a port is compared only where it is deterministic (the client's port
maps to the kernel's, and destination and endpoint ports are fixed); a port
that MASQUERADE chose is compared as "any".
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from model.cluster import Cluster, ProxyMode
from model.errors import RequestError
from model.ipvs import IpvsTable
from model.netfilter import DnatTarget, Table
from model.packet import Packet, Proto
from model.trace import HopKind, Trace, Verdict
from sim.cluster.rules import node_rules
from sim.lab import ipvs
from sim.lab.build import Lab, fingerprint
from sim.lab.cases import Case, Spread
from sim.lab.compare import (
    EXPECTED,
    compare,
    compare_drops,
    kernel_endpoint,
    kernel_phrase,
    sim_phrase,
)
from sim.lab.failures import LabError, NoLabRunning
from sim.lab.netns import check_host, in_netns, lab_netns
from sim.lab.probe import (
    Listeners,
    ListenSpec,
    Observation,
    Outcome,
    conntrack_flush,
    conntrack_list,
    drop_rules_hit,
    send,
    zero_counters,
)
from sim.lab.state import exclusive, running_lab
from sim.trace.request import Request
from sim.trace.tracer import trace, trace_many

TRACE_SEED = 1
"""The seed of every trace (the endpoint is pinned to the kernel's choice anyway)."""
PICK_ATTEMPTS = 40
"""Connections sent at most to see the kernel choose a given endpoint."""
PICK_SECONDS = 10.0
"""...and for at most this long (failed connections each cost a timeout)."""
SPREAD_FAILURES = 3
"""A spread check stops after this many failed connections."""


@dataclass(frozen=True)
class Check:
    """One flow checked against the kernel: both sides in a phrase, and where they differ."""

    name: str
    """What the flow is."""
    command: str
    """The `kubehop trace` command for the same flow (pinned as compared)."""
    kubehop: str
    """What kubehop's trace says, in a phrase."""
    kernel: str
    """What the kernel did, in a phrase."""
    differences: tuple[str, ...] = ()
    """Each disagreement in one sentence; empty when they agree."""
    trace: Trace | None = None
    """The trace compared."""
    observation: Observation | None = None
    """The real connection compared."""

    @property
    def agree(self) -> bool:
        """kubehop and the kernel agree on everything compared."""
        return not self.differences


@dataclass
class Verifier:
    """Checks flows in one running lab."""

    lab: Lab
    """The lab."""
    seed: int = TRACE_SEED
    """The seed of the traces."""
    _node_ns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._node_ns = {
            topo: lab_ns
            for topo, lab_ns in self.lab.state.netns.items()
            if self.lab.network.netns(topo).netfilter
        }

    @property
    def cluster(self) -> Cluster:
        """The cluster the lab was built from."""
        return self.lab.cluster

    def listen_specs(self) -> list[ListenSpec]:
        """A listener for every netns where the topology has listening sockets, and where it
        assumes one (a port an EndpointSlice lists): the lab checks the network's path, so
        it stands in for the process kubehop assumed."""
        specs: list[ListenSpec] = []
        for topo, lab_ns in self.lab.state.netns.items():
            ns = self.lab.network.netns(topo)
            ports = {(s.proto, s.port) for s in ns.listeners} | set(ns.listed)
            tcp = tuple(sorted({port for proto, port in ports if proto is Proto.TCP}))
            udp = tuple(sorted({port for proto, port in ports if proto is Proto.UDP}))
            if tcp or udp:
                specs.append(ListenSpec(lab_ns, tcp, udp))
        return specs

    # -- one flow ---------------------------------------------------------------------

    def check(self, case: Case, *, compare_with: Trace | None = None) -> Check:
        """Send `case` for real and compare with its trace; never raises for a disagreement."""
        first = self._trace(case, case.request.pick)
        send_hop = next(h for h in first.hops if h.kind is HopKind.SEND)
        request = send_hop.before
        source_ns = self.lab.netns(send_hop.where.netns)

        attempts = PICK_ATTEMPTS if case.request.pick else 1
        wanted = _endpoint_tuple(case.request.pick) if case.request.pick else None
        deadline = time.monotonic() + PICK_SECONDS
        attempt = 0
        for attempt in range(1, attempts + 1):  # noqa: B007 (reported below)
            for ns in self._node_ns.values():
                conntrack_flush(ns)
                zero_counters(ns)
            obs = send(source_ns, request.dst, request.dport, request.proto)
            # A tunnel's outer packets are UDP whatever the request's protocol.
            protos = dict.fromkeys((request.proto, Proto.UDP))
            kernel_ct = {
                topo: [e for proto in protos for e in conntrack_list(ns, proto)]
                for topo, ns in self._node_ns.items()
            }
            kernel_drops = {topo: drop_rules_hit(ns) for topo, ns in self._node_ns.items()}
            chosen = kernel_endpoint(obs, kernel_ct, request)
            if wanted is None or chosen == wanted or time.monotonic() > deadline:
                break
        differences: list[str] = []
        if wanted is not None and chosen != wanted:
            differences.append(
                f"the kernel never chose {case.request.pick} in {attempt} connections "
                f"(kubehop's rules say it can)"
            )

        self._last_outcome = obs.outcome
        compared, pick = self._pinned(case, first, request, chosen, compare_with, differences)
        differences += compare(compared, obs, kernel_ct, self._node_ns)
        differences += compare_drops(compared, kernel_drops)
        command = replace(case.request, pick=pick).command
        return Check(
            name=case.name,
            command=command,
            kubehop=sim_phrase(compared),
            kernel=kernel_phrase(obs, chosen),
            differences=tuple(differences),
            trace=compared,
            observation=obs,
        )

    _last_outcome: Outcome = Outcome.DELIVERED

    def _dnat_targets(self, t: Trace) -> list[str]:
        """Every endpoint a DNAT rule or an IPVS virtual server on the trace's nodes can
        choose (IP:PORT)."""
        found: dict[str, None] = {}
        for hop in t.hops:
            node = hop.where.node
            if node is None or hop.where.hook is None:
                continue
            table = getattr(node_rules(self.cluster, node), "ipvs", None)
            if isinstance(table, IpvsTable):
                found.update((rs.addr, None) for vs in table.services for rs in vs.real_servers)
            for chain in node_rules(self.cluster, node).ruleset.tables.get(Table.NAT, {}).values():
                for rule in chain.rules:
                    target = rule.target
                    if isinstance(target, DnatTarget) and target.ports is not None:
                        found[f"{target.addr}:{target.ports.lo}"] = None
        return list(found)

    def _trace(self, case: Case, pick: str | None) -> Trace:
        return trace(self.cluster, Request(case.request.source, case.request.destination, container=case.request.container, seed=self.seed, pick=pick))  # fmt: skip

    def _pinned(
        self,
        case: Case,
        first: Trace,
        request: Packet,
        chosen: tuple[IPv4Address, int] | None,
        compare_with: Trace | None,
        differences: list[str],
    ) -> tuple[Trace, str | None]:
        """The trace to compare: pinned to the endpoint the kernel chose, when NAT chose one."""
        if chosen is None and first.endpoint is not None and case.request.pick is None:
            # A RST as the only answer makes conntrack forget the connection at
            # once, so the kernel's endpoint is unknown: compare with kubehop
            # pinned to an endpoint where it ends the same way, if there is one.
            outcome = self._last_outcome
            for candidate in self._dnat_targets(first):
                try:
                    pinned = self._trace(case, candidate)
                except RequestError:
                    continue
                if outcome in EXPECTED[pinned.verdict]:
                    return pinned, candidate
            return compare_with or first, case.request.pick
        if chosen is None or chosen == (request.dst, request.dport):
            return compare_with or first, case.request.pick
        pick = f"{chosen[0]}:{chosen[1]}"
        if compare_with is not None and compare_with.endpoint == pick:
            return compare_with, pick
        if first.endpoint == pick:
            return first, case.request.pick
        try:
            return self._trace(case, pick), pick
        except RequestError as err:
            differences.append(f"the kernel chose {pick}, which kubehop cannot pin: {err}")
            return first, case.request.pick

    # -- many flows to one Service --------------------------------------------------------

    def spread(self, spread: Spread) -> Check:
        """Send `spread.count` connections; every endpoint must answer (or one, with affinity)."""
        first = trace(self.cluster, Request(spread.source, spread.destination, seed=self.seed))
        send_hop = next(h for h in first.hops if h.kind is HopKind.SEND)
        request = send_hop.before
        source_ns = self.lab.netns(send_hop.where.netns)
        count = spread.count
        reached: Counter[str] = Counter()
        answers: list[str] = []
        failures = 0
        for _ in range(count):
            obs = send(source_ns, request.dst, request.dport, request.proto)
            if obs.outcome is Outcome.DELIVERED and obs.endpoint is not None:
                answers.append(f"{obs.endpoint[0]}:{obs.endpoint[1]}")
            else:
                answers.append(obs.outcome.value)
                failures += obs.outcome is Outcome.TIMEOUT
            reached[answers[-1]] += 1
            if failures >= SPREAD_FAILURES:
                break  # each costs a timeout; the answer is already known
        simulated = trace_many(
            self.cluster, Request(spread.source, spread.destination, seed=self.seed), count
        )
        sim_reached = Counter(t.outcome for t in simulated)
        differences: list[str] = []
        # An endpoint where nothing listens answers with a RST on both sides:
        # kubehop's verdict names it as the kernel's outcome does.
        sim_keys = {_OUTCOME_OF.get(k, k) for k in sim_reached}
        expected = sim_keys
        if spread.sticky:
            # Which endpoint sticks is random on both sides; that one does is not.
            if len(reached) != 1 or set(reached) - set(spread.endpoints):
                differences.append(
                    f"ClientIP affinity: every connection should reach one endpoint, the "
                    f"kernel answered from {_counts(reached)}"
                )
            if len(sim_reached) != 1:
                differences.append(
                    f"ClientIP affinity: kubehop spread the flows over {_counts(sim_reached)}"
                )
        else:
            if set(reached) != expected:
                differences.append(
                    f"kubehop reaches {', '.join(sorted(expected))}; the kernel answered "
                    f"{_counts(reached)}"
                )
            if self._round_robin:
                # IPVS's rr is literal: connection after connection, the same cycle.
                walked = [_OUTCOME_OF.get(t.outcome, t.outcome) for t in simulated]
                differences += ipvs.round_robin_differences(answers, walked)
        want = (
            "one endpoint (affinity)" if spread.sticky else f"all {len(spread.endpoints)} endpoints"
        )
        return Check(
            name=f"{spread.name} ×{count}",
            command=f"kubehop trace {spread.source} {spread.destination}",
            kubehop=f"{want}: {_counts(sim_reached)}",
            kernel=_counts(reached),
            differences=tuple(differences),
        )

    @property
    def _round_robin(self) -> bool:
        """kube-proxy runs in IPVS mode with the rr scheduler."""
        kp = self.cluster.kube_proxy
        return kp.mode is ProxyMode.IPVS and (kp.ipvs_scheduler or "rr") == "rr"

    # -- the rules themselves -------------------------------------------------------------

    def rules(self) -> list[Check]:
        """Each node's `iptables-save` in the lab, against kubehop's text for that node (in
        IPVS mode also `ipvsadm-save -n` and `ipset save`)."""
        checks = self._iptables_rules()
        if self.cluster.kube_proxy.mode is ProxyMode.IPVS:
            checks += self._ipvs_rules()
        return checks

    def _ipvs_rules(self) -> list[Check]:
        checks: list[Check] = []
        for node, lab_ns in self.lab.node_netns.items():
            listings = {
                item.command: item.text
                for item in getattr(node_rules(self.cluster, node), "listings", ())
            }
            want = listings.get("ipvsadm-save -n", "")
            got = ipvs.ipvsadm(lab_ns, ["-S", "-n"]).stdout
            servers = sum(1 for line in want.splitlines() if line.startswith("-A "))
            differences: tuple[str, ...] = ()
            if got != want:
                lines = (want.splitlines(), got.splitlines())
                differences = (_first_difference(node, *lines, "ipvsadm-save -n")[1],)
            checks.append(
                Check(
                    name=f"rules on {node}: ipvsadm-save -n",
                    command=f"kubehop rules --node {node}",
                    kubehop=f"{servers} virtual server{'s' if servers != 1 else ''}",
                    kernel="identical" if not differences else "differs",
                    differences=differences,
                )
            )
            want = listings.get("ipset save", "")
            sets = ipvs.sets_differences(want, in_netns(lab_ns, ["ipset", "save"]).stdout)
            count = sum(1 for line in want.splitlines() if line.startswith("create "))
            checks.append(
                Check(
                    name=f"rules on {node}: ipset save",
                    command=f"kubehop rules --node {node}",
                    kubehop=f"{count} set{'s' if count != 1 else ''}",
                    kernel="the same sets and members" if not sets else "differs",
                    differences=tuple(f"{node}: {d}" for d in sets),
                )
            )
        return checks

    def _iptables_rules(self) -> list[Check]:
        checks: list[Check] = []
        for node, lab_ns in self.lab.node_netns.items():
            want = node_rules(self.cluster, node).text.splitlines()
            saved = in_netns(lab_ns, ["iptables-save"]).stdout.splitlines()
            got = [_zero_counters(line) for line in saved if not line.startswith("#")]
            differences: tuple[str, ...] = ()
            kernel = "identical"
            if got != want:
                at, sentence = _first_difference(node, want, got, "iptables-save")
                kernel = f"differs at line {at}"
                differences = (sentence,)
            rule_count = sum(1 for line in want if line.startswith("-A "))
            checks.append(
                Check(
                    name=f"rules on {node}: iptables-save",
                    command=f"kubehop rules --node {node}",
                    kubehop=f"{rule_count} rule{'s' if rule_count != 1 else ''}",
                    kernel=kernel,
                    differences=differences,
                )
            )
        return checks


_OUTCOME_OF = {
    Verdict.REJECTED.value: Outcome.REFUSED.value,
    Verdict.DROPPED.value: Outcome.TIMEOUT.value,
}


def _first_difference(
    node: str, wanted: list[str], printed: list[str], command: str
) -> tuple[int, str]:
    """The first line where they differ, and `node: line N: kubehop has '…', COMMAND prints
    '…'`."""
    at = next(
        (i for i, (a, b) in enumerate(zip(wanted, printed, strict=False)) if a != b),
        min(len(wanted), len(printed)),
    )
    line_w = wanted[at] if at < len(wanted) else "(end)"
    line_g = printed[at] if at < len(printed) else "(end)"
    return at + 1, f"{node}: line {at + 1}: kubehop has {line_w!r}, {command} prints {line_g!r}"


def _zero_counters(line: str) -> str:
    if line.startswith(":") and line.endswith("]"):
        return line[: line.rindex("[")] + "[0:0]"
    return line


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counter.items())) or "nothing"


def _endpoint_tuple(text: str) -> tuple[IPv4Address, int]:
    host, _, port = text.rpartition(":")
    return IPv4Address(host), int(port.split("/")[0])


def attach(cluster: Cluster) -> Lab:
    """The running lab, which must have been built from `cluster`."""
    check_host()
    state = running_lab(fingerprint(cluster))
    if state is None:
        other = running_lab()
        if other is not None:
            raise LabError(
                f"the lab that is up ({other.run_id}) was built from {other.cluster_source}, "
                "not this cluster: run `kubehop lab up --cluster FILE` for this one"
            )
        raise NoLabRunning("no lab is up: run `kubehop lab up` first (as root)")
    missing = [n for n in state.all_netns if n not in set(lab_netns())]
    if missing:
        raise NoLabRunning(
            f"the lab {state.run_id} is recorded but its netns {missing[0]} is gone: "
            "run `kubehop lab down`, then `kubehop lab up`"
        )
    return Lab(state, cluster)


def verify_trace(t: Trace, cluster: Cluster) -> Check:
    """Check one trace against the running lab (raises NoLabRunning when none is up)."""
    lab = attach(cluster)
    source, _, container = t.source.partition(" -c ")
    case = Case("this trace", Request(source, t.destination, container or None, pick=t.endpoint))
    verifier = Verifier(lab, seed=t.seed)
    with exclusive(lab.state), Listeners(verifier.listen_specs()):
        return verifier.check(case, compare_with=t)
