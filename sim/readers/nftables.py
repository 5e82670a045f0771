"""Read `nft list table …` / `nft list ruleset` text, or an `nft -f` transaction, into `model.nftables`.

Two spellings of the same tables: what `nft list` prints (blocks: `table ip
kube-proxy { chain … { … } }`, rules as the kernel gives them back) and what a
program hands `nft -f` (`add chain ip kube-proxy …`, `add rule …`, `add element
…`, applied in order). Both end in an `NftRuleset`. Rules kubehop cannot
evaluate are kept, their unknown part as `NftUnknown`, and listed in the
ruleset's `warnings` as `file:line`; only text that is not nft at all is an
error (one line, `file:line: …`).

`sim.readers.nft_listing` is the inverse (a table as `nft list table` prints
it). Rendered text is parsed a chain at a time, when a packet first
reaches the chain (`lazy=True`): a node of a 10,000-Service cluster has
hundreds of thousands of rules and a packet visits a handful of chains.
"""

from __future__ import annotations

import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from model.errors import RulesParseError
from model.nftables import (
    NftChain,
    NftCmp,
    NftCounter,
    NftElement,
    NftExpr,
    NftLog,
    NftMark,
    NftNat,
    NftNotrack,
    NftReject,
    NftRule,
    NftRuleset,
    NftSet,
    NftSetUpdate,
    NftTable,
    NftUnknown,
    NftVerdict,
    NftVmap,
)
from sim.readers.nft_listing import PRIORITIES

__all__ = ["is_nft_text", "parse_nft", "parse_rule"]

_FAMILIES = frozenset({"ip", "ip6", "inet", "arp", "bridge", "netdev"})
_HOOKS = frozenset({"prerouting", "input", "forward", "output", "postrouting"})
_CHAIN_TYPES = frozenset({"filter", "nat", "route"})


_V = TypeVar("_V")


class NftParseError(RulesParseError):
    """Text that is not nft: a line names it."""


# --- tokens ------------------------------------------------------------------------


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{},;]|[^\s{},;"]+')


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _unquote(word: str) -> str:
    return word[1:-1] if len(word) >= 2 and word[0] == word[-1] == '"' else word


# --- rules -----------------------------------------------------------------------------


# Selectors by their first word: the words that follow it and make one selector.
_TWO_WORDS = {
    "ip": {"saddr", "daddr", "protocol", "length", "ttl", "dscp"},
    "meta": {"l4proto", "mark", "iifname", "oifname", "iif", "oif", "nfproto", "protocol"},
    "th": {"dport", "sport"},
    "tcp": {"dport", "sport", "flags"},
    "udp": {"dport", "sport"},
    "sctp": {"dport", "sport"},
    "ct": {"state", "status", "mark", "direction"},
}
_ONE_WORD = {"mark": "meta mark", "iifname": "meta iifname", "oifname": "meta oifname",
             "iif": "meta iif", "oif": "meta oif", "l4proto": "meta l4proto"}  # fmt: skip
_FLAG_LISTS = frozenset({"ct state", "ct status", "tcp flags"})
_VERDICTS = frozenset({"accept", "drop", "return", "continue"})


def _mark(word: str) -> int:
    return int(word, 0)


def _hex(value: int) -> str:
    return f"0x{value:08x}"


@dataclass
class _Rule:
    """The words of one rule and where the parser is among them."""

    words: list[str]
    at: int = 0
    exprs: list[NftExpr] = field(default_factory=list)
    comment: str | None = None
    unknown: str | None = None

    def peek(self, ahead: int = 0) -> str | None:
        i = self.at + ahead
        return self.words[i] if i < len(self.words) else None

    def take(self) -> str:
        word = self.words[self.at]
        self.at += 1
        return word

    def done(self) -> bool:
        return self.at >= len(self.words)


def parse_rule(text: str, chain: str = "", index: int = 1, lineno: int = 0) -> NftRule:
    """One rule, in either spelling (`mark set mark or 0x4000` or `meta mark set meta mark | …`)."""
    r = _Rule(_tokens(text))
    while not r.done():
        start = r.at
        try:
            if not _expr(r):
                break
        except (IndexError, ValueError):
            r.at = start
            break
    if not r.done():
        rest = r.words[r.at :]
        if len(rest) >= 2 and rest[-2] == "comment" and rest[-1].startswith('"'):
            r.comment = _unquote(rest[-1])
            rest = rest[:-2]
        if rest:
            r.exprs.append(NftUnknown(text=" ".join(rest)))
    return NftRule.model_construct(
        chain=chain,
        index=index,
        text=text,
        lineno=lineno,
        exprs=tuple(r.exprs),
        comment=r.comment,
    )


def _expr(r: _Rule) -> bool:
    """Read one expression or statement; False when the words are not one kubehop knows."""
    word = r.peek()
    assert word is not None
    if word == "comment" and r.at == len(r.words) - 2:
        r.take()
        r.comment = _unquote(r.take())
        return True
    if word in _VERDICTS:
        r.take()
        r.exprs.append(NftVerdict(verdict=word))
        return True
    if word in ("jump", "goto"):
        r.take()
        r.exprs.append(NftVerdict(verdict=word, chain=r.take()))
        return True
    if word == "reject":
        r.take()
        with_ = "icmp-port-unreachable"
        if r.peek() == "with":
            r.take()
            kind = r.take()
            if kind == "tcp" and r.peek() == "reset":
                r.take()
                with_ = "tcp-reset"
            else:
                if r.peek() == "type":
                    r.take()
                with_ = f"{'icmp' if kind == 'icmpx' else kind}-{r.take()}"
        r.exprs.append(NftReject(reject_with=with_))
        return True
    if word == "counter":
        r.take()
        packets = bytes_ = 0
        while r.peek() in ("packets", "bytes"):
            name = r.take()
            value = int(r.take())
            if name == "packets":
                packets = value
            else:
                bytes_ = value
        r.exprs.append(NftCounter(packets=packets, bytes=bytes_))
        return True
    if word == "log":
        r.take()
        prefix = ""
        while r.peek() in ("prefix", "level", "flags", "group", "snaplen"):
            option = r.take()
            setting = r.take()
            if option == "prefix":
                prefix = _unquote(setting)
        r.exprs.append(NftLog(prefix=prefix))
        return True
    if word == "notrack":
        r.take()
        r.exprs.append(NftNotrack())
        return True
    if word in ("dnat", "snat", "masquerade", "redirect"):
        return _nat(r)
    if word in ("update", "add", "delete") and (r.peek(1) or "").startswith("@"):
        return _set_update(r)
    if word == "numgen":
        return _numgen(r)
    left = _selectors(r)
    if left is None:
        return False
    return _after_selectors(r, left)


def _selector(r: _Rule) -> str | None:
    word = r.peek()
    if word is None:
        return None
    if word == "fib" and r.peek(1) in ("daddr", "saddr") and r.peek(2) == "type":
        r.at += 3
        return f"fib {r.words[r.at - 2]} type"
    if word in _TWO_WORDS and r.peek(1) in _TWO_WORDS[word]:
        r.at += 2
        return f"{word} {r.words[r.at - 1]}"
    if word in _ONE_WORD:
        r.at += 1
        return _ONE_WORD[word]
    return None


def _selectors(r: _Rule) -> tuple[str, ...] | None:
    first = _selector(r)
    if first is None:
        return None
    left = [first]
    while r.peek() == "." and r.peek(1) is not None:
        r.take()
        nxt = _selector(r)
        if nxt is None:
            raise ValueError("a concatenation of something kubehop cannot read")
        left.append(nxt)
    return tuple(left)


def _after_selectors(r: _Rule, left: tuple[str, ...]) -> bool:
    word = r.peek()
    if word == "set" and left == ("meta mark",):
        r.take()
        r.exprs.append(_mark_set(r))
        return True
    if word == "vmap":
        r.take()
        target = r.take()
        if target.startswith("@"):
            r.exprs.append(NftVmap(left=left, map=target[1:]))
        elif target == "{":
            r.exprs.append(NftVmap(left=left, elements=_inline_elements(r)))
        else:
            raise ValueError("vmap of neither a map nor { … }")
        return True
    mask = None
    if word in ("&", "and") and left in (("meta mark",), ("ct mark",)):
        r.take()
        mask = _mark(r.take())
    op = "=="
    if r.peek() in ("==", "!=", "eq", "ne"):
        op = "!=" if r.take() in ("!=", "ne") else "=="
    against = r.peek()
    if against is None:
        raise ValueError("a selector with nothing to compare it with")
    if against.startswith("@"):
        r.take()
        r.exprs.append(NftCmp(left=left, mask=mask, op=op, set=against[1:]))
        return True
    if against == "{":
        r.take()
        values = tuple(" . ".join(key) for key, _, _ in _brace_items(r))
    else:
        values = _values(r, left)
    if left == ("meta mark",) or left == ("ct mark",):
        values = tuple(_hex(_mark(v)) for v in values)
    r.exprs.append(NftCmp(left=left, mask=mask, op=op, values=values))
    return True


def _values(r: _Rule, left: tuple[str, ...]) -> tuple[str, ...]:
    parts = [r.take()]
    while r.peek() == "." and len(parts) < len(left):
        r.take()
        parts.append(r.take())
    value = " . ".join(parts)
    if left[0] in _FLAG_LISTS:
        flags = [value]
        while r.peek() == "," and r.peek(1) is not None:
            r.take()
            flags.append(r.take())
        return (",".join(flags),)
    return (value,)


def _brace_items(r: _Rule) -> list[tuple[list[str], str | None, str | None]]:
    """`{ k [comment "c"] [: v], … }` after its `{`: each item's key parts, comment and value."""
    items: list[tuple[list[str], str | None, str | None]] = []
    key: list[str] = []
    comment: str | None = None
    value: list[str] | None = None
    while True:
        word = r.take()
        if word in (",", "}"):
            if key:
                items.append((key, comment, " ".join(value) if value is not None else None))
            key, comment, value = [], None, None
            if word == "}":
                return items
            continue
        if value is not None:
            value.append(word)
        elif word == ":":
            value = []
        elif word == "comment":
            comment = _unquote(r.take())
        elif word != ".":
            key.append(word)


def _inline_elements(r: _Rule) -> tuple[NftElement, ...]:
    return tuple(
        NftElement(key=tuple(key), value=value, comment=comment)
        for key, comment, value in _brace_items(r)
    )


def _mark_set(r: _Rule) -> NftMark:
    # `mark set mark or 0x4000`, `meta mark set meta mark | 0x00004000`, `… ^ …`, `… & …`,
    # `mark set 0x10`: all become the kernel's (mark & mask) ^ xor.
    if r.peek() == "mark" or (r.peek() == "meta" and r.peek(1) == "mark"):
        r.at += 1 if r.peek() == "mark" else 2
        op = r.take()
        value = _mark(r.take())
        if op in ("|", "or"):
            return NftMark(mask=~value & 0xFFFFFFFF, xor=value)
        if op in ("^", "xor"):
            return NftMark(mask=0xFFFFFFFF, xor=value)
        if op in ("&", "and"):
            return NftMark(mask=value, xor=0)
        raise ValueError(f"mark set with {op}")
    return NftMark(mask=0, xor=_mark(r.take()))


def _nat(r: _Rule) -> bool:
    action = r.take()
    addr = None
    port = port_hi = None
    if r.peek() == "ip" and r.peek(1) == "to":
        r.take()
    if r.peek() == "to":
        r.take()
        target = r.take()
        host, sep, ports = target.rpartition(":")
        if not sep:
            host, ports = target, ""
        if host:
            addr = ipaddress.IPv4Address(host)
        if ports:
            lo, _, hi = ports.partition("-")
            port = int(lo)
            port_hi = int(hi) if hi else None
    flags: list[str] = []
    while r.peek() in ("fully-random", "random", "persistent", ","):
        word = r.take()
        if word != ",":
            flags.append(word)
    r.exprs.append(NftNat(action=action, addr=addr, port=port, port_hi=port_hi, flags=tuple(flags)))
    return True


def _set_update(r: _Rule) -> bool:
    op = r.take()
    name = r.take()[1:]
    if r.take() != "{":
        raise ValueError("a set update without { … }")
    key: list[str] = []
    timeout = None
    while r.peek() != "}":
        if r.peek() == "timeout":
            r.take()
            timeout = parse_seconds(r.take())
            continue
        if r.peek() == ".":
            r.take()
            continue
        selector = _selector(r)
        if selector is None:
            raise ValueError("a set update of something kubehop cannot read")
        key.append(selector)
    r.take()
    r.exprs.append(NftSetUpdate(op=op, set=name, key=tuple(key), timeout=timeout))
    return True


def _numgen(r: _Rule) -> bool:
    r.take()
    if r.take() != "random" or r.take() != "mod":
        raise ValueError("numgen other than random")
    modulus = int(r.take())
    if r.take() != "vmap" or r.take() != "{":
        raise ValueError("numgen without a vmap")
    r.exprs.append(NftVmap(numgen=modulus, elements=_inline_elements(r)))
    return True


# --- times and priorities ---------------------------------------------------------------------


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")


def parse_seconds(text: str) -> int:
    """`3h`, `1h1m40s`, `10800s` (or a bare number of seconds) in seconds."""
    if text.isdigit():
        return int(text)
    found = _DURATION.fullmatch(text)
    if found is None or not text:
        raise ValueError(f"not a duration: {text}")
    d, h, m, s, _ms = (int(g) if g else 0 for g in found.groups())
    return ((d * 24 + h) * 60 + m) * 60 + s


def parse_priority(words: Sequence[str]) -> int:
    """`dstnat - 10`, `-110`, `srcnat`, `filter + 5` as a number."""
    text = "".join(words)
    found = re.fullmatch(r"([a-z]+)?([+-]?\d+)?", text)
    if found is None or (found.group(1) is None and found.group(2) is None):
        raise ValueError(f"not a priority: {' '.join(words)}")
    name, offset = found.groups()
    if name is not None and name not in PRIORITIES:
        raise ValueError(f"unknown priority name {name}")
    return (PRIORITIES[name] if name else 0) + (int(offset) if offset else 0)


# --- set elements ------------------------------------------------------------------------------


# Elements per line before nft breaks the line (src/expression.c calculate_delim).


"""An element as the printer takes it: key parts, comment, value."""


# --- tables: the listing ------------------------------------------------------------------------


def _span_lines(text: str, start: int, end: int, lineno: int) -> Iterator[tuple[str, int]]:
    """The lines of `text[start:end]` (which begins a line, numbered `lineno`), stripped."""
    for i, raw in enumerate(text[start:end].splitlines(), start=lineno):
        yield raw.strip(), i


@dataclass(slots=True)
class _ChainDraft:
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
            if line and not line.startswith("#") and _chain_line(line) is None:
                yield _strip_handle(line), lineno

    def build(self, text: str, source: str, warnings: list[str]) -> NftChain:
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
        # model_construct: the reader checked these words already (_chain_header).
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


def _chain_line(line: str) -> list[str] | None:
    """The words of a chain's declaration (`type … hook …`) or comment line; None for a rule."""
    if not line.startswith(("type", "comment")):
        return None
    words = _tokens(line)
    if words[0] == "type" and "hook" in words:
        return words
    if words[0] == "comment" and len(words) == 2:
        return words
    return None


@dataclass(slots=True)
class _SetDraft:
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

    def build(self, text: str, source: str) -> NftSet:
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
class _TableDraft:
    family: str
    name: str
    lineno: int
    comment: str | None = None
    sets: dict[str, _SetDraft] = field(default_factory=dict)
    chains: dict[str, _ChainDraft] = field(default_factory=dict)


class _Lazy(dict[str, _V], ABC):
    """A table's chains or sets, each read from its lines the first time it is asked for.

    Until then the dict holds the block's draft: for a chain its declaration
    (type, hook, priority, policy), which is all the hook needs to find base
    chains. Asking for an entry (`[]`, `get`, `values`, `items`, comparing)
    reads it; `in`, `len` and the names read nothing.
    """

    _drafts: type[_ChainDraft] | type[_SetDraft]

    def __init__(
        self,
        drafts: Iterable[_ChainDraft | _SetDraft],
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
    def _load(self, name: str, draft: Any) -> _V:
        """Parse `draft` (this mapping's draft type) into the value, and keep it under `name`."""

    def __getitem__(self, name: str) -> _V:
        found = dict.__getitem__(self, name)
        if type(found) is self._drafts:
            return self._load(name, found)
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

    _drafts = _ChainDraft

    def _load(self, name: str, draft: Any) -> NftChain:
        chain = cast(_ChainDraft, draft).build(self._text, self._source, self._warnings)
        dict.__setitem__(self, name, chain)
        return chain


class LazyNftSets(_Lazy[NftSet]):
    """A table's sets and maps, each with its elements read when first looked up."""

    _drafts = _SetDraft

    def _load(self, name: str, draft: Any) -> NftSet:
        built = cast(_SetDraft, draft).build(self._text, self._source)
        dict.__setitem__(self, name, built)
        return built


def is_nft_text(text: str) -> bool:
    """Whether `text` looks like `nft list` output or an `nft -f` transaction."""
    for line in text.splitlines():
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        return word.startswith(("table ", "add ", "flush ", "create ", "delete "))
    return False


def parse_nft(text: str, *, source: str = "<nft>", lazy: bool = False) -> NftRuleset:
    """`nft list ruleset`/`nft list table` output, or an `nft -f` transaction, as a ruleset.

    With `lazy`, chains are parsed and sets' elements read when first asked for
    (for text kubehop rendered; a user's file is read eagerly, so every warning
    shows). Either way the listing is first cut into blocks: the rules of a chain
    and the elements of a set are read from their lines afterwards.
    """
    tables: dict[tuple[str, str], _TableDraft] = {}
    warnings: list[str] = []
    if _first_line(text).startswith("table "):
        text = _read_listing(text, source, tables, warnings)
    else:
        _read_transaction(text.splitlines(), source, tables, warnings)
    built: list[NftTable] = []
    for draft in tables.values():
        chains: dict[str, NftChain]
        sets: dict[str, NftSet]
        if lazy:
            chains = LazyNftChains(draft.chains.values(), text, source, warnings)
            sets = LazyNftSets(draft.sets.values(), text, source, warnings)
        else:
            chains = {n: c.build(text, source, warnings) for n, c in draft.chains.items()}
            sets = {n: s.build(text, source) for n, s in draft.sets.items()}
        built.append(
            NftTable.model_construct(
                family=cast(Any, draft.family),
                name=draft.name,
                comment=draft.comment,
                sets=sets,
                chains=chains,
                lineno=draft.lineno,
            )
        )
    # Chains parsed later (lazy) report nothing here: kubehop's own rendering has no
    # rule it cannot read, and the walk names what it had to assume anyway.
    in_order = sorted(warnings, key=lambda w: int(w[len(source) + 1 :].split(":", 1)[0]))
    return NftRuleset.model_construct(source=source, tables=tuple(built), warnings=tuple(in_order))


def _first_line(text: str) -> str:
    """The first line that is neither blank nor a comment, stripped (without splitting all)."""
    for found in re.finditer(r"[^\r\n]+", text):
        line = found.group().strip()
        if line and not line.startswith("#"):
            return line
    return ""


def _fail(source: str, lineno: int, message: str) -> NftParseError:
    return NftParseError(f"{source}:{lineno}: {message}")


_ODD_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""What `str.splitlines` breaks lines at besides `\\n`."""


def _line_breaks(text: str) -> str:
    """`text` with `\\n` the only line break, its lines (as `splitlines` cuts them) unchanged."""
    odd = _ODD_BREAKS[:6] if text.isascii() else _ODD_BREAKS
    if any(c in text for c in odd):
        return "\n".join(text.splitlines())
    return text


def _lines_beginning(text: str, words: tuple[str, ...]) -> list[int]:
    """Where each line begins whose first word starts with one of `words`, in order."""
    found: set[int] = set()
    for word in words:
        at = text.find(word)
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            if start == at or text[start:at].isspace():
                found.add(start)
            at = text.find(word, at + 1)
    return sorted(found)


_CHAIN_OPENS = re.compile(r'chain\s+([^\s{},;"]+)\s*\{')
"""`chain NAME {`, as its words are: `chain`, the name, `{`."""


def _closing_line(text: str, at: int) -> int:
    """Where the first line from `at` on that is only `}` begins; -1 if none is."""
    while True:
        brace = text.find("}", at)
        if brace < 0:
            return -1
        start = text.rfind("\n", 0, brace) + 1
        end = text.find("\n", brace)
        if end < 0:
            end = len(text)
        if text[start:end].strip() == "}":
            return start
        at = end


def _read_listing(
    text: str,
    source: str,
    tables: dict[tuple[str, str], _TableDraft],
    warnings: list[str],
) -> str:
    """Cut a listing into tables, sets and chains; the text the drafts' spans point into.

    A chain's rules and a set's elements are left as spans of the text, read
    when built: a big node's listing is a million lines, nearly all of them
    rules. A chain's body is skipped to its closing `}` at once; only its
    declaration and comment lines are read (found beforehand by their first word).
    """
    text = _line_breaks(text)
    declarations = _lines_beginning(text, ("type", "comment"))
    table: _TableDraft | None = None
    nft_set: _SetDraft | None = None
    skipping = 0
    elements: tuple[int, int, int] | None = None  # open `elements = {`: start, line, depth
    decl = 0  # the next of `declarations` not yet passed
    pos = 0
    lineno = 0
    size = len(text)
    while pos < size:
        start = pos
        newline = text.find("\n", pos)
        pos = size if newline < 0 else newline + 1
        lineno += 1
        line = text[start:pos].strip()
        if elements is not None:
            at, first, depth = elements
            depth += line.count("{") - line.count("}")
            if depth > 0:
                elements = (at, first, depth)
                continue
            elements = None
            assert nft_set is not None
            nft_set.listed.append((at, pos, first))
            continue
        if not line or line[0] == "#":
            continue
        if skipping:
            skipping += line.count("{") - line.count("}")
            continue
        opened = _CHAIN_OPENS.fullmatch(line) if table is not None and nft_set is None else None
        if opened is not None:
            name = opened[1]
        else:
            words = _tokens(line)
            if table is None:
                if len(words) == 4 and words[0] == "table" and words[3] == "{":
                    family, name = words[1], words[2]
                    if family not in _FAMILIES:
                        raise _fail(source, lineno, f"unknown table family {family!r}")
                    table = _TableDraft(family, name, lineno)
                    tables[(family, name)] = table
                    continue
                raise _fail(source, lineno, f"expected `table FAMILY NAME {{`, found {line!r}")
            if nft_set is not None:
                if line == "}":
                    table.sets[nft_set.name] = nft_set
                    nft_set = None
                elif words[0] == "elements" and len(words) > 1 and words[1] == "=":
                    depth = line.count("{") - line.count("}")
                    if depth > 0:
                        elements = (start, lineno, depth)
                    else:
                        nft_set.listed.append((start, pos, lineno))
                else:
                    _set_property(nft_set, words, source, lineno)
                continue
            if line == "}":
                table = None
                continue
            if words[0] == "comment" and len(words) == 2:
                table.comment = _unquote(words[1])
                continue
            if words[0] in ("set", "map") and len(words) == 3 and words[2] == "{":
                nft_set = _SetDraft(words[1], words[0] == "map", lineno)
                continue
            if not (words[0] == "chain" and len(words) == 3 and words[2] == "{"):
                if words[-1] == "{":
                    warnings.append(
                        f"{source}:{lineno}: table {table.family} {table.name}: a {words[0]}"
                        " block, which kubehop does not evaluate; skipped"
                    )
                    skipping = 1
                elif words[0] != "flags":
                    raise _fail(source, lineno, f"unexpected {line!r} in table {table.name}")
                continue
            name = words[1]
        # Most of the listing: a chain, whose body is skipped to its closing `}`.
        assert table is not None
        chain = _ChainDraft(name, lineno)
        table.chains[name] = chain
        close = _closing_line(text, pos)
        if close < 0:
            lineno += text.count("\n", pos) + (1 if pos < size and text[-1] != "\n" else 0)
            raise _fail(source, lineno, "the text ends inside a block (a `}` is missing)")
        chain.start, chain.end = pos, close
        while decl < len(declarations) and declarations[decl] < close:
            at = declarations[decl]
            decl += 1
            if at < pos:
                continue
            end = text.find("\n", at)
            found = _chain_line(text[at : size if end < 0 else end].strip())
            if found is None:
                continue
            at_line = lineno + 1 + text.count("\n", pos, at)
            if found[0] == "type":
                _chain_header(chain, found, source, at_line, warnings)
            else:
                chain.comment = _unquote(found[1])
        lineno += 1 + text.count("\n", pos, close)
        newline = text.find("\n", close)
        pos = size if newline < 0 else newline + 1
    if table is not None or nft_set is not None or elements is not None:
        raise _fail(source, lineno, "the text ends inside a block (a `}` is missing)")
    return text


def _strip_handle(line: str) -> str:
    # `nft -a list` appends `# handle N` to each rule.
    at = line.find(" # handle ")
    return line[:at] if at >= 0 else line


def _chain_header(
    chain: _ChainDraft, words: list[str], source: str, lineno: int, warnings: list[str]
) -> None:
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
        raise _fail(
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


def _set_property(s: _SetDraft, words: list[str], source: str, lineno: int) -> None:
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
            s.comment = _unquote(words[1])
        elif name in ("gc-interval", "policy", "auto-merge"):
            pass
        else:
            raise _fail(source, lineno, f"set {s.name}: unexpected {' '.join(words)!r}")
    except ValueError as err:
        raise _fail(source, lineno, f"set {s.name}: {err}") from None


def _set_elements(s: _SetDraft, text: str, source: str, lineno: int) -> None:
    words = _tokens(text[text.index("{") :])
    r = _Rule(words, at=1)
    try:
        for key, comment, value in _element_items(r):
            element = NftElement.model_construct(
                key=tuple(key), value=value, comment=comment, timeout=None
            )
            s.elements.setdefault(element.key, element)
    except (IndexError, ValueError) as err:
        raise _fail(source, lineno, f"set {s.name}: cannot read its elements ({err})") from None


def _element_items(r: _Rule) -> list[tuple[list[str], str | None, str | None]]:
    # Like _brace_items, but a listed element may also carry `timeout T expires E`.
    items: list[tuple[list[str], str | None, str | None]] = []
    key: list[str] = []
    comment: str | None = None
    value: list[str] | None = None
    while True:
        word = r.take()
        if word in (",", "}"):
            if key:
                items.append((key, comment, " ".join(value) if value is not None else None))
            key, comment, value = [], None, None
            if word == "}":
                return items
            continue
        if value is not None:
            value.append(word)
        elif word == ":":
            value = []
        elif word == "comment":
            comment = _unquote(r.take())
        elif word in ("timeout", "expires"):
            r.take()
        elif word != ".":
            key.append(word)


# --- tables: the transaction ---------------------------------------------------------------------


def _read_transaction(
    lines: list[str],
    source: str,
    tables: dict[tuple[str, str], _TableDraft],
    warnings: list[str],
) -> None:
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = _tokens(line)
        if len(words) < 3:
            raise _fail(source, lineno, f"not an nft command: {line!r}")
        verb, kind = words[0], words[1]
        if verb not in ("add", "create", "flush", "delete", "insert"):
            raise _fail(source, lineno, f"not an nft command kubehop reads: {verb!r}")
        family, table_name = words[2], words[3] if len(words) > 3 else ""
        if family not in _FAMILIES:
            raise _fail(source, lineno, f"unknown table family {family!r}")
        key = (family, table_name)
        if kind == "table":
            if verb == "delete":
                tables.pop(key, None)
            elif verb in ("add", "create"):
                table = tables.setdefault(key, _TableDraft(family, table_name, lineno))
                if "comment" in words:
                    table.comment = _unquote(words[words.index("comment") + 1])
            elif verb == "flush" and key in tables:
                for chain in tables[key].chains.values():
                    chain.lines = None
            continue
        found = tables.get(key)
        if found is None:
            raise _fail(source, lineno, f"no table {family} {table_name} to {verb} a {kind} in")
        table = found
        rest = words[4:]
        if kind == "chain":
            _tx_chain(table, verb, rest, source, lineno, warnings)
        elif kind in ("set", "map"):
            _tx_set(table, verb, kind, rest, source, lineno)
        elif kind == "element":
            _tx_element(table, verb, rest, line, source, lineno)
        elif kind == "rule":
            _tx_rule(table, verb, rest, line, source, lineno)
        else:
            warnings.append(f"{source}:{lineno}: `{verb} {kind}` is not read; skipped")


def _tx_chain(
    table: _TableDraft,
    verb: str,
    rest: list[str],
    source: str,
    lineno: int,
    warnings: list[str],
) -> None:
    name = rest[0]
    if verb == "delete":
        table.chains.pop(name, None)
        return
    chain = table.chains.get(name)
    if verb == "flush":
        if chain is None:
            raise _fail(source, lineno, f"no chain {name} to flush")
        chain.lines = None
        return
    if chain is None:
        chain = table.chains[name] = _ChainDraft(name, lineno)
    body = rest[1:]
    if "type" in body:
        _chain_header(chain, body[body.index("type") :], source, lineno, warnings)
    if "comment" in body:
        chain.comment = _unquote(body[body.index("comment") + 1])


def _tx_set(
    table: _TableDraft, verb: str, kind: str, rest: list[str], source: str, lineno: int
) -> None:
    name = rest[0]
    if verb == "delete":
        table.sets.pop(name, None)
        return
    if verb == "flush":
        if name not in table.sets:
            raise _fail(source, lineno, f"no {kind} {name} to flush")
        table.sets[name].elements.clear()
        return
    if name in table.sets:
        return
    s = _SetDraft(name, kind == "map", lineno)
    # { type K ; flags a,b ; timeout 10800s ; comment "…" ; }
    clauses: list[list[str]] = [[]]
    for word in rest[2:-1]:
        if word == ";":
            clauses.append([])
        else:
            clauses[-1].append(word)
    for clause in clauses:
        if clause:
            _set_property(s, clause, source, lineno)
    table.sets[name] = s


def _tx_element(
    table: _TableDraft, verb: str, rest: list[str], line: str, source: str, lineno: int
) -> None:
    name = rest[0]
    s = table.sets.get(name)
    if s is None:
        raise _fail(source, lineno, f"no set or map {name} for its element")
    r = _Rule(rest, at=2)
    for key, comment, value in _element_items(r):
        if verb == "delete":
            s.elements.pop(tuple(key), None)
        else:
            element = NftElement.model_construct(
                key=tuple(key), value=value, comment=comment, timeout=None
            )
            s.elements.setdefault(element.key, element)


def _tx_rule(
    table: _TableDraft, verb: str, rest: list[str], line: str, source: str, lineno: int
) -> None:
    name = rest[0]
    chain = table.chains.get(name)
    if chain is None:
        raise _fail(source, lineno, f"no chain {name} for the rule")
    if verb not in ("add", "insert"):
        raise _fail(source, lineno, f"`{verb} rule` is not read")
    # The rule is the line after `add rule FAMILY TABLE CHAIN `.
    text = line.split(None, 5)[5] if len(line.split(None, 5)) > 5 else ""
    if chain.lines is None:
        chain.lines = []
    if verb == "insert":
        chain.lines.insert(0, (text, lineno))
    else:
        chain.lines.append((text, lineno))
