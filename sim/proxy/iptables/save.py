"""What `iptables-save` prints once kubelet and kube-proxy have set up a node.

iptables does not echo rules back as they were written: the kernel keeps a
parsed form and iptables-save prints it in its own order. The normalisation
here was checked against iptables v1.8.9 (nf_tables) by restoring kube-proxy's
input in a scratch network namespace and saving it again (see
tests/proxy/test_iptables_rules.py):

- `-s`/`-d` come first and get a prefix length (`-d 10.96.0.10/32`), then `-p`,
  then the matches in the order given, then the target;
- every comment is double-quoted;
- `MARK --or-mark X` is `--set-xmark X/X`, `--xor-mark X` is `--set-xmark X/0x0`;
- REJECT shows its default `--reject-with icmp-port-unreachable`;
- `recent` prints its defaults (`--mask 255.255.255.255 --rsource`) and reorders;
- `statistic` prints the kernel's 2^-31 fixed-point probability with 11 decimals
  (0.3333333333 comes back as 0.33333333349);
- `nfacct` prints two spaces before the counter name;
- built-in chains come first, then user chains sorted by name, and the tables
  come out as mangle, filter, nat (the nf_tables backend's order).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from sim.kernel.rules import ForeignRules
from sim.proxy.iptables import names as n
from sim.proxy.iptables.spelling import kernel_probability, save_string
from sim.proxy.iptables.sync import KUBE_FIREWALL_RULE, Presaved, Restore, Tokens

BUILTINS: dict[str, tuple[str, ...]] = {
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}
"""Built-in chains per table, in the order iptables-save lists them."""


_EXTERNAL = "kubernetes externally-visible service portals"
_PORTALS = "kubernetes service portals"
_LB_FIREWALL = "kubernetes load balancer firewall"

# kube-proxy's iptablesJumpChains, in its order: (table, source, target, comment, NEW only).
_KUBE_PROXY_JUMPS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("filter", "INPUT", n.KUBE_EXTERNAL_SERVICES, _EXTERNAL, True),
    ("filter", "FORWARD", n.KUBE_EXTERNAL_SERVICES, _EXTERNAL, True),
    ("filter", "INPUT", n.KUBE_NODEPORTS, "kubernetes health check service ports", False),
    ("filter", "FORWARD", n.KUBE_SERVICES, _PORTALS, True),
    ("filter", "OUTPUT", n.KUBE_SERVICES, _PORTALS, True),
    ("filter", "FORWARD", n.KUBE_FORWARD, "kubernetes forwarding rules", False),
    ("filter", "INPUT", n.KUBE_PROXY_FIREWALL, _LB_FIREWALL, True),
    ("filter", "OUTPUT", n.KUBE_PROXY_FIREWALL, _LB_FIREWALL, True),
    ("filter", "FORWARD", n.KUBE_PROXY_FIREWALL, _LB_FIREWALL, True),
    ("nat", "OUTPUT", n.KUBE_SERVICES, _PORTALS, False),
    ("nat", "PREROUTING", n.KUBE_SERVICES, _PORTALS, False),
    ("nat", "POSTROUTING", n.KUBE_POSTROUTING, "kubernetes postrouting rules", False),
)


def _jump(src: str, dst: str, comment: str, new_only: bool) -> Tokens:
    ct: Tokens = ("-m", "conntrack", "--ctstate", "NEW") if new_only else ()
    return ("-A", src, *ct, "-m", "comment", "--comment", f'"{comment}"', "-j", dst)


def builtin_jumps() -> dict[tuple[str, str], list[Tokens]]:
    """Rules in the built-in chains, in chain order, after kubelet then kube-proxy start.

    kubelet runs first (kube-proxy is one of its pods) and prepends `-j
    KUBE-FIREWALL` to OUTPUT and INPUT. kube-proxy then prepends each jump it
    lacks (EnsureRule(Prepend)), so its later jumps end up above its earlier
    ones and kubelet's stays last.
    """
    chains: dict[tuple[str, str], list[Tokens]] = {
        ("filter", "OUTPUT"): [("-A", "OUTPUT", "-j", n.KUBE_FIREWALL)],
        ("filter", "INPUT"): [("-A", "INPUT", "-j", n.KUBE_FIREWALL)],
    }
    for table, src, dst, comment, new_only in _KUBE_PROXY_JUMPS:
        rule = _jump(src, dst, comment, new_only)
        existing = chains.setdefault((table, src), [])
        if rule not in existing:
            existing.insert(0, rule)
    return chains


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _addr(text: str) -> str:
    return text if "/" in text else f"{text}/32"


def _hexmark(text: str) -> str:
    return f"{int(text, 16):#x}"


def _option_value(opts: Sequence[str], name: str) -> str:
    return opts[opts.index(name) + 1]


@functools.lru_cache(maxsize=1 << 16)
def _match(name: str, opts: tuple[str, ...]) -> str:
    if name == "comment":
        return f"-m comment --comment {save_string(_unquote(_option_value(opts, '--comment')))}"
    if name in ("tcp", "udp", "sctp"):
        return f"-m {name}" + "".join(
            f" {opt} {_option_value(opts, opt)}" for opt in ("--sport", "--dport") if opt in opts
        )
    if name == "statistic":
        return "-m statistic --mode random --probability " + kernel_probability(
            _option_value(opts, "--probability")
        )
    if name == "recent":
        verb = next(v for v in ("--set", "--rcheck", "--update", "--remove") if v in opts)
        parts = ["-m recent", verb]
        if "--seconds" in opts:
            parts.append(f"--seconds {_option_value(opts, '--seconds')}")
        if "--reap" in opts:
            parts.append("--reap")
        parts.append(f"--name {_option_value(opts, '--name')} --mask 255.255.255.255 --rsource")
        return " ".join(parts)
    if name == "nfacct":
        return f"-m nfacct --nfacct-name  {_option_value(opts, '--nfacct-name')}"
    if name == "mark":
        neg = "! " if opts[0] == "!" else ""
        value, mask = _option_value(opts, "--mark").split("/")
        return f"-m mark {neg}--mark {_hexmark(value)}/{_hexmark(mask)}"
    return " ".join(("-m", name, *opts))


@functools.lru_cache(maxsize=1 << 16)
def _target(target: tuple[str, ...]) -> str:
    if not target:
        return ""
    if target[0] == "REJECT":
        return " -j REJECT --reject-with icmp-port-unreachable"
    if target[0] == "MARK":
        value = int(target[2], 16)
        mask = value if target[1] == "--or-mark" else 0
        return f" -j MARK --set-xmark {value:#x}/{mask:#x}"
    return " -j " + " ".join(target)


def save_rule(tokens: Tokens) -> str:
    """One rule in kube-proxy's argument order, as iptables-save prints it back."""
    assert tokens[0] == "-A"
    chain = tokens[1]
    src = dst = proto = ""
    matches: list[tuple[str, list[str]]] = []
    target: Tokens = ()
    negate = False
    i = 2
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            negate = True
            i += 1
            continue
        bang = "! " if negate else ""
        negate = False
        if tok in ("-s", "-d", "-p"):
            value = tokens[i + 1] if tok == "-p" else _addr(tokens[i + 1])
            text = f"{bang}{tok} {value}"
            if tok == "-s":
                src = text
            elif tok == "-d":
                dst = text
            else:
                proto = text
            i += 2
        elif tok == "-m":
            matches.append((tokens[i + 1], []))
            i += 2
        elif tok == "-j":
            target = tokens[i + 1 :]
            break
        else:
            # A match option (and its values) belongs to the latest `-m`.
            opts = matches[-1][1]
            if bang:
                opts.append("!")
            opts.append(tok)
            i += 1
    parts = [f"-A {chain}", *(p for p in (src, dst, proto) if p)]
    # Most matches repeat across a node's rules (a Service's comment on each
    # of its endpoints, `-m tcp --dport`, the probabilities): cached above.
    parts += [_match(name, tuple(opts)) for name, opts in matches]
    return " ".join(parts) + _target(target)


def table_lines(name: str, user_chains: Iterable[str], rules: dict[str, list[Tokens]]) -> list[str]:
    """One table as iptables-save prints it: built-in chains, user chains sorted, their rules."""
    builtins = BUILTINS[name]
    users = sorted(set(user_chains))
    lines = [f"*{name}"]
    lines += [f":{c} ACCEPT [0:0]" for c in builtins]
    lines += [f":{c} - [0:0]" for c in users]
    for chain in (*builtins, *users):
        lines += [
            r.saved if isinstance(r, Presaved) else save_rule(r) for r in rules.get(chain, [])
        ]
    lines.append("COMMIT")
    return lines


def _by_chain(rules: Iterable[Tokens]) -> dict[str, list[Tokens]]:
    grouped: dict[str, list[Tokens]] = {}
    for rule in rules:
        grouped.setdefault(rule[1], []).append(rule)
    return grouped


def save_text(restore: Restore, extra: ForeignRules | None = None) -> str:
    """The node's iptables-save output (mangle, filter, nat), without the dated comment lines.

    `extra` adds other agents' chains and rules (the CNI's): they start after
    kube-proxy's in a built-in chain, as an agent that appends its jumps does.
    """
    jumps = builtin_jumps()
    canaries = (n.KUBE_KUBELET_CANARY, n.KUBE_PROXY_CANARY)

    filter_rules = _by_chain(restore.filter_rules)
    # kubelet's copy of the localnet rule is there even when kube-proxy does
    # not restore KUBE-FIREWALL (localhost NodePorts off).
    filter_rules.setdefault(n.KUBE_FIREWALL, [KUBE_FIREWALL_RULE])
    nat_rules = _by_chain(restore.nat_rules)
    for (table, chain), rules in jumps.items():
        (filter_rules if table == "filter" else nat_rules)[chain] = rules

    filter_chains = [*restore.filter_chains, n.KUBE_FIREWALL, *canaries]
    nat_chains = [*restore.nat_chains, *canaries]
    if extra is not None:
        for table, by_chain, declared in (
            ("filter", filter_rules, filter_chains),
            ("nat", nat_rules, nat_chains),
        ):
            declared += extra.chains.get(table, ())
            for line in extra.rules.get(table, ()):
                by_chain.setdefault(line.split()[1], []).append(presaved(line))
    lines = table_lines("mangle", (n.KUBE_IPTABLES_HINT, *canaries), {})
    lines += table_lines("filter", filter_chains, filter_rules)
    lines += table_lines("nat", nat_chains, nat_rules)
    return "\n".join(lines) + "\n"


def presaved(line: str) -> Presaved:
    """A rule that comes already in iptables-save's spelling."""
    return Presaved(tuple(line.split()), line)
