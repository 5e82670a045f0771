"""One `-A CHAIN …` line into a `Rule`: the base options here, modules and targets elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from model.netfilter import (
    AddrMatch,
    FragmentMatch,
    IfaceMatch,
    Match,
    ProtoMatch,
    Rule,
    Target,
    UnknownMatch,
)
from sim.readers.iptables_save.matches import MODULE_OPTIONS, build_match
from sim.readers.iptables_save.options import collect
from sim.readers.iptables_save.tables import TableBuilder
from sim.readers.iptables_save.targets import parse_target
from sim.readers.iptables_save.values import PROTO_NUMBERS, PROTOCOLS, network
from sim.readers.iptables_save.words import LineError, tokens


def parse_rule(line: str, current: TableBuilder, lineno: int) -> tuple[Rule, list[str]]:
    """The `-A` rule on `line` of the table `current`, and what cannot be evaluated in it."""
    assert current.table is not None
    table = current.table
    toks = tokens(line)
    if len(toks) < 2:
        raise LineError("-A needs a chain name")
    chain = toks[1]
    if chain not in current.rules:
        raise LineError(f"rule appended to undeclared chain {chain!r}")
    warnings: list[str] = []
    base: list[Match] = []
    ext: list[Match] = []
    target: Target | None = None
    seen_base: set[str] = set()
    i, n = 2, len(toks)
    while i < n:
        negate = False
        if toks[i] == "!":
            negate = True
            i += 1
            if i >= n:
                raise LineError("'!' at end of rule")
        opt = toks[i]
        i += 1
        if opt in ("-s", "--source", "--src", "-d", "--destination", "--dst"):
            side: str = "src" if opt in ("-s", "--source", "--src") else "dst"
            value, negate, i = _value(toks, i, opt, negate)
            _once(seen_base, side, opt)
            base.append(
                AddrMatch.model_construct(
                    field="src" if side == "src" else "dst", net=network(value, opt), negate=negate
                )
            )
        elif opt in ("-p", "--protocol"):
            value, negate, i = _value(toks, i, opt, negate)
            _once(seen_base, "proto", opt)
            proto = PROTO_NUMBERS.get(value, value.lower())
            if proto not in PROTOCOLS:
                raise LineError(f"{opt} {value}: unknown protocol")
            base.append(ProtoMatch.model_construct(proto=proto, negate=negate))
        elif opt in ("-i", "--in-interface", "-o", "--out-interface"):
            value, negate, i = _value(toks, i, opt, negate)
            way = "in" if opt in ("-i", "--in-interface") else "out"
            _once(seen_base, way, opt)
            if len(value) > 15 or not value:
                raise LineError(f"{opt} {value!r}: interface names have 1-15 characters")
            base.append(IfaceMatch(field="in" if way == "in" else "out", name=value, negate=negate))
        elif opt in ("-f", "--fragment"):
            base.append(FragmentMatch(negate=negate))
        elif opt in ("-c", "--set-counters"):
            i += 2
        elif opt in ("-m", "--match"):
            if negate:
                raise LineError(f"'!' before {opt} (negate the module's options instead)")
            if i >= n:
                raise LineError(f"{opt} needs a module name")
            module = toks[i]
            spec = MODULE_OPTIONS.get(module)
            options, raw, unknown, i = collect(toks, i + 1, spec, f"-m {module}")
            if spec is None or unknown is not None:
                what = f"option {unknown} of -m {module}" if spec is not None else f"-m {module}"
                warnings.append(f"cannot evaluate {what}; assumed it does not match")
                ext.append(UnknownMatch(module=module, args=raw))
            else:
                ext.extend(build_match(module, options, warnings))
        elif opt in ("-j", "--jump", "-g", "--goto"):
            if negate:
                raise LineError(f"'!' before {opt}")
            if target is not None:
                raise LineError("more than one target (-j/-g)")
            if i >= n:
                raise LineError(f"{opt} needs a target name")
            name = toks[i]
            target, i = parse_target(
                toks, i + 1, name, opt in ("-g", "--goto"), table, current, warnings
            )
        else:
            raise LineError(f"unknown option {opt!r}")
    index = len(current.rules[chain]) + 1
    # Every value was checked above; skipping pydantic's second check halves
    # the time to parse a node with a 20,000-rule KUBE-SERVICES.
    rule = Rule.model_construct(
        table=table,
        chain=chain,
        index=index,
        line=line,
        lineno=lineno,
        matches=(*base, *ext),
        target=target,
    )
    return rule, warnings


def _once(seen: set[str], key: str, opt: str) -> None:
    if key in seen:
        raise LineError(f"{opt} given twice")
    seen.add(key)


def _value(toks: Sequence[str], i: int, opt: str, negate: bool) -> tuple[str, bool, int]:
    # iptables still accepts the old `-s ! ADDR` spelling.
    if i < len(toks) and toks[i] == "!" and not negate:
        negate = True
        i += 1
    if i >= len(toks):
        raise LineError(f"{opt} needs a value")
    return toks[i], negate, i + 1
