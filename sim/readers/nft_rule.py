"""Read one nft rule into `model.nftables` expressions, in either spelling (`nft list`'s or
`nft -f`'s), and the words the readers of whole tables share: tokens, `{ … }` element
lists, durations and priorities.

`sim.readers.nftables` cuts a listing or transaction into chains and sets and hands
each rule's text here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from model.nftables import (
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
    NftSetUpdate,
    NftUnknown,
    NftVerdict,
    NftVmap,
)
from sim.readers.nft_listing import PRIORITIES

__all__ = [
    "RuleWords",
    "element_items",
    "parse_priority",
    "parse_rule",
    "parse_seconds",
    "tokens",
    "unquote",
]


# --- tokens ------------------------------------------------------------------------


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{},;]|[^\s{},;"]+')


def tokens(text: str) -> list[str]:
    """nft's words: quoted strings whole, `{ } , ;` on their own."""
    return _TOKEN.findall(text)


def unquote(word: str) -> str:
    """A word without its surrounding double quotes, if it has them."""
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
class RuleWords:
    """The words of one rule and where the parser is among them."""

    words: list[str]
    at: int = 0
    exprs: list[NftExpr] = field(default_factory=list)
    comment: str | None = None
    unknown: str | None = None

    def peek(self, ahead: int = 0) -> str | None:
        """The word `ahead` words on, or None past the end."""
        i = self.at + ahead
        return self.words[i] if i < len(self.words) else None

    def take(self) -> str:
        """The next word, moving past it."""
        word = self.words[self.at]
        self.at += 1
        return word

    def done(self) -> bool:
        """Whether every word is read."""
        return self.at >= len(self.words)


def parse_rule(text: str, chain: str = "", index: int = 1, lineno: int = 0) -> NftRule:
    """One rule, in either spelling (`mark set mark or 0x4000` or `meta mark set meta mark | …`)."""
    r = RuleWords(tokens(text))
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
            r.comment = unquote(rest[-1])
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


def _expr(r: RuleWords) -> bool:
    """Read one expression or statement; False when the words are not one kubehop knows."""
    word = r.peek()
    assert word is not None
    if word == "comment" and r.at == len(r.words) - 2:
        r.take()
        r.comment = unquote(r.take())
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
                prefix = unquote(setting)
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


def _selector(r: RuleWords) -> str | None:
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


def _selectors(r: RuleWords) -> tuple[str, ...] | None:
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


def _after_selectors(r: RuleWords, left: tuple[str, ...]) -> bool:
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
        values = tuple(" . ".join(key) for key, _, _ in element_items(r))
    else:
        values = _values(r, left)
    if left == ("meta mark",) or left == ("ct mark",):
        values = tuple(_hex(_mark(v)) for v in values)
    r.exprs.append(NftCmp(left=left, mask=mask, op=op, values=values))
    return True


def _values(r: RuleWords, left: tuple[str, ...]) -> tuple[str, ...]:
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


def element_items(
    r: RuleWords, *, timeouts: bool = False
) -> list[tuple[list[str], str | None, str | None]]:
    """`{ k [comment "c"] [: v], … }` after its `{`: each item's key parts, comment and value.

    With `timeouts` (a set's elements, listed or added), an element's `timeout T` and
    `expires E` are passed over.
    """
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
            comment = unquote(r.take())
        elif timeouts and word in ("timeout", "expires"):
            r.take()
        elif word != ".":
            key.append(word)


def _inline_elements(r: RuleWords) -> tuple[NftElement, ...]:
    return tuple(
        NftElement(key=tuple(key), value=value, comment=comment)
        for key, comment, value in element_items(r)
    )


def _mark_set(r: RuleWords) -> NftMark:
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


def _nat(r: RuleWords) -> bool:
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


def _set_update(r: RuleWords) -> bool:
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


def _numgen(r: RuleWords) -> bool:
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
