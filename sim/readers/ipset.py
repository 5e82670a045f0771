"""A node's ipsets, read from `ipset save` or `ipset list` text.

CNIs like Calico keep address lists in ipsets and match them from iptables
(`-m set --match-set cali40masq-ipam-pools src`). With the node's sets next to
its `iptables-save`, the engine looks the packet's addresses up in the sets;
without them such a match is assumed not to match and the trace says so.

Both forms people paste are read: `ipset save` (`create NAME TYPE …` and
`add NAME MEMBER` lines) and `ipset list` / `ipset -L` (a `Name:`, `Type:`,
`Header:` block, then `Members:` one a line). Every error names the file and
line it is about.
"""

from __future__ import annotations

import shlex
from ipaddress import IPv4Network

from model.errors import RulesParseError
from model.ipset import IPSET_DIMENSIONS, IpSet

__all__ = ["ipset_format", "is_ipset_text", "parse_ipset_save", "parse_ipsets"]


def ipset_format(text: str) -> str | None:
    """`save` or `list` when `text` starts as `ipset save` or `ipset list` prints; else None."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("create "):
            return "save"
        if line.startswith("Name: "):
            return "list"
        return None
    return None


def is_ipset_text(text: str) -> bool:
    """Whether `text` looks like `ipset save` or `ipset list` output."""
    return ipset_format(text) is not None


Member = tuple[IPv4Network | tuple[str, int], ...]


class _Sets:
    """Sets as their lines are read, in either format."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.types: dict[str, str] = {}
        self.ipv6: set[str] = set()
        self.members: dict[str, list[Member]] = {}

    def create(self, name: str, kind: str, options: list[str]) -> None:
        self.types[name] = kind
        self.members[name] = []
        if "family" in options and options[options.index("family") + 1 :][:1] == ["inet6"]:
            self.ipv6.add(name)

    def add(self, name: str, member: str, lineno: int) -> None:
        if name not in self.types:
            raise RulesParseError(
                f"{self.source}:{lineno}: add to set {name!r} before its create line"
            )
        kind = self.types[name]
        if name in self.ipv6 or kind not in IPSET_DIMENSIONS:
            return
        found = _member(member, IPSET_DIMENSIONS[kind], self.source, lineno)
        if kind == "bitmap:port":
            # A bitmap:port set holds port numbers whatever the protocol.
            found = tuple(("", d[1]) if isinstance(d, tuple) else d for d in found)
        self.members[name].append(found)

    def sets(self) -> dict[str, IpSet]:
        return {
            name: IpSet(name, kind, tuple(self.members[name]), name in self.ipv6)
            for name, kind in self.types.items()
        }


def parse_ipsets(text: str, source: str) -> dict[str, IpSet]:
    """The sets in `ipset save` or `ipset list` text; one-line `RulesParseError` on a line it
    cannot read, naming `source` and the line."""
    sets = _Sets(source)
    listing: str | None = None  # the set whose `ipset list` block is being read
    in_members = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            if in_members:
                # `ipset list` ends a set's members with a blank line.
                listing, in_members = None, False
            continue
        if line.startswith("Name: "):
            listing, in_members = line.removeprefix("Name: ").strip(), False
            sets.create(listing, "", [])
            continue
        if listing is not None and not in_members:
            key, colon, value = line.partition(":")
            if not colon:
                raise RulesParseError(
                    f"{source}:{lineno}: unexpected line {line[:40]!r} in the `ipset list`"
                    f" block of set {listing!r} (expected 'Key: value' or Members:)"
                )
            if key == "Type":
                sets.create(listing, value.strip(), [])
            elif key == "Header":
                words = value.split()
                if "family" in words and words[words.index("family") + 1 :][:1] == ["inet6"]:
                    sets.ipv6.add(listing)
            elif key == "Members":
                in_members = True
            continue
        if in_members and listing is not None:
            # A member, maybe followed by its options (timeout 600, comment "…").
            sets.add(listing, line.split()[0], lineno)
            continue
        try:
            words = shlex.split(line)
        except ValueError as err:
            raise RulesParseError(f"{source}:{lineno}: cannot split into words: {err}") from None
        verb = words[0]
        if verb == "create" and len(words) >= 3:
            sets.create(words[1], words[2], words[3:])
        elif verb == "add" and len(words) >= 3:
            sets.add(words[1], words[2], lineno)
        else:
            raise RulesParseError(
                f"{source}:{lineno}: unexpected line {line[:40]!r} (expected `ipset save`'s"
                " create and add lines, or `ipset list`'s Name: blocks)"
            )
    return sets.sets()


def parse_ipset_save(text: str, source: str) -> dict[str, IpSet]:
    """The sets in `ipset save` (or `ipset list`) text; the same as `parse_ipsets`."""
    return parse_ipsets(text, source)


def _member(text: str, dims: tuple[str, ...], source: str, lineno: int) -> Member:
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
