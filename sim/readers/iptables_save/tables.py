"""Tables and their chains: declarations, policies, and the check that jumps make no loop."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from model.errors import RulesParseError
from model.netfilter import Chain, JumpTarget, Rule, Table
from sim.readers.iptables_save.words import LineError

BUILTIN_CHAINS: dict[Table, tuple[str, ...]] = {
    Table.RAW: ("PREROUTING", "OUTPUT"),
    Table.MANGLE: ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    Table.NAT: ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    Table.FILTER: ("INPUT", "FORWARD", "OUTPUT"),
}
"""The built-in chains each table registers, in the kernel's terms."""

IGNORED_TABLES = frozenset({"security"})
"""Tables the kernel has but kubehop does not simulate.

Their text is skipped with a warning rather than rejected, since real nodes print them.
"""

COUNTERS = re.compile(r"\[(\d+):(\d+)\]")
"""A `[packets:bytes]` counter, as on chain lines and before rules."""


@dataclass
class TableBuilder:
    """A table as its lines are read: chains' policies and rules so far."""

    table: Table | None  # None for a table parsed only to be skipped
    name: str
    lineno: int
    policies: dict[str, str | None] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)


def declare_chain(current: TableBuilder, line: str) -> None:
    """Declare the chain of a `:CHAIN POLICY [packets:bytes]` line in `current`."""
    parts = line[1:].split()
    if len(parts) not in (2, 3) or (len(parts) == 3 and not COUNTERS.fullmatch(parts[2])):
        raise LineError(f"malformed chain line {line!r} (expected ':CHAIN POLICY [packets:bytes]')")
    name, policy = parts[0], parts[1]
    if name in current.policies:
        raise LineError(f"chain {name!r} declared twice")
    builtin = current.table is None or name in BUILTIN_CHAINS[current.table]
    if builtin:
        if policy not in ("ACCEPT", "DROP"):
            raise LineError(f"built-in chain {name} has policy {policy!r} (must be ACCEPT or DROP)")
        current.policies[name] = policy
    else:
        if policy != "-":
            raise LineError(f"user chain {name} has policy {policy!r} (user chains take '-')")
        current.policies[name] = None
    current.rules[name] = []


def finish_table(current: TableBuilder, source: str) -> dict[str, Chain]:
    """The chains of the table `current`, once its jumps are known to make no loop."""
    assert current.table is not None
    chains: dict[str, Chain] = {}
    for name, policy in current.policies.items():
        chains[name] = Chain(
            name=name,
            policy="ACCEPT" if policy == "ACCEPT" else "DROP" if policy == "DROP" else None,
            rules=tuple(current.rules[name]),
        )
    _check_loops(chains, source)
    return chains


def _check_loops(chains: dict[str, Chain], source: str) -> None:
    # iptables-restore refuses a ruleset whose jumps form a cycle (ELOOP);
    # the evaluator relies on that to terminate.
    done: set[str] = set()
    for start in chains:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            name, pos = stack.pop()
            if pos == 0:
                path.append(name)
                on_path.add(name)
            rules = chains[name].rules
            while pos < len(rules):
                target = rules[pos].target
                pos += 1
                if isinstance(target, JumpTarget) and target.chain not in done:
                    if target.chain in on_path:
                        loop = " -> ".join([*path[path.index(target.chain) :], target.chain])
                        rule = rules[pos - 1]
                        raise RulesParseError(
                            f"{source}:{rule.lineno}: jump to {target.chain} makes a loop ({loop})"
                        )
                    stack.append((name, pos))
                    stack.append((target.chain, 0))
                    break
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)
