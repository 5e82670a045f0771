"""`iptables-save` text into a `Ruleset`, line by line, checked as iptables-restore would."""

from __future__ import annotations

from model.errors import RulesParseError
from model.netfilter import Chain, Ruleset, Table
from sim.readers.iptables_save.lazy import parse_lazily
from sim.readers.iptables_save.rules import parse_rule
from sim.readers.iptables_save.tables import (
    COUNTERS,
    IGNORED_TABLES,
    TableBuilder,
    declare_chain,
    finish_table,
)
from sim.readers.iptables_save.words import LineError


def parse_iptables_save(text: str, source: str = "<rules>", *, lazy: bool = False) -> Ruleset:
    """Parse `iptables-save` output into a `Ruleset`.

    Raises `RulesParseError("{source}:{lineno}: …")` on text iptables-restore
    would refuse; rules the simulator cannot evaluate are kept and named in
    `Ruleset.warnings`. With `lazy`, for text kubehop rendered itself, each
    chain's rules are parsed when the chain is first used, and neither the
    per-rule warnings nor the jump-loop check run up front.
    """
    if lazy:
        return parse_lazily(text, source)
    tables: dict[Table, dict[str, Chain]] = {}
    seen: set[str] = set()
    warnings: list[str] = []
    current: TableBuilder | None = None
    lineno = 0
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        try:
            if line.startswith("#"):
                # iptables-nft-save reports tables it cannot print as comments.
                if "incompatible" in line or "Warning" in line:
                    warnings.append(f"{source}:{lineno}: {line.lstrip('# ')}")
                continue
            if line.startswith("*"):
                if current is not None:
                    raise LineError(
                        f"table {current.name!r} (line {current.lineno}) has no COMMIT"
                        f" before {line}"
                    )
                name = line[1:].strip()
                if name in seen:
                    raise LineError(f"table {name!r} appears twice")
                seen.add(name)
                if name in IGNORED_TABLES:
                    warnings.append(
                        f"{source}:{lineno}: table {name!r} is not simulated; its rules are ignored"
                    )
                    current = TableBuilder(None, name, lineno)
                elif name in Table._value2member_map_:
                    current = TableBuilder(Table(name), name, lineno)
                else:
                    raise LineError(f"unknown table {name!r} (expected raw, mangle, nat or filter)")
                continue
            if current is None:
                raise LineError(f"{line.split()[0]!r} outside a table (missing '*table' line)")
            if line == "COMMIT":
                if current.table is not None:
                    tables[current.table] = finish_table(current, source)
                current = None
                continue
            if line.startswith(":"):
                declare_chain(current, line)
                continue
            counters = COUNTERS.match(line)
            if counters is not None:
                line = line[counters.end() :].lstrip()
            elif line.startswith("["):
                raise LineError(
                    f"malformed counters {line.split()[0]!r} (expected [packets:bytes])"
                )
            if not line.startswith("-A"):
                raise LineError(
                    f"unexpected line {line[:40]!r} (expected -A, :CHAIN, COMMIT or *table)"
                )
            if current.table is None:
                continue
            rule, rule_warnings = parse_rule(line, current, lineno)
            current.rules[rule.chain].append(rule)
            warnings.extend(
                f"{source}:{lineno}: {rule.table.value}/{rule.chain} #{rule.index}: {w}"
                for w in rule_warnings
            )
        except LineError as err:
            raise RulesParseError(f"{source}:{lineno}: {err}") from None
    if current is not None:
        raise RulesParseError(
            f"{source}:{lineno}: table {current.name!r} (line {current.lineno}) has no COMMIT"
        )
    return Ruleset(source=source, tables=tables, warnings=tuple(warnings))
