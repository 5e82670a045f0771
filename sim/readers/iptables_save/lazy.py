"""Rendered rules parsed a chain at a time, when a packet first reaches the chain."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from model.errors import RulesParseError
from model.netfilter import Chain, Rule, Ruleset, Table
from sim.readers.iptables_save.rules import parse_rule
from sim.readers.iptables_save.tables import TableBuilder, declare_chain
from sim.readers.iptables_save.words import LineError


class _Declared(dict[str, list[Rule]]):
    """Rule lists of every chain a table declares, made on first use."""

    def __init__(self, policies: Mapping[str, str | None]) -> None:
        super().__init__()
        self._policies = policies

    def __contains__(self, name: object) -> bool:
        return name in self._policies

    def __missing__(self, name: str) -> list[Rule]:
        rules: list[Rule] = []
        self[name] = rules
        return rules


class LazyChains(dict[str, Chain]):
    """A table's chains, each parsed from its lines the first time it is asked for.

    A node of a 150,000-pod cluster has over 500,000 rules, and a packet
    visits a handful of chains; parsing only those makes the first trace on
    such a node seconds instead of most of a minute. Only for text kubehop
    rendered itself: a user's dump is parsed eagerly, so every error shows.
    """

    def __init__(
        self,
        table: Table,
        policies: dict[str, str | None],
        lines: dict[str, list[tuple[str, int]]],
        source: str,
    ) -> None:
        super().__init__()
        self._table = table
        self._policies = policies
        self._lines = lines
        self._source = source

    @property
    def policies(self) -> Mapping[str, str | None]:
        """Every declared chain's policy (None for a user chain), none of them parsed by asking."""
        return self._policies

    def _load(self, name: str) -> Chain:
        builder = TableBuilder(self._table, self._table.value, 0, self._policies)
        builder.rules = _Declared(self._policies)
        for line, lineno in self._lines.get(name, ()):
            try:
                rule, _ = parse_rule(line, builder, lineno)
            except LineError as err:
                raise RulesParseError(f"{self._source}:{lineno}: {err}") from None
            builder.rules[name].append(rule)
        policy = self._policies[name]
        chain = Chain.model_construct(
            name=name,
            policy="ACCEPT" if policy == "ACCEPT" else "DROP" if policy == "DROP" else None,
            rules=tuple(builder.rules[name]),
        )
        dict.__setitem__(self, name, chain)
        return chain

    def __getitem__(self, name: str) -> Chain:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        if name not in self._policies:
            raise KeyError(name)
        return self._load(name)

    def get(self, name: str, default: Any = None) -> Any:
        """The chain `name`, parsed now if it was not yet; `default` if it is not declared."""
        return self[name] if name in self._policies else default

    def __contains__(self, name: object) -> bool:
        return name in self._policies

    def __iter__(self) -> Iterator[str]:
        return iter(self._policies)

    def __len__(self) -> int:
        return len(self._policies)

    def keys(self) -> Any:
        """The declared chains' names, none of them parsed by asking."""
        return self._policies.keys()

    def values(self) -> Any:
        """Every chain, each parsed now if it was not yet."""
        return [self[name] for name in self._policies]

    def items(self) -> Any:
        """Every chain with its name, each parsed now if it was not yet."""
        return [(name, self[name]) for name in self._policies]


def parse_chain(
    table: Table,
    name: str,
    lines: Iterable[str],
    policies: dict[str, str | None],
    source: str,
    first: int = 1,
) -> tuple[Rule, ...]:
    """The rules of `table`'s chain `name` read from its `-A` lines alone, numbered from
    `first` (the lines are a run of the chain's, not a text's: no line numbers).

    `policies` says which chains are declared (a jump to any other is refused,
    as iptables-restore refuses it); a dict that finds names as it is asked suits
    rules rendered a part at a time.
    """
    builder = TableBuilder(table, table.value, 0, policies)
    builder.rules = _Declared(policies)
    found = builder.rules[name]
    for line in lines:
        try:
            rule, _ = parse_rule(line, builder, 0)
        except LineError as err:
            raise RulesParseError(f"{source}: {table.value}/{name}: {err}") from None
        found.append(rule)
    if first == 1:
        return tuple(found)
    return tuple(rule.model_copy(update={"index": rule.index + first - 1}) for rule in found)


def parse_lazily(text: str, source: str) -> Ruleset:
    """A `Ruleset` of `text` whose chains are parsed when first used."""
    tables: dict[Table, dict[str, Chain]] = {}
    current: TableBuilder | None = None
    lines: dict[str, list[tuple[str, int]]] = {}
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if line.startswith("-A "):
            if current is not None and current.table is not None:
                chain = line.split(None, 2)[1]
                lines.setdefault(chain, []).append((line, lineno))
            continue
        try:
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                name = line[1:].strip()
                table = Table(name) if name in Table._value2member_map_ else None
                current = TableBuilder(table, name, lineno)
                lines = {}
            elif line == "COMMIT" and current is not None:
                if current.table is not None:
                    tables[current.table] = LazyChains(
                        current.table, current.policies, lines, source
                    )
                current = None
            elif line.startswith(":") and current is not None:
                declare_chain(current, line)
            else:
                raise LineError(f"unexpected line {line[:40]!r} in rendered rules")
        except LineError as err:
            raise RulesParseError(f"{source}:{lineno}: {err}") from None
    return Ruleset.model_construct(source=source, tables=tables, warnings=())
