"""Read an `nft -f` transaction (`add table …`, `add chain …`, `add rule …`,
`add element …`, `flush …`, `delete …`), applied in order, into table drafts.
"""

from __future__ import annotations

from sim.readers.nft_drafts import (
    FAMILIES,
    ChainDraft,
    SetDraft,
    TableDraft,
    chain_header,
    parse_error,
    set_property,
)
from sim.readers.nft_rule import RuleWords, element_items, tokens, unquote

__all__ = ["read_transaction"]


def read_transaction(
    lines: list[str],
    source: str,
    tables: dict[tuple[str, str], TableDraft],
    warnings: list[str],
) -> None:
    """Apply each command of `lines` to `tables`, in order."""
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = tokens(line)
        if len(words) < 3:
            raise parse_error(source, lineno, f"not an nft command: {line!r}")
        verb, kind = words[0], words[1]
        if verb not in ("add", "create", "flush", "delete", "insert"):
            raise parse_error(source, lineno, f"not an nft command kubehop reads: {verb!r}")
        family, table_name = words[2], words[3] if len(words) > 3 else ""
        if family not in FAMILIES:
            raise parse_error(source, lineno, f"unknown table family {family!r}")
        key = (family, table_name)
        if kind == "table":
            if verb == "delete":
                tables.pop(key, None)
            elif verb in ("add", "create"):
                table = tables.setdefault(key, TableDraft(family, table_name, lineno))
                if "comment" in words:
                    table.comment = unquote(words[words.index("comment") + 1])
            elif verb == "flush" and key in tables:
                for chain in tables[key].chains.values():
                    chain.lines = None
            continue
        found = tables.get(key)
        if found is None:
            raise parse_error(
                source, lineno, f"no table {family} {table_name} to {verb} a {kind} in"
            )
        table = found
        rest = words[4:]
        if kind == "chain":
            _tx_chain(table, verb, rest, source, lineno, warnings)
        elif kind in ("set", "map"):
            _tx_set(table, verb, kind, rest, source, lineno)
        elif kind == "element":
            _tx_element(table, verb, rest, source, lineno)
        elif kind == "rule":
            _tx_rule(table, verb, rest, line, source, lineno)
        else:
            warnings.append(f"{source}:{lineno}: `{verb} {kind}` is not read; skipped")


def _tx_chain(
    table: TableDraft,
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
            raise parse_error(source, lineno, f"no chain {name} to flush")
        chain.lines = None
        return
    if chain is None:
        chain = table.chains[name] = ChainDraft(name, lineno)
    body = rest[1:]
    if "type" in body:
        chain_header(chain, body[body.index("type") :], source, lineno, warnings)
    if "comment" in body:
        chain.comment = unquote(body[body.index("comment") + 1])


def _tx_set(
    table: TableDraft, verb: str, kind: str, rest: list[str], source: str, lineno: int
) -> None:
    name = rest[0]
    if verb == "delete":
        table.sets.pop(name, None)
        return
    if verb == "flush":
        if name not in table.sets:
            raise parse_error(source, lineno, f"no {kind} {name} to flush")
        table.sets[name].elements.clear()
        return
    if name in table.sets:
        return
    s = SetDraft(name, kind == "map", lineno)
    # { type K ; flags a,b ; timeout 10800s ; comment "…" ; }
    clauses: list[list[str]] = [[]]
    for word in rest[2:-1]:
        if word == ";":
            clauses.append([])
        else:
            clauses[-1].append(word)
    for clause in clauses:
        if clause:
            set_property(s, clause, source, lineno)
    table.sets[name] = s


def _tx_element(table: TableDraft, verb: str, rest: list[str], source: str, lineno: int) -> None:
    name = rest[0]
    s = table.sets.get(name)
    if s is None:
        raise parse_error(source, lineno, f"no set or map {name} for its element")
    r = RuleWords(rest, at=2)
    for key, comment, value in element_items(r, timeouts=True):
        if verb == "delete":
            s.elements.pop(tuple(key), None)
        else:
            s.add_element(key, comment, value)


def _tx_rule(
    table: TableDraft, verb: str, rest: list[str], line: str, source: str, lineno: int
) -> None:
    name = rest[0]
    chain = table.chains.get(name)
    if chain is None:
        raise parse_error(source, lineno, f"no chain {name} for the rule")
    if verb not in ("add", "insert"):
        raise parse_error(source, lineno, f"`{verb} rule` is not read")
    # The rule is the line after `add rule FAMILY TABLE CHAIN `.
    parts = line.split(None, 5)
    text = parts[5] if len(parts) > 5 else ""
    if chain.lines is None:
        chain.lines = []
    if verb == "insert":
        chain.lines.insert(0, (text, lineno))
    else:
        chain.lines.append((text, lineno))
