"""A node's kube-proxy nft table rendered and parsed a Service port at a time, as packets reach it.

A node of a 10,000-Service cluster has 190,000 chains and maps of 20,000
elements; a packet visits a handful of chains and looks up a few keys.
`NodeTable` renders what every sync writes whatever the Services (`sync.setup`:
the table, its base chains, the fixed chains and rules, the sets' and maps'
declarations, the NodePort addresses) as one small listing, parsed by the same
reader as the whole. Each Service port's part (its chains, its endpoints'
chains and affinity sets, its elements of the shared maps) is written by the
same `sync.write_port` the whole comes from, the first time a packet needs it:

- a chain, when the walker first asks for it by name: a port's chains are
  named `PREFIX` + `HASH-namespace/name/protocol/port[__endpoint]`, so the name
  says whose it is (`PortIndex.by_name`);
- an element of a shared map (`sync.PORT_SETS`), when a packet's key is looked
  up: only ports whose ClusterIP, external or LB IP (`by_addr`) or NodePort
  (`by_node_port`) is the key's can have written it, and among them the first
  in sync's order wins, as `nft` keeps the first of two equal elements.

The elements of those maps are exact keys (one address, protocol and port):
no range of them can hold a key another element's range also holds, so a
lookup is the element with that key.

What a person sees (`listing`: `kubehop rules`, the rules pane), the
transaction the lab loads and every question about all chains or all elements
(iterating a table, `rules --diff`) come from the whole render, made when first
asked; once the whole is parsed, every lookup is answered from it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, TypeVar, overload

from model.cluster import Cluster, Node
from model.nftables import NftChain, NftElement, NftRuleset, NftSet, NftTable
from sim.collector import paused
from sim.kernel.nftables.sets import Key, KeyedElements, exact_key
from sim.memo import PerCluster
from sim.ondemand import OnDemand
from sim.proxy.base import nft_dnat_to
from sim.proxy.endpoints import listed_endpoints
from sim.proxy.nftables import names as n
from sim.proxy.nftables.sync import (
    PORT_SETS,
    SyncPort,
    Transaction,
    local_cidr,
    setup,
    sync,
    sync_ports,
    write_port,
)

__all__ = ["NodeTable", "PortIndex", "port_index"]

_PORT_CHAINS = (
    n.CLUSTER_PREFIX,
    n.LOCAL_PREFIX,
    n.EXTERNAL_PREFIX,
    n.FIREWALL_PREFIX,
    n.ENDPOINT_PREFIX,
)
"""The prefixes of the chains a Service port makes (after `services`' fixed names)."""

_HASH = 9
"""`HASH8-`: what a port's or endpoint's name begins with after its prefix."""

PARSED_RULE_BYTES = 2400
"""About what one parsed nft rule holds (its `NftRule`, expressions and text), for cache
bounds."""

ELEMENT_BYTES = 600
"""About what one looked-up element holds (its `NftElement` and its key)."""

_E = TypeVar("_E", NftChain, NftSet)

WHOLE_FACTOR = 4
"""Bytes per character the whole texts hold, with their parse (as `sim.cluster.rules`
counts a node rendered whole)."""


@dataclass(frozen=True)
class PortIndex:
    """A cluster's Service ports in sync's order, and what finds the ones a name or key needs."""

    ports: tuple[SyncPort, ...]
    """Every programmed Service port, in sync's order."""
    by_addr: dict[int, tuple[int, ...]]
    """ClusterIP, external IPs, LB IPs (as integers) → the ports with that address."""
    by_node_port: dict[int, tuple[int, ...]]
    """NodePort → the ports with it."""
    by_name: dict[str, tuple[int, ...]]
    """`namespace/name/protocol/port`, as chain names spell a port → the ports so named."""


def _port_index(cluster: Cluster) -> PortIndex:
    ports = sync_ports(cluster)
    by_addr: dict[int, list[int]] = {}
    by_node_port: dict[int, list[int]] = {}
    by_name: dict[str, list[int]] = {}
    for i, p in enumerate(ports):
        svc = p.service
        for addr in (svc.cluster_ip, *svc.external_ips, *svc.load_balancer_ips):
            if addr is not None:
                owners = by_addr.setdefault(int(addr), [])
                if not owners or owners[-1] != i:
                    owners.append(i)
        if p.port.node_port:
            by_node_port.setdefault(p.port.node_port, []).append(i)
        name = f"{svc.namespace}/{svc.name}/{p.protocol}/{p.port.name}"
        by_name.setdefault(name, []).append(i)
    return PortIndex(
        ports=ports,
        by_addr={k: tuple(v) for k, v in by_addr.items()},
        by_node_port={k: tuple(v) for k, v in by_node_port.items()},
        by_name={k: tuple(v) for k, v in by_name.items()},
    )


port_index = PerCluster(_port_index)
"""`cluster`'s Service ports and their indexes, built once per cluster object."""


def _endpoint_owners(cluster: Cluster) -> dict[tuple[int, int], tuple[int, ...]]:
    return listed_endpoints(cluster, ((p.service, p.port) for p in port_index(cluster).ports))


endpoint_owners = PerCluster(_endpoint_owners)
"""Each endpoint (address as an integer, port) → the ports whose slices list it, found once
per cluster object when first asked for (only `--pick` asks)."""


def _port_key(name: str) -> str | None:
    """`namespace/name/protocol/port` of a Service port's chain or affinity set name, "" for a
    name no Service port makes, None for a name cut to fit (which IPv4 names never are)."""
    if name.endswith("..."):
        return None
    for prefix in (*_PORT_CHAINS, n.AFFINITY_PREFIX):
        if name.startswith(prefix):
            if name[len(prefix) + _HASH - 1 : len(prefix) + _HASH] != "-":
                return ""
            return name[len(prefix) + _HASH :].split("__", 1)[0]
    return ""


@dataclass
class _Part:
    """One Service port's part of a node's table, rendered."""

    chains: dict[str, tuple[str | None, list[str]]]
    """Each chain it makes → its comment and its rules as `nft list` prints them."""
    elements: dict[str, dict[Key, NftElement]]
    """Per shared map, its elements by the key packets find them by."""
    sets: dict[str, NftSet]
    """The affinity sets it declares."""
    size: int
    """Bytes held, estimated."""


_NO_PART = _Part({}, {}, {}, 0)


class NodeTable:
    """One node's `ip kube-proxy` table, rendered and parsed a Service port at a time."""

    def __init__(self, cluster: Cluster, node: Node) -> None:
        from sim.readers.nftables import parse_nft

        self._cluster = cluster
        self._node = node
        self._index = port_index(cluster)
        self._cidr = local_cidr(cluster)
        self._setup = setup(cluster, node, script=False)
        text = self._setup.listing()
        self.source = f"{node.name} (rendered nft)"
        self._fixed_text = text
        fixed = parse_nft(text, source=self.source, lazy=True)
        (table,) = fixed.tables
        self._fixed = table
        self._fixed_bytes = 8 * len(text)
        self._parts: dict[int, _Part] = {}
        self._parts_bytes = 0
        self._listing: str | None = None
        self._transaction: str | None = None
        self._whole: NftTable | None = None
        self.table = NftTable.model_construct(
            family=table.family,
            name=table.name,
            comment=table.comment,
            sets=_Sets(self),
            chains=_Chains(self),
            lineno=table.lineno,
        )
        self.ruleset = NftRuleset.model_construct(
            source=self.source, tables=(self.table,), warnings=fixed.warnings
        )

    # --- what a listing drawn a window at a time reads -----------------------------------

    @property
    def cluster(self) -> Cluster:
        """The cluster."""
        return self._cluster

    @property
    def node(self) -> Node:
        """The node."""
        return self._node

    @property
    def index(self) -> PortIndex:
        """The cluster's Service ports in sync's order."""
        return self._index

    @property
    def cidr(self) -> str | None:
        """The cluster CIDR as the ports' rules write it."""
        return self._cidr

    @property
    def fixed_text(self) -> str:
        """The listing of what every sync writes whatever the Services (no port's part)."""
        return self._fixed_text

    # --- the whole ---------------------------------------------------------------------

    def listing(self) -> str:
        """`nft list table ip kube-proxy`, the whole table, rendered when first asked."""
        if self._listing is None:
            with paused():
                self._listing = sync(self._cluster, self._node, script=False).listing()
        return self._listing

    def transaction(self) -> str:
        """The whole transaction kube-proxy hands `nft -f`, rendered when first asked."""
        if self._transaction is None:
            with paused():
                tx = sync(self._cluster, self._node)
                self._transaction = tx.text()
                if self._listing is None:
                    self._listing = tx.listing()
        return self._transaction

    @property
    def listed(self) -> bool:
        """`listing` returns at once: the whole table was rendered already."""
        return self._listing is not None

    def whole(self) -> NftTable:
        """The whole listing, parsed lazily: for questions about every chain or element."""
        if self._whole is None:
            from sim.readers.nftables import parse_nft

            (self._whole,) = parse_nft(self.listing(), source=self.source, lazy=True).tables
        return self._whole

    @property
    def whole_parsed(self) -> bool:
        """Questions are answered from the whole table (it was parsed for one)."""
        return self._whole is not None

    # --- bounds ------------------------------------------------------------------------

    @property
    def held_bytes(self) -> int:
        """About how many bytes the rendered and parsed parts and texts hold."""
        texts = len(self._listing or "") + len(self._transaction or "")
        return self._fixed_bytes + self._parts_bytes + WHOLE_FACTOR * texts

    def release(self) -> None:
        """Drop every rendered part and the whole (what still refers to this table renders
        them anew)."""
        self._parts = {}
        self._parts_bytes = 0
        self._listing = self._transaction = None
        self._whole = None
        chains = self.table.chains
        sets = self.table.sets
        assert isinstance(chains, _Chains) and isinstance(sets, _Sets)
        chains.forget()
        sets.forget()

    # --- parts -------------------------------------------------------------------------

    def fixed_chain(self, name: str) -> NftChain | None:
        """A chain every sync writes, parsed from the setup's listing."""
        if dict.__contains__(self._fixed.chains, name):
            chain: NftChain = self._fixed.chains[name]
            self._parts_bytes += PARSED_RULE_BYTES * len(chain.rules)
            return chain
        return None

    def fixed_declarations(self) -> Iterator[tuple[str, Any]]:
        """The setup's chains as its table holds them before they are asked for (a draft
        with its name and hook, or the chain), by name."""
        return iter(dict.items(self._fixed.chains))

    def fixed_sets(self) -> Iterator[tuple[str, NftSet]]:
        """The setup's sets and maps as it declares them (a shared map has no element
        there), by name."""
        return ((name, self._fixed.sets[name]) for name in dict.keys(self._fixed.sets))

    def owners(self, name: str) -> tuple[int, ...] | None:
        """The ports a chain or affinity set called `name` may belong to; None when the name
        does not say (the whole table answers)."""
        key = _port_key(name)
        if key is None:
            return None
        return self._index.by_name.get(key, ()) if key else ()

    def part(self, p: int) -> _Part:
        """Port `p`'s part of the table, rendered when first asked."""
        found = self._parts.get(p)
        if found is None:
            found = self._render(p)
            self._parts[p] = found
            self._parts_bytes += found.size
        return found

    def _render(self, p: int) -> _Part:
        from sim.readers.nft_drafts import SetDraft

        tx: Transaction = self._setup.part()
        write_port(tx, self._cluster, self._node, self._index.ports[p], self._cidr)
        size = 200
        elements: dict[str, dict[Key, NftElement]] = {}
        sets: dict[str, NftSet] = {}
        for name, s in tx.sets.items():
            if name in PORT_SETS:
                found: dict[Key, NftElement] = {}
                for parts, (comment, value) in s.elements.items():
                    key = exact_key(s.key_type, parts)
                    assert key is not None, f"{name}: {parts} is not one value"
                    element = NftElement.model_construct(
                        key=parts, value=value, comment=comment, timeout=None
                    )
                    found.setdefault(key, element)
                if found:
                    elements[name] = found
                    size += ELEMENT_BYTES * len(found)
            elif name not in self._setup.sets:
                sets[name] = SetDraft(
                    name=name,
                    map=s.is_map,
                    lineno=0,
                    key_type=s.key_type,
                    data_type=s.data_type,
                    flags=s.flags,
                    timeout=s.timeout,
                    size=s.size,
                    comment=s.comment,
                ).build("", self.source)
                size += 400
        chains = {name: (c.comment, c.rules) for name, c in tx.chains.items()}
        size += sum(len(rule) + 60 for _, rules in chains.values() for rule in rules)
        return _Part(chains, elements, sets, size)

    def port_chain(self, name: str, owners: tuple[int, ...]) -> NftChain | None:
        """Chain `name` of the first of `owners` that makes it, parsed as the reader parses a
        listed chain (no line number: it is in no text)."""
        from sim.readers.nft_drafts import ChainDraft

        for p in owners:
            made = self.part(p).chains.get(name)
            if made is None:
                continue
            comment, lines = made
            draft = ChainDraft(name, 0, comment=comment, lines=[(text, 0) for text in lines])
            # kube-proxy's own rules: none that kubehop cannot evaluate, so no warning.
            chain = draft.build("", self.source, [])
            self._parts_bytes += PARSED_RULE_BYTES * len(chain.rules)
            return chain
        return None

    def port_set(self, name: str, owners: tuple[int, ...]) -> NftSet | None:
        """Affinity set `name` of the first of `owners` that declares it."""
        for p in owners:
            found = self.part(p).sets.get(name)
            if found is not None:
                return found
        return None

    def element(self, set_name: str, key: Key) -> NftElement | None:
        """The element of shared map `set_name` that `key` finds: the first port's in sync's
        order among those that may have written it."""
        index = self._index
        owners: tuple[int, ...] = ()
        if len(key) == 3 and isinstance(key[0], int) and isinstance(key[2], int):
            # address . protocol . port: a port with that address and number.
            dport = key[2]
            owners = tuple(
                p for p in index.by_addr.get(key[0], ()) if index.ports[p].port.port == dport
            )
        elif len(key) == 2 and isinstance(key[1], int):
            owners = index.by_node_port.get(key[1], ())
        elif len(key) == 1 and isinstance(key[0], int):
            owners = index.by_addr.get(key[0], ())
        for p in owners:
            found = self.part(p).elements.get(set_name, {}).get(key)
            if found is not None:
                self._parts_bytes += ELEMENT_BYTES
                return found
        return None

    def dnats_to(self, endpoint: tuple[IPv4Address, int]) -> bool:
        """Whether some rule DNATs to `endpoint` (as `sim.proxy.dnats_to` searches the whole
        listing), rendering only the Service ports whose slices list it."""
        dnat = nft_dnat_to(endpoint)
        if self._listing is not None:
            return dnat.search(self._listing) is not None
        if dnat.search(self._fixed_text):
            return True
        for p in endpoint_owners(self._cluster).get((int(endpoint[0]), endpoint[1]), ()):
            chains = self.part(p).chains.values()
            if any(dnat.search(rule) for _, rules in chains for rule in rules):
                return True
        return False


class _Entries(OnDemand[_E]):
    """A table's chains or sets: the setup's, and each Service port's once a packet asks for
    it by name. The dict itself holds what was asked for (and the setup's declarations);
    every question about all of them goes to the whole, and once the whole is parsed, so
    does every lookup."""

    _kind: type[_E]
    """What a held entry is once made (the setup's chains are held as drafts until then)."""

    def __init__(self, table: NodeTable) -> None:
        super().__init__()
        self._table = table
        self.forget()

    @abstractmethod
    def _declared(self) -> Iterable[tuple[str, Any]]:
        """What the dict holds before anything is asked for: the setup's, by name."""

    def _fixed(self, name: str) -> _E | None:
        """The setup's entry `name` that is not held made yet, None if it is no setup's."""
        return None

    @abstractmethod
    def _port(self, name: str, owners: tuple[int, ...]) -> _E | None:
        """Entry `name` of the first of `owners` that makes it."""

    def forget(self) -> None:
        """Hold the setup's declarations only."""
        dict.clear(self)
        dict.update(self, self._declared())

    def _find(self, name: str) -> _E | None:
        table = self._table
        if table.whole_parsed:
            return self._whole().get(name)
        held = dict.get(self, name)
        if isinstance(held, self._kind):
            return held
        made = self._fixed(name)
        if made is None:
            owners = table.owners(name)
            if owners is None:
                return self._whole().get(name)
            made = self._port(name, owners)
            if made is None:
                return None
        dict.__setitem__(self, name, made)
        return made


class _Chains(_Entries[NftChain]):
    """The table's chains (the setup's declarations are what `NftTable.base_chains` reads)."""

    _kind = NftChain

    def _declared(self) -> Iterable[tuple[str, Any]]:
        return self._table.fixed_declarations()

    def _fixed(self, name: str) -> NftChain | None:
        return self._table.fixed_chain(name)

    def _port(self, name: str, owners: tuple[int, ...]) -> NftChain | None:
        return self._table.port_chain(name, owners)

    def _whole(self) -> Mapping[str, NftChain]:
        return self._table.whole().chains


class _Elements(KeyedElements):
    """A shared map's elements: each key looked up among the ports that may have written it;
    as a sequence, the whole map's."""

    def __init__(self, table: NodeTable, name: str) -> None:
        self._table = table
        self._name = name

    def lookup(self, key: Key) -> NftElement | None:
        """The element `key` finds, or None."""
        return self._table.element(self._name, key)

    def _all(self) -> tuple[NftElement, ...]:
        whole: NftSet = self._table.whole().sets[self._name]
        return whole.elements

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, i: int) -> NftElement: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[NftElement, ...]: ...
    def __getitem__(self, i: int | slice) -> NftElement | tuple[NftElement, ...]:
        return self._all()[i]

    def __iter__(self) -> Iterator[NftElement]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, KeyedElements) else other)

    def __hash__(self) -> int:
        return hash(self._name)


class _Sets(_Entries[NftSet]):
    """The table's sets and maps: the setup's (the shared maps answering lookups a port at a
    time) and each port's affinity sets once asked for."""

    _kind = NftSet

    def _declared(self) -> Iterable[tuple[str, Any]]:
        for name, declared in self._table.fixed_sets():
            if name in PORT_SETS:
                declared = declared.model_copy(update={"elements": _Elements(self._table, name)})
            yield name, declared

    def _port(self, name: str, owners: tuple[int, ...]) -> NftSet | None:
        return self._table.port_set(name, owners)

    def _whole(self) -> Mapping[str, NftSet]:
        return self._table.whole().sets
