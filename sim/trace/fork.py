"""Every branch of kube-proxy's load balancing, each traced to its end (`--all-endpoints`).

kube-proxy spreads a Service's traffic with `-m statistic --mode random`
rules: with three endpoints the first matches with probability 1/3, the
second with 1/2 of what is left, the third takes the rest, so each endpoint
gets 1/3. Instead of drawing, the fork view decides each such rule both
ways and traces every path; a branch's probability is the product of the
decisions on its way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from model.cluster import Cluster
from model.netfilter import Rule, StatisticMatch
from model.trace import Direction, Trace, Verdict
from sim.kernel.rules import NodeRules
from sim.proxy.iptables.explain import comment_of
from sim.trace.report import trace_dict
from sim.trace.request import Request
from sim.trace.tracer import trace

__all__ = [
    "MAX_BRANCHES",
    "Branch",
    "Choice",
    "Fork",
    "all_delivered",
    "fork",
    "fork_dict",
    "fork_text",
]

MAX_BRANCHES = 256
"""At most this many branches are traced; a Service with more endpoints is cut short, and says so."""


@dataclass(frozen=True)
class Choice:
    """One `-m statistic` rule met on the way, and which way it went."""

    chain: str
    """The chain (`KUBE-SVC-…`)."""
    index: int
    """The rule's number in its chain."""
    probability: float
    """`--probability` as written."""
    matched: bool
    """This branch takes the rule (True) or passes it by (False)."""
    comment: str | None
    """kube-proxy's comment: `default/web -> 10.244.1.7:8080`."""

    @property
    def chance(self) -> Fraction:
        """The probability of going this way, as a fraction (1/3, 2/3)."""
        p = Fraction(self.probability).limit_denominator(1_000_000)
        return p if self.matched else 1 - p


@dataclass(frozen=True)
class Branch:
    """One path through the statistic rules and the trace that follows it."""

    choices: tuple[Choice, ...]
    """The decisions on the way, in the order the packet met the rules."""
    trace: Trace
    """The trace along this path."""

    @property
    def probability(self) -> Fraction:
        """How likely a new connection takes this path."""
        out = Fraction(1)
        for choice in self.choices:
            out *= choice.chance
        return out


@dataclass(frozen=True)
class Fork:
    """Every branch, in the order of the rules (the first rule's branch first)."""

    source: str
    """The source as given."""
    destination: str
    """The destination as given."""
    seed: int
    """The seed of everything else random (source ports)."""
    branches: tuple[Branch, ...]
    """Every branch."""
    truncated: bool = False
    """More branches existed than `MAX_BRANCHES`."""


def fork(
    cluster: Cluster,
    request: Request,
    *,
    node_rules: Mapping[str, NodeRules] | None = None,
) -> Fork:
    """Trace every branch of the random rules on `request`'s way (seed 1 if it has none)."""
    seed = request.seed if request.seed is not None else 1
    branches: list[Branch] = []
    scripts: list[tuple[bool, ...]] = [()]
    truncated = False
    while scripts:
        if len(branches) >= MAX_BRANCHES:
            truncated = True
            break
        script = scripts.pop()
        met: list[tuple[Rule, bool]] = []

        def choose(
            rule: Rule, script: tuple[bool, ...] = script, met: list[tuple[Rule, bool]] = met
        ) -> bool:
            take = script[len(met)] if len(met) < len(script) else True
            met.append((rule, take))
            return take

        result = trace(
            cluster,
            replace(request, seed=seed),
            node_rules=node_rules,
            choose=choose,
        )
        choices = tuple(_choice(rule, take) for rule, take in met)
        branches.append(Branch(choices, result))
        # The next branches flip a rule this one took, deepest first, so the
        # order follows the rules: #2 taken, then #2 passed and #3 taken, …
        for depth in range(len(script), len(met)):
            if met[depth][1]:
                scripts.append((*(take for _, take in met[:depth]), False))
    return Fork(request.source, request.destination, seed, tuple(branches), truncated)


def _choice(rule: Rule, take: bool) -> Choice:
    stat = next(m for m in rule.matches if isinstance(m, StatisticMatch))
    return Choice(rule.chain, rule.index, stat.probability, take, comment_of(rule))


def _fraction(value: Fraction) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def _leaf(branch: Branch) -> str:
    t = branch.trace
    where = t.endpoint or "no endpoint"
    request = [h for h in t.hops if h.direction is Direction.REQUEST]
    last = request[-1].where.netns if request else ""
    who = f" ({last.removeprefix('pod/')})" if last.startswith("pod/") and t.endpoint else ""
    outcome = t.verdict.value.upper()
    return f"→ {where}{who}: {outcome}   [overall {_fraction(branch.probability)}]"


def fork_text(result: Fork) -> str:
    """The branches as a tree, then each branch's verdict."""
    lines = [
        f"kubehop trace {result.source} → {result.destination}, every endpoint   (seed {result.seed})",
        "",
    ]
    first = result.branches[0]
    if not first.choices:
        lines.append("no -m statistic rule on the way: there is one path")
    else:
        head = first.choices[0]
        service = (head.comment or "").split(" -> ")[0]
        lines.append(f"{head.chain}" + (f" ({service})" if service else ""))
    lines += _tree(result.branches, 0, "")
    if result.truncated:
        lines.append(f"… cut short after {MAX_BRANCHES} branches")
    lines.append("")
    for number, branch in enumerate(result.branches, start=1):
        t = branch.trace
        lines.append(
            f"branch {number} ({_fraction(branch.probability)}): {t.verdict.value.upper()}: {t.reason}"
        )
    return "\n".join(lines) + "\n"


def _tree(branches: tuple[Branch, ...], depth: int, indent: str) -> list[str]:
    """The branches sharing their first `depth` choices, as tree lines."""
    out: list[str] = []
    ended = [b for b in branches if len(b.choices) <= depth]
    going = [b for b in branches if len(b.choices) > depth]
    groups: list[tuple[Choice, list[Branch]]] = []
    for branch in going:
        choice = branch.choices[depth]
        if groups and groups[-1][0] == choice:
            groups[-1][1].append(branch)
        else:
            groups.append((choice, [branch]))
    items: list[tuple[str, list[Branch] | Branch]] = []
    for branch in ended:
        if branch.choices:
            items.append((f"the rest {_rest(branch)} {_leaf(branch)}", branch))
        else:
            items.append((f"the only path {_leaf(branch)}", branch))
    for choice, members in groups:
        if choice.matched:
            label = (
                f"#{choice.index} matches, probability {_fraction(choice.chance)}"
                f" (--probability {choice.probability:.11f})"
            )
        else:
            label = f"#{choice.index} does not match, {_fraction(choice.chance)}"
        items.append((label, members))
    for position, (label, item) in enumerate(items):
        last = position == len(items) - 1
        branch_mark, child_indent = ("└── ", "    ") if last else ("├── ", "│   ")
        if isinstance(item, Branch):
            out.append(f"{indent}{branch_mark}{label}")
            continue
        only = item[0] if len(item) == 1 and len(item[0].choices) == depth + 1 else None
        if only is not None and only.choices[depth].matched:
            out.append(f"{indent}{branch_mark}{label} {_leaf(only)}")
            continue
        out.append(f"{indent}{branch_mark}{label}")
        out += _tree(tuple(item), depth + 1, indent + child_indent)
    return out


def _rest(branch: Branch) -> str:
    """`(#4)`: the rule of the chain that took the packet after every random rule said no."""
    if not branch.choices:
        return ""
    chain = branch.choices[-1].chain
    for hop in branch.trace.hops:
        for walk in hop.tables:
            refs = [r for r in walk.matched if r.chain == chain]
            if refs:
                return f"(#{refs[-1].index})"
    return ""


def fork_dict(result: Fork) -> dict[str, Any]:
    """The fork as JSON-ready data: each branch's probability, choices and trace."""
    return {
        "source": result.source,
        "destination": result.destination,
        "seed": result.seed,
        "truncated": result.truncated,
        "branches": [
            {
                "probability": _fraction(b.probability),
                "probability_value": float(b.probability),
                "choices": [
                    {
                        "chain": c.chain,
                        "rule": c.index,
                        "probability": c.probability,
                        "matched": c.matched,
                        "comment": c.comment,
                    }
                    for c in b.choices
                ],
                "trace": trace_dict(b.trace),
            }
            for b in result.branches
        ],
    }


def all_delivered(result: Fork) -> bool:
    """Whether every branch delivered."""
    return all(b.trace.verdict is Verdict.DELIVERED for b in result.branches)
