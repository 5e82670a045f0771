"""Felix's iptables rules on one node, as Calico v3.29 writes them, and the ipsets they match.

Rendered from projectcalico/calico's `felix/rules` (static.go, nat.go,
dispatch.go, endpoints.go, policy.go) and `felix/dataplane/linux/int_dataplane.go`
(setUpIptablesNormal) at v3.29.7, for the iptables data plane with the
settings Calico's Kubernetes manifests give Felix: no BPF, no WireGuard, no
host endpoints, kube-proxy in iptables mode (no IPVS chains),
DefaultEndpointToHostAction ACCEPT, IptablesMarkMask 0xffff0000 (accept
0x10000, pass 0x20000, scratch 0x40000 and 0x80000), one IP pool with
natOutgoing.

- Felix inserts its jumps at the top of the built-in chains, above
  kube-proxy's; since v3.28.2 it appends the nat POSTROUTING one instead, so
  that kube-proxy's MASQUERADE clears its mark first (int_dataplane.go says
  why), and it appends two rules to filter FORWARD.
- Each rule carries Felix's hash comment (`cali:…`): a SHA-224 chain over the
  chain's name and each rule as Felix renders it for hashing (`RuleHashes`), so
  a rule's hash names its place as well as its content, exactly as on a node.
- Only chains reachable from the built-in chains are written, as Felix
  programs only referenced chains.
- Policy is a later issue: with no NetworkPolicy every workload's chains end in
  its profiles, the namespace's (`kns.NS`, allow all) and the service
  account's (`ksa.NS.SA`, no rules), so everything is allowed (default allow).
  A pod's service account is not in kubehop's model; `default` is assumed.

Each rule is written in Felix's own spelling (`--jump`, `-p 17`,
`--destination-ports`), which the hash is computed from, and shown as
iptables-save prints it back (`-j`, `-p udp`, `--dports`, `-i`/`-o`/`-p`
before the matches, `0x0/` marks), checked against iptables v1.8.9 in a lab
namespace and against a real node's dump (tests/data/real/calico).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from model.ipset import IpSet, IpSets
from sim.kernel.rules import ForeignRules

__all__ = [
    "IPSET_ALL_HOSTS",
    "IPSET_ALL_POOLS",
    "IPSET_MASQ_POOLS",
    "IPSET_VXLAN_HOSTS",
    "MARK_ACCEPT",
    "FelixNode",
    "FelixRule",
    "Workload",
    "felix_rules",
    "length_limited",
    "rule_hashes",
]

MARK_ACCEPT = 0x10000
"""The mark bit policy sets when it allows a packet (IptablesMarkAccept)."""
MARK_PASS = 0x20000
MARK_SCRATCH0 = 0x40000
MARK_SCRATCH1 = 0x80000
_ALL_MARKS = MARK_ACCEPT | MARK_PASS | MARK_SCRATCH0 | MARK_SCRATCH1

MAX_CHAIN_NAME = 28
"""The longest chain name Felix writes (iptables.MaxChainNameLength)."""
_HASH_LENGTH = 16

IPSET_ALL_POOLS = "cali40all-ipam-pools"
"""Every IP pool (hash:net)."""
IPSET_MASQ_POOLS = "cali40masq-ipam-pools"
"""The pools with natOutgoing (hash:net)."""
IPSET_ALL_HOSTS = "cali40all-hosts-net"
"""Every node's address, for IP-in-IP (hash:net)."""
IPSET_VXLAN_HOSTS = "cali40all-vxlan-net"
"""The other nodes' VTEP parent addresses, for VXLAN (hash:net)."""

_WORKLOADS = "cali+"
"""Every workload interface (the prefix `cali` with iptables' wildcard)."""


@dataclass(frozen=True)
class FelixRule:
    """One rule as Felix builds it: match fragments, action and comments in its spelling."""

    match: tuple[str, ...] = ()
    """Match fragments in order (`--in-interface cali+`, `-m mark --mark 0/0x10000`)."""
    action: str = ""
    """`--jump X`, `--goto X`, or empty for a rule that only counts."""
    comment: tuple[str, ...] = ()
    """Comments after the hash comment."""


@dataclass(frozen=True)
class Workload:
    """A local pod as Felix sees it: its host-side interface and its profiles."""

    iface: str
    """The host-side veth (`cali` + 11 hex digits)."""
    profiles: tuple[str, ...]
    """Its profiles in order: `kns.NAMESPACE`, `ksa.NAMESPACE.SERVICEACCOUNT`."""


@dataclass(frozen=True)
class FelixNode:
    """What Felix's rules on one node depend on."""

    workloads: tuple[Workload, ...] = ()
    """The node's workloads."""
    ipip: bool = False
    """An IP pool uses IP-in-IP, and this node has a tunnel address."""
    vxlan: bool = False
    """An IP pool uses VXLAN, and this node has a VTEP."""
    vxlan_port: int = 4789
    """FelixConfiguration vxlanPort."""
    pools: tuple[IPv4Network, ...] = ()
    """Every IP pool's CIDR."""
    masq_pools: tuple[IPv4Network, ...] = ()
    """The pools with natOutgoing."""
    hosts: tuple[IPv4Network, ...] = ()
    """Every node's address, a /32 (all-hosts-net)."""
    vxlan_hosts: tuple[IPv4Network, ...] = ()
    """The other nodes' VTEP parent addresses, each a /32 (all-vxlan-net)."""


# -- Felix's match builder and actions, in its spelling ------------------------------


def _jump(chain: str) -> str:
    return f"--jump {chain}"


def _goto(chain: str) -> str:
    return f"--goto {chain}"


_ACCEPT = "--jump ACCEPT"
_DROP = "--jump DROP"
_RETURN = "--jump RETURN"
_NOTRACK = "--jump NOTRACK"
_MASQUERADE = "--jump MASQUERADE --random-fully"  # Felix adds --random-fully where iptables can


def _set_mark(mark: int) -> str:
    return f"--jump MARK --set-mark {mark:#x}/{mark:#x}"


def _clear_mark(mark: int) -> str:
    return f"--jump MARK --set-mark 0/{mark:#x}"


def _mark_set(mark: int) -> str:
    return f"-m mark --mark {mark:#x}/{mark:#x}"


def _mark_clear(mark: int) -> str:
    return f"-m mark --mark 0/{mark:#x}"


def _in(iface: str) -> str:
    return f"--in-interface {iface}"


def _out(iface: str) -> str:
    return f"--out-interface {iface}"


_IPIP = "-p 4"  # ProtocolNum(ProtoIPIP): the number, as the kernel may not know the name
_UDP_NUM = "-p 17"
_DST_LOCAL = "-m addrtype --dst-type LOCAL"
_SRC_LOCAL = "-m addrtype --src-type LOCAL"


def _dports(port: int) -> str:
    return f"-m multiport --destination-ports {port}"


def _set(name: str, way: str, *, negate: bool = False) -> str:
    bang = "! " if negate else ""
    return f"-m set {bang}--match-set {name} {way}"


def _ctstate(states: str, *, negate: bool = False) -> str:
    bang = "! " if negate else ""
    return f"-m conntrack {bang}--ctstate {states}"


# -- hashes and names ------------------------------------------------------------------


def rule_hashes(chain: str, rules: Iterable[FelixRule]) -> list[str]:
    """Felix's hash of each rule of `chain` (generictables.RuleHashes): SHA-224 over the
    previous hash (the chain's name first) and the rule rendered with `HASH` for its hash
    comment, in URL-safe base64, 16 characters."""
    digest = hashlib.sha224(chain.encode()).digest()
    hashes: list[str] = []
    for rule in rules:
        digest = hashlib.sha224(digest + _felix_text(chain, "HASH", rule).encode()).digest()
        hashes.append(base64.urlsafe_b64encode(digest).decode().rstrip("=")[:_HASH_LENGTH])
    return hashes


def length_limited(prefix: str, suffix: str, limit: int = MAX_CHAIN_NAME) -> str:
    """hashutils.GetLengthLimitedID: `prefix + suffix`, or `prefix_` + a hash if too long."""
    if len(prefix) + len(suffix) > limit or (
        len(prefix) + len(suffix) == limit and suffix.startswith("_")
    ):
        digest = base64.urlsafe_b64encode(hashlib.sha256(suffix.encode()).digest()).decode()
        return prefix + "_" + digest.rstrip("=")[: limit - 1 - len(prefix)]
    return prefix + suffix


_UNSAFE = re.compile(r"[^\w @%+=:,./-]")


def _comment(text: str) -> str:
    """A comment as Felix writes it: unsafe characters as `_`, at most 256 characters."""
    return _UNSAFE.sub("_", text)[:256]


def _felix_text(chain: str, hash_fragment: str, rule: FelixRule) -> str:
    """renderInner: `-A CHAIN`, the hash comment (or `HASH`), comments, matches, action."""
    parts = ["-A", chain, hash_fragment]
    parts += [f'-m comment --comment "{_comment(c)}"' for c in rule.comment]
    if rule.match:
        parts.append(" ".join(rule.match))
    if rule.action:
        parts.append(rule.action)
    return " ".join(parts)


_PROTOCOL_NAMES = {"4": "ipencap", "6": "tcp", "17": "udp"}
"""How iptables-save names the protocol numbers Felix writes (from /etc/protocols)."""


def _saved(chain: str, digest: str, rule: FelixRule) -> str:
    """The rule as iptables-save prints it back."""
    base: dict[str, str] = {}
    matches = [f'-m comment --comment "cali:{digest}"']
    matches += [f'-m comment --comment "{_comment(c)}"' for c in rule.comment]
    for fragment in rule.match:
        words = fragment.split()
        if words[0] == "--in-interface":
            base["-i"] = words[1]
        elif words[0] == "--out-interface":
            base["-o"] = words[1]
        elif words[0] == "-p":
            base["-p"] = _PROTOCOL_NAMES.get(words[1], words[1])
        elif words[0] == "--dport":
            # `-p udp --dport N` loads the udp match where the option stands.
            matches.append(f"-m {base['-p']} --dport {words[1]}")
        elif fragment.startswith("-m mark --mark 0/"):
            matches.append(fragment.replace("--mark 0/", "--mark 0x0/"))
        elif fragment.startswith("-m multiport --destination-ports "):
            matches.append(f"-m multiport --dports {words[-1]}")
        elif fragment == "-m rpfilter --invert --validmark":
            matches.append("-m rpfilter --validmark --invert")
        else:
            matches.append(fragment)
    parts = ["-A", chain, *(f"{opt} {base[opt]}" for opt in ("-i", "-o", "-p") if opt in base)]
    parts += matches
    if rule.action.startswith("--jump MARK --set-mark "):
        value, mask = rule.action.split()[-1].split("/")
        parts.append(f"-j MARK --set-xmark {int(value, 16):#x}/{int(mask, 16):#x}")
    elif rule.action.startswith("--jump "):
        parts.append("-j " + rule.action.removeprefix("--jump "))
    elif rule.action.startswith("--goto "):
        parts.append("-g " + rule.action.removeprefix("--goto "))
    return " ".join(parts)


# -- the tables ------------------------------------------------------------------------


@dataclass
class _Table:
    """One table as Felix programs it: its chains, and its rules in the built-in chains."""

    chains: dict[str, list[FelixRule]] = field(default_factory=dict)
    inserts: dict[str, list[FelixRule]] = field(default_factory=dict)
    appends: dict[str, list[FelixRule]] = field(default_factory=dict)

    def referenced(self) -> list[str]:
        """The chains reachable from the built-in chains (the only ones Felix writes)."""
        seen: list[str] = []
        todo = [r for rules in (*self.inserts.values(), *self.appends.values()) for r in rules]
        while todo:
            rule = todo.pop(0)
            target = rule.action.split()[1] if rule.action.startswith(("--jump", "--goto")) else ""
            if target in self.chains and target not in seen:
                seen.append(target)
                todo += self.chains[target]
        return seen

    def lines(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(user chains, top rules of built-in chains, every other rule), as saved."""
        first = [
            _saved(kernel, h, r)
            for kernel, rules in self.inserts.items()
            for h, r in zip(rule_hashes(kernel, rules), rules, strict=True)
        ]
        rest = [
            _saved(kernel, h, r)
            for kernel, rules in self.appends.items()
            # Appended rules hash as a chain of their own (CalculateRuleHashes(name+"*appends*")).
            for h, r in zip(rule_hashes(f"{kernel}*appends*", rules), rules, strict=True)
        ]
        chains = self.referenced()
        for chain in chains:
            rules = self.chains[chain]
            rest += [
                _saved(chain, h, r) for h, r in zip(rule_hashes(chain, rules), rules, strict=True)
            ]
        return tuple(sorted(chains)), tuple(first), tuple(rest)


def _raw(node: FelixNode) -> _Table:
    """StaticRawTableChains: clear the marks, mark workload traffic for the RPF check."""
    notrack = [FelixRule(("-p udp", f"--dport {node.vxlan_port}"), _NOTRACK)] if node.vxlan else []
    prerouting = [
        FelixRule(action=_clear_mark(_ALL_MARKS)),
        # VXLAN's two directions use different source ports: tracking them
        # would leave unreplied entries, so Felix does not track them.
        *notrack,
        FelixRule((_in(_WORKLOADS),), _set_mark(MARK_SCRATCH0)),
        FelixRule((_mark_set(MARK_SCRATCH0),), _jump("cali-rpf-skip")),
        # Strict reverse-path check of workload traffic: a pod cannot spoof.
        FelixRule((_mark_set(MARK_SCRATCH0), "-m rpfilter --invert --validmark"), _DROP),
        FelixRule((_mark_clear(MARK_SCRATCH0),), _jump("cali-from-host-endpoint")),
        FelixRule((_mark_set(MARK_ACCEPT),), _ACCEPT),
    ]
    output = [
        FelixRule(action=_clear_mark(_ALL_MARKS)),
        FelixRule(action=_jump("cali-to-host-endpoint")),
        *notrack,
        FelixRule((_mark_set(MARK_ACCEPT),), _ACCEPT),
    ]
    return _Table(
        chains={
            "cali-PREROUTING": prerouting,
            "cali-OUTPUT": output,
            "cali-rpf-skip": [],
            "cali-from-host-endpoint": [],
            "cali-to-host-endpoint": [],
        },
        inserts={
            "PREROUTING": [FelixRule(action=_jump("cali-PREROUTING"))],
            "OUTPUT": [FelixRule(action=_jump("cali-OUTPUT"))],
        },
    )


def _mangle() -> _Table:
    """StaticMangleTableChains: pre-DNAT and host endpoint policy, none here."""
    accepted = "Host endpoint policy accepted packet."
    return _Table(
        chains={
            "cali-PREROUTING": [
                FelixRule((_ctstate("RELATED,ESTABLISHED"),), _ACCEPT),
                FelixRule((_mark_set(MARK_ACCEPT),), _ACCEPT),
                FelixRule(action=_jump("cali-from-host-endpoint")),
                FelixRule((_mark_set(MARK_ACCEPT),), _ACCEPT, (accepted,)),
            ],
            "cali-POSTROUTING": [
                FelixRule((_mark_set(MARK_ACCEPT),), _RETURN),
                FelixRule(action=_clear_mark(_ALL_MARKS)),
                FelixRule((_ctstate("DNAT"),), _jump("cali-to-host-endpoint")),
                FelixRule((_mark_set(MARK_ACCEPT),), _RETURN, (accepted,)),
            ],
            "cali-from-host-endpoint": [],
            "cali-to-host-endpoint": [],
        },
        inserts={
            "PREROUTING": [FelixRule(action=_jump("cali-PREROUTING"))],
            "POSTROUTING": [FelixRule(action=_jump("cali-POSTROUTING"))],
        },
    )


def _filter(node: FelixNode) -> _Table:
    """StaticFilterTableChains, the workload dispatch chains, each workload's and profile's."""
    accepted = "Host endpoint policy accepted packet."
    input_rules: list[FelixRule] = []
    output_tunnel: list[FelixRule] = []
    if node.ipip:
        input_rules += [
            FelixRule(
                (_IPIP, _set(IPSET_ALL_HOSTS, "src"), _DST_LOCAL),
                _ACCEPT,
                ("Allow IPIP packets from Calico hosts",),
            ),
            FelixRule((_IPIP,), _DROP, ("Drop IPIP packets from non-Calico hosts",)),
        ]
        output_tunnel.append(
            FelixRule(
                (_IPIP, _set(IPSET_ALL_HOSTS, "dst"), _SRC_LOCAL),
                _ACCEPT,
                ("Allow IPIP packets to other Calico hosts",),
            )
        )
    if node.vxlan:
        vxlan = _dports(node.vxlan_port)
        input_rules += [
            FelixRule(
                (_UDP_NUM, vxlan, _set(IPSET_VXLAN_HOSTS, "src"), _DST_LOCAL),
                _ACCEPT,
                ("Allow IPv4 VXLAN packets from allowed hosts",),
            ),
            FelixRule(
                (_UDP_NUM, vxlan, _DST_LOCAL),
                _DROP,
                ("Drop IPv4 VXLAN packets from non-allowed hosts",),
            ),
        ]
        output_tunnel.append(
            FelixRule(
                (_UDP_NUM, vxlan, _SRC_LOCAL, _set(IPSET_VXLAN_HOSTS, "dst")),
                _ACCEPT,
                ("Allow IPv4 VXLAN packets to other allowed hosts",),
            )
        )
    input_rules += [
        FelixRule((_in(_WORKLOADS),), _goto("cali-wl-to-host")),
        FelixRule((_mark_set(MARK_ACCEPT),), _ACCEPT),
        FelixRule(action=_clear_mark(_ALL_MARKS)),
        FelixRule(action=_jump("cali-from-host-endpoint")),
        FelixRule((_mark_set(MARK_ACCEPT),), _ACCEPT, (accepted,)),
    ]
    output_rules = [
        FelixRule((_mark_set(MARK_ACCEPT),), _ACCEPT),
        # Felix does not police host → workload traffic.
        FelixRule((_out(_WORKLOADS),), _RETURN),
        *output_tunnel,
        FelixRule(action=_clear_mark(_ALL_MARKS)),
        FelixRule((_ctstate("DNAT", negate=True),), _jump("cali-to-host-endpoint")),
        FelixRule((_mark_set(MARK_ACCEPT),), _ACCEPT, (accepted,)),
    ]
    forward_rules = [
        FelixRule(action=_clear_mark(_ALL_MARKS & ~MARK_ACCEPT)),
        FelixRule((_mark_clear(MARK_ACCEPT),), _jump("cali-from-hep-forward")),
        FelixRule((_in(_WORKLOADS),), _jump("cali-from-wl-dispatch")),
        FelixRule((_out(_WORKLOADS),), _jump("cali-to-wl-dispatch")),
        FelixRule(action=_jump("cali-to-hep-forward")),
        FelixRule(action=_jump("cali-cidr-block")),
    ]
    chains: dict[str, list[FelixRule]] = {
        "cali-INPUT": input_rules,
        "cali-OUTPUT": output_rules,
        "cali-FORWARD": forward_rules,
        "cali-wl-to-host": [
            FelixRule(action=_jump("cali-from-wl-dispatch")),
            FelixRule(action=_ACCEPT, comment=("Configured DefaultEndpointToHostAction",)),
        ],
        # No host endpoints, no advertised Service CIDRs: these stay empty.
        "cali-from-host-endpoint": [],
        "cali-to-host-endpoint": [],
        "cali-from-hep-forward": [],
        "cali-to-hep-forward": [],
        "cali-cidr-block": [],
    }
    names = [w.iface for w in node.workloads]
    chains.update(_dispatch("cali-from-wl-dispatch", names, "cali-fw-", _in))
    chains.update(_dispatch("cali-to-wl-dispatch", names, "cali-tw-", _out))
    for workload in node.workloads:
        chains.update(_endpoint(workload, node.vxlan_port))
    return _Table(
        chains=chains,
        inserts={
            "INPUT": [FelixRule(action=_jump("cali-INPUT"))],
            "FORWARD": [FelixRule(action=_jump("cali-FORWARD"))],
            "OUTPUT": [FelixRule(action=_jump("cali-OUTPUT"))],
        },
        appends={
            "FORWARD": [
                FelixRule(
                    (_mark_set(MARK_ACCEPT),), _ACCEPT, ("Policy explicitly accepted packet.",)
                ),
                # Tells mangle POSTROUTING this was forwarded, not host traffic.
                FelixRule(action=_set_mark(MARK_ACCEPT)),
            ]
        },
    )


def _dispatch(
    chain: str, names: list[str], prefix: str, match: Callable[[str], str]
) -> dict[str, list[FelixRule]]:
    """interfaceNameDispatchChains: a shallow tree by the names' next character after their
    common prefix, ending in "Unknown interface" DROP."""
    end = [FelixRule(action=_DROP, comment=("Unknown interface",))]
    ordered = sorted(set(names))
    common = _common_prefix(ordered)
    bins: dict[str, list[str]] = {}
    for name in ordered:
        bins.setdefault(name[: len(common) + 1], []).append(name)
    chains: dict[str, list[FelixRule]] = {}
    root: list[FelixRule] = []
    for start, group in bins.items():
        if len(group) == 1:
            root.append(FelixRule((match(group[0]),), _goto(length_limited(prefix, group[0]))))
            continue
        child = f"{chain}-{start[len(common) :]}"
        root.append(FelixRule((match(start + "+"),), _goto(child)))
        chains[child] = [
            FelixRule((match(name),), _goto(length_limited(prefix, name))) for name in group
        ] + end
    chains[chain] = root + end
    return chains


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    first, last = min(names), max(names)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def _endpoint(workload: Workload, vxlan_port: int) -> dict[str, list[FelixRule]]:
    """The workload's to- and from-endpoint chains, and its profiles' chains."""
    chains: dict[str, list[FelixRule]] = {}
    for prefix, profile_prefix, direction, egress in (
        ("cali-tw-", "cali-pri-", "ingress", False),
        ("cali-fw-", "cali-pro-", "egress", True),
    ):
        rules = [
            FelixRule((_ctstate("RELATED,ESTABLISHED"),), _ACCEPT),
            FelixRule((_ctstate("INVALID"),), _DROP),
            FelixRule(action=_clear_mark(MARK_ACCEPT | MARK_PASS)),
        ]
        if egress:
            # Encapsulated packets from a pod could slip past egress policy.
            rules += [
                FelixRule(
                    (_UDP_NUM, _dports(vxlan_port)),
                    _DROP,
                    ("Drop VXLAN encapped packets originating in workloads",),
                ),
                FelixRule(
                    (_IPIP,), _DROP, ("Drop IPinIP encapped packets originating in workloads",)
                ),
            ]
        for profile in workload.profiles:
            profile_chain = length_limited(profile_prefix, profile)
            rules += [
                FelixRule(action=_jump(profile_chain)),
                FelixRule((_mark_set(MARK_ACCEPT),), _RETURN, ("Return if profile accepted",)),
            ]
            chains[profile_chain] = _profile(profile, direction)
        rules.append(FelixRule(action=_DROP, comment=("Drop if no profiles matched",)))
        chains[length_limited(prefix, workload.iface)] = rules
    return chains


def _profile(profile: str, direction: str) -> list[FelixRule]:
    """A profile's rules: a namespace's allows everything, a service account's has none."""
    comment = (f"Profile {profile} {direction}",)
    if profile.startswith("kns."):
        return [
            FelixRule(action=_set_mark(MARK_ACCEPT), comment=comment),
            FelixRule((_mark_set(MARK_ACCEPT),), _RETURN),
        ]
    # No rules: Felix still writes one, carrying the chain's comment.
    return [FelixRule(comment=comment)]


def _nat(node: FelixNode) -> _Table:
    """StaticNATTableChains and the natOutgoing chain."""
    postrouting = [
        FelixRule(action=_jump("cali-fip-snat")),
        FelixRule(action=_jump("cali-nat-outgoing")),
    ]
    for tunnel, on in (("tunl0", node.ipip), ("vxlan.calico", node.vxlan)):
        if on:
            # A host's own packet down the tunnel from an address other than the
            # tunnel's (a Service's DNAT chose the source) leaves from the tunnel's.
            postrouting.append(
                FelixRule(
                    (
                        _out(tunnel),
                        "-m addrtype ! --src-type LOCAL --limit-iface-out",
                        _SRC_LOCAL,
                    ),
                    _MASQUERADE,
                )
            )
    outgoing = [
        FelixRule(
            (_set(IPSET_MASQ_POOLS, "src"), _set(IPSET_ALL_POOLS, "dst", negate=True)),
            _MASQUERADE,
        )
    ]
    return _Table(
        chains={
            "cali-PREROUTING": [FelixRule(action=_jump("cali-fip-dnat"))],
            "cali-POSTROUTING": postrouting,
            "cali-OUTPUT": [FelixRule(action=_jump("cali-fip-dnat"))],
            "cali-fip-dnat": [],
            "cali-fip-snat": [],
            "cali-nat-outgoing": outgoing if node.masq_pools else [],
        },
        inserts={
            "PREROUTING": [FelixRule(action=_jump("cali-PREROUTING"))],
            "OUTPUT": [FelixRule(action=_jump("cali-OUTPUT"))],
        },
        # Last, after kube-proxy's: its MASQUERADE must clear its mark before
        # Felix's could end the chain (int_dataplane.go, setUpIptablesNormal).
        appends={"POSTROUTING": [FelixRule(action=_jump("cali-POSTROUTING"))]},
    )


def _ipsets(node: FelixNode) -> IpSets:
    def nets(name: str, members: Iterable[IPv4Network]) -> IpSet:
        return IpSet(name, "hash:net", tuple((m,) for m in members))

    sets = {
        IPSET_ALL_POOLS: nets(IPSET_ALL_POOLS, node.pools),
        IPSET_MASQ_POOLS: nets(IPSET_MASQ_POOLS, node.masq_pools),
    }
    if node.ipip:
        sets[IPSET_ALL_HOSTS] = nets(IPSET_ALL_HOSTS, node.hosts)
    if node.vxlan:
        sets[IPSET_VXLAN_HOSTS] = nets(IPSET_VXLAN_HOSTS, node.vxlan_hosts)
    return sets


def felix_rules(node: FelixNode) -> ForeignRules:
    """Felix's chains and rules on a node, per table as iptables-save prints them, and its
    ipsets."""
    chains: dict[str, tuple[str, ...]] = {}
    rules: dict[str, tuple[str, ...]] = {}
    first: dict[str, tuple[str, ...]] = {}
    for name, table in (
        ("raw", _raw(node)),
        ("mangle", _mangle()),
        ("filter", _filter(node)),
        ("nat", _nat(node)),
    ):
        chains[name], first[name], rules[name] = table.lines()
    return ForeignRules(chains=chains, rules=rules, first=first, ipsets=_ipsets(node))
