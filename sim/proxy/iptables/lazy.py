"""A node's iptables rules rendered and parsed a Service port at a time, as packets reach them.

A node at Kubernetes' scale limits has over 500,000 rules; a packet visits a
handful of chains. `LazyRules` renders the chains every sync writes whatever the
Services (KUBE-POSTROUTING, KUBE-FORWARD, the built-in chains' jumps, the CNI's
chains) as one small iptables-save text, and each Service port's rules (its
KUBE-SVC/SVL/EXT/FW/SEP chains and its lines in KUBE-SERVICES and the other
chains every Service port adds to) the first time a packet needs one of them,
with the same `sync.write_port` the whole text comes from, spelled as
iptables-save prints them and parsed by the same reader.

The chains Service ports share (`SHARED`: KUBE-SERVICES, KUBE-NODEPORTS, …)
keep every rule's place without being spelled: how many rules each port adds
to each of them follows from whether the port has endpoints (anywhere, and on
this node under a Local policy), so a rule's position is a sum, and the rules a
packet can match are those of the ports that own its destination address or
port. Their `Chain.rules` is a sequence as long as the whole chain that renders
a port's run of rules when one of them is read, and the walker is handed an
index that names those candidates (`_PortIndex`), so a walk is first-match
exact over the whole chain, every rule before and after in its place (the
NodePorts jump last in KUBE-SERVICES, rules that match any destination).

What a person sees (`text`: `kubehop rules`, the rules pane) is the whole
render, made when first asked. A question the parts cannot answer (every chain
of a table) is answered from the whole text, parsed as before.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import Any, cast, overload

from model.cluster import Cluster, Node, Service, ServicePort, ServiceType
from model.ipset import IpSets
from model.netfilter import Chain, Rule, Ruleset, Table
from model.packet import Packet
from sim.kernel.netfilter import index as kernel_index
from sim.kernel.rules import ForeignRules
from sim.memo import PerCluster
from sim.proxy.base import iptables_dnat_to
from sim.proxy.endpoints import (
    categorize,
    external_policy_local,
    internal_policy_local,
    listed_endpoints,
    port_endpoints,
    port_listings,
    uses_local_endpoints,
)
from sim.proxy.iptables import names as n
from sim.proxy.iptables.save import save_rule, save_text
from sim.proxy.iptables.sync import (
    LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
    Presaved,
    Restore,
    ServicePortEntry,
    SyncContext,
    localhost_nodeports,
    service_ports,
    sync_context,
    write_head,
    write_port,
    write_tail,
)
from sim.readers.iptables_save.lazy import LazyChains, parse_chain

__all__ = [
    "COMMON_BYTES",
    "SHARED",
    "LazyRules",
    "ServiceTable",
    "common_bytes",
    "lazy_rules",
    "renders_in_parts",
    "service_table",
]

SHARED: tuple[tuple[Table, str], ...] = (
    (Table.NAT, n.KUBE_SERVICES),
    (Table.NAT, n.KUBE_NODEPORTS),
    (Table.FILTER, n.KUBE_SERVICES),
    (Table.FILTER, n.KUBE_EXTERNAL_SERVICES),
    (Table.FILTER, n.KUBE_NODEPORTS),
    (Table.FILTER, n.KUBE_PROXY_FIREWALL),
)
"""The chains every Service port may add rules to, each port's rules a run in port order."""

_SLOT = {key: slot for slot, key in enumerate(SHARED)}

_OWN_PREFIXES = (n.SVC_PREFIX, n.SVL_PREFIX, n.EXT_PREFIX, n.FW_PREFIX, n.SEP_PREFIX)
"""One Service port's own chains, all in nat."""

PARSED_RULE_BYTES = 3200
"""About what one parsed rule holds (its `Rule`, matches, target and line; measured with
tracemalloc over a whole node of a 500-node cluster), for cache bounds."""


@dataclass(frozen=True)
class ServiceTable:
    """A cluster's Service ports as every node's sync walks them, and what finds them fast."""

    ports: tuple[ServicePortEntry, ...]
    """Every programmed Service port, in sync's order."""
    usable: tuple[bool, ...]
    """The port has an endpoint kube-proxy may use (ready, or serving and terminating)."""
    per_node: frozenset[int]
    """Ports whose rules differ between nodes: a Local policy, an endpoint listed twice
    (kube-proxy keeps a node's own copy), LB source ranges. Every other port's rules are
    the same on every node, rendered and parsed once for all (`_Common`)."""
    by_dst: MappingProxyType[IPv4Address, tuple[int, ...]]
    """Ports with rules for a destination: ClusterIP, external IPs, LB IPs."""
    by_dport: MappingProxyType[int, tuple[int, ...]]
    """Ports with rules for any destination on a port: NodePort, health check node port."""
    large: bool
    """More endpoints than kube-proxy's large-cluster threshold."""
    lengths: tuple[tuple[int, ...], ...]
    """Per `SHARED` chain, how many rules each port adds to it (0 for a `per_node` port,
    which each node counts for itself)."""
    hosts: MappingProxyType[int, frozenset[str]]
    """Per `per_node` port, the nodes its slices put an endpoint on."""
    elsewhere: MappingProxyType[int, tuple[int, ...]]
    """Per `per_node` port, how many rules it adds to each `SHARED` chain on a node none of
    its endpoints is on (every endpoint remote: the count is the same on all such nodes)."""


def _scan(cluster: Cluster, svc: Service, port: ServicePort) -> tuple[int, bool, bool]:
    """`port_endpoints`' count, whether one is usable and whether an address repeats,
    without building its endpoints (the node only matters when one repeats)."""
    # Addresses as integers: an IPv4Address hashes through a hex string, a third of
    # the time on a 150,000-endpoint cluster.
    seen: set[tuple[int, int]] = set()
    listed = 0
    usable = False
    for number, endpoints in port_listings(cluster, svc, port):
        listed += len(endpoints)
        seen.update((int(ep.ip), number) for ep in endpoints)
        usable = usable or any(ep.ready or (ep.serving and ep.terminating) for ep in endpoints)
    return len(seen), usable, len(seen) != listed


def _service_table(cluster: Cluster) -> ServiceTable:
    ports = service_ports(cluster)
    usable: list[bool] = []
    per_node: set[int] = set()
    by_dst: dict[IPv4Address, list[int]] = {}
    by_dport: dict[int, list[int]] = {}
    lengths: list[list[int]] = [[] for _ in SHARED]
    localhost = localhost_nodeports(cluster)
    hosts: dict[int, frozenset[str]] = {}
    elsewhere: dict[int, tuple[int, ...]] = {}
    total = 0
    for p, (_, svc, port) in enumerate(ports):
        count, ok, repeats = _scan(cluster, svc, port)
        total += count
        usable.append(ok)
        counts: tuple[int, ...] = (0,) * len(SHARED)
        # The firewall chain lets the node's own address through when a source
        # range holds it: the only place the node itself shows in a port's rules.
        if repeats or uses_local_endpoints(svc, port) or svc.load_balancer_source_ranges:
            per_node.add(p)
            hosts[p] = frozenset(
                ep.node for s in cluster.slices_of(svc) for ep in s.endpoints if ep.node
            )
            # "" is no node's name: every endpoint is remote, as on most nodes.
            cat = categorize(port_endpoints(cluster, svc, port, ""), svc, port)
            elsewhere[p] = _run_lengths(localhost, svc, port, cat.has_any, bool(cat.local))
        else:
            counts = _run_lengths(localhost, svc, port, ok, False)
        for slot, count in enumerate(counts):
            lengths[slot].append(count)
        for addr in (svc.cluster_ip, *svc.external_ips, *svc.load_balancer_ips):
            if addr is not None:
                by_dst.setdefault(addr, []).append(p)
        for number in (port.node_port, svc.health_check_node_port):
            if number:
                by_dport.setdefault(number, []).append(p)
    return ServiceTable(
        ports=ports,
        usable=tuple(usable),
        per_node=frozenset(per_node),
        by_dst=MappingProxyType({k: tuple(dict.fromkeys(v)) for k, v in by_dst.items()}),
        by_dport=MappingProxyType({k: tuple(dict.fromkeys(v)) for k, v in by_dport.items()}),
        large=total > LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
        lengths=tuple(tuple(counts) for counts in lengths),
        hosts=MappingProxyType(hosts),
        elsewhere=MappingProxyType(elsewhere),
    )


service_table = PerCluster(_service_table, many_objects=True)
"""`cluster`'s Service ports, found once per cluster object."""


_ports_listing = PerCluster(
    lambda cluster: listed_endpoints(
        cluster, ((svc, port) for _, svc, port in service_table(cluster).ports)
    )
)
"""Each endpoint (address as an integer, port) → the Service ports whose slices list it."""


@dataclass
class _Common:
    """The rules of a cluster's Service ports that are the same on every node, rendered and
    parsed once for all nodes (their runs in shared chains numbered from 1)."""

    lines: dict[int, dict[tuple[Table, str], list[str]]] = field(default_factory=dict)
    """Each rendered port's iptables-save lines, by table and chain."""
    chains: dict[str, Chain] = field(default_factory=dict)
    """Each parsed own chain (KUBE-SVC-, KUBE-SEP-, …)."""
    runs: dict[tuple[int, int], tuple[Rule, ...]] = field(default_factory=dict)
    """(shared chain, port) → the port's run, numbered from 1."""
    starts: dict[tuple[int, tuple[int, ...]], array[int] | None] = field(default_factory=dict)
    """(shared chain, how many rules a node's Local-policy ports add to it) → where each
    port's run starts (None: no port adds a rule)."""
    with_rules: dict[tuple[int, tuple[int, ...]], array[int]] = field(default_factory=dict)
    """The same key → the ports with rules in that chain, in order."""
    held: int = 0
    """Bytes held, estimated."""


COMMON_BYTES = 128 << 20
"""About how many bytes the parts every node shares may hold, all clusters together (past
it they are dropped and parsed anew as packets reach them)."""

_common: PerCluster[_Common] = PerCluster(lambda _: _Common())
"""A cluster's parts every node shares, filled as packets reach them."""


def common_bytes() -> int:
    """About how many bytes the parts every node shares hold."""
    return sum(common.held for common in _common.values())


def _bound_common() -> None:
    if common_bytes() <= COMMON_BYTES:
        return
    # Dropped whole: nodes still holding a part keep it, the rest render it again.
    for common in _common.values():
        common.lines.clear()
        common.chains.clear()
        common.runs.clear()
        common.starts.clear()
        common.with_rules.clear()
        common.held = 0


def _run_lengths(
    localhost: bool, svc: Service, port: ServicePort, has_any: bool, local: bool
) -> tuple[int, ...]:
    """How many rules `write_port` adds to each `SHARED` chain for this port (a render of
    the port checks these counts: see `LazyRules._render_port`)."""
    has_internal = has_any and (not internal_policy_local(svc) or local)
    has_external = has_any and (not external_policy_local(svc) or local)
    eips = len(svc.external_ips)
    lbs = len(svc.load_balancer_ips)
    uses_fw = has_any and lbs > 0 and bool(svc.load_balancer_source_ranges)
    health = (
        svc.type is ServiceType.LOAD_BALANCER
        and external_policy_local(svc)
        and bool(svc.health_check_node_port)
    )
    return (
        int(has_internal) + ((eips + lbs) if has_any else 0),
        (2 if localhost else 1) if port.node_port and has_any else 0,
        0 if has_internal else 1,
        0 if has_external else eips + lbs + int(bool(port.node_port)),
        int(health),
        lbs if uses_fw else 0,
    )


class _Policies(dict[str, str | None]):
    """A table's declared chains for the reader: the fixed ones, and each Service port's
    own chains once the port is rendered."""

    def __init__(self, fixed: dict[str, str | None], owner: dict[str, int]) -> None:
        super().__init__(fixed)
        self._owner = owner

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._owner

    def __missing__(self, name: str) -> str | None:
        if name in self._owner:
            return None
        raise KeyError(name)


@dataclass(frozen=True)
class _PortIndex(kernel_index.ChainIndex):
    """The walker's candidate index of a shared chain: the runs of the ports that own the
    packet's destination address or port, and the rules after every port's."""

    rules: LazyRules | None = None
    """The node's rules."""
    slot: int = 0
    """Which `SHARED` chain."""

    def candidates(self, pkt: Packet) -> list[int]:
        """Positions (0-based, ascending) of every rule `pkt` could match; the rest require
        another destination address or port."""
        assert self.rules is not None
        return self.rules.candidates(self.slot, pkt)


_NO_BUCKETS: MappingProxyType[kernel_index.Key, tuple[int, ...]] = MappingProxyType({})


class _SharedRules(Sequence[Rule]):
    """The rules of a `SHARED` chain, each rendered and parsed with its port's run when read."""

    def __init__(self, rules: LazyRules, slot: int) -> None:
        self._rules = rules
        self._slot = slot
        self._len = rules.shared_length(slot)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> Rule: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Rule, ...]: ...
    def __getitem__(self, i: int | slice) -> Rule | tuple[Rule, ...]:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        size = len(self)
        if i < 0:
            i += size
        if not 0 <= i < size:
            raise IndexError(i)
        return self._rules.shared_rule(self._slot, i)

    def __iter__(self) -> Iterator[Rule]:
        return self._rules.shared_rules(self._slot)


class _Table(dict[str, Chain]):
    """One table of `LazyRules`: each chain rendered and parsed when first asked for."""

    def __init__(self, rules: LazyRules, table: Table) -> None:
        super().__init__()
        self._rules = rules
        self._table = table

    def __getitem__(self, name: str) -> Chain:
        if dict.__contains__(self, name):
            chain: Chain = dict.__getitem__(self, name)
            if (self._table, name) in _SLOT:
                self._rules.index_for(chain, _SLOT[self._table, name])
            return chain
        chain = self._rules.chain(self._table, name)
        dict.__setitem__(self, name, chain)
        return chain

    def get(self, name: str, default: Any = None) -> Any:
        """The chain `name`, rendered now if it was not yet; `default` if it is not declared."""
        if name not in self:
            return default
        return self[name]

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or (
            isinstance(name, str) and self._rules.declares(self._table, name)
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules.whole().tables.get(self._table, {}))

    def __len__(self) -> int:
        return len(self._rules.whole().tables.get(self._table, {}))

    def keys(self) -> Any:
        """Every declared chain's name (from the whole text)."""
        return list(self)

    def values(self) -> Any:
        """Every chain, each rendered now if it was not yet."""
        return [self[name] for name in self]

    def items(self) -> Any:
        """Every chain with its name, each rendered now if it was not yet."""
        return [(name, self[name]) for name in self]


@dataclass
class _Parts:
    """What `LazyRules` has rendered and parsed so far (dropped whole by `release`)."""

    lines: dict[int, dict[tuple[Table, str], list[str]]] = field(default_factory=dict)
    """Each rendered port's iptables-save lines, by table and chain."""
    owner: dict[str, int] = field(default_factory=dict)
    """Each rendered port's own chains → the port."""
    runs: dict[tuple[int, int], tuple[Rule, ...]] = field(default_factory=dict)
    """(shared chain, port) → the port's run of rules in it, parsed."""
    text: str | None = None
    """The whole iptables-save text, once asked for."""
    whole: Ruleset | None = None
    """The whole text parsed (lazily), once a question needed it."""
    held: int = 0
    """Bytes held, estimated."""


class LazyRules:
    """One node's rules as kubehop renders them in iptables mode (a `NodeRules`), each
    Service port's part rendered and parsed when a packet first needs it."""

    rendered = True
    """Always True: kubehop wrote these from the cluster."""

    def __init__(
        self,
        cluster: Cluster,
        node: Node,
        extra: ForeignRules | None,
        place: Callable[[str], str] | None,
    ) -> None:
        self._cluster = cluster
        self._node = node
        self._extra = extra
        self._place = place
        self._source = f"{node.name} (rendered)"
        self._services = service_table(cluster)
        self._shared = _common(cluster)
        self._ctx = sync_context(cluster, node, large=self._services.large, restore_tokens=False)
        self._parts = _Parts()
        self._suffixes: dict[int, tuple[Rule, ...]] = {}
        self._setup()
        self._tables = {t: _Table(self, t) for t in self._fixed}
        self.ruleset = Ruleset.model_construct(
            source=self._source, tables=dict(self._tables), warnings=()
        )
        """The rules, parsed as packets reach them."""

    # --- NodeRules -------------------------------------------------------

    @property
    def node(self) -> str:
        """The node."""
        return self._node.name

    @property
    def ipsets(self) -> IpSets:
        """The sets the CNI's rules look up (iptables mode uses none)."""
        return self._extra.ipsets if self._extra is not None else {}

    @property
    def text(self) -> str:
        """The whole iptables-save text, rendered when first asked for."""
        parts = self._parts
        if parts.text is None:
            from sim.proxy.iptables import render_node_rules

            text = render_node_rules(self._cluster, self._node.name, self._extra)
            parts.text = self._place(text) if self._place is not None else text
            parts.held += len(parts.text)
        return parts.text

    @property
    def text_rendered(self) -> bool:
        """`text` returns at once: the whole text was rendered already."""
        return self._parts.text is not None

    def dnats_to(self, endpoint: tuple[IPv4Address, int]) -> bool:
        """Whether some rule DNATs to `endpoint` (as `sim.proxy.dnats_to` searches the whole
        text), rendering only the Service ports whose slices list it."""
        dnat = iptables_dnat_to(endpoint)
        if dnat.search(self._fixed_text):
            return True
        for p in _ports_listing(self._cluster).get((int(endpoint[0]), endpoint[1]), ()):
            lines = self._render_port(p)
            if any(dnat.search(line) for chain in lines.values() for line in chain):
                return True
        return False

    # --- parts, for a listing drawn a window at a time -------------------

    @property
    def cluster(self) -> Cluster:
        """The cluster the rules are rendered from."""
        return self._cluster

    @property
    def fixed_text(self) -> str:
        """The iptables-save text of every chain but the Service ports' own, the shared
        chains holding only the rules after every port's run (the CNI's placed)."""
        return self._fixed_text

    @property
    def services(self) -> ServiceTable:
        """The cluster's Service ports in sync's order."""
        return self._services

    @property
    def context(self) -> SyncContext:
        """The node's sync settings."""
        return self._ctx

    def run_starts(self, slot: int) -> array[int] | None:
        """Where each port's run starts in shared chain `slot` (None: no port adds one)."""
        return self._starts[slot]

    def port_lines(self, p: int) -> dict[tuple[Table, str], list[str]]:
        """Port `p`'s iptables-save lines by table and chain, rendered when first asked."""
        return self._render_port(p)

    # --- bounds ----------------------------------------------------------

    @property
    def held_bytes(self) -> int:
        """About how many bytes the rendered and parsed parts hold."""
        return self._fixed_bytes + self._parts.held

    def release(self) -> None:
        """Drop every rendered part (what still refers to this object renders them anew)."""
        self._parts = _Parts()
        for table in self._tables.values():
            for chain in dict.values(table):
                if isinstance(chain.rules, _SharedRules):
                    kernel_index.forget_index(chain)
            dict.clear(table)

    # --- setup -----------------------------------------------------------

    def _setup(self) -> None:
        ctx = self._ctx
        head = write_head(ctx)
        # Every Service port's run comes first in a shared chain: the sync writes
        # nothing there before them (after them: KUBE-SERVICES' NodePorts jump).
        assert not any(
            (table, rule[1]) in _SLOT
            for table, rules in ((Table.FILTER, head.filter_rules), (Table.NAT, head.nat_rules))
            for rule in rules
        )
        write_tail(head, ctx)
        text = save_text(head, self._extra)
        if self._place is not None:
            text = self._place(text)
        from sim.readers.iptables_save import parse_iptables_save

        fixed = parse_iptables_save(text, source=self._source, lazy=True)
        self._fixed_text = text
        self._fixed: dict[Table, LazyChains] = {
            t: c for t, c in fixed.tables.items() if isinstance(c, LazyChains)
        }
        # The text, its lines by chain and the reader's tables: measured 8 bytes a character.
        self._fixed_bytes = 8 * len(text)
        services = self._services
        # Only the ports under a Local policy (and the like) count differently on
        # each node; nodes that count them alike share their positions.
        mine: dict[int, tuple[int, ...]] = {}
        name = self._node.name
        for p in sorted(services.per_node):
            if name not in services.hosts[p]:
                mine[p] = services.elsewhere[p]
                continue
            _, svc, port = services.ports[p]
            cat = categorize(port_endpoints(self._cluster, svc, port, name), svc, port)
            mine[p] = _run_lengths(ctx.localhost_nodeports, svc, port, cat.has_any, bool(cat.local))
        self._starts: list[array[int] | None] = []
        self._keys: list[tuple[int, tuple[int, ...]]] = []
        for slot, base in enumerate(services.lengths):
            key = (slot, tuple(counts[slot] for counts in mine.values()))
            self._keys.append(key)
            if key not in self._shared.starts:
                counts_of = list(base)
                for p, counts in mine.items():
                    counts_of[p] = counts[slot]
                starts = array("q", itertools.accumulate(counts_of, initial=0))
                self._shared.starts[key] = starts if starts[-1] else None
                self._shared.held += 8 * len(starts)
            self._starts.append(self._shared.starts[key])

    # --- chains ----------------------------------------------------------

    def declares(self, table: Table, name: str) -> bool:
        """Whether `table` declares chain `name`."""
        fixed = self._fixed.get(table)
        if fixed is not None and name in fixed:
            return True
        if name in self._parts.owner:
            return table is Table.NAT
        if table is Table.NAT and name.startswith(_OWN_PREFIXES):
            return name in self.whole().tables.get(table, {})
        return False

    def chain(self, table: Table, name: str) -> Chain:
        """Chain `name` of `table`, its rules parsed (a shared chain's when read)."""
        slot = _SLOT.get((table, name))
        if slot is not None:
            # A sequence as long as the chain, not a tuple: what reads `rules` indexes,
            # slices, counts and iterates them, all of which it does as a tuple would.
            rules = cast(tuple[Rule, ...], _SharedRules(self, slot))
            chain = Chain.model_construct(name=name, policy=None, rules=rules)
            self.index_for(chain, slot)
            return chain
        fixed = self._fixed.get(table)
        if fixed is not None and name in fixed:
            found: Chain = fixed[name]
            self._parts.held += PARSED_RULE_BYTES * len(found.rules)
            return found
        if table is Table.NAT and name.startswith(_OWN_PREFIXES):
            p = self._parts.owner.get(name)
            if p is None and self.declares(table, name):
                # A name no packet led to (a test, a listing): the whole text knows it.
                whole: Chain = self.whole().tables[table][name]
                return whole
            if p is not None:
                lines = self._render_port(p).get((table, name), [])
                common = self._common_of(p)
                if common is not None and name in common.chains:
                    return common.chains[name]
                rules = parse_chain(table, name, lines, self._policies(table), self._source)
                chain = Chain.model_construct(name=name, policy=None, rules=rules)
                if common is not None:
                    common.chains[name] = chain
                    common.held += PARSED_RULE_BYTES * len(rules)
                    _bound_common()
                else:
                    self._parts.held += PARSED_RULE_BYTES * len(rules)
                return chain
        raise KeyError(name)

    def _policies(self, table: Table) -> _Policies:
        fixed = self._fixed.get(table)
        policies = dict(fixed.policies) if fixed is not None else {}
        return _Policies(policies, self._parts.owner if table is Table.NAT else {})

    def whole(self) -> Ruleset:
        """The whole text, parsed lazily: for questions about every chain."""
        parts = self._parts
        if parts.whole is None:
            from sim.readers.iptables_save import parse_iptables_save

            parts.whole = parse_iptables_save(self.text, source=self._source, lazy=True)
            parts.held += 2 * len(self.text)
        return parts.whole

    # --- shared chains -----------------------------------------------------

    def index_for(self, chain: Chain, slot: int) -> None:
        """Hand the walker `chain`'s candidate index (newest in its cache, so kept there
        while a walk uses it; a chain it forgot is indexed from every rule, as any other)."""
        index = kernel_index.registered_index(chain)
        if index is None:
            index = _PortIndex(_NO_BUCKETS, self, slot)
        kernel_index.register_index(chain, index)

    def _suffix(self, slot: int) -> tuple[Rule, ...]:
        """The rules after every port's run in shared chain `slot`, at their positions."""
        found = self._suffixes.get(slot)
        if found is None:
            table, name = SHARED[slot]
            fixed = self._fixed.get(table)
            rules = fixed[name].rules if fixed is not None and name in fixed else ()
            ports = self._port_rules(slot)
            found = tuple(rule.model_copy(update={"index": ports + rule.index}) for rule in rules)
            self._suffixes[slot] = found
        return found

    def _port_rules(self, slot: int) -> int:
        starts = self._starts[slot]
        return starts[-1] if starts is not None else 0

    def shared_length(self, slot: int) -> int:
        """How many rules the shared chain `slot` holds."""
        return self._port_rules(slot) + len(self._suffix(slot))

    def shared_rule(self, slot: int, i: int) -> Rule:
        """Rule `i` (0-based) of the shared chain `slot`."""
        starts = self._starts[slot]
        if starts is None or i >= starts[-1]:
            return self._suffix(slot)[i - self._port_rules(slot)]
        p = bisect_right(starts, i) - 1
        return self._run(slot, p)[i - starts[p]]

    def shared_rules(self, slot: int) -> Iterator[Rule]:
        """Every rule of shared chain `slot`, in order, each port's run parsed as reached."""
        for p in self._ports_in(slot):
            yield from self._run(slot, p)
        yield from self._suffix(slot)

    def _ports_in(self, slot: int) -> array[int]:
        """The ports with rules in shared chain `slot`, in order (shared by the nodes that
        count their Local-policy ports alike, as their positions are)."""
        key = self._keys[slot]
        found = self._shared.with_rules.get(key)
        if found is None:
            starts = self._starts[slot]
            found = array("i")
            if starts is not None:
                found.extend(p for p in range(len(starts) - 1) if starts[p + 1] > starts[p])
            self._shared.with_rules[key] = found
            self._shared.held += 4 * len(found)
        return found

    def _run(self, slot: int, p: int) -> tuple[Rule, ...]:
        parts = self._parts
        found = parts.runs.get((slot, p))
        if found is not None:
            return found
        table, name = SHARED[slot]
        starts = self._starts[slot]
        assert starts is not None
        # Rendered (or found rendered) first: the port's own chains are declared by it.
        lines = self._render_port(p).get((table, name), [])
        common = self._common_of(p)
        if common is None:
            found = parse_chain(
                table, name, lines, self._policies(table), self._source, first=starts[p] + 1
            )
            parts.held += PARSED_RULE_BYTES * len(found)
        else:
            base = common.runs.get((slot, p))
            if base is None:
                base = parse_chain(table, name, lines, self._policies(table), self._source)
                common.runs[slot, p] = base
                common.held += PARSED_RULE_BYTES * len(base)
                _bound_common()
            # The same rules, at this node's positions (its Local-policy ports before
            # this one may hold more or fewer rules than another node's).
            found = tuple(
                rule.model_copy(update={"index": rule.index + starts[p]}) for rule in base
            )
            parts.held += PARSED_RULE_BYTES // 2 * len(found)
        parts.runs[slot, p] = found
        return found

    def _common_of(self, p: int) -> _Common | None:
        """The parts every node shares, when port `p`'s rules are the same on every node."""
        return None if p in self._services.per_node else self._shared

    def candidates(self, slot: int, pkt: Packet) -> list[int]:
        """Positions of the rules of shared chain `slot` that `pkt` could match."""
        services = self._services
        starts = self._starts[slot]
        ports = starts[-1] if starts is not None else 0
        found: list[int] = []
        if starts is not None:
            owners = sorted(
                {*services.by_dst.get(pkt.dst, ()), *services.by_dport.get(pkt.dport, ())}
            )
            for p in owners:
                found += range(starts[p], starts[p + 1])
        found += range(ports, self.shared_length(slot))
        return found

    def _render_port(self, p: int) -> dict[tuple[Table, str], list[str]]:
        parts = self._parts
        found = parts.lines.get(p)
        if found is not None:
            return found
        common = self._common_of(p)
        found = common.lines.get(p) if common is not None else None
        if found is None:
            found = self._write_port(p)
            size = sum(len(line) + 60 for lines in found.values() for line in lines)
            if common is not None:
                common.lines[p] = found
                common.held += size
                _bound_common()
            else:
                parts.held += size
        for table, chain in found:
            if table is Table.NAT and chain.startswith(_OWN_PREFIXES):
                parts.owner[chain] = p
        parts.lines[p] = found
        return found

    def _write_port(self, p: int) -> dict[tuple[Table, str], list[str]]:
        name, svc, port = self._services.ports[p]
        out = Restore(localhost_nodeports=self._ctx.localhost_nodeports)
        eps = port_endpoints(self._cluster, svc, port, self._node.name)
        write_port(out, self._ctx, name, svc, port, eps)
        found: dict[tuple[Table, str], list[str]] = {}
        for table, rules in ((Table.FILTER, out.filter_rules), (Table.NAT, out.nat_rules)):
            for rule in rules:
                saved = rule.saved if isinstance(rule, Presaved) else save_rule(rule)
                found.setdefault((table, rule[1]), []).append(saved)
        for chain in out.nat_chains:
            found.setdefault((Table.NAT, chain), [])
        for slot, (table, chain) in enumerate(SHARED):
            starts = self._starts[slot]
            want = starts[p + 1] - starts[p] if starts is not None else 0
            got = len(found.get((table, chain), ()))
            # The positions of every other port's rules rest on these counts.
            assert got == want, f"{name}: {got} rules in {table.value}/{chain}, counted {want}"
        return found


def lazy_rules(
    cluster: Cluster,
    node: Node,
    extra: ForeignRules | None = None,
    place: Callable[[str], str] | None = None,
) -> LazyRules:
    """`node`'s rules, rendered a part at a time; `place` puts what the renderer does not
    place of `extra` in the text (as `sim.cluster.rules` does)."""
    return LazyRules(cluster, node, extra, place)


def renders_in_parts(extra: ForeignRules | None) -> bool:
    """Whether `extra` (the CNI's rules) leaves every chain Service ports write to as
    kube-proxy writes it, so that `LazyRules` may render them a port at a time."""
    if extra is None:
        return True
    shared = {name for _, name in SHARED}
    return not any(
        line.split()[1] in shared or line.split()[1].startswith(_OWN_PREFIXES)
        for lines in (*extra.rules.values(), *extra.first.values())
        for line in lines
    )
