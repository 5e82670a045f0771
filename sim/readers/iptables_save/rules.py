"""One `-A CHAIN …` line into a `Rule`: the base options here, modules and targets elsewhere.

iptables reads a rule as one command line: a module's options may come
anywhere after its `-m` (kube-proxy writes `-m tcp -p tcp -d IP --dport 80`),
and `-p tcp` alone loads the tcp module for `--dport`. So the options of each
module are gathered over the whole line and turned into matches at its end,
in the order the modules were loaded, which is the kernel's order.

A rule the kernel held but kubehop cannot read (a value out of its range, an
option of another iptables version, a garbled stale line) is kept: the part
that cannot be read becomes an `UnknownMatch` or `UnknownTarget`, named in the
warnings, and a packet that reaches it is told what was assumed. Only what
iptables-restore refuses whatever the kernel held (`StructureError`) stops
the read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from model.netfilter import (
    UNREADABLE,
    AddrMatch,
    FragmentMatch,
    IfaceMatch,
    Match,
    ProtoMatch,
    Rule,
    Table,
    Target,
    UnknownMatch,
    UnknownTarget,
)
from sim.readers.iptables_save.matches import MODULE_OPTIONS, build_match
from sim.readers.iptables_save.options import Option, collect, is_module_option
from sim.readers.iptables_save.tables import TableBuilder
from sim.readers.iptables_save.targets import check_jump, parse_target
from sim.readers.iptables_save.values import PROTO_NUMBERS, PROTOCOLS, network
from sim.readers.iptables_save.words import LineError, StructureError, tokens

# The modules `-p PROTO` loads by itself when an option it knows follows.
_PROTO_MODULES = frozenset({"tcp", "udp", "sctp", "icmp"})


class _Module:
    """One `-m NAME` of a rule and the options gathered for it so far."""

    __slots__ = ("name", "options", "raw", "spec", "unknown")

    def __init__(
        self,
        name: str,
        spec: dict[str, int] | None,
        options: list[Option],
        raw: tuple[str, ...],
        unknown: str | None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.options = options
        self.raw = raw
        self.unknown = unknown


def parse_rule(line: str, current: TableBuilder, lineno: int) -> tuple[Rule, list[str]]:
    """The `-A` rule on `line` of the table `current`, and what cannot be evaluated in it."""
    assert current.table is not None
    table = current.table
    error: LineError | None = None
    try:
        toks = tokens(line)
    except LineError as err:
        toks, error = line.split(), err
    if len(toks) < 2:
        raise StructureError("-A needs a chain name")
    chain = toks[1]
    if chain not in current.rules:
        raise StructureError(f"rule appended to undeclared chain {chain!r}")
    warnings: list[str] = []
    matches: tuple[Match, ...] = ()
    target: Target | None = None
    if error is None:
        try:
            matches, target = _body(toks, table, current, warnings)
        except StructureError:
            raise
        except LineError as err:
            error = err
    if error is not None:
        _check_any_jump(toks, table, current)
        warnings = [f"cannot read this rule ({error}); assumed it does not match"]
        matches = (UnknownMatch.model_construct(module=UNREADABLE, args=tuple(toks[2:])),)
        target = None
    index = len(current.rules[chain]) + 1
    # Every value was checked above; skipping pydantic's second check halves
    # the time to parse a node with a 20,000-rule KUBE-SERVICES.
    rule = Rule.model_construct(
        table=table,
        chain=chain,
        index=index,
        line=line,
        lineno=lineno,
        matches=matches,
        target=target,
    )
    return rule, warnings


def _body(
    toks: Sequence[str], table: Table, current: TableBuilder, warnings: list[str]
) -> tuple[tuple[Match, ...], Target | None]:
    """The matches and target of a rule's words after `-A CHAIN`."""
    base: list[Match] = []
    modules: list[_Module] = []
    target: Target | None = None
    seen_base: set[str] = set()
    proto: str | None = None
    # The target's warnings come after the matches', in the order the kernel meets them.
    target_warnings: list[str] = []

    def claimed(name: str) -> bool:
        return _claims(modules, proto, name, None)

    i, n = 2, len(toks)
    while i < n:
        negate = False
        opt = toks[i]
        if opt == "!":
            if i + 1 < n and is_module_option(toks[i + 1]):
                i = _more_options(toks, i, modules, proto)
                continue
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
            name = _protocol(value, opt)
            if not negate:
                proto = name
            base.append(ProtoMatch.model_construct(proto=name, negate=negate))
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
            name = toks[i]
            spec = MODULE_OPTIONS.get(name)
            options, raw, unknown, i = collect(toks, i + 1, spec, f"-m {name}", claimed)
            modules.append(_Module(name, spec, options, raw, unknown))
        elif opt in ("-j", "--jump", "-g", "--goto"):
            if negate:
                raise LineError(f"'!' before {opt}")
            if target is not None:
                raise LineError("more than one target (-j/-g)")
            if i >= n:
                raise LineError(f"{opt} needs a target name")
            target, i = _target(
                toks, i, opt in ("-g", "--goto"), table, current, target_warnings, claimed
            )
        elif is_module_option(opt):
            # A module's option after other options (`-m tcp -p tcp --dport 80`).
            i = _more_options(toks, i - 1, modules, proto)
        else:
            raise LineError(f"unknown option {opt!r}")
    for module in modules:
        if module.spec is not None and module.unknown is None:
            try:
                base += build_match(module.name, module.options, warnings)
                continue
            except LineError as err:
                warnings.append(f"cannot read -m {module.name} ({err}); assumed it does not match")
        else:
            what = (
                f"option {module.unknown} of -m {module.name}"
                if module.spec is not None
                else f"-m {module.name}"
            )
            warnings.append(f"cannot evaluate {what}; assumed it does not match")
        base.append(UnknownMatch(module=module.name, args=module.raw))
    if target_warnings:
        warnings += target_warnings
    return tuple(base), target


def _claims(modules: list[_Module], proto: str | None, name: str, owner: _Module | None) -> bool:
    """Whether a module of the rule other than `owner` (or the one `-p` loads) takes `name`."""
    if any(m is not owner and m.spec is not None and name in m.spec for m in modules):
        return True
    return (
        proto in _PROTO_MODULES
        and name in MODULE_OPTIONS[proto or ""]
        and (owner is None or owner.name != proto)
    )


def _more_options(toks: Sequence[str], i: int, modules: list[_Module], proto: str | None) -> int:
    """Gather the module options starting at `toks[i]` into the module that takes them."""
    name = toks[i + 1] if toks[i] == "!" else toks[i]
    owner = next((m for m in reversed(modules) if m.spec is not None and name in m.spec), None)
    if owner is None and proto in _PROTO_MODULES and name in MODULE_OPTIONS[proto or ""]:
        # `-p tcp --dport 80`: iptables loads the tcp module by itself.
        owner = _Module(proto or "", MODULE_OPTIONS[proto or ""], [], (), None)
        modules.append(owner)
    if owner is None:
        if not modules:
            raise LineError(f"unknown option {name!r}")
        owner = modules[-1]
    found = owner
    options, raw, unknown, i = collect(
        toks, i, owner.spec, f"-m {owner.name}", lambda o: _claims(modules, proto, o, found)
    )
    owner.options += options
    owner.raw += raw
    owner.unknown = owner.unknown or unknown
    return i


def _target(
    toks: Sequence[str],
    i: int,
    goto: bool,
    table: Table,
    current: TableBuilder,
    warnings: list[str],
    taken: Callable[[str], bool],
) -> tuple[Target, int]:
    """The target named at `toks[i]`; one kubehop cannot read is kept as an `UnknownTarget`."""
    name = toks[i]
    try:
        return parse_target(toks, i + 1, name, goto, table, current, warnings, taken)
    except StructureError:
        raise
    except LineError as err:
        _, raw, _, end = collect(toks, i + 1, None, f"-j {name}", taken)
        warnings.append(f"cannot read -j {name} ({err}); assumed to continue to the next rule")
        return UnknownTarget.model_construct(name=name, args=raw), end


def _check_any_jump(toks: Sequence[str], table: Table, current: TableBuilder) -> None:
    """In a rule that cannot be read, still refuse a jump iptables-restore would refuse."""
    for at, tok in enumerate(toks):
        if tok in ("-j", "--jump", "-g", "--goto") and at + 1 < len(toks):
            check_jump(toks, at + 2, toks[at + 1], tok in ("-g", "--goto"), table, current)


def _protocol(value: str, opt: str) -> str:
    """`-p` as iptables-save prints it: a name, or the number of one it has no name for."""
    if value.isdigit():
        if int(value) > 255:
            raise LineError(f"{opt} {value}: protocol numbers go up to 255")
        return PROTO_NUMBERS.get(value, value)
    proto = value.lower()
    if proto not in PROTOCOLS:
        raise LineError(f"{opt} {value}: unknown protocol")
    return proto


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
