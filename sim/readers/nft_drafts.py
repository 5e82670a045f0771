"""Drafts of nft tables, chains and sets, as the readers cut text into them, and their
building into `model.nftables`: at once, or a chain or set at a time when first asked
for (`LazyNftChains`, `LazyNftSets`).

A listed chain's draft keeps where its lines are in the text, a set's where its
`elements = { … }` lines are; a transaction's chain keeps its `add rule` lines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from model.errors import RulesParseError
from model.nftables import NftChain, NftElement, NftSet, NftUnknown
from sim.readers.nft_rule import (
    RuleWords,
    element_items,
    parse_priority,
    parse_rule,
    parse_seconds,
    tokens,
    unquote,
)

__all__ = [
    "FAMILIES",
    "ChainDraft",
    "LazyNftChains",
    "LazyNftSets",
    "NftParseError",
    "SetDraft",
    "TableDraft",
    "chain_header",
    "chain_line",
    "parse_error",
    "set_property",
]

FAMILIES = frozenset({"ip", "ip6", "inet", "arp", "bridge", "netdev"})
"""The table families nft has."""
_HOOKS = frozenset({"prerouting", "input", "forward", "output", "postrouting"})
_CHAIN_TYPES = frozenset({"filter", "nat", "route"})


_V = TypeVar("_V")


class NftParseError(RulesParseError):
    """Text that is not nft: a line names it."""


def parse_error(source: str, lineno: int, message: str) -> NftParseError:
    """The error for `message` at `source:lineno`, to raise."""
    return NftParseError(f"{source}:{lineno}: {message}")


def _span_lines(text: str, start: int, end: int, lineno: int) -> Iterator[tuple[str, int]]:
    """The lines of `text[start:end]` (which begins a line, numbered `lineno`), stripped."""
    for i, raw in enumerate(text[start:end].splitlines(), start=lineno):
        yield raw.strip(), i


@dataclass(slots=True)
class ChainDraft:
    """A chain as read so far: its declaration, and where its rules are."""

    # Also the declaration a lazily read table keeps until the chain is asked for:
    # `NftTable.base_chains` reads `name` and `hook` of either.
    name: str
    lineno: int
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    comment: str | None = None
    lines: list[tuple[str, int]] | None = None
    """Rules of a transaction (`add rule`), with their line numbers."""
    start: int = 0
    end: int = -1
    """A listed chain's lines after its `chain NAME {` (declaration and comment included),
    as where they begin and end in the text (none: -1)."""

    def rule_lines(self, text: str) -> Iterator[tuple[str, int]]:
        """The chain's rules as written, with their line numbers."""
        if self.end < 0:
            yield from self.lines or ()
            return
        for line, lineno in _span_lines(text, self.start, self.end, self.lineno + 1):
            if line and not line.startswith("#") and chain_line(line) is None:
                yield _strip_handle(line), lineno

    def build(self, text: str, source: str, warnings: list[str]) -> NftChain:
        """The chain, its rules parsed; a rule kubehop cannot evaluate adds a warning."""
        rules = []
        for i, (rule_text, lineno) in enumerate(self.rule_lines(text), start=1):
            rule = parse_rule(rule_text, self.name, i, lineno)
            unknown = [e for e in rule.exprs if isinstance(e, NftUnknown)]
            if unknown:
                warnings.append(
                    f"{source}:{lineno}: chain {self.name}: kubehop cannot evaluate "
                    f"{unknown[0].text!r}; the rule is assumed not to match"
                )
            rules.append(rule)
        # model_construct: the reader checked these words already (chain_header).
        return NftChain.model_construct(
            name=self.name,
            type=cast(Any, self.type),
            hook=cast(Any, self.hook),
            priority=self.priority,
            policy=cast(Any, self.policy),
            comment=self.comment,
            rules=tuple(rules),
            lineno=self.lineno,
        )


def chain_line(line: str) -> list[str] | None:
    """The words of a chain's declaration (`type … hook …`) or comment line; None for a rule."""
    if not line.startswith(("type", "comment")):
        return None
    words = tokens(line)
    if words[0] == "type" and "hook" in words:
        return words
    if words[0] == "comment" and len(words) == 2:
        return words
    return None


@dataclass(slots=True)
class SetDraft:
    """A set or map as read so far: its properties, and its elements or where they are."""

    name: str
    map: bool
    lineno: int
    key_type: tuple[str, ...] = ()
    data_type: str | None = None
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    size: int | None = None
    comment: str | None = None
    elements: dict[tuple[str, ...], NftElement] = field(default_factory=dict)
    listed: list[tuple[int, int, int]] = field(default_factory=list)
    """A listed set's `elements = { … }` lines (start, end, first line's number), read into
    `elements` when built."""

    def add_element(self, key: list[str], comment: str | None, value: str | None) -> None:
        """Add an element read from `{ … }`; a key already there keeps the element it has."""
        element = NftElement.model_construct(
            key=tuple(key), value=value, comment=comment, timeout=None
        )
        self.elements.setdefault(element.key, element)

    def build(self, text: str, source: str) -> NftSet:
        """The set, its listed elements read."""
        for start, end, lineno in self.listed:
            joined = " ".join(line for line, _ in _span_lines(text, start, end, lineno))
            _set_elements(self, joined, source, lineno)
        self.listed.clear()
        return NftSet.model_construct(
            name=self.name,
            map=self.map,
            key_type=self.key_type,
            data_type=self.data_type,
            flags=self.flags,
            timeout=self.timeout,
            size=self.size,
            comment=self.comment,
            elements=tuple(self.elements.values()),
            lineno=self.lineno,
        )


@dataclass
class TableDraft:
    """A table as read so far: its sets' and chains' drafts, in order."""

    family: str
    name: str
    lineno: int
    comment: str | None = None
    sets: dict[str, SetDraft] = field(default_factory=dict)
    chains: dict[str, ChainDraft] = field(default_factory=dict)


class _Lazy(dict[str, _V], ABC):
    """A table's chains or sets, each read from its lines the first time it is asked for.

    Until then the dict holds the block's draft: for a chain its declaration
    (type, hook, priority, policy), which is all the hook needs to find base
    chains. Asking for an entry (`[]`, `get`, `values`, `items`, comparing)
    reads it; `in`, `len` and the names read nothing.
    """

    _drafts: type[ChainDraft] | type[SetDraft]

    def __init__(
        self,
        drafts: Iterable[ChainDraft | SetDraft],
        text: str,
        source: str,
        warnings: list[str],
    ) -> None:
        super().__init__()
        self._text = text
        self._source = source
        self._warnings = warnings
        for draft in drafts:
            dict.__setitem__(self, draft.name, cast(Any, draft))

    @abstractmethod
    def _build(self, draft: Any) -> _V:
        """Parse `draft` (this mapping's draft type) into the value."""

    def __getitem__(self, name: str) -> _V:
        found = dict.__getitem__(self, name)
        if type(found) is self._drafts:
            found = self._build(found)
            dict.__setitem__(self, name, found)
        return found

    def get(self, name: str, default: Any = None) -> Any:
        """The entry `name`, read now if it was not yet."""
        if not dict.__contains__(self, name):
            return default
        return self[name]

    def values(self) -> Any:
        """Every entry, each read now if it was not yet."""
        return [self[name] for name in self]

    def items(self) -> Any:
        """Every (name, entry), each read now if it was not yet."""
        return [(name, self[name]) for name in self]

    def __iter__(self) -> Iterator[str]:
        # Overridden so that dict(self) and {**self} go through __getitem__.
        return dict.__iter__(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, dict):
            return NotImplemented
        return dict(self.items()) == (dict(other.items()) if isinstance(other, _Lazy) else other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal


class LazyNftChains(_Lazy[NftChain]):
    """A table's chains, each parsed from its lines when a packet first reaches it.

    A 10,000-Service node has 190,000 chains and a packet visits a handful.
    """

    _drafts = ChainDraft

    def _build(self, draft: Any) -> NftChain:
        return cast(ChainDraft, draft).build(self._text, self._source, self._warnings)


class LazyNftSets(_Lazy[NftSet]):
    """A table's sets and maps, each with its elements read when first looked up."""

    _drafts = SetDraft

    def _build(self, draft: Any) -> NftSet:
        return cast(SetDraft, draft).build(self._text, self._source)


def _strip_handle(line: str) -> str:
    # `nft -a list` appends `# handle N` to each rule.
    at = line.find(" # handle ")
    return line[:at] if at >= 0 else line


def chain_header(
    chain: ChainDraft, words: list[str], source: str, lineno: int, warnings: list[str]
) -> None:
    """Fill `chain`'s type, hook, priority and policy from the words of its declaration."""
    # type filter hook prerouting priority dstnat - 10 ; policy accept ;
    try:
        chain.type = words[1]
        hook_at = words.index("hook")
        chain.hook = words[hook_at + 1]
        prio_at = words.index("priority")
        end = words.index(";", prio_at)
        chain.priority = parse_priority(words[prio_at + 1 : end])
        chain.policy = words[words.index("policy") + 1] if "policy" in words else "accept"
    except (ValueError, IndexError) as err:
        raise parse_error(
            source, lineno, f"chain {chain.name}: cannot read its declaration ({err})"
        ) from None
    if chain.type not in _CHAIN_TYPES or chain.hook not in _HOOKS:
        # An ingress or egress chain, a bridge family's: no hook kubehop walks.
        warnings.append(
            f"{source}:{lineno}: chain {chain.name}: type {chain.type} hook {chain.hook} is not"
            " a hook kubehop walks; read as a regular chain"
        )
        chain.type = chain.hook = chain.policy = None
        chain.priority = None


def set_property(s: SetDraft, words: list[str], source: str, lineno: int) -> None:
    """Fill one of `s`'s properties (`type …`, `flags …`, `timeout …`, …) from its words."""
    name = words[0]
    try:
        if name == "type":
            key, _, data = " ".join(words[1:]).partition(" : ")
            s.key_type = tuple(k.strip() for k in key.split(" . "))
            s.data_type = data.strip() or None
        elif name == "typeof":
            # The key is named by expressions, not types: kept, not matched.
            s.key_type = ("typeof " + " ".join(words[1:]),)
        elif name == "flags":
            s.flags = tuple(w for w in words[1:] if w != ",")
        elif name == "timeout":
            s.timeout = parse_seconds(words[1])
        elif name == "size":
            s.size = int(words[1])
        elif name == "comment":
            s.comment = unquote(words[1])
        elif name in ("gc-interval", "policy", "auto-merge"):
            pass
        else:
            raise parse_error(source, lineno, f"set {s.name}: unexpected {' '.join(words)!r}")
    except ValueError as err:
        raise parse_error(source, lineno, f"set {s.name}: {err}") from None


def _set_elements(s: SetDraft, text: str, source: str, lineno: int) -> None:
    words = tokens(text[text.index("{") :])
    r = RuleWords(words, at=1)
    try:
        for key, comment, value in element_items(r, timeouts=True):
            s.add_element(key, comment, value)
    except (IndexError, ValueError) as err:
        raise parse_error(
            source, lineno, f"set {s.name}: cannot read its elements ({err})"
        ) from None
