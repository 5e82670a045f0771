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

This module cuts a listing into drafts of tables, sets and chains; beside it,
`nft_transaction` applies an `nft -f` transaction's commands to drafts,
`nft_drafts` builds drafts into the model (at once or on first access) and
`nft_rule` reads one rule's words.
"""

from __future__ import annotations

import re
from typing import Any, cast

from model.nftables import NftChain, NftRuleset, NftSet, NftTable
from sim.readers.nft_drafts import (
    FAMILIES,
    ChainDraft,
    LazyNftChains,
    LazyNftSets,
    SetDraft,
    TableDraft,
    chain_header,
    chain_line,
    parse_error,
    set_property,
)
from sim.readers.nft_rule import parse_rule, tokens, unquote
from sim.readers.nft_transaction import read_transaction

__all__ = ["parse_nft", "parse_rule"]


def parse_nft(text: str, *, source: str = "<nft>", lazy: bool = False) -> NftRuleset:
    """`nft list ruleset`/`nft list table` output, or an `nft -f` transaction, as a ruleset.

    With `lazy`, chains are parsed and sets' elements read when first asked for
    (for text kubehop rendered; a user's file is read eagerly, so every warning
    shows). Either way the listing is first cut into blocks: the rules of a chain
    and the elements of a set are read from their lines afterwards.
    """
    tables: dict[tuple[str, str], TableDraft] = {}
    warnings: list[str] = []
    if _first_line(text).startswith("table "):
        text = _read_listing(text, source, tables, warnings)
    else:
        read_transaction(text.splitlines(), source, tables, warnings)
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


# --- the listing ---------------------------------------------------------------------------------


def _first_line(text: str) -> str:
    """The first line that is neither blank nor a comment, stripped (without splitting all)."""
    for found in re.finditer(r"[^\r\n]+", text):
        line = found.group().strip()
        if line and not line.startswith("#"):
            return line
    return ""


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
    tables: dict[tuple[str, str], TableDraft],
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
    table: TableDraft | None = None
    nft_set: SetDraft | None = None
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
            words = tokens(line)
            if table is None:
                if len(words) == 4 and words[0] == "table" and words[3] == "{":
                    family, name = words[1], words[2]
                    if family not in FAMILIES:
                        raise parse_error(source, lineno, f"unknown table family {family!r}")
                    table = TableDraft(family, name, lineno)
                    tables[(family, name)] = table
                    continue
                raise parse_error(
                    source, lineno, f"expected `table FAMILY NAME {{`, found {line!r}"
                )
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
                    set_property(nft_set, words, source, lineno)
                continue
            if line == "}":
                table = None
                continue
            if words[0] == "comment" and len(words) == 2:
                table.comment = unquote(words[1])
                continue
            if words[0] in ("set", "map") and len(words) == 3 and words[2] == "{":
                nft_set = SetDraft(words[1], words[0] == "map", lineno)
                continue
            if not (words[0] == "chain" and len(words) == 3 and words[2] == "{"):
                if words[-1] == "{":
                    warnings.append(
                        f"{source}:{lineno}: table {table.family} {table.name}: a {words[0]}"
                        " block, which kubehop does not evaluate; skipped"
                    )
                    skipping = 1
                elif words[0] != "flags":
                    raise parse_error(source, lineno, f"unexpected {line!r} in table {table.name}")
                continue
            name = words[1]
        # Most of the listing: a chain, whose body is skipped to its closing `}`.
        assert table is not None
        chain = ChainDraft(name, lineno)
        table.chains[name] = chain
        close = _closing_line(text, pos)
        if close < 0:
            lineno += text.count("\n", pos) + (1 if pos < size and text[-1] != "\n" else 0)
            raise parse_error(source, lineno, "the text ends inside a block (a `}` is missing)")
        chain.start, chain.end = pos, close
        while decl < len(declarations) and declarations[decl] < close:
            at = declarations[decl]
            decl += 1
            if at < pos:
                continue
            end = text.find("\n", at)
            found = chain_line(text[at : size if end < 0 else end].strip())
            if found is None:
                continue
            at_line = lineno + 1 + text.count("\n", pos, at)
            if found[0] == "type":
                chain_header(chain, found, source, at_line, warnings)
            else:
                chain.comment = unquote(found[1])
        lineno += 1 + text.count("\n", pos, close)
        newline = text.find("\n", close)
        pos = size if newline < 0 else newline + 1
    if table is not None or nft_set is not None or elements is not None:
        raise parse_error(source, lineno, "the text ends inside a block (a `}` is missing)")
    return text
