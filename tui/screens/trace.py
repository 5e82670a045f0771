"""The trace screen: cluster, rules, packet log, inspector and path map of one request.

The screen lays out the panes (tabs below 120 columns, a grid above, the
rules given their own column from 170), shows a trace and steps it, and
declares every key, so the footer, the help screen and the command palette
read them in one place. On a narrow terminal a pane is mounted when first
shown, so the first screen draws only the packet log. Its parts each do one job: the
rules pane (`rules_pane`), playing (`player`), challenge mode (`challenge`),
the summary and deep links (`learning`), kube-proxy's mode switch (`mode_switch`),
cluster edits (`cluster_edit`) and the real-kernel lab check (`lab_check`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, VerticalScroll
from textual.screen import Screen
from textual.widget import AwaitMount, Widget
from textual.worker import Worker

from model.errors import KubehopError
from model.trace import Direction, Hop, Trace
from tui.hopstyle import Badge, badge_of, literal
from tui.screens.challenge import Challenge
from tui.screens.cluster_edit import ClusterEditor
from tui.screens.lab_check import LabCheck
from tui.screens.learning import Learning
from tui.screens.mode_switch import ModeSwitch
from tui.screens.player import Player
from tui.screens.rules_pane import RulesPane
from tui.session import (
    Preset,
    Request,
    Session,
    Stepper,
    conntrack_view,
    presets,
    scenario_of,
    scenario_wording,
)
from tui.widgets.cluster_tree import ClusterTree
from tui.widgets.explanation import Explanation
from tui.widgets.inspector import PacketInspector
from tui.widgets.key_footer import KeyFooter
from tui.widgets.packet_log import PacketLog
from tui.widgets.pane_tabs import PaneTabs
from tui.widgets.path_map import PathMap
from tui.widgets.rules_view import RulesView
from tui.widgets.title_bar import TitleBar

if TYPE_CHECKING:
    from tui.screens.pick import PickResult
    from tui.session import Question

# The dialogs are imported when first opened (the rules diff by the cluster
# editor): the first screen does not need them, and the diff's RichLog alone
# pulls in rich.pretty and attrs at start-up.

PANES: tuple[tuple[str, str], ...] = (
    ("log", "Hops"),
    ("inspector", "Packet"),
    ("rules-pane", "Rules"),
    ("cluster", "Cluster"),
)
"""(pane id, tab label): the panes, in the order `v` cycles them."""

_GRID_ORDER = ("cluster", "rules-pane", "inspector", "log")
"""The panes in the order the grid places them (app.tcss spans some over two cells)."""

NARROW_BELOW = 120
"""Below this many columns the panes are tabs, one shown at a time."""

WIDE_FROM = 170
"""From this many columns the rules get a column of their own, wide enough for a rule's
target (`-j DNAT --to-destination 192.168.2.2:8080`) beside its chain; below it (medium)
they share the top row with the cluster only, the packet and the log below them."""


def _scenario_bindings() -> list[BindingType]:
    # Named, so the help screen and the command palette say which scenario is which.
    return [
        Binding(p.key, f"scenario('{p.key}')", f"Scenario {p.key}: {p.title}", show=False)
        for p in presets()
    ]


class TraceScreen(Screen[None]):
    """Step one request and its reply through the cluster, watching every rewrite."""

    AUTO_FOCUS = "#log"
    """The packet log has the keys first (focusing it once spares the footer a redraw)."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-medium"), (WIDE_FROM, "-wide")]  # noqa: RUF012 (Screen declares it)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n,right", "step", "Step"),
        Binding("b,left", "back", "Back"),
        # One key, two bindings: the footer says what space does now.
        Binding("space", "play", "Play"),
        Binding("space", "pause", "Pause"),
        Binding("r", "reply", "Reply"),
        Binding("p", "pick", "Pick"),
        # Early, so it stays in an 80-column footer: it lists every other key.
        Binding("question_mark", "help", "Keys"),
        Binding("v", "next_pane", "View"),
        # Off the footer, so that q Quit stays in it at 80 columns.
        Binding("o", "switch_node", "Node", show=False),
        # The help and the palette say which mode is on and which m goes to (`key_bindings`).
        Binding("m", "switch_mode", "Mode"),
        # Off the footer, which has no room left at 80 columns (`?` and the palette list them).
        Binding("right_square_bracket", "next_decision", "Next decision", show=False),
        Binding("left_square_bracket", "previous_decision", "Previous decision", show=False),
        Binding("S", "summary", "Summary of the trace", show=False),
        Binding("c", "challenge", "Challenge: predict each decision", show=False),
        Binding("y", "command", "Command that reopens this hop (copied)", show=False),
        Binding("slash", "filter", "Filter", show=False),
        Binding("g,home", "start", "Start", show=False),
        Binding("G,end", "end", "End", show=False),
        Binding("greater_than_sign", "faster", "Faster", show=False),
        Binding("less_than_sign", "slower", "Slower", show=False),
        *_scenario_bindings(),
        Binding("d", "delete_pod", "Delete pod", show=False),
        Binding("plus", "scale(1)", "Scale up", show=False),
        Binding("minus", "scale(-1)", "Scale down", show=False),
        Binding("s", "spread", "Send N", show=False),
        Binding("L", "verify", "Check in the lab", show=False),
    ]

    def __init__(
        self, session: Session, request: Request | None = None, *, step: int | None = None
    ) -> None:
        super().__init__()
        self.session = session
        """The cluster and the calls on it."""
        self.request: Request | None = request
        """The request on display."""
        self.start_step = step
        """The hop (from 1) the request the screen was started with opens at; None: the first."""
        self.trace: Trace | None = None
        """Its trace."""
        self.stepper: Stepper | None = None
        """The cursor over the trace's hops."""
        self.badges: tuple[Badge, ...] = ()
        """Each hop's badge: what it did (DNAT, MASQ, ENCAP…), as the text report names it."""
        self.furthest = 0
        """The furthest hop reached, the end of the packet log."""
        self.pane = PANES[0][0]
        """The pane shown on a narrow terminal (chosen there with `v`, a tab, `o`, `/` or an edit)."""
        self.lab_result: str = ""
        """How the real-kernel lab judged the trace on show ("" until checked)."""
        self.stale = False
        """The trace on show is from before an edit after which its request no longer traces."""
        self.scenario: Preset | None = None
        """The article's scenario on show (keys 1–4), None for a request of the user's own."""
        self.player = Player(self)
        """Plays the trace (space, `<`, `>`)."""
        self.editor = ClusterEditor(self)
        """Deletes and scales pods (`d`, `+`, `-`)."""
        self.lab = LabCheck(self)
        """Checks the trace on show in the real-kernel lab (`L`)."""
        self.challenge = Challenge(self)
        """Asks challenge mode's questions (`c`), keeping the score below."""
        self.mode_switch = ModeSwitch(self)
        """Switches kube-proxy's mode and re-traces at the same hop (`m`)."""
        self.learning = Learning(self)
        """Opens the summary (`S`) and copies the command back to a hop (`y`)."""
        self.challenging = False
        """Challenge mode is on (`c`): a hop's questions are asked before it is shown."""
        self.questions: tuple[Question, ...] = ()
        """Challenge mode's questions on the trace on show (none while it is off)."""
        self.right = 0
        """Questions answered right since challenge mode was turned on."""
        self.asked = 0
        """Questions answered (not skipped) since challenge mode was turned on."""
        self.summarized = False
        """The summary opened by itself at the end of the trace on show (it does so once)."""
        # The panes exist from the start and keep what they are told to show; on a
        # narrow terminal each is mounted when first shown, so the first screen
        # composes, styles and draws only the packet log.
        self.packet_log = PacketLog(id="log", classes="pane -shown")
        """The hops reached so far."""
        self.packet_log.border_title = "Packet log"
        self.inspector = PacketInspector(id="inspector", classes="pane")
        """The packet before and after the hop."""
        self.inspector.border_title = "Packet"
        self.rules_pane = RulesPane(session, id="rules-pane", classes="pane")
        """The rules of the packet's node, or of a chosen one."""
        self.cluster_tree = ClusterTree(tunnels=session.node_tunnels, id="cluster", classes="pane")
        """The cluster, the pod under its cursor what edits act on."""
        self.cluster_tree.border_title = "Cluster"
        self._panes: dict[str, Widget] = {
            "log": self.packet_log,
            "inspector": self.inspector,
            "rules-pane": self.rules_pane,
            "cluster": self.cluster_tree,
        }
        self._mounting: dict[str, AwaitMount] = {}
        self._was_narrow = True
        self._columns = ""
        # The breakpoint's class from the start: set on the first resize, it
        # would restyle every widget once more before the first frame.
        width = self.app.size.width
        if width:
            for floor, name in reversed(self.HORIZONTAL_BREAKPOINTS):
                if width >= floor:
                    self.add_class(name)
                    break

    # -- layout ---------------------------------------------------------------------------

    @property
    def narrow(self) -> bool:
        """The panes are tabs, one shown at a time."""
        return (self.size.width or self.app.size.width) < NARROW_BELOW

    def compose(self) -> ComposeResult:
        yield TitleBar("⇄", narrow_below=NARROW_BELOW)
        # A click shows the pane and gives it the keys; `v` is the keyboard's way.
        yield PaneTabs(dict(PANES), active=self.pane, id="pane-tabs")
        yield PathMap(id="path")
        self._was_narrow = self.narrow
        with Container(id="panes"):
            for name in _GRID_ORDER:
                if not self._was_narrow or name == self.pane:
                    yield self._panes[name]
        # The explanation grows with its text up to half the screen, and scrolls
        # past that (Tab focuses it for the arrow keys): a hop's note is where
        # the article and Linux disagree.
        with VerticalScroll(id="explanation-bar"):
            yield Explanation(id="explanation")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.cluster_tree.show(self.session.cluster)
        self._mark_shown()
        explanation = self.query_one(Explanation)
        if not self.session.cluster.nodes:
            explanation.hint = (
                "This cluster has no nodes, so there is nothing to trace: kubehop needs the "
                "nodes (kubectl get nodes,pods,services,endpointslices -A -o yaml > cluster.yaml,"
                " then kubehop --cluster cluster.yaml)."
            )
            self.notify(
                "This cluster has no nodes: there is nothing to trace.",
                title="Empty cluster",
                severity="warning",
                timeout=10,
            )
        elif not self._presets_here():
            explanation.hint = "Press p to pick a source and destination."
        if self.request is not None:
            # A request the app was started with is a scenario if it is one's (a deep link
            # names the seed it was traced with).
            self.load(self.request, scenario=scenario_of(self.request), step=self.start_step)
        else:
            self.redraw_rules()
            self.update_title()

    async def on_resize(self) -> None:
        narrow = self.narrow
        if not narrow:
            for name in _GRID_ORDER:
                await self._ensure_pane(name)
            width = self.size.width
            grid = self.query_one("#panes").styles
            if width >= WIDE_FROM:
                # Past the breakpoint the cluster column takes half of the extra
                # width (up to 48 cells), so long pod names keep their IPs and
                # NodePorts in view and the rules keep the rest.
                cluster = max(34, min(48, 34 + (width - WIDE_FROM) // 2))
                columns = f"{cluster} 1fr 56"
            else:
                columns = "34 30 1fr"
            if columns != self._columns:
                self._columns = columns
                grid.grid_columns = columns
        if narrow and not self._was_narrow:
            # Back to tabs: the pane shown is the one last chosen on a narrow
            # terminal, and the keys follow it if they were in a pane now hidden.
            self._mark_shown()
            focused = self.focused
            if focused is None or self._pane_of(focused) not in (None, self.pane):
                self._focus_target(self.pane).focus()
        self._was_narrow = narrow

    async def _ensure_pane(self, name: str) -> Widget:
        """The pane `name`, mounted (on a narrow terminal, panes are mounted when first shown)."""
        widget = self._panes[name]
        pending = self._mounting.get(name)
        if pending is None and widget.parent is None:
            later = [
                self._panes[other]
                for other in _GRID_ORDER[_GRID_ORDER.index(name) + 1 :]
                if self._panes[other].parent is not None
            ]
            panes = self.query_one("#panes")
            pending = panes.mount(widget, before=later[0]) if later else panes.mount(widget)
            self._mounting[name] = pending
        if pending is not None:
            await pending
            self._mounting.pop(name, None)
        return widget

    def _mark_shown(self) -> None:
        """Show the narrow terminal's pane, its tab highlighted."""
        for name, widget in self._panes.items():
            widget.set_class(name == self.pane, "-shown")
        self.query_one(PaneTabs).active = self.pane

    def _focus_target(self, pane: str) -> Widget:
        """The widget of `pane` that takes the keys."""
        if pane == "rules-pane" and self.rules_pane.is_mounted:
            return self.rules_pane.query_one(RulesView)
        return self._panes[pane]

    def _pane_of(self, widget: Widget) -> str | None:
        """The pane `widget` is in, if any."""
        for name, pane in self._panes.items():
            if widget is pane or pane in widget.ancestors:
                return name
        return None

    async def show_pane(self, pane: str, *, focus: bool = True) -> None:
        """Show `pane` (a PANES id) and, with `focus`, give it the keys.

        On a narrow terminal the pane is shown alone, its tab highlighted, and
        stays the narrow pane; on a wider one every pane is on show already.
        """
        await self._ensure_pane(pane)
        if self.narrow:
            self.pane = pane
            self._mark_shown()
        if focus:
            self._focus_target(pane).focus()
        if pane == "rules-pane":
            # A pane just shown had no height to scroll in.
            self.rules_pane.scroll_to_match()

    @on(PaneTabs.Chosen)
    async def _tab_chosen(self, event: PaneTabs.Chosen) -> None:
        await self.show_pane(event.pane)

    def _update_rules_tab(self) -> None:
        self.query_one(PaneTabs).set_label("rules-pane", self.rules_pane.label)

    def redraw_rules(self) -> None:
        """Show the rules that go with the hop on show, as they are now (after an edit)."""
        self.rules_pane.show(self.trace, self.hop)
        self._update_rules_tab()

    # -- showing a trace ------------------------------------------------------------------

    def load(
        self, request: Request, *, scenario: Preset | None = None, step: int | None = None
    ) -> bool:
        """Trace `request` (`scenario`'s, if one) and show its first hop (hop `step`, from 1,
        when given); on a bad request, say why and keep the old.

        On a big cluster the trace runs in a worker (False until it is shown).
        """
        if self.session.big:
            self.player.stop()
            self.query_one(Explanation).waiting = (
                f"Tracing {request.describe()}: the first trace through a node renders and "
                "parses its kube-proxy rules, which takes a while at this scale…"
            )
            self._trace_in_worker(request, scenario, step)
            return False
        try:
            trace = self.session.trace(request)
        except KubehopError as err:
            self.notify(escape(str(err)), title="Cannot trace", severity="error")
            return False
        self._show_at_step(request, trace, scenario, step)
        return True

    @work(thread=True, exclusive=True, group="trace")
    def _trace_in_worker(
        self, request: Request, scenario: Preset | None, step: int | None = None
    ) -> None:
        try:
            trace = self.session.trace(request)
        except KubehopError as err:
            self.app.call_from_thread(self._trace_failed, str(err))
            return
        self.app.call_from_thread(self._show_at_step, request, trace, scenario, step)

    def _show_at_step(
        self, request: Request, trace: Trace, scenario: Preset | None, step: int | None
    ) -> None:
        """Show `trace` at hop `step` (from 1, a deep link's), its hops up to there listed."""
        hops = len(trace.hops)
        if step is not None and step > hops:
            self.notify(
                f"--step {step}: this trace has {hops} hops; showing the last.", severity="warning"
            )
        self.show_trace(request, trace, max(0, min((step or 1) - 1, hops - 1)), scenario=scenario)

    def _trace_failed(self, message: str) -> None:
        self.query_one(Explanation).waiting = ""
        self.notify(escape(message), title="Cannot trace", severity="error")

    def show_trace(
        self,
        request: Request,
        trace: Trace,
        index: int = 0,
        *,
        scenario: Preset | None = None,
        retrace: bool = False,
    ) -> None:
        """Show `trace` (of `scenario`, if one) from hop `index`.

        A new request's rules follow the packet; a `retrace` (the same request
        after an edit) keeps its scenario, the node chosen with `o` and the hops
        listed so far.
        """
        self.player.stop()
        self.query_one(Explanation).waiting = ""
        furthest = min(self.furthest, len(trace.hops) - 1) if retrace else 0
        self.request = request
        self.trace = trace
        self.badges = tuple(badge_of(e, label) for e, label in self.session.effects(trace))
        self.lab_result = ""
        self.stale = False
        self.stepper = Stepper(trace)
        self.furthest = max(furthest, self.stepper.seek(index).seq)
        if not retrace:
            self.scenario = scenario
            self.summarized = False
            self.rules_pane.follow()
        self.questions = self.session.questions(trace) if self.challenging else ()
        self.update_title()
        self._draw()

    def _presets_here(self) -> bool:
        return all(self.session.has_source(p.request) for p in presets())

    @property
    def dataplane(self) -> str:
        """kube-proxy's mode and the CNI, as the title shows them (`nftables · flannel-vxlan`)."""
        return f"{self.session.mode} · {self.session.cni}"

    def update_title(self) -> None:
        """Say in the title what is on show: the request or scenario, the dataplane, the score."""
        score = f"Challenge {self.right}/{self.asked} · " if self.challenging else ""
        if self.trace is None or self.request is None:
            self.title = score + "kubehop"
            nodes = len(self.session.cluster.nodes)
            if not nodes:
                self.sub_title = "no nodes: nothing to trace"
                return
            keys = "p or 1–4" if self._presets_here() else "p"
            self.sub_title = (
                f"{nodes} node{'s' if nodes != 1 else ''} · {self.dataplane} · press {keys}"
            )
            return
        trace = self.trace
        endpoint = f" → {trace.endpoint}" if trace.endpoint else ""
        preset = self.scenario
        if endpoint and preset is not None and preset.request.pick:
            # The article's case, not kube-proxy's random choice: say so.
            endpoint += " (endpoint chosen for this scenario)"
        lab = f" · {self.lab_result}" if self.lab_result else ""
        stale = "⚠ before the last edit · " if self.stale else ""
        # The scenario's headline says what is happening; the score leads, so that it
        # stays on an 80-column title line.
        self.title = score + (preset.headline if preset is not None else self.request.describe())
        # The dataplane first: at 80 columns the end of the line is cut.
        self.sub_title = (
            f"{stale}{self.dataplane} · {trace.verdict.value}{endpoint} · seed {trace.seed}{lab}"
        )

    def _scenario_note(self, hop: Hop) -> str:
        """At the hop where a scenario's chosen endpoint is taken, why it is always that one."""
        preset, trace = self.scenario, self.trace
        if preset is None or trace is None or not preset.request.pick:
            return ""
        if hop.seq != self.session.landmark(trace, "dnat"):
            return ""
        proxy = self.session.cluster.kube_proxy
        if proxy.mode.value == "ipvs":
            scheduler = proxy.ipvs_scheduler or "rr"
            picks = (
                "IPVS itself takes the real servers in turn (rr, round-robin)"
                if scheduler == "rr"
                else f"IPVS itself picks with its {scheduler} scheduler"
            )
        else:
            picks = "kube-proxy itself picks at random"
        return (
            f"Scenario {preset.key} always takes {preset.request.pick}, to show the article's "
            f"case; {picks} (s sends many requests and charts them)."
        )

    @property
    def index(self) -> int:
        """The position of the hop on display."""
        return self.stepper.index if self.stepper is not None else 0

    @property
    def hop(self) -> Hop | None:
        """The hop on display."""
        return self.stepper.current if self.stepper is not None else None

    def go_to(self, index: int) -> None:
        """Show hop `index` (clamped to the trace)."""
        if self.stepper is None:
            return
        self.stepper.seek(index)
        self.show_current()

    def show_current(self) -> None:
        """Draw the stepper's current hop."""
        self.furthest = max(self.furthest, self.index)
        self._draw()

    def _draw(self) -> None:
        trace, hop = self.trace, self.hop
        if trace is None or hop is None:
            return
        badges = self.badges
        path = self.query_one(PathMap)
        path.bridge = self.session.cluster.cni.bridge
        path.index = hop.seq
        path.badges = badges
        path.trace = trace
        self.packet_log.show(trace, hop.seq, self.furthest, badges)
        self.inspector.show(hop, conntrack_view(trace, hop.seq), badges[hop.seq])
        explanation = self.query_one(Explanation)
        explanation.trace = trace
        explanation.badge = badges[hop.seq]
        explanation.hop = hop
        explanation.wording = scenario_wording(self.scenario)
        explanation.aside = self._scenario_note(hop)
        preset = self.scenario
        explanation.goal = preset.goal if preset is not None and hop.seq == 0 else ""
        self.query_one("#explanation-bar").scroll_home(animate=False)
        self.redraw_rules()

    # -- stepping -------------------------------------------------------------------------

    def _untraced(self) -> bool:
        """With no trace on show, say what to do instead (True); else False."""
        if self.stepper is not None:
            return False
        if self.query_one(Explanation).waiting:
            self.notify("Still tracing: the hops are shown as soon as the trace is done.")
        elif not self.session.cluster.nodes:
            self.notify("This cluster has no nodes: there is nothing to trace.", severity="warning")
        else:
            keys = "p, or 1–4 for the article's scenarios" if self._presets_here() else "p"
            self.notify(f"Pick a request first: press {keys}.", severity="warning")
        return True

    def action_step(self) -> None:
        """Next hop."""
        self.player.stop()
        if self._untraced() or self.stepper is None:
            return
        self.advance(self.index + 1, summary=True)

    def asks_before(self, index: int) -> bool:
        """Challenge mode has a question to ask before hop `index` is shown."""
        return bool(self.challenge.pending(index))

    def advance(self, index: int, *, summary: bool = False, resume: bool = False) -> None:
        """Show hop `index`, further on; in challenge mode, first ask the questions before
        the hops it shows for the first time, in order.

        With `summary`, arriving at the last hop opens the summary (once a trace);
        with `resume`, playing goes on from there.
        """
        trace = self.trace
        if trace is None or self.stepper is None:
            return
        index = max(0, min(index, len(trace.hops) - 1))
        self.challenge.ask_before(
            trace, index, partial(self._arrive, index, summary=summary, resume=resume)
        )

    def _arrive(self, index: int, *, summary: bool, resume: bool) -> None:
        """Show hop `index`, its questions answered (see `advance`)."""
        if self.stepper is None:
            return
        was_at_end = self.stepper.at_end
        self.go_to(index)
        if resume and not self.stepper.at_end:
            self.player.play()
        elif summary and self.stepper.at_end and not was_at_end:
            self.reached_end()

    def reached_end(self) -> None:
        """The last hop was reached by stepping or playing: the summary, once a trace."""
        if not self.summarized:
            self.summarized = True
            self.action_summary()

    def action_back(self) -> None:
        """Previous hop."""
        self.player.stop()
        if self._untraced() or self.stepper is None:
            return
        self.stepper.back()
        self.show_current()

    def action_start(self) -> None:
        """First hop."""
        self.player.stop()
        if self._untraced() or self.stepper is None:
            return
        self.stepper.to_start()
        self.show_current()

    def action_end(self) -> None:
        """Last hop."""
        self.player.stop()
        if self._untraced() or self.trace is None:
            return
        self.advance(len(self.trace.hops) - 1)

    def action_next_decision(self) -> None:
        """The next hop where something is decided (a NAT, a route, a bridge, a drop…)."""
        self.player.stop()
        if self._untraced() or self.trace is None:
            return
        index = self.session.next_decision(self.trace, self.index)
        if index is None:
            self.notify("No decision after this hop: it is the trace's last.")
            return
        self.advance(index, summary=True)

    def action_previous_decision(self) -> None:
        """The previous hop where something was decided."""
        self.player.stop()
        if self._untraced() or self.trace is None:
            return
        index = self.session.previous_decision(self.trace, self.index)
        if index is None:
            self.notify("No decision before this hop.")
            return
        self.go_to(index)

    def action_reply(self) -> None:
        """First hop of the reply."""
        self.player.stop()
        if self._untraced() or self.stepper is None or self.trace is None:
            return
        if not any(h.direction is Direction.REPLY for h in self.trace.hops):
            self.notify(
                "This request got no reply: " + escape(self.trace.reason), severity="warning"
            )
        reply = self.session.landmark(self.trace, "reply")
        self.advance(reply if reply is not None else len(self.trace.hops) - 1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "play":
            return not self.player.playing
        if action == "pause":
            return self.player.playing
        return True

    def action_play(self) -> None:
        """Play from the current hop."""
        if not self._untraced():
            self.player.play()

    def action_pause(self) -> None:
        """Pause playing."""
        self.player.stop()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "play":  # it ends by itself at the last hop
            self.refresh_bindings()

    def action_faster(self) -> None:
        """Play faster."""
        self.player.change_speed(+1)

    def action_slower(self) -> None:
        """Play slower."""
        self.player.change_speed(-1)

    @on(PacketLog.HopChosen)
    def _hop_chosen(self, event: PacketLog.HopChosen) -> None:
        if event.index != self.index:
            self.player.stop()
            self.go_to(event.index)

    # -- choosing what to trace -----------------------------------------------------------

    def action_scenario(self, key: str) -> None:
        """Load one of the article's scenarios."""
        for preset in presets():
            if preset.key != key:
                continue
            if not self.session.has_source(preset.request):
                missing = escape(literal(preset.request.source))
                why = (
                    f"{missing} is gone: an edit of this session deleted it."
                    if self.session.history
                    else "The article's scenarios are cast on the demo cluster (run kubehop "
                    f"without --cluster); this cluster has no {missing}."
                )
                self.notify(f"{why} Press p to pick a flow.", severity="warning")
                return
            self.load(preset.request, scenario=preset)
            return

    def action_pick(self) -> None:
        """Open the pick dialog."""

        from tui.screens.pick import PickScreen

        def picked(result: PickResult | None) -> None:
            if result is None:
                return
            if result.trace is None:
                self.load(result.request)
            else:
                self.show_trace(result.request, result.trace)

        self.app.push_screen(PickScreen(self.session, self.request), picked)

    # -- kube-proxy's mode ----------------------------------------------------------------

    def action_switch_mode(self) -> None:
        """Switch kube-proxy to its next mode and trace the request on show again, staying at
        the hop on show (or the nearest), and say what the other mode does differently."""
        self.mode_switch.switch()

    # -- rules pane -----------------------------------------------------------------------

    async def action_switch_node(self) -> None:
        """Show the next node's rules; after the last node, follow the packet again."""
        nodes = self.session.cluster.nodes
        if not nodes:
            self.notify("This cluster has no nodes, so no rules.", severity="warning")
            return
        if len(nodes) == 1 and self.rules_pane.node == nodes[0].name:
            self.notify(f"{escape(literal(nodes[0].name))} is the only node.")
        else:
            self.rules_pane.switch_node()
            self._update_rules_tab()
        if self.narrow:
            await self.show_pane("rules-pane")

    async def action_filter(self) -> None:
        """Filter the rules by text or chain."""
        await self.show_pane("rules-pane", focus=False)
        self.rules_pane.open_filter()

    def key_escape(self) -> None:
        self.rules_pane.close_filter()

    # -- panes ----------------------------------------------------------------------------

    async def action_next_pane(self) -> None:
        """Show the next pane and give it the keys (a narrow terminal shows one at a time)."""
        names = [name for name, _ in PANES]
        current = self.pane
        if not self.narrow and self.focused is not None:
            current = self._pane_of(self.focused) or current
        await self.show_pane(names[(names.index(current) + 1) % len(names)])

    # -- editing the cluster --------------------------------------------------------------

    async def action_delete_pod(self) -> None:
        """Delete the pod under the cursor in the cluster pane."""
        await self.editor.delete_pod()

    async def action_scale(self, delta: int) -> None:
        """Scale the ReplicaSet of the pod under the cursor."""
        await self.editor.scale(delta)

    def mark_stale(self) -> None:
        """Say in the title that the trace on show predates an edit after which it fails."""
        self.stale = True
        self.update_title()

    def action_spread(self) -> None:
        """Send N requests and chart where they went."""
        if self.request is None:
            self._untraced()
            return
        from tui.screens.spread import SpreadScreen

        request = self.request
        seed = self.trace.seed if self.trace is not None else None
        self.app.push_screen(
            SpreadScreen(
                lambda count, progress: self.session.spread(
                    Request(request.source, request.destination, request.container, seed),
                    count,
                    progress=progress,
                )
            )
        )

    # -- the real-kernel lab --------------------------------------------------------------

    def action_verify(self) -> None:
        """Send the request for real in the lab (`kubehop lab up`) and compare with the trace."""
        if not self._untraced():
            self.lab.check()

    def show_lab_result(self, result: str) -> None:
        """Say in the title how the lab judged the trace on show."""
        self.lab_result = result
        self.update_title()

    # -- learning: summary, challenge, deep links ------------------------------------------

    def action_summary(self) -> None:
        """What the trace came to: NAT and its reversal, the deciding rules, nodes, tunnels."""
        if not self._untraced():
            self.learning.summary()

    def action_challenge(self) -> None:
        """Challenge mode on or off: before a decision hop is shown, predict it."""
        self.challenge.toggle()

    def action_command(self) -> None:
        """Show, and copy, the command that opens the app at this trace and hop."""
        if not self._untraced():
            self.learning.command()

    def action_help(self) -> None:
        """Show the keys."""
        from tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.key_bindings()))

    def key_bindings(self) -> list[BindingType]:
        """The screen's keys as the help and the command palette list them: `m` says which
        mode kube-proxy is in and which it switches to (the footer has room for "Mode")."""
        described = self.mode_switch.description()
        return [
            replace(b, description=described)
            if isinstance(b, Binding) and b.action == "switch_mode"
            else b
            for b in self.BINDINGS
        ]
