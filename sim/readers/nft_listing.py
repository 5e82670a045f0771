"""Write nft's text: a table as `nft list table` prints it (nft 1.0.6, the version the lab
checks against), element order and line breaks included, and the pieces kube-proxy's
nftables mode renders with (`set_block`, `chain_block`, `table_text`).

The inverse of `sim.readers.nftables`, which reads such text back.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import Any

from model.nftables import NftChain, NftSet, NftTable

# nft's standard priority names for the ip and inet families.
PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
              "srcnat": 100}  # fmt: skip
# Where `nft list` spells a priority by name (nft 1.0.6, checked in the lab): dstnat
# only at prerouting, srcnat only at postrouting; the other names everywhere.
_NAMED_AT = {"dstnat": {"prerouting"}, "srcnat": {"postrouting"}}

Element = tuple[Sequence[str], str | None, str | None]
"""A set element as written: its key's parts, its comment, its value."""

__all__ = [
    "PRIORITIES",
    "Element",
    "base_chain_header",
    "chain_block",
    "chain_lines",
    "element_order",
    "element_text",
    "elements_line",
    "elements_per_line",
    "format_seconds",
    "nft_list_text",
    "priority_text",
    "set_block",
    "set_lines",
    "table_text",
]


def format_seconds(seconds: int) -> str:
    """As nft prints a timeout: `3h`, `1d`, `1h1m40s`, `10s`."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def priority_text(priority: int, hook: str) -> str:
    """A priority as `nft list` prints it: `dstnat - 10` at prerouting, `-110` at input."""
    best: tuple[int, str] | None = None
    for name, value in PRIORITIES.items():
        allowed = _NAMED_AT.get(name)
        if allowed is not None and hook not in allowed:
            continue
        offset = priority - value
        if abs(offset) <= 10 and (best is None or abs(offset) < abs(best[0])):
            best = (offset, name)
    if best is None:
        return str(priority)
    offset, name = best
    if offset == 0:
        return name
    return f"{name} {'+' if offset > 0 else '-'} {abs(offset)}"


_PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}


def _packed(address: str) -> bytes:
    # inet_pton takes what IPv4Address takes (four decimal octets, no leading
    # zeros) in a tenth of the time; a big node sorts 20,000 elements by address.
    try:
        return socket.inet_pton(socket.AF_INET, address)
    except OSError:
        raise ValueError(f"not an IPv4 address: {address!r}") from None


def _component_bytes(kind: str, value: str) -> bytes:
    if kind == "ipv4_addr":
        return _packed(value.split("/")[0])
    if kind == "inet_proto":
        return bytes((_PROTOCOLS.get(value) or int(value), 0, 0, 0))
    if kind == "inet_service":
        return int(value).to_bytes(2, "big") + b"\0\0"
    return value.encode()[:16].ljust(16, b"\0")


def element_order(key_type: Sequence[str]) -> Any:
    """The sort key nft lists a set's elements by (checked against nft 1.0.6 in the lab).

    One address sorts by its value. A concatenation sorts as nft's sort compares
    the whole key register, each component padded to 4 bytes, as one
    little-endian number: the port's low byte first, then its high byte, then
    the protocol, then the address from its last byte.
    """
    if len(key_type) == 1 and key_type[0] == "ipv4_addr":
        return lambda key: int.from_bytes(_packed(key[0].split("/")[0]), "big")
    if len(key_type) == 1 and key_type[0] in ("inet_service", "mark"):
        return lambda key: int(key[0], 0)

    def little_endian(key: Sequence[str]) -> int:
        data = b"".join(_component_bytes(kind, v) for kind, v in zip(key_type, key, strict=False))
        return int.from_bytes(data, "little")

    return little_endian


_PER_LINE = {"ipv4_addr": 2, "ct_state": 2, "inet_proto": 5, "inet_service": 5, "mark": 5,
             "integer": 5}  # fmt: skip


def element_text(key: Sequence[str], comment: str | None, value: str | None) -> str:
    """An element as `nft list` prints it: `10.96.0.10 . tcp . 53 : goto service-…`."""
    text = " . ".join(key)
    if comment is not None:
        text += f' comment "{comment}"'
    if value is not None:
        text += f" : {value}"
    return text


def set_block(
    name: str,
    *,
    is_map: bool,
    key_type: Sequence[str],
    data_type: str | None = None,
    size: int | None = None,
    flags: Sequence[str] = (),
    timeout: int | None = None,
    comment: str | None = None,
    elements: Iterable[Element] = (),
) -> list[str]:
    """A set or map block as `nft list` prints it (one tab in), elements sorted as nft sorts."""
    kind = "map" if is_map else "set"
    key = " . ".join(key_type)
    lines = [f"\t{kind} {name} {{", f"\t\ttype {key}" + (f" : {data_type}" if is_map else "")]
    if size is not None:
        lines.append(f"\t\tsize {size}")
    if flags:
        lines.append(f"\t\tflags {','.join(flags)}")
    if timeout is not None:
        lines.append(f"\t\ttimeout {format_seconds(timeout)}")
    if comment is not None:
        lines.append(f'\t\tcomment "{comment}"')
    order = element_order(key_type)
    listed = sorted(elements, key=lambda e: order(e[0]))
    if listed:
        per_line = elements_per_line(key_type)
        texts = [element_text(*e) for e in listed]
        rows = [", ".join(texts[i : i + per_line]) for i in range(0, len(texts), per_line)]
        lines.append("\t\telements = { " + ",\n\t\t\t     ".join(rows) + " }")
    lines.append("\t}")
    return lines


def elements_per_line(key_type: Sequence[str]) -> int:
    """How many elements `nft list` prints on a line of a set of this type."""
    return _PER_LINE.get(key_type[0], 1) if len(key_type) == 1 else 1


def elements_line(texts: Sequence[str], first: bool, last: bool) -> str:
    """One line of a set's `elements = { … }`, holding `texts` (`element_text`s)."""
    lead = "\t\telements = { " if first else "\t\t\t     "
    return lead + ", ".join(texts) + (" }" if last else ",")


def set_lines(s: NftSet) -> list[str]:
    """A set or map of the model, as `nft list` prints it."""
    return set_block(
        s.name,
        is_map=s.map,
        key_type=s.key_type,
        data_type=s.data_type,
        size=s.size,
        flags=s.flags,
        timeout=s.timeout,
        comment=s.comment,
        elements=((e.key, e.comment, e.value) for e in s.elements),
    )


def base_chain_header(chain_type: str, hook: str, priority: int, policy: str = "accept") -> str:
    """`type filter hook prerouting priority dstnat - 10; policy accept;`"""
    return (
        f"type {chain_type} hook {hook} priority {priority_text(priority, hook)}; policy {policy};"
    )


def chain_block(
    name: str, header: str | None, comment: str | None, rules: Iterable[str]
) -> list[str]:
    """A chain block as `nft list` prints it (one tab in)."""
    lines = [f"\tchain {name} {{"]
    if header is not None:
        lines.append(f"\t\t{header}")
    if comment is not None:
        lines.append(f'\t\tcomment "{comment}"')
    lines += [f"\t\t{rule}" for rule in rules]
    lines.append("\t}")
    return lines


def chain_lines(c: NftChain) -> list[str]:
    """A chain of the model, as `nft list` prints it."""
    header = None
    if c.type is not None and c.hook is not None and c.priority is not None:
        header = base_chain_header(c.type, c.hook, c.priority, c.policy or "accept")
    return chain_block(c.name, header, c.comment, (rule.text for rule in c.rules))


def table_text(family: str, name: str, comment: str | None, blocks: Iterable[list[str]]) -> str:
    """A table as `nft list table` prints it: sets and maps first, then chains."""
    lines = [f"table {family} {name} {{"]
    if comment is not None:
        lines.append(f'\tcomment "{comment}"')
    for i, block in enumerate(blocks):
        if i:
            lines.append("")
        lines += block
    lines.append("}")
    return "\n".join(lines) + "\n"


def nft_list_text(table: NftTable) -> str:
    """`nft list table FAMILY NAME` of `table`."""
    blocks = [set_lines(s) for s in table.sets.values()]
    blocks += [chain_lines(c) for c in table.chains.values()]
    return table_text(table.family, table.name, table.comment, blocks)
