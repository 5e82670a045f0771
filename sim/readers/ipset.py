"""`ipset save` text, read into the sets that `-m set --match-set` rules look up.

CNIs like Calico keep address lists in ipsets and match them from iptables
(`-m set --match-set cali40masq-ipam-pools src`). With the node's
`ipset save` next to its `iptables-save`, the engine looks the packet's
addresses up in the sets; without it such a match is assumed not to match
and the trace says so.
"""

from __future__ import annotations

import shlex
from ipaddress import IPv4Network

from model.errors import RulesParseError
from model.ipset import IPSET_DIMENSIONS, IpSet

__all__ = ["is_ipset_text", "parse_ipset_save"]


def is_ipset_text(text: str) -> bool:
    """Whether `text` looks like `ipset save` output (its first line creates a set)."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first.startswith("create ")


def parse_ipset_save(text: str, source: str) -> dict[str, IpSet]:
    """The sets in `ipset save` text; one-line `RulesParseError` on a line it cannot read."""
    types: dict[str, str] = {}
    ipv6: set[str] = set()
    members: dict[str, list[tuple[IPv4Network | tuple[str, int], ...]]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as err:
            raise RulesParseError(f"{source}:{lineno}: cannot split into words: {err}") from None
        verb = words[0]
        if verb == "create" and len(words) >= 3:
            name, kind = words[1], words[2]
            types[name] = kind
            members[name] = []
            if "family" in words and words[words.index("family") + 1 :][:1] == ["inet6"]:
                ipv6.add(name)
        elif verb == "add" and len(words) >= 3:
            name = words[1]
            if name not in types:
                raise RulesParseError(
                    f"{source}:{lineno}: add to set {name!r} before its create line"
                )
            if name in ipv6 or types[name] not in IPSET_DIMENSIONS:
                continue
            members[name].append(_member(words[2], IPSET_DIMENSIONS[types[name]], source, lineno))
        else:
            raise RulesParseError(
                f"{source}:{lineno}: unexpected line {line[:40]!r} (expected create or add, as"
                " `ipset save` prints)"
            )
    return {
        name: IpSet(name, kind, tuple(members[name]), name in ipv6) for name, kind in types.items()
    }


def _member(
    text: str, dims: tuple[str, ...], source: str, lineno: int
) -> tuple[IPv4Network | tuple[str, int], ...]:
    parts = text.split(",")
    if len(parts) != len(dims):
        raise RulesParseError(
            f"{source}:{lineno}: member {text!r} has {len(parts)} parts, not {len(dims)}"
        )
    out: list[IPv4Network | tuple[str, int]] = []
    for part, dim in zip(parts, dims, strict=True):
        try:
            if dim == "port":
                proto, _, number = part.rpartition(":")
                out.append(((proto or "tcp").lower(), int(number)))
            elif "-" in part:
                # A range (10.0.0.1-10.0.0.9) is kept as its first address.
                out.append(IPv4Network(part.split("-")[0]))
            else:
                out.append(IPv4Network(part, strict=False))
        except ValueError:
            raise RulesParseError(f"{source}:{lineno}: {part!r} is not an IPv4 {dim}") from None
    return tuple(out)
