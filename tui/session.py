"""The app's one seam to `sim`: a cluster being explored, and the calls made on it.

The screen keeps what is on display; the session keeps the cluster and the
last request, asks `sim` for traces, rules and edits, and hands back frozen
results. Nothing here computes networking.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from model.cluster import Cluster, Pod
from model.errors import KubehopError
from model.trace import Trace
from sim.cluster import dns
from sim.cluster import rules as node_tables
from sim.kernel.conntrack import conntrack_view
from sim.trace import request as flow
from sim.trace import tracer
from sim.trace.effects import hop_effect, trace_effects
from sim.trace.presets import PRESETS, Preset, preset_for
from sim.trace.request import Request
from sim.trace.stepper import Stepper
from sim.trace.tracer import MAX_REPEATS

if TYPE_CHECKING:
    from sim.cluster.rules import Pages as NodePages
    from sim.cluster.tunnels import NodeTunnels
    from sim.lab import Check
    from sim.trace.challenge import Question as Question
    from sim.trace.counterpart import Counterpart as Counterpart
    from sim.trace.decisions import Decision as Decision
    from sim.trace.summary import TraceSummary as TraceSummary

# The screens' vocabulary from `sim`, handed on so that they import `sim` only from here.
__all__ = [
    "MAX_REPEATS",
    "Edit",
    "NodePages",
    "Preset",
    "Request",
    "Session",
    "Spread",
    "Stepper",
    "conntrack_view",
    "load_cluster",
    "preset_for",
    "presets",
    "scenario_of",
    "scenario_wording",
]

# `sim.trace.summary`, `.challenge`, `.decisions`, `.command` and `.counterpart` (switching
# mode) are imported by the calls that use them
# (the summary's pydantic models alone take ~16 ms). `sim.cluster.edits` is imported by the calls that edit: nothing on the first screen
# edits. `sim.cluster.load`, `sim.cluster.tunnels` and `sim.lab` are imported only by the
# calls that use them.


_BIG = 20_000
"""Services + pods past which a node's rules are rendered in a worker, with a notice."""

_TEXTS_KEPT = 4
"""Rendered texts of untraced nodes kept (58 MB each at the scale limits)."""


@dataclass(frozen=True)
class Edit:
    """A cluster edit's outcome: the new cluster and what it did to the rules."""

    cluster: Cluster
    """The cluster after the edit."""
    summary: str
    """One line: what changed (`pod4 deleted; backend-5d8f7b-x7k2q took 192.168.2.3`)."""
    diffs: tuple[tuple[str, tuple[str, ...]], ...]
    """Per node, the unified diff of its rules (nodes whose rules did not change omitted)."""
    generation: int = -1
    """The session generation the edit was planned on; a stale plan is not committed."""


@dataclass(frozen=True)
class Spread:
    """Where N requests from fresh source ports ended up."""

    request: Request
    """The request sent."""
    counts: tuple[tuple[str, int], ...]
    """(endpoint or verdict, requests), most first."""
    seed: int
    """The seed the requests shared."""
    requested: int = 0
    """How many were asked for (more than were sent while sending, or when stopped)."""

    @property
    def sent(self) -> int:
        """How many requests were sent (and counted)."""
        return sum(n for _, n in self.counts)


def _spread(request: Request, tally: Counter[str], requested: int) -> Spread:
    counts = tuple(sorted(tally.items(), key=lambda item: (-item[1], item[0])))
    return Spread(request, counts, request.seed or 0, requested)


def presets() -> tuple[Preset, ...]:
    """The article's scenarios, as `sim.trace.presets` defines them."""
    return PRESETS


def scenario_of(request: Request) -> Preset | None:
    """The article's scenario whose request `request` is, whatever its seed (a deep link
    to a scenario's trace names the seed it was traced with)."""
    return next((p for p in PRESETS if p.request == replace(request, seed=None)), None)


def scenario_wording(preset: Preset | None) -> tuple[tuple[str, str], ...]:
    """For a scenario that takes a chosen endpoint, the phrases `sim` writes for `--pick`
    (`the endpoint chosen in advance (--pick)`) in the app's words (`chosen for this
    scenario`): a learner who pressed 3 gave no --pick. None for other requests."""
    if preset is None or preset.request.pick is None:
        return ()
    return ((" in advance (--pick)", " for this scenario"), (" in advance", " for this scenario"))


def load_cluster(path: Path | None, *, cni: str | None = None, mode: str | None = None) -> Cluster:
    """The cluster in the file or directory `path`, or the demo cluster when None, with the
    CNI and kube-proxy mode the command line chose (None: the file's own)."""
    from sim.cluster.load import load

    return load(path, cni=cni, mode=mode)


@dataclass
class Session:
    """The cluster under study and the requests made on it."""

    cluster: Cluster
    """The cluster as it is now (edits replace it)."""
    seed: int | None = None
    """The seed for requests that name none; None lets the tracer choose one each time."""
    generation: int = 0
    """Counts edits, so the screen can tell when the cluster changed."""
    history: list[str] = field(default_factory=list)
    """One line per edit, oldest first."""
    cluster_files: tuple[str, ...] = ()
    """The files the cluster was read from, as given (none: the demo), for deep links."""
    _traced: set[str] = field(default_factory=set, repr=False)
    # Nodes a trace of this cluster passed: `sim.cluster.rules` keeps their text, rendered.
    _texts: OrderedDict[str, str] = field(default_factory=OrderedDict, repr=False)
    # Other nodes' text, rendered for the rules pane only (no parse: nothing walks it).

    @property
    def mode(self) -> str:
        """kube-proxy's mode in the cluster under study (`iptables`, `nftables`)."""
        return self.cluster.kube_proxy.mode.value

    @property
    def cni(self) -> str:
        """The CNI the cluster under study runs (`host-gw`, `flannel-vxlan`, `calico-ipip`…)."""
        return self.cluster.cni.plugin.value

    def modes(self) -> tuple[str, ...]:
        """The kube-proxy modes kubehop simulates, in the order `m` cycles them."""
        from sim.cluster.load import SIMULATED_MODES

        return tuple(mode.value for mode in SIMULATED_MODES)

    def next_mode(self) -> str:
        """The mode after the cluster's in `modes()` (the first if it runs none of them)."""
        modes = self.modes()
        at = modes.index(self.mode) if self.mode in modes else -1
        return modes[(at + 1) % len(modes)]

    def switch_mode(self, mode: str) -> None:
        """Run kube-proxy in `mode` from now on, the cluster otherwise as it is (its edits
        kept); raises `KubehopError` for a mode kubehop does not simulate."""
        from sim.cluster.load import with_mode

        cluster = with_mode(self.cluster, mode)
        if cluster is self.cluster:
            return
        self.cluster = cluster
        self._traced.clear()
        self._texts.clear()
        # An edit planned on the other mode's cluster is not committed on this one.
        self.generation += 1

    def effects(self, trace: Trace) -> tuple[tuple[str, str], ...]:
        """What each hop of `trace` did, as (effect, label): `("masquerade", "MASQ")`, the
        names and labels the text report heads its hops with."""
        return tuple((effect.value, effect.label) for effect in trace_effects(trace))

    def landmark(self, trace: Trace, state: str) -> int | None:
        """The first hop of `trace` a screen is shown at: `dnat`, `bridge`, `encap` or `reply`."""
        for hop in trace.hops:
            effect = hop_effect(hop, trace.verdict).value
            if state in ("dnat", "encap") and effect == state:
                return hop.seq
            if state == "bridge" and effect == "bridge":
                return hop.seq
            if state == "reply" and hop.direction.value == "reply":
                return hop.seq
        return None

    def summary(self, trace: Trace) -> TraceSummary:
        """What `trace` came to: NAT and where it was undone, deciding rules, nodes, tunnels."""
        from sim.trace.summary import summarize

        return summarize(trace)

    def decisions(self, trace: Trace) -> tuple[Decision, ...]:
        """The hops of `trace` where something was decided (a NAT, a route, a drop…)."""
        from sim.trace.decisions import decisions

        return decisions(trace)

    def next_decision(self, trace: Trace, index: int) -> int | None:
        """The first decision hop after hop `index` (from 0), None when there is none."""
        from sim.trace.decisions import next_decision

        return next_decision(trace, index)

    def previous_decision(self, trace: Trace, index: int) -> int | None:
        """The last decision hop before hop `index` (from 0), None when there is none."""
        from sim.trace.decisions import previous_decision

        return previous_decision(trace, index)

    def questions(self, trace: Trace) -> tuple[Question, ...]:
        """Challenge mode's questions on `trace`, in hop order (the trace's seed draws the
        wrong choices, so the same trace asks the same questions)."""
        from sim.trace.challenge import challenge

        return challenge(trace, self.cluster, trace.seed)

    def command(self, request: Request, trace: Trace, step: int | None = None) -> str:
        """The shell command that traces `request` again as `trace` (its seed, this mode and
        CNI, the cluster's files) and opens the app at hop `step` (from 1)."""
        from sim.trace.command import command_for

        return command_for(
            replace(request, seed=trace.seed), self.mode, self.cni, self.cluster_files, step
        )

    def counterpart(self, old: Trace, index: int, new: Trace) -> Counterpart:
        """Where hop `index` of `old` is in `new`, a trace of the same request."""
        from sim.trace.counterpart import counterpart

        return counterpart(old, index, new)

    def differences(self, old: Trace, new: Trace) -> tuple[str, ...]:
        """What differs between `old` and `new`, two traces of one request, in short phrases."""
        from sim.trace.counterpart import differences

        return differences(old, new)

    def node_tunnels(self, node: str) -> NodeTunnels:
        """`node`'s tunnel devices (flannel.1, tunl0, vxlan.calico) and Calico blocks."""
        from sim.cluster.tunnels import node_tunnels

        return node_tunnels(self.cluster, node)

    @property
    def big(self) -> bool:
        """Rendering a node's rules takes long enough (~5 s at the scale limits) to show progress."""
        return len(self.cluster.services) + len(self.cluster.pods) > _BIG

    def trace(self, request: Request) -> Trace:
        """Trace `request`; raises `KubehopError` for a name the cluster does not have."""
        cluster = self.cluster
        trace = tracer.trace(
            cluster,
            request if request.seed is not None else replace(request, seed=self.seed),
        )
        if cluster is self.cluster:
            self._traced.update(h.where.node for h in trace.hops if h.where.node is not None)
        return trace

    def rules_ready(self, node: str) -> bool:
        """`rules_text(node)` returns at once: the text is rendered already (a trace renders
        only the chains its packets reach, so having traced through the node is not enough)."""
        return node in self._texts or node_tables.listing_ready(self.cluster, node)

    def rules_text(self, node: str) -> str:
        """What the node's commands print of its rules: iptables-save in iptables mode, the
        nft table first in nftables mode (safe to call from a worker thread)."""
        cluster = self.cluster
        if node in self._traced:
            return node_tables.node_listing(cluster, node)
        text = self._texts.get(node)
        if text is None:
            text = node_tables.render_rules(cluster, node)
            if cluster is not self.cluster:
                return text  # an edit replaced the cluster meanwhile: do not keep it
            self._texts[node] = text
            while len(self._texts) > _TEXTS_KEPT:
                self._texts.popitem(last=False)
        self._texts.move_to_end(node)
        return text

    def rules_pages(self, node: str) -> NodePages | None:
        """The node's listing as rows made when read, where its mode gives them; None:
        `rules_text` gives it (safe to call from a worker thread)."""
        return node_tables.node_pages(self.cluster, node)

    def pages_ready(self, node: str) -> bool:
        """`rules_pages(node)` returns at once."""
        return node_tables.pages_ready(self.cluster, node)

    def check(self, request: Request) -> None:
        """Raise `KubehopError` if `request` names something the cluster lacks (no tracing)."""
        source = flow.parse_source(self.cluster, request.source, request.container)
        destination = flow.parse_destination(request.destination)
        if destination.ip is None and source.namespace is not None:
            dns.resolve(self.cluster, destination.host, source.namespace)

    def has_source(self, request: Request) -> bool:
        """Whether `request`'s source exists in this cluster (the presets name demo pods)."""
        try:
            found = flow.find_source(self.cluster, request.source, request.container)
        except KubehopError:
            return False
        return found is not None

    def completions(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(sources, destinations) the pick dialog completes from."""
        sources, destinations = flow.completions(self.cluster)
        return tuple(sources), tuple(destinations)

    def delete_pod(self, pod: Pod, *, seed: int = 0) -> Edit:
        """Delete `pod`; its ReplicaSet, if any, makes a replacement."""
        edit = self.plan_delete(pod, seed=seed)
        self.commit(edit)
        return edit

    def scale(self, pod: Pod, delta: int, *, seed: int = 0) -> Edit:
        """Scale the controller owning `pod` by `delta` replicas."""
        edit = self.plan_scale(pod, delta, seed=seed)
        self.commit(edit)
        return edit

    def plan_delete(self, pod: Pod, *, seed: int = 0) -> Edit:
        """What deleting `pod` would do, without doing it (safe in a worker thread)."""
        from sim.cluster import edits

        result = edits.delete_pod(self.cluster, pod.namespace, pod.name, seed=seed)
        return self._plan(result.cluster, result.summary, pod.node)

    def plan_scale(self, pod: Pod, delta: int, *, seed: int = 0) -> Edit:
        """What scaling `pod`'s controller would do, without doing it (safe in a worker)."""
        from sim.cluster import edits

        if pod.owner is None:
            raise edits.EditError(f"pod {pod.name!r} has no controller to scale")
        result = edits.scale(self.cluster, pod.namespace, pod.owner.name, delta=delta, seed=seed)
        return self._plan(result.cluster, result.summary, pod.node)

    def spread(
        self,
        request: Request,
        count: int,
        *,
        progress: Callable[[Spread], bool] | None = None,
        every: int = 200,
    ) -> Spread:
        """Send `count` requests from fresh source ports and count where each ended.

        Every `every` requests, `progress` sees the tally so far; when it
        returns False, sending stops there (safe to call from a worker thread:
        the session is only read).
        """
        seed = next(s for s in (request.seed, self.seed, 1) if s is not None)
        sent = replace(request, seed=seed)
        tally: Counter[str] = Counter()
        for done, trace in enumerate(
            tracer.repeat(
                self.cluster,
                replace(request, seed=seed, pick=None),
                count,
            ),
            start=1,
        ):
            tally[trace.outcome] += 1
            if progress is None or done % every or done == count:
                continue
            if not progress(_spread(sent, tally, count)):
                break
        return _spread(sent, tally, count)

    def check_in_lab(self, trace: Trace) -> Check:
        """Send `trace`'s request through the real kernel in the lab and compare.

        Raises `KubehopError` when no lab is up (`kubehop lab up` builds one) or
        it cannot run here; it blocks on real traffic, so call it from a worker.
        """
        from sim.lab import verify_trace

        return verify_trace(trace, self.cluster)

    def _plan(self, cluster: Cluster, summary: str, node: str) -> Edit:
        from sim.cluster import edits

        # Text only: a diff needs no parse. On a big cluster every node's rules
        # take seconds to render, so only the edited pod's node is compared.
        old = self.cluster
        nodes = (node,) if self.big else tuple(n.name for n in cluster.nodes)
        diffs: list[tuple[str, tuple[str, ...]]] = []
        for name in nodes:
            # sim.cluster.rules caches per cluster: the old text is there if a trace
            # passed the node, and the new one is ready for the next trace.
            # What the node's commands print: in nftables mode kube-proxy's table is
            # not in the iptables-save text, and it is what an edit changes.
            before = node_tables.node_listing(old, name) if old.node(name) else ""
            diff = edits.rules_diff(before, node_tables.node_listing(cluster, name))
            if diff:
                diffs.append((name, diff))
        if self.big:
            summary += f" (rules compared on {node} only)"
        return Edit(cluster, summary, tuple(diffs), self.generation)

    def commit(self, edit: Edit) -> None:
        """Make `edit`'s cluster the one under study."""
        self.cluster = edit.cluster
        self._traced.clear()
        self._texts.clear()
        self.generation += 1
        self.history.append(edit.summary)
