"""`nft list table ip kube-proxy` of a node as rows made when read: what a view of a big node draws.

At Kubernetes' scale limits the table lists 190,000 chains and maps of 20,000
elements, about 900,000 lines, and rendering it whole takes seconds. `TablePages`
knows where every part starts without rendering it:

- the sets and chains every sync writes come from `NodeTable.fixed_text`;
- the shared maps' elements (`sync.PORT_SETS`) are made from each port's
  `sync.port_shape`, sorted as nft sorts them, the first port's element kept where
  two ports add the same key, as `nft` keeps the first;
- each Service port's affinity sets and chains follow in sync's order, each port's
  block as long as its shape says; a port's block is rendered (with the same
  `write_port`, through `NodeTable.part`) when one of its rows is read, and checked
  against its shape.

Ports whose part is alike on every node are counted once per cluster; a node counts
only its Local-policy ports (and ports listing an endpoint twice) itself.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from model.cluster import Cluster
from sim.memo import PerCluster
from sim.proxy.endpoints import categorize, port_endpoints, port_listings, uses_local_endpoints
from sim.proxy.nftables import names as n
from sim.proxy.nftables.lazy import NodeTable, port_index
from sim.proxy.nftables.sync import FAMILY, PORT_SETS, PortShape, local_cidr, port_shape, setup
from sim.readers.nft_listing import (
    chain_block,
    element_order,
    element_text,
    elements_line,
    elements_per_line,
    set_lines,
)
from sim.readers.pages import Row, index_rows, locate

__all__ = ["TablePages", "shared_part_ready"]

_LABEL = f"{FAMILY} {n.TABLE}"
"""How rows key the table (`ip kube-proxy`)."""

_SET_LINES = 6
"""An affinity set's block: `set NAME {`, type, size, flags, timeout, `}`."""

Entry = tuple[int, int, str]
"""A shared map's element: (nft's sort key, the port that added it first, its text)."""


@dataclass(frozen=True)
class _Shapes:
    """Service ports' parts, counted: the ports alike on every node, or one node's own."""

    shapes: dict[int, PortShape]
    """Port (its place in `port_index`) → its shape."""
    elements: dict[str, list[Entry]]
    """Per shared map, its elements sorted as nft lists them (first port's kept)."""
    set_lines: dict[int, int]
    """Port → the lines of its affinity sets' blocks (a blank line after each)."""
    chain_lines: dict[int, int]
    """Port → the lines of its chains' blocks (a blank line after each)."""
    rules: int
    """How many rules the ports' chains hold."""
    most: int
    """The most rules one of their chains holds."""


def _declared_key_types(cluster: Cluster) -> dict[str, tuple[str, ...]]:
    declared = setup(cluster, cluster.nodes[0], script=False).sets
    return {name: declared[name].key_type for name in PORT_SETS}


_key_types = PerCluster(_declared_key_types)
"""Each shared map's key type, as the setup declares it (made once per cluster, not per node)."""


def _shapes(cluster: Cluster, ports: list[int], node: str) -> _Shapes:
    index = port_index(cluster)
    found = cluster.node(node) if node else None
    where = found or cluster.nodes[0]
    cidr = local_cidr(cluster)
    shapes: dict[int, PortShape] = {}
    for p in ports:
        svc, port = index.ports[p].service, index.ports[p].port
        cat = categorize(port_endpoints(cluster, svc, port, node), svc, port)
        shapes[p] = port_shape(cluster, where, index.ports[p], cidr, cat)
    counts = [k for shape in shapes.values() for _, k in shape.chains]
    return _Shapes(
        shapes,
        _sorted_elements(shapes, _key_types(cluster)),
        {p: (_SET_LINES + 1) * len(shape.affinity_sets) for p, shape in shapes.items()},
        {p: sum(k + 3 for _, k in shape.chains) for p, shape in shapes.items()},
        sum(counts),
        max(counts, default=0),
    )


def _sorted_elements(
    shapes: dict[int, PortShape], key_types: dict[str, tuple[str, ...]]
) -> dict[str, list[Entry]]:
    orders: dict[str, Callable[[Any], int]] = {
        name: element_order(key_types[name]) for name in PORT_SETS
    }
    first: dict[str, dict[int, Entry]] = {name: {} for name in PORT_SETS}
    for p in sorted(shapes):
        for name, key, comment, value in shapes[p].elements:
            order = orders[name](key)
            kept = first[name]
            if order not in kept:
                kept[order] = (order, p, element_text(key, comment, value))
    return {name: sorted(kept.values()) for name, kept in first.items()}


def _varies(cluster: Cluster, p: int) -> bool:
    """Whether port `p`'s part differs from node to node: a Local policy, or an endpoint listed
    twice (kube-proxy keeps the node's own copy)."""
    port = port_index(cluster).ports[p]
    if uses_local_endpoints(port.service, port.port):
        return True
    listed = seen = 0
    unique: set[tuple[int, int]] = set()
    for number, endpoints in port_listings(cluster, port.service, port.port):
        listed += len(endpoints)
        unique.update((int(ep.ip), number) for ep in endpoints)
    seen = len(unique)
    return seen != listed


@dataclass(frozen=True)
class _Alike:
    """The ports alike on every node, counted once per cluster."""

    varying: frozenset[int]
    """The ports each node counts for itself."""
    shapes: _Shapes
    set_lines_of: list[int]
    """Per port in sync's order, its affinity sets' lines (0 for a varying port)."""
    chain_lines_of: list[int]
    """Per port in sync's order, its chains' lines (0 for a varying port)."""


def _alike(cluster: Cluster) -> _Alike:
    count = len(port_index(cluster).ports)
    varying = frozenset(p for p in range(count) if _varies(cluster, p))
    shapes = _shapes(cluster, [p for p in range(count) if p not in varying], "")
    return _Alike(
        varying,
        shapes,
        [shapes.set_lines.get(p, 0) for p in range(count)],
        [shapes.chain_lines.get(p, 0) for p in range(count)],
    )


_alike_shapes = PerCluster(_alike, many_objects=True)
"""What every node of a cluster shares of its table, counted."""


def shared_part_ready(cluster: Cluster) -> bool:
    """Whether what every node of `cluster` shares is counted (the slow part of a node's
    pages: each node's own part then takes milliseconds)."""
    return _alike_shapes.peek(cluster) is not None


def _merged(alike: list[Entry], mine: list[Entry]) -> list[Entry]:
    """`alike` with `mine` merged in by sort key, the earlier port's element kept on a tie."""
    merged: list[Entry] = []
    start = 0
    for entry in sorted(mine):
        at = bisect_left(alike, (entry[0],), start)
        merged += alike[start:at]
        start = at
        if at < len(alike) and alike[at][0] == entry[0]:
            merged.append(min(alike[at], entry, key=lambda e: e[1]))
            start += 1
        elif not merged or merged[-1][0] != entry[0]:
            merged.append(entry)
    return merged + alike[start:]


class TablePages:
    """A node's `nft list table ip kube-proxy` as rows made when read."""

    def __init__(self, table: NodeTable) -> None:
        self._table = table
        cluster = table.cluster
        self._key_types = _key_types(cluster)
        alike = _alike_shapes(cluster)
        mine = _shapes(cluster, sorted(alike.varying), table.node.name)
        self._alike = alike.shapes
        self._mine = mine
        self._elements = {
            name: [e[2] for e in _merged(alike.shapes.elements[name], mine.elements[name])]
            for name in PORT_SETS
        }
        self._set_starts = self._starts(alike.set_lines_of, mine.set_lines)
        self._chain_starts = self._starts(alike.chain_lines_of, mine.chain_lines)
        self._rendered: dict[tuple[int, bool], list[str]] = {}
        self._build(table.fixed_text.splitlines())

    # --- building --------------------------------------------------------

    @staticmethod
    def _starts(alike: list[int], mine: dict[int, int]) -> array[int]:
        """Where each port's block starts in its region: the lines every node shares, this
        node's own put in place."""
        lines = list(alike)
        for p, count in mine.items():
            lines[p] = count
        return array("q", accumulate(lines, initial=0))

    def _shape(self, p: int) -> PortShape:
        found = self._mine.shapes.get(p)
        return found if found is not None else self._alike.shapes[p]

    def _build(self, lines: list[str]) -> None:
        """Lay the rows out: the fixed listing's blocks with the shared maps' elements, then
        the ports' affinity sets after the fixed sets, and their chains after the fixed
        chains; a blank line between blocks, none after the last."""
        rows = index_rows(lines)
        # [head..] blocks separated by "" .. "}"
        body = rows[2:-1] if rows[1][0].startswith("\tcomment") else rows[1:-1]
        head = rows[: len(rows) - 1 - len(body)]
        blocks: list[list[Row]] = [[]]
        for row in body:
            if row[0] == "":
                blocks.append([])
            else:
                blocks[-1].append(row)
        # Segments: (length, kind, payload).
        segments: list[tuple[int, str, Any]] = [(len(head), "rows", head)]
        sets = [b for b in blocks if b and b[0][0].startswith(("\tset ", "\tmap "))]
        chains = [b for b in blocks if b and b[0][0].startswith("\tchain ")]
        assert len(sets) + len(chains) == len(blocks), "a block of the listing is neither"
        for block in sets:
            name = block[0][0].split()[1]
            if name in PORT_SETS and self._elements[name]:
                per_line = elements_per_line(self._key_types[name])
                count = math.ceil(len(self._elements[name]) / per_line)
                segments.append((len(block) - 1, "rows", block[:-1]))
                segments.append((count, "elements", (name, per_line)))
                segments.append((1, "rows", block[-1:]))
            else:
                segments.append((len(block), "rows", block))
            segments.append((1, "rows", [("", _LABEL, "", 0)]))
        segments.append((self._set_starts[-1], "port", False))
        self._chain_rows: dict[tuple[str, int], int] = {}
        first = sum(s[0] for s in segments)
        for block in chains:
            for offset, (_, _, chain, number) in enumerate(block):
                if number:
                    self._chain_rows[chain, number] = first + offset
            segments.append((len(block), "rows", block))
            segments.append((1, "rows", [("", _LABEL, "", 0)]))
            first += len(block) + 1
        self._chains_first = first
        segments.append((self._chain_starts[-1], "port", True))
        segments = [segment for segment in segments if segment[0]]
        # The blank after the last block is not there: the table's `}` comes instead.
        length, kind, payload = segments.pop()
        if kind == "port":
            segments.append((length - 1, kind, payload))
        segments.append((1, "rows", [rows[-1]]))
        self._segments = segments
        self._firsts = list(accumulate((s[0] for s in segments), initial=0))
        self._len = self._firsts.pop()
        self.rule_count = sum(1 for _, _, _, k in rows if k) + self._alike.rules + self._mine.rules
        self.most_rules = max(
            max((k for _, _, _, k in rows), default=0), self._alike.most, self._mine.most
        )
        self.chain_width = 0

    # --- reading ---------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def row(self, r: int) -> Row:
        """Row `r`."""
        at, offset = locate(self._firsts, self._len, r)
        length, kind, payload = self._segments[at]
        if kind == "rows":
            return payload[offset]  # type: ignore[no-any-return]
        if kind == "elements":
            name, per_line = payload
            texts = self._elements[name]
            return (
                elements_line(
                    texts[offset * per_line : (offset + 1) * per_line],
                    offset == 0,
                    offset == length - 1,
                ),
                _LABEL,
                "",
                0,
            )
        return self._port_row(offset, chains=payload)

    def _port_row(self, offset: int, *, chains: bool) -> Row:
        starts = self._chain_starts if chains else self._set_starts
        p = bisect_right(starts, offset) - 1
        lines = self._port_lines(p, chains)
        k = offset - starts[p]
        line = lines[k]
        if not chains:
            return line, _LABEL, "", 0
        # Which chain: each block is `chain NAME {`, its rules, `}`, a blank line.
        for name, count in self._shape(p).chains:
            if k < count + 3:
                if k == 0:
                    return line, _LABEL, name, 0
                if k <= count:
                    return line, _LABEL, name, k
                return line, _LABEL, "", 0
            k -= count + 3
        raise AssertionError(f"row {offset} is past port {p}'s chains")

    def _port_lines(self, p: int, chains: bool) -> list[str]:
        found = self._rendered.get((p, chains))
        if found is not None:
            return found
        part = self._table.part(p)
        shape = self._shape(p)
        lines: list[str] = []
        if chains:
            made = [(name, len(rules)) for name, (_, rules) in part.chains.items()]
            # Every later port's place rests on the shape's counts.
            assert made == list(shape.chains), f"port {p}: made {made}, counted {shape.chains}"
            for name, (comment, rules) in part.chains.items():
                lines += [*chain_block(name, None, comment, rules), ""]
        else:
            assert list(part.sets) == list(shape.affinity_sets), f"port {p}'s affinity sets"
            for name in shape.affinity_sets:
                block = set_lines(part.sets[name])
                assert len(block) == _SET_LINES, f"{name}: {len(block)} lines"
                lines += [*block, ""]
        if len(self._rendered) > 256:
            self._rendered.clear()
        self._rendered[p, chains] = lines
        return lines

    def find(self, table: str, chain: str, number: int) -> int | None:
        """The row of rule `number` of `chain` in `table`."""
        if table != _LABEL:
            return None
        fixed = self._chain_rows.get((chain, number))
        if fixed is not None:
            return fixed
        owners = self._table.owners(chain) or ()
        for p in owners:
            k = self._chain_starts[p]
            for name, count in self._shape(p).chains:
                if name == chain:
                    if not 0 < number <= count:
                        return None
                    return self._chains_first + k + number
                k += count + 3
        return None

    def find_line(self, line: str) -> int | None:
        """None: the table holds no `ipvsadm-save` line."""
        return None
