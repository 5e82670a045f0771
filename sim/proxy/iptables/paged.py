"""A node's iptables-save text whose lines are spelled when read: what a view of a big node draws.

At Kubernetes' scale limits a node's text has about 760,000 lines, and spelling
them all takes seconds; a view shows a screenful. `NodePages` knows where every
chain starts without spelling a rule: the chains every sync writes are in
`LazyRules.fixed_text`, each shared chain's runs are counted by `lazy`, and each
Service port's own chains (KUBE-SVC-, -SVL-, -EXT-, -FW-, -SEP-) are counted by
`sync.port_chains`. A line is spelled by rendering its Service port with the
same `LazyRules` traces use, and a port's own chain is checked against its count
when first read. Ports whose rules are alike on every node are counted once per
cluster; a node counts only its Local-policy ports (and the like) itself.

The rows are exactly `LazyRules.text`'s lines (tests join them and compare).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

from model.cluster import Cluster
from model.netfilter import Table
from sim.memo import PerCluster
from sim.proxy.endpoints import categorize, port_endpoints
from sim.proxy.iptables.lazy import SHARED, LazyRules, service_table
from sim.proxy.iptables.sync import port_chains, sync_context
from sim.readers.pages import Row, locate

__all__ = ["NodePages", "shared_part_ready"]


_SLOT = {(table.value, chain): slot for slot, (table, chain) in enumerate(SHARED)}
_NAT = Table.NAT.value


@dataclass(frozen=True)
class _OwnChains:
    """Service ports' own chains (all in nat), sorted, with their port and rule counts."""

    names: list[str]
    """Sorted."""
    counts: list[int]
    """How many rules each of `names` holds."""
    starts: array[int]
    """Where each of `names`' rules start, counted from the first's (one more: the end)."""
    port: dict[str, int]
    """Chain → the port (its place in `service_table`)."""
    rules: dict[str, int]
    """Chain → how many rules."""
    widest: int
    """The longest name of a chain with a rule."""
    most: int
    """The most rules one of them holds."""


def _own_chains(cluster: Cluster, ports: list[int], node: str) -> _OwnChains:
    services = service_table(cluster)
    found = cluster.node(node) if node else None
    ctx = sync_context(cluster, found or cluster.nodes[0], large=services.large)
    port: dict[str, int] = {}
    rules: dict[str, int] = {}
    for p in ports:
        name, svc, svc_port = services.ports[p]
        cat = categorize(port_endpoints(cluster, svc, svc_port, node), svc, svc_port)
        chains = port_chains(ctx, name, svc, svc_port, cat)
        rules.update(chains)
        port.update(dict.fromkeys(chains, p))
    names = sorted(rules)
    counts = [rules[c] for c in names]
    return _OwnChains(
        names,
        counts,
        array("q", accumulate(counts, initial=0)),
        port,
        rules,
        max((len(c) for c, k in rules.items() if k), default=0),
        max(counts, default=0),
    )


def _alike(cluster: Cluster) -> _OwnChains:
    services = service_table(cluster)
    alike = [p for p in range(len(services.ports)) if p not in services.per_node]
    # No node is named: these ports' chains do not depend on the node.
    return _own_chains(cluster, alike, "")


_alike_chains = PerCluster(_alike, many_objects=True)
"""The own chains of the Service ports whose rules are the same on every node."""


def shared_part_ready(cluster: Cluster) -> bool:
    """Whether the chains every node of `cluster` shares are counted (the slow part of a
    node's pages: each node's own part then takes milliseconds)."""
    return _alike_chains.peek(cluster) is not None


_NONE = _OwnChains([], [], array("q", [0]), {}, {}, 0, 0)


@dataclass
class _Section:
    """One table of the text: `*table`, its declarations, its rules chain by chain, COMMIT.

    Its user chains are the many every node shares (`shared`: the Service ports'
    whose rules are alike everywhere) merged with the few of the node's own (the
    chains every sync writes, the CNI's, its Local-policy ports'): each of its own
    is placed among the shared by one search, so a node is set up without copying
    the shared lists (190,000 chains at the scale limits).
    """

    table: str
    first: int
    """The row of its `*table` line."""
    head: list[str]
    """`*table` and the built-in chains' declarations."""
    builtins: list[str] = field(default_factory=list)
    """The built-in chains, in iptables-save's order."""
    builtin_starts: array[int] = field(default_factory=lambda: array("q", [0]))
    """Where each built-in chain's rules start, from the table's first rule (one more: the end)."""
    shared: _OwnChains = _NONE
    """The user chains every node has alike."""
    own: list[str] = field(default_factory=list)
    """The node's own user chains, sorted."""
    own_counts: list[int] = field(default_factory=list)
    """How many rules each of `own` holds."""
    own_shared: list[int] = field(default_factory=list)
    """How many shared chains sort before each of `own`."""
    own_positions: list[int] = field(default_factory=list)
    """Each of `own`'s place among every user chain."""
    own_rows: array[int] = field(default_factory=lambda: array("q"))
    """Where each of `own`'s rules start, from the first user chain's rule."""
    own_before: array[int] = field(default_factory=lambda: array("q", [0]))
    """How many rules the first k of `own` hold (k = 0…len)."""
    fixed: dict[str, list[str]] = field(default_factory=dict)
    """The rules `fixed_text` holds, by chain."""

    @property
    def user_count(self) -> int:
        return len(self.shared.names) + len(self.own)

    @property
    def rule_total(self) -> int:
        return self.builtin_starts[-1] + self.shared.starts[-1] + self.own_before[-1]

    @property
    def rules_first(self) -> int:
        return self.first + len(self.head) + self.user_count

    @property
    def size(self) -> int:
        return len(self.head) + self.user_count + self.rule_total + 1

    def user(self, position: int) -> str:
        """The user chain at `position` in sorted order."""
        j = bisect_right(self.own_positions, position) - 1
        if j >= 0 and self.own_positions[j] == position:
            return self.own[j]
        return self.shared.names[position - (j + 1)]

    def place(self) -> None:
        """Set the derived positions once `own`, its counts and `own_shared` are set."""
        self.own_positions = [at + j for j, at in enumerate(self.own_shared)]
        before = array("q", accumulate(self.own_counts, initial=0))
        self.own_before = before
        starts = self.shared.starts
        self.own_rows = array("q", (starts[at] + before[j] for j, at in enumerate(self.own_shared)))

    def rule_at(self, offset: int) -> tuple[str, int]:
        """The chain holding rule `offset` (0-based, from the table's first rule) and the
        rule's 0-based place in it."""
        builtins = self.builtin_starts
        if offset < builtins[-1]:
            i = bisect_right(builtins, offset) - 1
            return self.builtins[i], offset - builtins[i]
        offset -= builtins[-1]
        j = bisect_right(self.own_rows, offset) - 1
        if j >= 0 and offset < self.own_rows[j] + self.own_counts[j]:
            return self.own[j], offset - self.own_rows[j]
        # A shared chain after `own`'s first j + 1.
        shifted = offset - self.own_before[j + 1]
        starts = self.shared.starts
        i = bisect_right(starts, shifted) - 1
        return self.shared.names[i], shifted - starts[i]

    def chain_rows(self, chain: str) -> tuple[int, int] | None:
        """Where `chain`'s rules start (from the table's first rule) and how many it holds."""
        if chain in self.builtins:
            i = self.builtins.index(chain)
            return self.builtin_starts[i], self.builtin_starts[i + 1] - self.builtin_starts[i]
        base = self.builtin_starts[-1]
        j = bisect_left(self.own, chain)
        if j < len(self.own) and self.own[j] == chain:
            return base + self.own_rows[j], self.own_counts[j]
        names = self.shared.names
        i = bisect_left(names, chain)
        if i == len(names) or names[i] != chain:
            return None
        # The node's own chains sorting before it hold `own_before[j]` rules.
        return base + self.shared.starts[i] + self.own_before[j], self.shared.counts[i]


class NodePages:
    """A node's iptables-save text (`LazyRules.text`) as rows spelled when read."""

    def __init__(self, rules: LazyRules) -> None:
        self._rules = rules
        cluster = rules.cluster
        services = rules.services
        self._alike = _alike_chains(cluster)
        self._mine = _own_chains(cluster, sorted(services.per_node), rules.node)
        self._parts: list[_Section | str] = []
        self._firsts: list[int] = []
        self._by_table: dict[str, _Section] = {}
        self.most_rules = 0
        """The most rules a chain holds."""
        self.chain_width = 0
        """The longest name of a chain that holds a rule."""
        self._read(rules.fixed_text)
        self._lines = self._firsts[-1] + self._size(self._parts[-1]) if self._parts else 0
        self.rule_count = sum(section.rule_total for section in self._by_table.values())
        """How many rules."""

    @property
    def node(self) -> str:
        """The node."""
        return self._rules.node

    def __len__(self) -> int:
        return self._lines

    def row(self, r: int) -> Row:
        """Row `r` (0-based): its line and where the line is."""
        at, offset = locate(self._firsts, self._lines, r)
        part = self._parts[at]
        if isinstance(part, str):
            return part, "", "", 0
        table = part.table
        if offset < len(part.head):
            return part.head[offset], table, "", 0
        offset -= len(part.head)
        if offset < part.user_count:
            return f":{part.user(offset)} - [0:0]", table, "", 0
        offset -= part.user_count
        if offset >= part.rule_total:
            return "COMMIT", table, "", 0
        chain, k = part.rule_at(offset)
        return self._rule(part, chain, k), table, chain, k + 1

    def find(self, table: str, chain: str, number: int) -> int | None:
        """The row of rule `number` (1-based) of `chain` in `table`, None if there is none."""
        section = self._by_table.get(table)
        found = section.chain_rows(chain) if section is not None else None
        if section is None or found is None or not 0 < number <= found[1]:
            return None
        return section.rules_first + found[0] + number - 1

    def find_line(self, line: str) -> int | None:
        """None: iptables-save prints no `ipvsadm-save` line."""
        return None

    # --- building --------------------------------------------------------

    @staticmethod
    def _size(part: _Section | str) -> int:
        return 1 if isinstance(part, str) else part.size

    def _add(self, part: _Section | str) -> None:
        first = self._firsts[-1] + self._size(self._parts[-1]) if self._parts else 0
        if isinstance(part, _Section):
            part.first = first
        self._parts.append(part)
        self._firsts.append(first)

    def _read(self, text: str) -> None:
        section: _Section | None = None
        users: list[str] = []
        for line in text.splitlines():
            if section is None:
                if line.startswith("*"):
                    section = _Section(line[1:].strip(), 0, [line])
                    users = []
                else:
                    self._add(line)
            elif line.startswith(":"):
                name, policy = line[1:].split(" ", 2)[:2]
                if policy == "-":
                    users.append(name)
                else:
                    section.builtins.append(name)
                    section.head.append(line)
            elif line.startswith("-A "):
                section.fixed.setdefault(line.split(" ", 2)[1], []).append(line)
            elif line.startswith("COMMIT"):
                self._close(section, users)
                self._add(section)
                section = None
            else:
                raise ValueError(f"unexpected line in iptables-save text: {line!r}")

    def _close(self, section: _Section, users: list[str]) -> None:
        table = section.table
        counts_of = {
            c: len(section.fixed.get(c, ())) + self._runs(table, c)
            for c in {*section.fixed, *(c for t, c in _SLOT if t == table)}
        }
        builtins = section.builtins
        section.builtin_starts = array(
            "q", accumulate((counts_of.get(c, 0) for c in builtins), initial=0)
        )
        if table == _NAT:
            counts_of.update(self._mine.rules)
            users = [*users, *self._mine.names]
            section.shared = self._alike
        section.own = sorted(users)
        section.own_counts = [counts_of.get(c, 0) for c in section.own]
        names = section.shared.names
        section.own_shared = [bisect_left(names, c) for c in section.own]
        section.place()
        self._by_table[table] = section
        self.most_rules = max(
            self.most_rules, section.shared.most, max(counts_of.values(), default=0)
        )
        self.chain_width = max(
            self.chain_width,
            section.shared.widest,
            max((len(c) for c in (*builtins, *section.own) if counts_of.get(c)), default=0),
        )

    def _runs(self, table: str, chain: str) -> int:
        """How many rules the Service ports' runs put in a shared chain."""
        slot = _SLOT.get((table, chain))
        starts = self._rules.run_starts(slot) if slot is not None else None
        return starts[-1] if starts is not None else 0

    # --- reading ---------------------------------------------------------

    def _rule(self, section: _Section, chain: str, k: int) -> str:
        table = section.table
        slot = _SLOT.get((table, chain))
        if slot is not None:
            starts = self._rules.run_starts(slot)
            runs = starts[-1] if starts is not None else 0
            if starts is not None and k < runs:
                p = bisect_right(starts, k) - 1
                return self._port_line(p, table, chain, k - starts[p])
            k -= runs
        elif table == _NAT:
            owner = self._mine.port.get(chain)
            if owner is None:
                owner = self._alike.port.get(chain)
            if owner is not None:
                return self._port_line(owner, table, chain, k)
        return section.fixed[chain][k]

    def _port_line(self, p: int, table: str, chain: str, k: int) -> str:
        lines = self._rules.port_lines(p).get((Table(table), chain), [])
        counted = self._mine.rules.get(chain, self._alike.rules.get(chain))
        # Every later chain's place rests on these counts.
        assert counted is None or counted == len(lines), (
            f"{chain}: {len(lines)} rules rendered, {counted} counted"
        )
        return lines[k]
